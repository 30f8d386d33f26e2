"""The cycle runner: one cycle at a time, scheduled or triggered, with exactly one follow-up queued.

Where it sits: ``bot.service.serving`` creates one ``CycleRunner``; the scheduler loop
(``run_forever``), ``POST /api/sync`` and the notification receiver call ``trigger``; the API
reads ``runs`` (memory: queued and running runs with their live progress) and, for finished runs,
the store's run history (``bot.service.history``: a row written when a run starts and when it
ends, so ``GET /api/runs`` and ``/api/status`` survive a restart).

Rules:

* Two cycles never overlap: a single task runs them, one after the other.
* A trigger while a cycle runs queues ONE follow-up; further triggers join that follow-up (same
  run id). A notification burst, the schedule and manual triggers all coalesce the same way.
* Only the leader runs cycles (``is_leader``); a standby keeps the schedule but skips cycles.
* ``stop()`` (SIGTERM): the step in flight finishes (it is awaited, never cancelled), the
  remaining steps of that cycle are skipped and recorded as such, and ``run_forever`` returns.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot.service.logs import run_id_var
from bot.service.scheduling import Schedule
from bot.service.steps import CycleContext, CycleStep, StepResult
from bot.store import Store
from config.settings import Settings

if TYPE_CHECKING:
    from bot.service.history import RunHistory

__all__ = ["CycleRunner", "Run", "StepRecord", "run_error"]

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class StepRecord:
    """One step of a run, as /api/runs/{id} shows it."""

    name: str
    status: str = "pending"  # pending | running | succeeded | failed | skipped
    seconds: float | None = None
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    findings: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None


@dataclasses.dataclass
class Run:
    """A cycle requested once and run once. ``status``: queued → running → succeeded | partial |
    failed | interrupted; "skipped" when it reached a standby (only the leader runs cycles)."""

    id: str
    reason: str
    requested_at: str
    steps: list[StepRecord]
    status: str = "queued"
    #: how many triggers this run absorbed (1 + those that joined it while it was queued)
    triggers: int = 1
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    #: who asked: "service" (start, schedule, notification, takeover), "token" or "entra:{app id}" (API)
    requested_by: str | None = None
    #: the run in flight when this one was queued (a follow-up runs right after it)
    follow_up_of: str | None = None
    #: the failed steps' errors, or why the run was interrupted (set when it ends)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status not in ("queued", "running")

    @property
    def current_step(self) -> str | None:
        return next((s.name for s in self.steps if s.status == "running"), None)

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["current_step"] = self.current_step
        data["done"] = self.done
        return data


def run_error(run: Run) -> str | None:
    """A finished run's error line: its failed steps' errors, or which steps a stop skipped."""
    failed = [f"{s.name}: {s.error}" for s in run.steps if s.status == "failed" and s.error]
    if failed:
        return "; ".join(failed)
    if run.status == "interrupted":
        skipped = [s.name for s in run.steps if s.status == "skipped"]
        return "stopped before: " + ", ".join(skipped) if skipped else "stopped before it started"
    return None


class CycleRunner:
    """Runs the cycle's steps; see the module docstring."""

    def __init__(self, settings: Settings, store: Store, steps: Sequence[CycleStep], *,
                 schedule: Schedule | None = None, is_leader: Callable[[], bool] = lambda: True,
                 on_finished: Callable[[Run], None] | None = None, keep: int = 100,
                 history: RunHistory | None = None) -> None:
        self.settings = settings
        self.store = store
        self.steps = list(steps)
        self.schedule = schedule or Schedule.from_settings(settings.schedule)
        self.is_leader = is_leader
        self.on_finished = on_finished
        self.runs: collections.OrderedDict[str, Run] = collections.OrderedDict()
        self._keep = keep
        self._queued: Run | None = None
        self.current: Run | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.next_scheduled: dt.datetime | None = None
        #: the store's run history (None: memory only, as in the unit tests)
        self.history = history

    # ------------------------------------------------------------------------------------------ triggers
    def trigger(self, reason: str, by: str = "service") -> Run:
        """Ask for a cycle; returns the run that will serve it (the queued one if there is one).

        ``by``: who asked ("service" for the start, the schedule, notifications and takeovers; the
        API passes the caller)."""
        if self._queued is not None:
            self._queued.triggers += 1
            log.info("trigger (%s) joins queued run %s", reason, self._queued.id)
            return self._queued
        run = Run(uuid.uuid4().hex[:12], reason, _now(), [StepRecord(s.name) for s in self.steps],
                  requested_by=by, follow_up_of=self.current.id if self.current is not None else None)
        self._queued = run
        self._remember(run)
        self._wake.set()
        log.info("trigger (%s) queued run %s%s", reason, run.id,
                 f" after run {self.current.id}" if self.current is not None else "")
        return run

    def stop(self) -> None:
        """Finish the step in flight, skip the rest of the cycle, and return from ``run_forever``."""
        if not self._stopping:
            log.info("stopping: the step in flight finishes, nothing new starts")
        self._stopping = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def queued(self) -> Run | None:
        """The run waiting for the one in flight (the follow-up), if any."""
        return self._queued

    # ------------------------------------------------------------------------------------------ loop
    async def run_forever(self) -> None:
        """Run queued and scheduled cycles until ``stop()``."""
        self.next_scheduled = self.schedule.next_after(dt.datetime.now(dt.UTC))
        log.info("scheduler: %s; next cycle at %s", self.schedule.describe(), self.next_scheduled.isoformat())
        while not self._stopping:
            if self._queued is None:
                delay = max(0.0, (self.next_scheduled - dt.datetime.now(dt.UTC)).total_seconds())
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    self.next_scheduled = self.schedule.next_after(dt.datetime.now(dt.UTC))
                    if self.is_leader():
                        self.trigger("schedule")
                    else:
                        log.debug("standby: scheduled cycle skipped (not the leader)")
                if self._stopping:
                    break
            run = self._queued
            if run is None:
                continue
            if not self.is_leader():
                # Only the leader runs cycles; a trigger that reached a standby is dropped here.
                self._queued = None
                self._finish(run, "skipped", time.perf_counter())
                continue
            self._queued = None
            await self._run(run)
        if self._queued is not None:
            self._finish(self._queued, "interrupted", time.perf_counter())
            self._queued = None

    async def _run(self, run: Run) -> None:
        self.current = run
        token = run_id_var.set(run.id)
        started = time.perf_counter()
        run.status, run.started_at = "running", _now()
        log.info("cycle %s started (%s)", run.id, run.reason)
        await self._persist("started", run)
        context = CycleContext(run.id, run.reason, self.settings, self.store)
        try:
            for step, record in zip(self.steps, run.steps, strict=True):
                if self._stopping:
                    record.status = "skipped"
                    continue
                record.status = "running"
                t0 = time.perf_counter()
                try:
                    result: StepResult = await step.run(context)
                except Exception as exc:  # a failed step is recorded; the next one still runs
                    record.status, record.error = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                    log.warning("step %s failed: %s", step.name, record.error)
                else:
                    context.results[step.name] = result
                    record.status = "succeeded"
                    record.counts, record.detail = dict(result.counts), dict(result.detail)
                    record.findings = list(result.findings)
                    log.info("step %s: %s", step.name, ", ".join(f"{k}={v}" for k, v in result.counts.items())
                             or "done")
                record.seconds = round(time.perf_counter() - t0, 3)
            statuses = {r.status for r in run.steps}
            if "skipped" in statuses:
                outcome = "interrupted"
            elif "failed" in statuses:
                outcome = "failed" if "succeeded" not in statuses else "partial"
            else:
                outcome = "succeeded"
            self._finish(run, outcome, started)
            await self._persist("finished", run)
        finally:
            run_id_var.reset(token)
            self.current = None

    async def _persist(self, what: str, run: Run) -> None:
        """Write the run to the store's history; a store error is logged, the cycle goes on.

        Before a run starts, rows still "running" are marked "interrupted": only the leader gets
        here and it runs one cycle at a time, so they belong to a process that died (or a deposed
        leader still finishing, whose own end-of-run update then overwrites the mark). Every run,
        not just the first: leadership may come back after another leader died mid-cycle."""
        history = self.history
        if history is None:
            return

        def write() -> None:
            if what == "started":
                if count := history.mark_interrupted():
                    log.warning("marked %d run(s) left running by an ended process as interrupted", count)
                history.started(run)
            else:
                history.finished(run)
                if pruned := history.prune():
                    log.info("run history: deleted %d run(s) older than %d days", pruned, history.retention_days)

        try:
            await asyncio.to_thread(write)
        except Exception as exc:  # the history is a record of the cycle, never a reason to stop it
            log.warning("run history: %s of run %s not recorded: %s: %s", what, run.id, type(exc).__name__, exc)

    def _finish(self, run: Run, outcome: str, started: float) -> None:
        run.status, run.finished_at = outcome, _now()
        run.error = run_error(run)
        if run.started_at is not None:
            run.seconds = round(time.perf_counter() - started, 3)
        log.info("cycle %s %s%s", run.id, outcome, f" in {run.seconds:.2f} s" if run.seconds is not None else "")
        if self.on_finished is not None:
            self.on_finished(run)

    def _remember(self, run: Run) -> None:
        self.runs[run.id] = run
        while len(self.runs) > self._keep:
            oldest = next(iter(self.runs.values()))
            if not oldest.done:
                break
            self.runs.popitem(last=False)

    def last_runs(self, count: int = 10) -> list[Run]:
        return [r for r in reversed(self.runs.values()) if r.done][:count]
