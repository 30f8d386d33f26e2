"""The store's row types: small frozen dataclasses, the only shape in which rows leave ``Store``.

Terminology: a *tracked item* is our copy of one driveItem's latest known state; a *change* is
one event a sync derived from comparing a delta item with its tracked state; the *cursor* is the
deltaLink a drive's next sync resumes from.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = ["AuditEntry", "ChangeKind", "ChangeRecord", "DeltaCursor", "OutboxMessage", "Subscription",
           "TrackedItem"]

ChangeKind = Literal["created", "modified", "renamed", "moved", "deleted"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("created", "modified", "renamed", "moved", "deleted")


@dataclasses.dataclass(frozen=True, slots=True)
class TrackedItem:
    """A driveItem as the store last saw it. ``path`` is drive-relative: "" for the root, "/A/b.txt"."""

    drive_id: str
    id: str
    parent_id: str | None
    path: str
    name: str
    is_folder: bool
    etag: str | None = None
    ctag: str | None = None
    size: int | None = None
    sha256: str | None = None
    quick_xor: str | None = None
    #: display name of the user, or the application id for an app ("app:{client id}")
    modified_by: str | None = None
    modified_at: str | None = None
    deleted: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class DeltaCursor:
    """Where a drive's next sync resumes: the deltaLink of the last committed sync."""

    drive_id: str
    delta_link: str
    updated_at: str


@dataclasses.dataclass(frozen=True, slots=True)
class Subscription:
    """A Graph change-notification subscription we created."""

    id: str
    drive_id: str
    expiration: str
    client_state_hash: str
    notification_url: str
    #: where Graph sends lifecycle notifications (reauthorizationRequired); None for a subscription
    #: created before the bot asked for them
    lifecycle_notification_url: str | None = None
    #: created with ``Prefer: includesecuritywebhooks``: permission changes are notified too
    include_security: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One change event. ``id`` is None until stored; ``classification`` is the classifier's mapping."""

    cycle_id: str
    at: str
    drive_id: str
    item_id: str
    kind: ChangeKind
    path: str
    old_path: str | None
    classification: dict[str, Any]
    by_self: bool = False
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "item_id": self.item_id, "kind": self.kind, "path": self.path,
                "old_path": self.old_path, "classification": self.classification, "at": self.at,
                "cycle_id": self.cycle_id, "drive_id": self.drive_id, "by_self": self.by_self}


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action of the bot: what (``action`` on ``target``), the state before/after, and the rule why."""

    action: str
    target: str
    at: str
    cycle_id: str | None = None
    before: Any = None
    after: Any = None
    rule: str | None = None
    id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to deliver at least once; ``idempotency_key`` is unique across the outbox."""

    channel: str
    idempotency_key: str
    payload: Any
    created_at: str
    attempts: int = 0
    next_attempt_at: str | None = None
    status: str = "pending"
    last_error: str | None = None
    id: int | None = None
