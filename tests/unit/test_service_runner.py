"""The cycle runner on plain values: fake steps, no tenant, no HTTP.

We test these aspects:

* triggers during a cycle join exactly one queued follow-up; cycles never overlap;
* a failing step is recorded and the next step still runs (outcome "partial");
* stop() during a step lets that step finish and skips the rest ("interrupted");
* a standby runs nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from bot.service.running import CycleRunner
from bot.service.scheduling import Schedule
from bot.service.steps import CycleContext, StepResult


class GateStep:
    """A step that waits until the test opens its gate; records when it ran."""

    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def run(self, context: CycleContext) -> StepResult:
        self.log.append(f"{context.run_id}:{self.name}:start")
        self.entered.set()
        await self.gate.wait()
        self.log.append(f"{context.run_id}:{self.name}:end")
        if self.fail:
            raise RuntimeError("boom")
        return StepResult({"n": 1})


def runner(steps: list[Any], *, leader: bool = True) -> CycleRunner:
    return CycleRunner(cast(Any, None), cast(Any, None), steps, schedule=Schedule(3600.0),
                       is_leader=lambda: leader)


async def test_triggers_during_a_cycle_queue_exactly_one_follow_up() -> None:
    log: list[str] = []
    step = GateStep("sync", log)
    r = runner([step])
    task = asyncio.create_task(r.run_forever())
    first = r.trigger("manual")
    await step.entered.wait()
    follow_ups = {r.trigger("manual").id for _ in range(5)}
    assert len(follow_ups) == 1 and first.id not in follow_ups
    [second_id] = follow_ups
    assert r.runs[second_id].triggers == 5 and r.runs[second_id].status == "queued"
    step.gate.set()
    while not r.runs[second_id].done:
        await asyncio.sleep(0.01)
    r.stop()
    await task
    assert log == [f"{first.id}:sync:start", f"{first.id}:sync:end", f"{second_id}:sync:start",
                   f"{second_id}:sync:end"], "cycles overlapped or ran more than once"
    assert [run.status for run in r.runs.values()] == ["succeeded", "succeeded"]


async def test_a_failed_step_is_recorded_and_the_next_step_still_runs() -> None:
    log: list[str] = []
    bad, good = GateStep("sync", log, fail=True), GateStep("permissions", log)
    bad.gate.set()
    good.gate.set()
    r = runner([bad, good])
    task = asyncio.create_task(r.run_forever())
    run = r.trigger("manual")
    while not run.done:
        await asyncio.sleep(0.01)
    r.stop()
    await task
    assert run.status == "partial"
    assert [(s.name, s.status) for s in run.steps] == [("sync", "failed"), ("permissions", "succeeded")]
    assert run.steps[0].error == "RuntimeError: boom"


async def test_stop_lets_the_step_in_flight_finish_and_skips_the_rest() -> None:
    log: list[str] = []
    first, second = GateStep("sync", log), GateStep("permissions", log)
    second.gate.set()
    r = runner([first, second])
    task = asyncio.create_task(r.run_forever())
    run = r.trigger("manual")
    await first.entered.wait()
    queued = r.trigger("manual")
    r.stop()
    first.gate.set()
    await task
    assert log == [f"{run.id}:sync:start", f"{run.id}:sync:end"]
    assert run.status == "interrupted"
    assert [(s.name, s.status) for s in run.steps] == [("sync", "succeeded"), ("permissions", "skipped")]
    assert queued.status == "interrupted" and queued.started_at is None


async def test_a_standby_runs_nothing() -> None:
    log: list[str] = []
    step = GateStep("sync", log)
    step.gate.set()
    r = runner([step], leader=False)
    task = asyncio.create_task(r.run_forever())
    run = r.trigger("manual")
    while not run.done:
        await asyncio.sleep(0.01)
    r.stop()
    await task
    assert run.status == "skipped" and log == []
