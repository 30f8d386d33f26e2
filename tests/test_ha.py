"""HA on PostgreSQL: the store migrates and syncs there, and only the advisory-lock holder runs cycles.

We test these aspects:

* the store's migrations run on PostgreSQL and a full sync cycle commits there;
* the advisory lock: one holder at a time, freed when the holder's session ends;
* two `cartif-bot run` replicas on one PostgreSQL store: one leads, the other is a standby that
  runs nothing and refuses triggers (503); when the leader is killed (SIGKILL, no clean-up) the
  standby takes over within one interval and runs a cycle.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.service.leading import PostgresLeadership
from bot.store import AuditEntry, CursorMoved, Store, utc_now
from emulator.process import LocalTenantProcess
from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.service_process import ServiceProcess
from tests.test_service import service_env


def test_the_store_migrates_on_postgresql(postgres_url: str) -> None:  # noqa: F811
    with Store.open(postgres_url) as store:
        assert store.revision() is not None
        assert store.enqueue("Plenary", "k-1", {"a": 1}) is True
        assert store.enqueue("Plenary", "k-1", {"a": 1}) is False
        assert [m.idempotency_key for m in store.outbox()] == ["k-1"]


async def test_a_sync_cycle_commits_on_postgresql_and_the_guard_holds(postgres_url: str) -> None:  # noqa: F811
    # The store's unit scenarios (tests/unit/test_syncing_core.py) on PostgreSQL instead of SQLite.
    from bot.syncing import MIN_GUARDED_DELETIONS, MassDeletionError, Syncer
    from connectors.graph_delta import DeltaPage
    from tests.unit.test_syncing_core import D, ListReader, _baseline, delta

    with Store.open(postgres_url) as store:
        _baseline(store, 40)
        gone = [delta(f"f{i}", "root", "", deleted=True) for i in range(MIN_GUARDED_DELETIONS)]
        reader = ListReader([DeltaPage(gone, None, "L1")])
        with pytest.raises(MassDeletionError):
            await Syncer(store, reader, D).run()
        assert store.cursor(D).delta_link == "L0"  # type: ignore[union-attr]
        result = await Syncer(store, reader, D, confirm_deletions=True).run()
        assert result.counts() == {"deleted": 10}
        assert store.count_live(D) == 30
        assert [c.kind for c in store.changes()] == ["deleted"] * 10
        with pytest.raises(CursorMoved):
            store.commit_sync(D, items=[], changes=[], delta_link="L9", expected_link="stale")
        store.record_audit([AuditEntry("grant", "/A", utc_now(), "c1", before=None, after={"role": "read"},
                                       rule="r")])
        assert store.audit()[0].after == {"role": "read"}


def test_the_advisory_lock_has_one_holder_and_is_freed_with_its_session(postgres_url: str) -> None:  # noqa: F811
    first, second = PostgresLeadership(postgres_url, 4242), PostgresLeadership(postgres_url, 4242)
    try:
        assert first.try_acquire() is True
        assert second.try_acquire() is False
        assert first.still_held() is True
        first._conn.close()  # the session ends as if the process died
        assert first.still_held() is False
        assert second.try_acquire() is True
        other_key = PostgresLeadership(postgres_url, 4243)
        assert other_key.try_acquire() is True, "another deployment's key is independent"
        other_key.release()
    finally:
        first.release()
        second.release()


@pytest.mark.slow
def test_the_standby_takes_over_when_the_leader_dies(local_tenant: LocalTenantProcess, tmp_path: Path,
                                                     postgres_url: str) -> None:  # noqa: F811
    interval = 2
    env = service_env(tmp_path, CARTIF_SCHEDULE__INTERVAL_SECONDS=str(interval),
                      CARTIF_SERVICE__STANDBY_POLL_SECONDS="0.5")
    leader = ServiceProcess(local_tenant.connection_file, tmp_path / "a", store_url=postgres_url, env=env, name="a")
    standby = ServiceProcess(local_tenant.connection_file, tmp_path / "b", store_url=postgres_url, env=env, name="b")
    try:
        leader.start()
        leader.wait_for(lambda: leader.status()["last_cycles"], what="the leader's first cycle")
        standby.start()
        assert standby.status()["role"] == "standby"
        assert leader.status()["role"] == "leader" and leader.status()["leadership"] == "postgresql"
        with standby.client() as c:
            refused = c.post("/api/sync")
        assert refused.status_code == 503 and refused.json()["error"] == "standby"
        # Several intervals pass: the leader keeps cycling, the standby runs nothing.
        leader.wait_for(lambda: sum(r["reason"] == "schedule" for r in leader.status()["last_cycles"]) >= 2,
                        what="two scheduled cycles on the leader")
        # The run history is the store's, shared: the standby lists the leader's runs, none of its own.
        standby_ids = {r["id"] for r in standby.status()["last_cycles"]}
        with leader.client() as c:
            leader_ids = {r["id"] for r in c.get("/api/runs", params={"limit": 200}).json()["runs"]}
        assert standby_ids and standby_ids <= leader_ids
        assert not [r for r in standby.log_records() if str(r.get("message", "")).startswith("cycle ")
                    and " started (" in str(r.get("message"))], "the standby ran a cycle"
        leader.kill()  # SIGKILL: no unlock, PostgreSQL frees the lock when the session dies
        killed_at = time.monotonic()
        standby.wait_for(lambda: standby.status()["role"] == "leader", timeout=60, what="the takeover")
        took = time.monotonic() - killed_at
        run = standby.wait_for(lambda: next((r for r in standby.status()["last_cycles"]
                                             if r["reason"] in ("takeover", "schedule")), None),
                               what="a cycle on the new leader")
        assert run["status"] == "succeeded" or run["steps"]["sync"] == "succeeded"
        print(f"takeover after {took:.1f} s (interval {interval} s)")
    finally:
        leader.stop()
        standby.stop()
