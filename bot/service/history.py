"""The service's run history in the store: what ``GET /api/runs`` and ``/api/status`` read after a restart.

Where it sits: ``bot.service.running.CycleRunner`` calls ``RunHistory.started`` when a cycle starts
(a row with status "running") and ``finished`` when it ends (outcome, per-step summary, error),
then ``prune`` (one DELETE of rows older than ``service.run_history_days``). Before each run it
starts, the leader's ``mark_interrupted`` turns rows still "running" into "interrupted" (an indexed
UPDATE): only the leader runs cycles, one at a time, so such a row belongs to a process that died
mid-cycle (kill -9, power cut). The API
(``bot.service.api``) reads ``recent`` and ``get``; queued and running runs also live in the
runner's memory, which has their live progress.

The row keeps a summary of each step, not everything: lists inside a step's ``detail`` (the sync's
changes, the notices step's errors) are cut to ``DETAIL_LIST_MAX`` entries so a row stays a few
kilobytes and 90 days of 5-minute cycles stay a few tens of megabytes. The pure helpers
(``steps_summary``, ``run_row``, ``run_from_row``) are tested on plain values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from bot.service.running import Run, StepRecord
from bot.store import Store, schema

__all__ = ["DETAIL_LIST_MAX", "LIST_MAX", "RunHistory", "run_from_row", "run_row", "steps_summary"]

#: The most runs one ``recent`` call (GET /api/runs?limit=) returns.
LIST_MAX = 200
#: Lists inside a step's ``detail`` keep this many entries in the stored summary.
DETAIL_LIST_MAX = 20
#: Findings (drift lines) kept per step in the stored summary; the step itself caps them at 100.
FINDINGS_MAX = 100
#: What a run left "running" by a dead process is marked with.
INTERRUPTED_ERROR = "the service process ended during this run (crash or kill); it was not finished"


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _trim(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_trim(v) for v in value[:DETAIL_LIST_MAX]]
    if isinstance(value, Mapping):
        return {str(k): _trim(v) for k, v in value.items()}
    return value


def steps_summary(steps: Sequence[StepRecord]) -> list[dict[str, Any]]:
    """The per-step summary stored with a run: status, time, counts, findings, trimmed detail, error."""
    return [{"name": s.name, "status": s.status, "seconds": s.seconds, "counts": dict(s.counts),
             "detail": _trim(dict(s.detail)), "findings": list(s.findings[:FINDINGS_MAX]), "error": s.error}
            for s in steps]


def run_row(run: Run) -> dict[str, Any]:
    """A run as a ``service_runs`` row."""
    return {"id": run.id, "trigger": run.reason, "requested_by": run.requested_by,
            "follow_up_of": run.follow_up_of, "triggers": run.triggers, "requested_at": run.requested_at,
            "started_at": run.started_at or run.requested_at, "finished_at": run.finished_at,
            "seconds": run.seconds, "status": run.status,
            "steps": json.dumps(steps_summary(run.steps), sort_keys=True, default=str),
            "error": run.error}


def run_from_row(row: Any) -> Run:
    """A stored row back as a ``Run`` (what the API serialises), its steps from the JSON summary."""
    steps = [StepRecord(s["name"], s.get("status", "pending"), s.get("seconds"), dict(s.get("counts") or {}),
                        dict(s.get("detail") or {}), list(s.get("findings") or []), s.get("error"))
             for s in json.loads(row.steps or "[]")]
    return Run(row.id, row.trigger, row.requested_at, steps, status=row.status, triggers=int(row.triggers),
               started_at=row.started_at, finished_at=row.finished_at, seconds=row.seconds,
               requested_by=row.requested_by, follow_up_of=row.follow_up_of, error=row.error)


@dataclasses.dataclass
class RunHistory:
    """``service_runs`` access for the runner and the API. Blocking: call it from a worker thread."""

    store: Store
    #: rows whose run started longer ago than this are deleted by ``prune``
    retention_days: int = 90

    def started(self, run: Run) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(schema.service_runs.insert().values(**run_row(run)))

    def finished(self, run: Run) -> None:
        """Write the run's end state (inserting the row if ``started`` never got to write it)."""
        row = run_row(run)
        t = schema.service_runs
        with self.store.engine.begin() as conn:
            updated = conn.execute(t.update().where(t.c.id == run.id).values(
                **{k: v for k, v in row.items() if k != "id"}))
            if not updated.rowcount:
                conn.execute(t.insert().values(**row))

    def mark_interrupted(self, now: dt.datetime | None = None) -> int:
        """Rows still "running" → "interrupted" (the leader calls it before each run it starts)."""
        t = schema.service_runs
        with self.store.engine.begin() as conn:
            result = conn.execute(t.update().where(t.c.status == "running").values(
                status="interrupted", finished_at=_iso(now or dt.datetime.now(dt.UTC)), error=INTERRUPTED_ERROR))
        return int(result.rowcount or 0)

    def prune(self, now: dt.datetime | None = None) -> int:
        """Delete finished runs that started more than ``retention_days`` ago: one DELETE."""
        t = schema.service_runs
        cutoff = _iso((now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.retention_days))
        with self.store.engine.begin() as conn:
            result = conn.execute(t.delete().where(t.c.started_at < cutoff, t.c.status != "running"))
        return int(result.rowcount or 0)

    def recent(self, limit: int = 20) -> list[Run]:
        """The most recently started runs, newest first (at most ``LIST_MAX``)."""
        t = schema.service_runs
        limit = max(1, min(int(limit), LIST_MAX))
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit))
            return [run_from_row(r) for r in rows]

    def last_observation(self, scan: int = LIST_MAX) -> dict[str, list[str]] | None:
        """The permissions made by hand (``observed_readers``: path → groups granted) that the latest
        successful permissions step saw, or None if none is on record among the last ``scan`` runs.

        For notice routing when this cycle has no observation of its own (the permissions step
        failed, or ``cartif-bot notices send`` runs alone): hand-made restrictions rarely change, and
        the last known ones are far closer to the truth than the desired model, which knows none.
        Group lists are stored trimmed (``DETAIL_LIST_MAX``); a trimmed list can only narrow routing.
        """
        for run in self.recent(scan):
            for step in run.steps:
                observed = step.detail.get("observed_readers")
                if step.name == "permissions" and step.status == "succeeded" and isinstance(observed, dict):
                    return {str(path): [str(g) for g in groups] for path, groups in observed.items()}
        return None

    def get(self, run_id: str) -> Run | None:
        t = schema.service_runs
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == run_id)).first()
        return run_from_row(row) if row is not None else None
