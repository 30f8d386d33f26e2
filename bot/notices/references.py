"""Change references: what a sync cycle writes to the outbox for the notices step, in its own commit.

Where it sits: ``bot.syncing.Syncer.run`` passes ``change_references`` to ``Store.commit_sync``,
so the outbox gets one row per change (channel ``changes``, key ``change:{change id}``) in the
SAME transaction as the change log and the delta cursor: a crash cannot record a change without
its notice reference, or the reverse. ``bot.notices.outbox.drain`` routes and renders them later.
Kept apart from the drain so the sync does not import the card builder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.store.rows import ChangeRecord, TrackedItem

__all__ = ["CHANGES", "change_references"]

#: Outbox channel of change references (written by the sync's commit).
CHANGES = "changes"


def change_references(records: Sequence[ChangeRecord], items: Mapping[str, TrackedItem] | None = None
                      ) -> list[tuple[str, str, dict[str, Any]]]:
    """Outbox rows (channel, key, payload) for a sync's stored change records; own writes stay silent.

    ``items`` (item id → tracked row) adds who changed it and when, as far as delta said.
    """
    out: list[tuple[str, str, dict[str, Any]]] = []
    for record in records:
        if record.by_self or record.id is None:
            continue
        item = (items or {}).get(record.item_id)
        out.append((CHANGES, f"change:{record.id}", {
            "type": "change", "change_id": record.id, "kind": record.kind, "path": record.path,
            "old_path": record.old_path, "at": record.at, "item_id": record.item_id,
            "by": item.modified_by if item is not None and record.kind != "deleted" else None,
            "modified_at": item.modified_at if item is not None and record.kind != "deleted" else None}))
    return out
