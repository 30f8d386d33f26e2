"""Stopping `watch` cleanly deletes its change-notification subscription; the crash hook is a setting.

We test these aspects:

* ``bot.watching.watch`` cancelled (what Ctrl-C and SIGTERM do) deletes the subscription it created,
  on the local tenant and in the store;
* ``cartif-bot watch`` (a subprocess) stopped with SIGTERM or SIGINT exits 0 and leaves no
  subscription for its notification URL on the tenant;
* the test-only crash hook is ``SyncSettings.crash_at`` (CARTIF_SYNC__CRASH_AT): anything but the
  two crash points is refused (tests/test_syncing.py kills a sync through it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.watching import watch
from config.settings import SettingsError
from tests.notified import notified_store
from tests.test_syncing import settings_for

SECRET = "s3cret-client-state-for-stop-tests"
ROOT = Path(__file__).resolve().parents[1]


async def _subscriptions_for(graph_http: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    listed = (await graph_http.get("/subscriptions")).raise_for_status().json()
    return [s for s in listed["value"] if s.get("notificationUrl") == url]


async def test_cancelled_watch_deletes_its_subscription(
        tenant_info: dict[str, Any], graph_http: httpx.AsyncClient, tmp_path: Path) -> None:
    async with notified_store(tenant_info, tmp_path, SECRET) as notified:
        cycles, store, url = notified.cycles, notified.store, notified.url
        task = asyncio.ensure_future(watch(notified.settings, store, requests=notified.requests,
                                           on_cycle=cycles.append))
        for _ in range(600):
            if cycles or task.done():
                break
            await asyncio.sleep(0.1)
        assert cycles and cycles[0].error is None, "no start-up cycle"
        [sub] = store.subscriptions(tenant_info["drive_id"])
        assert [s["id"] for s in await _subscriptions_for(graph_http, url)] == [sub.id]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert store.subscriptions(tenant_info["drive_id"]) == []
        assert (await graph_http.get(f"/subscriptions/{sub.id}")).status_code == 404
        assert await _subscriptions_for(graph_http, url) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_cli_watch_deletes_its_subscription_on_a_clean_stop(
        tenant_info: dict[str, Any], graph_http: httpx.AsyncClient, tmp_path: Path, stop: signal.Signals) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/graph"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTIF_")}
    env.update({"CARTIF_TENANT_FILE": str(Path(tenant_info["data_dir"]) / "tenant.json"),
                "CARTIF_STORE__DATA_DIR": str(tmp_path), "CARTIF_NOTIFICATIONS__URL": url,
                "CARTIF_NOTIFICATIONS__CLIENT_STATE": SECRET, "PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "bot", "watch"], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("watch (start"):
                break
        else:
            raise AssertionError(f"watch ended early: {proc.stderr.read() if proc.stderr else ''}")
        assert len(await _subscriptions_for(graph_http, url)) == 1
        proc.send_signal(stop)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "watch: stopped" in out
    assert await _subscriptions_for(graph_http, url) == []


def test_crash_hook_is_a_test_only_setting(tenant_info: dict[str, Any], tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path, sync={"crash_at": "after_commit"})
    assert settings.sync.crash_at == "after_commit"
    assert settings_for(tenant_info, tmp_path).sync.crash_at is None
    with pytest.raises(SettingsError) as refused:
        settings_for(tenant_info, tmp_path, sync={"crash_at": "midway"})
    assert "CARTIF_SYNC__CRASH_AT" in str(refused.value) and "TEST ONLY" in str(refused.value)
