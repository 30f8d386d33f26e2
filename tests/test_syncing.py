"""``cartif-bot sync`` through the real SDKs against the local tenant.

We test these aspects: N changes made on the tenant (by another app) are reported exactly once
with kind, path and classification, and a second sync reports nothing; the bot's own writes are
not reported; a 410 (injected token expiry) is followed by a resync that reports only the real
differences; a 429 storm on the delta route loses nothing and no request is sent inside a
Retry-After window; kill -9 before and after the commit, and at random moments of real runs,
neither loses nor duplicates a change.

The tenant and its library are shared with other tests, so every assertion looks only at changes
under the test's own ``unique`` folder.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.store import ChangeRecord, Store
from bot.syncing import SyncResult, sync_once
from config.settings import Settings
from tests import sdk

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def editor(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Iterator[httpx.Client]:
    """Graph as the tenant-admin app: changes made "directly on the tenant", not by the bot."""
    token = tokens.graph("admin")
    with httpx.Client(base_url=tenant_info["graph_url"] + f"/drives/{tenant_info['drive_id']}",
                      verify=tenant_info["ca_path"], trust_env=False, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def settings_for(tenant_info: dict[str, Any], data_dir: Path, **overrides: Any) -> Settings:
    return Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json",
                         store={"data_dir": str(data_dir)}, **overrides)


def mine(result: SyncResult | list[ChangeRecord], unique: str) -> list[tuple[str, str, str | None]]:
    changes = result.changes if isinstance(result, SyncResult) else result
    return sorted((c.kind, c.path, c.old_path) for c in changes if c.path.startswith(f"/{unique}"))


def folder(editor: httpx.Client, parent_path: str, name: str) -> str:
    where = "/root/children" if not parent_path else f"/root:{parent_path}:/children"
    resp = editor.post(where, json={"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"})
    resp.raise_for_status()
    return str(resp.json()["id"])


def upload(client: httpx.Client, path: str, data: bytes) -> str:
    resp = client.put(f"/root:{path}:/content", content=data)
    resp.raise_for_status()
    return str(resp.json()["id"])


async def test_changes_on_the_tenant_are_reported_exactly_once(
        tenant_info: dict[str, Any], editor: httpx.Client, unique: str, tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path)
    base = f"/{unique}"
    folder(editor, "", unique)
    wg = folder(editor, base, "WG-TF Trade facilitation")
    kaz = folder(editor, f"{base}/WG-TF Trade facilitation", "KAZ")
    other = folder(editor, base, "Plenary")
    f1 = upload(editor, f"{base}/WG-TF Trade facilitation/KAZ/f1.txt", b"one")
    f2 = upload(editor, f"{base}/WG-TF Trade facilitation/KAZ/f2.txt", b"two")
    keep = upload(editor, f"{base}/WG-TF Trade facilitation/KAZ/keep.txt", b"unchanged")
    f3 = upload(editor, f"{base}/f3.txt", b"three")
    baseline = await sync_once(settings)
    assert baseline.mode == "initial" and baseline.changes == []

    upload(editor, f"{base}/new.txt", b"new")                                     # created
    # Same size: only the quickXorHash tells (SharePoint's delta has no cTag, no sha256Hash).
    upload(editor, f"{base}/WG-TF Trade facilitation/KAZ/f1.txt", b"ONE")          # modified
    # A column value: a new eTag in the feed, the same bytes: not a modification of the text.
    editor.patch(f"/items/{keep}/listItem/fields", json={"Title": "kept"}).raise_for_status()
    editor.patch(f"/items/{kaz}", json={"name": "KAZ - Kazakhstan"}).raise_for_status()  # renamed
    editor.patch(f"/items/{f3}", json={"parentReference": {"id": other}}).raise_for_status()  # moved
    editor.delete(f"/items/{f2}").raise_for_status()                              # deleted
    result = await sync_once(settings)

    kaz_path = f"{base}/WG-TF Trade facilitation/KAZ - Kazakhstan"
    assert result.mode == "incremental"
    assert mine(result, unique) == sorted([
        ("created", f"{base}/new.txt", None),
        ("modified", f"{kaz_path}/f1.txt", None),
        ("renamed", kaz_path, f"{base}/WG-TF Trade facilitation/KAZ"),
        ("moved", f"{base}/Plenary/f3.txt", f"{base}/f3.txt"),
        ("deleted", f"{base}/WG-TF Trade facilitation/KAZ/f2.txt", None),
    ])
    modified = next(c for c in result.changes if c.item_id == f1)
    assert modified.classification == {"area": unique, "working_group": "WG-TF", "country": "KAZ", "series": None}
    with Store.open(settings.store.url) as store:
        paths = {i.name: i.path for i in store.items(tenant_info["drive_id"]) if i.path.startswith(base)}
        logged = store.changes(drive_id=tenant_info["drive_id"])
    assert paths["keep.txt"] == f"{kaz_path}/keep.txt"  # a descendant the delta never listed again
    assert "f2.txt" not in paths and wg
    assert mine(logged, unique) == mine(result, unique)

    again = await sync_once(settings)
    assert mine(again, unique) == []


async def test_the_bots_own_writes_are_not_reported(
        tenant_info: dict[str, Any], editor: httpx.Client, graph_http: httpx.AsyncClient, unique: str,
        tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path)
    folder(editor, "", unique)
    await sync_once(settings)
    resp = await graph_http.put(f"/drives/{tenant_info['drive_id']}/root:/{unique}/archive copy.txt:/content",
                                content=b"by the bot")
    resp.raise_for_status()
    upload(editor, f"/{unique}/by someone.txt", b"by a person")
    result = await sync_once(settings)
    assert mine(result, unique) == [("created", f"/{unique}/by someone.txt", None)]
    assert result.own_writes >= 1
    with Store.open(settings.store.url) as store:
        assert any(c.by_self and c.path == f"/{unique}/archive copy.txt" for c in store.changes(include_self=True))


async def test_an_expired_delta_token_is_resynced_reporting_only_real_differences(
        tenant_info: dict[str, Any], editor: httpx.Client, admin: httpx.Client, unique: str,
        tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path)
    folder(editor, "", unique)
    gone = upload(editor, f"/{unique}/old.txt", b"old")
    upload(editor, f"/{unique}/same.txt", b"same")
    await sync_once(settings)
    editor.delete(f"/items/{gone}").raise_for_status()
    upload(editor, f"/{unique}/fresh.txt", b"fresh")
    admin.post("/faults", json={"kind": "delta_expiry", "route": "graph.delta", "count": 1}).raise_for_status()
    try:
        result = await sync_once(settings)
    finally:
        admin.delete("/faults")
    assert result.mode == "resync"
    assert mine(result, unique) == [("created", f"/{unique}/fresh.txt", None),
                                    ("deleted", f"/{unique}/old.txt", None)]
    assert [c for c in result.changes if not c.path.startswith(f"/{unique}")] == []
    assert mine(await sync_once(settings), unique) == []


@pytest.mark.slow
async def test_a_429_storm_loses_nothing_and_no_request_goes_inside_retry_after(
        tenant_info: dict[str, Any], editor: httpx.Client, admin: httpx.Client, unique: str,
        tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path, sync={"page_size": 40},
                            http={"max_retries": 10, "retry_delay_seconds": 0.1})
    folder(editor, "", unique)
    await sync_once(settings)
    seeded = admin.post("/seed", json={"generate": {"files": 150, "folders": 10, "depth": 2,
                                                    "under": f"/{unique}"}}).json()["generate"]
    admin.post("/stats/reset").raise_for_status()
    admin.post("/throttle", json={"reset": True}).raise_for_status()  # no window left by an earlier test
    # Two certain 429s first (so the test cannot pass without throttling), then 30 % of the rest.
    admin.post("/faults", json={"rules": [
        {"kind": "429", "route": "graph.delta", "count": 2, "retry_after": "1.5"},
        {"kind": "429", "route": "graph.delta", "probability": 0.3, "retry_after": "1.5"}]}).raise_for_status()
    try:
        result = await sync_once(settings)
    finally:
        admin.delete("/faults")
    stats = admin.get("/stats").json()
    assert len(mine(result, unique)) == seeded["items"]
    assert {c.kind for c in result.changes} == {"created"}
    assert stats["total_requests_inside_retry_after"] == 0, stats["requests_inside_retry_after"]
    assert stats["by_status"].get("429", 0) >= 2
    assert result.pages >= 4


def _cli_env(tenant_info: dict[str, Any], data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``cartif-bot`` child: this tenant, this store, and ``CARTIF_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTIF_")}
    env.update({"CARTIF_TENANT_FILE": str(Path(tenant_info["data_dir"]) / "tenant.json"),
                "CARTIF_STORE__DATA_DIR": str(data_dir)})
    env.update({f"CARTIF_{name.upper()}": value for name, value in settings.items()})
    return env


def _cli_sync(tenant_info: dict[str, Any], data_dir: Path,
              crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    # crash_at: the test-only setting SyncSettings.crash_at
    env = _cli_env(tenant_info, data_dir, **({"sync__crash_at": crash_at} if crash_at else {}))
    return subprocess.run([sys.executable, "-m", "bot", "sync", "--json"], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=60, check=False)


async def test_kill_9_before_or_after_the_commit_loses_and_duplicates_nothing(
        tenant_info: dict[str, Any], editor: httpx.Client, unique: str, tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path)
    folder(editor, "", unique)
    await sync_once(settings)
    for name in ("a.txt", "b.txt", "c.txt"):
        upload(editor, f"/{unique}/{name}", name.encode())
    expected = [("created", f"/{unique}/{n}", None) for n in ("a.txt", "b.txt", "c.txt")]

    killed = _cli_sync(tenant_info, tmp_path, crash_at="before_commit")
    assert killed.returncode == -9, killed.stderr
    with Store.open(settings.store.url) as store:
        assert mine(store.changes(), unique) == []

    killed = _cli_sync(tenant_info, tmp_path, crash_at="after_commit")
    assert killed.returncode == -9, killed.stderr
    rerun = _cli_sync(tenant_info, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert [c for c in json.loads(rerun.stdout)["changes"] if c["path"].startswith(f"/{unique}")] == []
    with Store.open(settings.store.url) as store:
        assert mine(store.changes(), unique) == expected


async def test_kill_9_at_random_moments_then_each_change_is_recorded_once(
        tenant_info: dict[str, Any], editor: httpx.Client, admin: httpx.Client, unique: str,
        tmp_path: Path) -> None:
    # Not only at the two hooks: SIGKILL at seeded random moments of real runs (starting, authenticating,
    # paging, committing; a run takes about 2 s here), with pages of 10 so a run spans many requests.
    # Each round adds fresh changes, so later kills still land in runs with work to do.
    settings = settings_for(tenant_info, tmp_path)
    folder(editor, "", unique)
    await sync_once(settings)
    env = _cli_env(tenant_info, tmp_path, sync__page_size="10")
    rng = random.Random(20261203)
    outcomes = []
    for round_ in range(8):
        admin.post("/seed", json={"generate": {"files": 15, "folders": 0, "depth": 1, "seed": round_,
                                               "under": f"/{unique}/r{round_}"}}).raise_for_status()
        proc = subprocess.Popen([sys.executable, "-m", "bot", "sync", "--json"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.5))
        proc.kill()
        outcomes.append(proc.wait(timeout=30))
    final = _cli_sync(tenant_info, tmp_path)
    assert final.returncode == 0, final.stderr
    expected = []
    for round_ in range(8):
        expected.append(("created", f"/{unique}/r{round_}", None))
        listing = editor.get(f"/root:/{unique}/r{round_}:/children?$top=200").raise_for_status().json()["value"]
        expected += [("created", f"/{unique}/r{round_}/{c['name']}", None) for c in listing]
    assert len(expected) == 8 * 16
    with Store.open(settings.store.url) as store:
        recorded = mine(store.changes(), unique)
    assert recorded == sorted(expected)  # each change once, none lost
    assert -9 in outcomes  # at least one run really died mid-way (the others may have finished first)
