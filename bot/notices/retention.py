"""Outbox retention: delete what the notices drain is done with, once it is older than N days.

Where it sits: ``bot.notices.step.NoticesStep`` calls ``prune_outbox`` after each drain, with
``teams.outbox_retention_days``. Without it the outbox grows by every change reference and every
notice forever (it is the at-least-once queue, not a record).

What is done with (``DONE``): a notice ``sent`` (delivered) or ``failed`` (parked; the operator had
the retention period to ``notices retry`` it), and a source (change reference or circulation event)
``routed``. Never ``pending`` (not delivered yet: back-off, debounce, no transport) nor ``sending``
(claimed; ``drain`` recovers it). Deleting a done row cannot cause a second notice: sources are
keyed by change id or register entry, both written once, and a notice is only created while its
source is pending. The daily digest reads the last 24 hours of sent notices, hence the setting's
minimum of 2 days.

The change log (``change_log``) and the audit trail (``audit``) are NOT pruned: the audit trail is
the record of what the bot did and why, and the change log is what ``cartif-bot changes`` answers
from; both grow with activity (one row per change or applied action) and are documented as such.
"""

from __future__ import annotations

import datetime as dt

from bot.store import Store, schema

__all__ = ["DONE", "cutoff", "prune_outbox"]

#: Outbox statuses the drain is finished with (see the module docstring).
DONE = ("sent", "failed", "routed")


def cutoff(now: dt.datetime, retention_days: int) -> str:
    """The ISO-8601 UTC time before which done rows go (rows are compared on ``created_at``)."""
    return (now.astimezone(dt.UTC) - dt.timedelta(days=retention_days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prune_outbox(store: Store, retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete done outbox rows created more than ``retention_days`` ago: one DELETE; how many went."""
    t = schema.outbox
    before = cutoff(now or dt.datetime.now(dt.UTC), retention_days)
    with store.engine.begin() as conn:
        result = conn.execute(t.delete().where(t.c.status.in_(DONE), t.c.created_at < before))
    return int(result.rowcount or 0)
