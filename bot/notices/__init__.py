"""Teams notices: change references and circulation events in the outbox become Adaptive Cards.

Where it sits: last step of a cycle, after the sync (and circulation) committed. Modules:
``references`` (what the sync's commit enqueues), ``routing`` (pure: which channels may hear
of a path), ``cards`` (pure: the 1.4 cards, validated), ``ports`` (the ``Notifier`` port),
``outbox`` (``drain``: route, debounce, send, back off, park). ``drain_once`` wires them from
settings for ``cartif-bot notices send`` and the service cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.notices.outbox import DrainReport, NoticeConfig, drain, list_notices, retry_notices, withheld_sources
from bot.notices.ports import Delivery, MemoryNotifier, Notifier
from bot.notices.routing import Router

__all__ = ["Delivery", "DrainReport", "MemoryNotifier", "NoticeConfig", "Notifier", "Router", "drain",
           "drain_once", "list_notices", "retry_notices", "withheld_sources"]


async def drain_once(settings: Any, store: Any, *, structure: Any = None,
                     observed: Mapping[str, Iterable[str]] | None = None) -> DrainReport:
    """One drain with the real transport (Workflows webhooks from ``settings.teams.webhooks``).

    ``structure`` defaults to the shipped config/cartif.yaml; ``store`` is an open ``bot.store.Store``;
    ``observed``: the permission cycle's ``routing.observed_readers`` (permissions made by hand), if known.
    """
    from config.structure import load_structure
    from connectors.teams import build_workflows_notifier

    declared = structure if structure is not None else load_structure(settings.permissions.structure_path)
    notifier = build_workflows_notifier(settings)
    try:
        return await drain(store, notifier, Router(declared, observed=observed),
                           NoticeConfig.from_settings(settings, library=declared.library))
    finally:
        await notifier.aclose()
