"""The service's run history and outbox retention, end to end: restarts, a crash, SQLite and PostgreSQL.

We test these aspects:

* after a clean restart, GET /api/runs and /api/runs/{id} still show the runs of the earlier
  process (from the store), with their trigger, caller, outcome and step summary;
* a run in flight when the process is killed (SIGKILL) is "interrupted" after the next start;
* the notices step of a cycle deletes old sent and parked notices and keeps pending ones;
* on PostgreSQL the migration to 0003 runs, and the history and the outbox pruning work there.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.notices.retention import prune_outbox
from bot.service.history import RunHistory
from bot.service.running import Run, StepRecord
from bot.store import Store, schema
from emulator.process import LocalTenantProcess
from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.service_process import ServiceProcess
from tests.test_service import service_env

OLD = "2020-01-01T00:00:00.000000Z"


def _add_outbox(store: Store, key: str, status: str, created_at: str, next_attempt_at: str | None = None) -> None:
    with store.engine.begin() as conn:
        conn.execute(schema.outbox.insert().values(
            created_at=created_at, channel="teams:Nowhere", idempotency_key=key, attempts=1, status=status,
            next_attempt_at=next_attempt_at,
            payload='{"type": "change", "source": "change:0", "notice": {"kind": "created", "path": "/x"}}'))


def _stored_status(url: str, run_id: str) -> str | None:
    with Store.open(url) as store:
        run = RunHistory(store).get(run_id)
    return run.status if run is not None else None


@pytest.mark.slow
def test_runs_survive_a_restart_and_a_killed_run_is_interrupted(local_tenant: LocalTenantProcess, tmp_path: Path,
                                                                admin: httpx.Client) -> None:
    env = service_env(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"

    def service(name: str) -> ServiceProcess:
        proc = ServiceProcess(local_tenant.connection_file, tmp_path, store_url=url, env=env, name=name)
        proc.start()
        return proc

    first = service("first")
    try:
        start = first.wait_for(lambda: first.status()["last_cycles"], what="the start-up cycle")[-1]
        with first.client() as c:
            manual_id = c.post("/api/sync").json()["run_id"]
        manual = first.wait_run(manual_id)
        assert manual["status"] == "succeeded", first.logs_text()[-2000:]
        first.signal()
        assert first.wait_exit() == 0
    finally:
        first.stop()

    # Outbox rows as an earlier month would have left them; "pending" is deferred far ahead (back-off).
    with Store.open(url) as store:
        _add_outbox(store, "old-sent", "sent", OLD, OLD)
        _add_outbox(store, "old-parked", "failed", OLD)
        _add_outbox(store, "old-pending", "pending", OLD, "2999-01-01T00:00:00.000000Z")
        _add_outbox(store, "young-sent", "sent", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    second = service("second")
    try:
        with second.client() as c:
            listed = c.get("/api/runs").json()["runs"]
            ids = [r["id"] for r in listed]
            assert manual_id in ids and start["id"] in ids, "the earlier process's runs are forgotten"
            assert ids.index(manual_id) < ids.index(start["id"]), "newest first"
            again = c.get(f"/api/runs/{manual_id}").json()
            assert (again["status"], again["reason"], again["requested_by"]) == ("succeeded", "manual", "token")
            assert again["done"] and again["follow_up_of"] is None
            assert [s["name"] for s in again["steps"]] == [s["name"] for s in manual["steps"]]
            assert again["steps"][0]["counts"] == manual["steps"][0]["counts"]
            assert again["started_at"] == manual["started_at"] and again["finished_at"] == manual["finished_at"]
            assert c.get("/api/runs", params={"limit": 1}).json()["limit"] == 1
            assert len(c.get("/api/runs", params={"limit": 1}).json()["runs"]) == 1
            assert c.get("/api/runs", params={"limit": "many"}).status_code == 400
            assert c.get("/api/runs/nope").status_code == 404
        # The restarted process's own start-up cycle, then its notices step pruned the outbox.
        restarted = second.wait_for(lambda: next((r for r in second.status()["last_cycles"]
                                                  if r["id"] not in (manual_id, start["id"])), None),
                                    what="the second start-up cycle")
        assert restarted["status"] == "succeeded", second.logs_text()[-2000:]
        assert {r["id"] for r in second.status()["last_cycles"]} >= {manual_id, start["id"]}
        with second.client() as c:
            notices = next(s for s in c.get(f"/api/runs/{restarted['id']}").json()["steps"] if s["name"] == "notices")
        assert notices["counts"]["pruned"] == 2
        with Store.open(url) as store:
            keys = {m.idempotency_key for m in store.outbox(None)}
        assert {"old-pending", "young-sent"} <= keys and not keys & {"old-sent", "old-parked"}

        # A run in flight when the process dies: the delta request hangs, the process is killed.
        admin.post("/faults", json={"kind": "latency", "path": "/delta", "latency_ms": 20000, "count": 1}
                   ).raise_for_status()
        try:
            with second.client() as c:
                doomed = c.post("/api/sync").json()["run_id"]
            second.wait_for(lambda: _stored_status(url, doomed) == "running", what="the run's row")
            second.kill()
        finally:
            admin.delete("/faults")
    finally:
        second.stop()

    third = service("third")
    try:
        third.wait_for(lambda: next((r for r in third.status()["last_cycles"] if r["reason"] == "start"
                                     and r["id"] not in (start["id"], restarted["id"])), None),
                       what="the third start-up cycle")
        with third.client() as c:
            killed: dict[str, Any] = c.get(f"/api/runs/{doomed}").json()
        assert killed["status"] == "interrupted" and killed["done"]
        assert "process ended" in killed["error"]
        assert killed["finished_at"] is not None
    finally:
        third.stop()


def test_the_history_and_the_outbox_pruning_work_on_postgresql(postgres_url: str) -> None:  # noqa: F811
    with Store.open(postgres_url) as store:
        assert store.revision() == Store.head_revision()
        with store.engine.connect() as conn:
            assert "service_runs" in sa.inspect(conn).get_table_names()
            # 0004 on PostgreSQL too: subscriptions remember their lifecycle URL
            assert "lifecycle_notification_url" in {c["name"] for c in sa.inspect(conn).get_columns("subscriptions")}
        history = RunHistory(store, retention_days=90)
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        running = Run("pg-running", "schedule", stamp, [StepRecord("sync", "running")], status="running",
                      started_at=stamp)
        history.started(running)
        history.finished(Run("pg-old", "manual", OLD, [StepRecord("sync", "succeeded")], status="succeeded",
                             started_at=OLD, finished_at=OLD, seconds=1.5, requested_by="token"))
        assert [r.id for r in history.recent()] == ["pg-running", "pg-old"]
        assert history.mark_interrupted(now) == 1
        assert history.get("pg-running").status == "interrupted"  # type: ignore[union-attr]
        assert history.prune(now) == 1 and [r.id for r in history.recent()] == ["pg-running"]
        _add_outbox(store, "pg-old-sent", "sent", OLD)
        _add_outbox(store, "pg-old-pending", "pending", OLD)
        assert prune_outbox(store, 30) == 1
        assert [m.idempotency_key for m in store.outbox(None)] == ["pg-old-pending"]
