"""The notices step of the service cycle: drain the outbox to Teams once per cycle.

Where it sits: ``bot.service.steps.build_steps`` appends ``NoticesStep()`` after the sync,
permissions and circulation steps (the lead wires it), so the change references and circulation
events those steps committed are routed and posted in the same cycle. Level-based like every step:
a second run in a row sends nothing (the outbox keys and statuses say what was done).

After the drain it deletes what the outbox is done with (sent and parked notices, routed sources)
once older than ``teams.outbox_retention_days`` (``bot.notices.retention``): one DELETE; pending
rows are never deleted.

``detail["next_due"]`` is when waiting notices (debounce window, back-off) become due: a scheduler
may run an extra drain then instead of waiting for the next cycle.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.service.steps import CycleContext, StepResult

__all__ = ["NoticesStep"]


class NoticesStep:
    """Routes pending change references and events, posts due cards (``bot.notices.drain_once``)."""

    name = "notices"

    async def run(self, context: CycleContext) -> StepResult:
        from bot.notices import drain_once
        from bot.notices.retention import prune_outbox
        from bot.service.history import RunHistory
        from bot.service.steps import StepResult
        from config.structure import load_structure

        structure = load_structure(context.settings.permissions.structure_path)
        # What this cycle's permissions step saw of permissions made by hand (bot.notices.routing);
        # when it failed, the last observation on record (the run history); with none at all,
        # routing follows the desired model.
        permissions = context.results.get("permissions")
        observed = permissions.detail.get("observed_readers") if permissions is not None else None
        if observed is None:
            observed = await asyncio.to_thread(RunHistory(context.store).last_observation)
        report = await drain_once(context.settings, context.store, structure=structure, observed=observed)
        pruned = await asyncio.to_thread(prune_outbox, context.store, context.settings.teams.outbox_retention_days)
        counts = {"routed": report.routed, "notices": report.notices, "cards": report.cards, "sent": report.sent,
                  "waiting": report.deferred, "retrying": report.retrying, "parked": report.parked,
                  "recovered": report.recovered, "pruned": pruned}
        detail = {"next_due": report.next_due.isoformat() if report.next_due else None,
                  "errors": report.errors[:20]}
        return StepResult(counts, detail, tuple(f"notice not delivered: {e}" for e in report.errors[:20]))
