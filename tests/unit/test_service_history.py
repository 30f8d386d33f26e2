"""The service's run history and the outbox retention on plain values and a SQLite store.

We test these aspects:

* the stored step summary trims long lists in ``detail`` and keeps counts, findings and errors;
* a run survives the round trip through a ``service_runs`` row (what /api/runs shows after a restart);
* a runner with a history writes a row at start ("running") and at the end (outcome, error), and
  a NEW runner on the same store (a restart) lists the earlier runs;
* a new runner's cycle (the leader after a restart) marks a run a dead process left "running" as "interrupted";
* run history and outbox pruning delete only what is older than the retention, in one statement,
  and the outbox never loses a pending or sending row;
* the migration chain upgrades a 0002 store with data to 0003 and on (0004: a stored subscription
  keeps its row, with no lifecycle URL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from bot.notices.retention import DONE, cutoff, prune_outbox
from bot.service.history import DETAIL_LIST_MAX, LIST_MAX, RunHistory, run_from_row, run_row, steps_summary
from bot.service.running import CycleRunner, Run, StepRecord, run_error
from bot.service.scheduling import Schedule
from bot.service.steps import CycleContext, StepResult
from bot.store import Store, schema

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_step_summary_trims_long_lists_and_keeps_the_rest() -> None:
    changes = [{"path": f"/f{i}"} for i in range(50)]
    step = StepRecord("sync", "succeeded", 1.5, {"changes": 50}, {"changes": changes, "mode": "delta",
                                                                  "nested": {"ids": list(range(30))}},
                      [f"drift {i}" for i in range(3)])
    failed = StepRecord("permissions", "failed", 0.2, error="ServerError: 503")
    [sync, permissions] = steps_summary([step, failed])
    assert sync["counts"] == {"changes": 50} and sync["detail"]["mode"] == "delta"
    assert len(sync["detail"]["changes"]) == DETAIL_LIST_MAX and sync["detail"]["changes"][0] == {"path": "/f0"}
    assert sync["detail"]["nested"]["ids"] == list(range(DETAIL_LIST_MAX))
    assert sync["findings"] == ["drift 0", "drift 1", "drift 2"]
    assert permissions == {"name": "permissions", "status": "failed", "seconds": 0.2, "counts": {}, "detail": {},
                           "findings": [], "error": "ServerError: 503"}


def test_the_run_error_names_failed_steps_or_what_a_stop_skipped() -> None:
    steps = [StepRecord("sync", "failed", error="boom"), StepRecord("permissions", "succeeded"),
             StepRecord("notices", "failed", error="503")]
    assert run_error(Run("r", "manual", "t", steps, status="partial")) == "sync: boom; notices: 503"
    stopped = [StepRecord("sync", "succeeded"), StepRecord("permissions", "skipped"), StepRecord("notices", "skipped")]
    assert run_error(Run("r", "manual", "t", stopped, status="interrupted")) == "stopped before: permissions, notices"
    assert run_error(Run("r", "manual", "t", [StepRecord("sync", "succeeded")], status="succeeded")) is None


def test_a_run_survives_the_round_trip_through_its_row() -> None:
    run = Run("abc123", "manual", "2026-12-03T10:00:00.000000Z",
              [StepRecord("sync", "succeeded", 0.5, {"changes": 2}, {"changes": [{"path": "/a"}]}),
               StepRecord("permissions", "failed", 0.1, error="boom")],
              status="partial", triggers=3, started_at="2026-12-03T10:00:01.000000Z",
              finished_at="2026-12-03T10:00:02.000000Z", seconds=1.0, requested_by="entra:app-1",
              follow_up_of="before1", error="permissions: boom")
    row = run_row(run)
    assert row["trigger"] == "manual" and row["status"] == "partial" and row["error"] == "permissions: boom"
    assert json.loads(row["steps"])[0]["counts"] == {"changes": 2}
    back = run_from_row(type("Row", (), row)())
    assert back.as_json() == run.as_json()


class Step:
    def __init__(self, name: str, *, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    async def run(self, context: CycleContext) -> StepResult:
        if self.fail:
            raise RuntimeError("boom")
        return StepResult({"n": 1}, {"changes": [{"path": f"/{i}"} for i in range(40)]}, ("drift one",))


def _runner(store: Store, steps: list[Any], days: int = 90) -> CycleRunner:
    return CycleRunner(cast(Any, None), store, steps, schedule=Schedule(3600.0), history=RunHistory(store, days))


async def _run_once(r: CycleRunner, reason: str = "manual", by: str = "service") -> Run:
    task = asyncio.create_task(r.run_forever())
    run = r.trigger(reason, by=by)
    while not run.done:
        await asyncio.sleep(0.01)
    r.stop()
    await task
    return run


async def test_runs_are_written_at_start_and_end_and_a_new_runner_lists_them(store: Store) -> None:
    first = await _run_once(_runner(store, [Step("sync"), Step("permissions", fail=True)]), by="token")
    second = await _run_once(_runner(store, [Step("sync")]), "schedule")  # a "restart": a new runner
    history = RunHistory(store)
    listed = history.recent(10)
    assert [r.id for r in listed] == [second.id, first.id]
    stored = history.get(first.id)
    assert stored is not None
    assert (stored.status, stored.reason, stored.requested_by) == ("partial", "manual", "token")
    assert stored.error == "permissions: RuntimeError: boom"
    assert stored.steps[0].counts == {"n": 1} and stored.steps[0].findings == ["drift one"]
    assert len(stored.steps[0].detail["changes"]) == DETAIL_LIST_MAX
    assert stored.started_at == first.started_at and stored.finished_at == first.finished_at
    assert history.get("no-such-run") is None
    assert len(history.recent(10_000)) == 2 and LIST_MAX == 200


async def test_the_first_cycle_marks_a_run_left_running_as_interrupted(store: Store) -> None:
    history = RunHistory(store)
    crashed = Run("crashed1", "schedule", _iso(NOW), [StepRecord("sync", "running")], status="running",
                  started_at=_iso(NOW))
    history.started(crashed)
    assert history.get("crashed1").status == "running"  # type: ignore[union-attr]
    run = await _run_once(_runner(store, [Step("sync")]))
    marked = history.get("crashed1")
    assert marked is not None and marked.status == "interrupted" and marked.done
    assert marked.finished_at is not None and "process ended" in (marked.error or "")
    assert history.get(run.id).status == "succeeded"  # type: ignore[union-attr]
    assert history.mark_interrupted() == 0, "the new runner's own finished run is not touched"


def test_run_history_pruning_deletes_only_finished_runs_older_than_the_retention(store: Store) -> None:
    history = RunHistory(store, retention_days=90)
    for name, age_days, status in (("old", 91, "succeeded"), ("old-failed", 200, "failed"), ("recent", 89, "partial"),
                                   ("old-running", 120, "running")):
        when = _iso(NOW - dt.timedelta(days=age_days))
        history.finished(Run(name, "schedule", when, [], status=status, started_at=when))
    assert history.prune(NOW) == 2
    assert sorted(r.id for r in history.recent(10)) == ["old-running", "recent"]
    assert history.prune(NOW) == 0


def _outbox_row(conn: sa.Connection, key: str, status: str, created: dt.datetime, channel: str = "teams:X") -> None:
    conn.execute(schema.outbox.insert().values(created_at=_iso(created), channel=channel, idempotency_key=key,
                                               payload="{}", attempts=0, status=status))


def test_outbox_pruning_keeps_pending_and_sending_however_old(store: Store) -> None:
    old, young = NOW - dt.timedelta(days=31), NOW - dt.timedelta(days=29)
    with store.engine.begin() as conn:
        for status in ("pending", "sending", "sent", "failed"):
            _outbox_row(conn, f"old-{status}", status, old)
            _outbox_row(conn, f"young-{status}", status, young)
        _outbox_row(conn, "old-routed", "routed", old, channel="changes")
        _outbox_row(conn, "old-source", "pending", old, channel="changes")
    assert prune_outbox(store, 30, NOW) == 3
    left = {m.idempotency_key for m in store.outbox(None)}
    assert left == {"old-pending", "old-sending", "old-source", "young-pending", "young-sending", "young-sent",
                    "young-failed"}
    assert prune_outbox(store, 30, NOW) == 0
    assert set(DONE) == {"sent", "failed", "routed"}
    assert cutoff(NOW, 30) == "2026-11-03T12:00:00.000000Z"


def test_a_0002_store_with_data_upgrades_to_0003_and_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(sa.create_engine(url))
    try:
        store.migrate("0002")
        assert store.revision() == "0002"
        assert store.enqueue("teams:X", "k-1", {"a": 1})
        store.migrate("0003")
        assert store.revision() == "0003"
        with store.engine.begin() as conn:  # a subscription made before lifecycle notifications
            conn.execute(sa.text("INSERT INTO subscriptions VALUES ('s1', 'd', '2026-12-30T00:00:00Z', 'h', 'https://x/n')"))
        store.migrate()
        assert store.revision() == Store.head_revision()
        [old] = store.subscriptions()
        # kept; the subscription manager replaces it at its next ensure
        assert old.id == "s1" and old.lifecycle_notification_url is None and not old.include_security
        assert [m.idempotency_key for m in store.outbox()] == ["k-1"]
        history = RunHistory(store)
        history.started(Run("r1", "start", _iso(NOW), [StepRecord("sync")], status="running", started_at=_iso(NOW)))
        assert [r.id for r in history.recent()] == ["r1"]
    finally:
        store.close()


def test_the_runs_command_lists_the_stored_runs_newest_first(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from tests.unit.isolation import isolate_settings

    isolate_settings(monkeypatch, tmp_path)
    tenant = {"tenant_id": "e08dd3a9-26ff-4d8f-a803-c96a61f2af74", "client_id": "3f0c6d2e-1111-2222-3333-444455556666",
              "site_url": "https://localhost:40291/sites/CARTIF",
              "authority": "https://localhost:40291/e08dd3a9-26ff-4d8f-a803-c96a61f2af74"}
    (tmp_path / "tenant.json").write_text(json.dumps(tenant))
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(tmp_path / "tenant.json"))
    monkeypatch.setenv("CARTIF_AUTH__CLIENT_SECRET", "not-used")
    monkeypatch.setenv("CARTIF_STORE__DATA_DIR", str(tmp_path / "data"))
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.startswith("no runs recorded yet")
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'cartif-bot.sqlite3'}") as s:
        history = RunHistory(s)
        for n, status in ((1, "succeeded"), (2, "partial")):
            run = Run(f"run{n}", "schedule" if n == 1 else "manual", _iso(NOW + dt.timedelta(minutes=n)),
                      [StepRecord("sync", "succeeded", 0.4, {"changes": n}),
                       StepRecord("permissions", "failed" if n == 2 else "succeeded", 0.1,
                                  error="ServerError: 503" if n == 2 else None)],
                      status=status, started_at=_iso(NOW + dt.timedelta(minutes=n)), seconds=0.5,
                      requested_by="entra:app-1" if n == 2 else None,
                      error="permissions: ServerError: 503" if n == 2 else None)
            history.started(run)
            history.finished(run)
    assert main(["runs", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("run2  partial in 0.5s  (manual, by entra:app-1)")
    assert out[1:] == ["    sync         succeeded: changes 2",
                       "    permissions  failed — ServerError: 503",
                       "    error: permissions: ServerError: 503"]
    assert main(["runs", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["run2", "run1"]


def test_the_last_observation_comes_from_the_latest_successful_permissions_step(store: Store) -> None:
    history = RunHistory(store)
    assert history.last_observation() is None
    for n, status, observed in ((1, "succeeded", {"A/Chairs": ["CARTIF Secretariat"]}),
                                (2, "succeeded", {"A/Chairs": ["CARTIF Secretariat", "CARTIF WG-TF"]}),
                                (3, "failed", None)):
        detail = {"observed_readers": observed} if observed is not None else {}
        run = Run(f"run{n}", "schedule", _iso(NOW + dt.timedelta(minutes=n)),
                  [StepRecord("sync", "succeeded"), StepRecord("permissions", status, detail=detail)],
                  status="succeeded" if status == "succeeded" else "partial",
                  started_at=_iso(NOW + dt.timedelta(minutes=n)))
        history.started(run)
        history.finished(run)
    # run3's permissions step failed: run2's observation is the last one on record.
    assert history.last_observation() == {"A/Chairs": ["CARTIF Secretariat", "CARTIF WG-TF"]}
