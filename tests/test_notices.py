"""Teams notices end to end: changes on the local tenant → sync → outbox → Workflows webhooks.

We test these aspects: files changed in a working-group folder, a delegation's private folder
and the negotiating texts produce cards in exactly the right channels (read back from the
tenant's ``/_admin/teams/{channel}``), every posted card valid against the 1.4 schema and under
28 KB; a 10-minute Teams outage (503 injected on the webhook route, time simulated by a clock)
followed by delivery of each notice exactly once; a crash between sending and marking sent
posts no duplicate on the rerun and parks the notice. The tenant is shared with other tests, so
the structure is rooted at the test's ``unique`` folder and assertions look only at cards that
mention the test's own files.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli import main
from bot.notices import NoticeConfig, Router, drain, list_notices
from bot.notices.cards import validate_card
from bot.notices.outbox import FakeClock
from bot.store import Store
from bot.syncing import sync_once
from config.settings import Settings
from config.structure import Structure, load_structure
from connectors.retrying import PauseGate
from connectors.teams import build_workflows_notifier
from tests import sdk

ALL_CHANNELS = ("WG-FW", "WG-TF", "WG-SPS", "WG-TBT", "WG-SRV", "WG-INV", "WG-MBP", "WG-DT", "WG-INST",
                "Chief Negotiators", "Plenary", "Secretariat")


class Crash(BaseException):
    """Stands for the process dying right after the POST was accepted."""


@pytest.fixture(scope="module")
def editor(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Iterator[httpx.Client]:
    """Graph as the tenant-admin app: people changing files, not the bot."""
    with httpx.Client(base_url=tenant_info["graph_url"] + f"/drives/{tenant_info['drive_id']}",
                      verify=tenant_info["ca_path"], trust_env=False, timeout=30,
                      headers={"Authorization": f"Bearer {tokens.graph('admin')}"}) as client:
        yield client


def upload(editor: httpx.Client, path: str, data: bytes = b"text") -> None:
    editor.put(f"/root:{path}:/content", content=data).raise_for_status()


def settings_for(tenant_info: dict[str, Any], data_dir: Path) -> Settings:
    return Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json",
                         store={"data_dir": str(data_dir)}, teams={"debounce_seconds": 0})


def cards_mentioning(admin: httpx.Client, marker: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for channel in ALL_CHANNELS:
        for message in admin.get(f"/teams/{channel}").raise_for_status().json()["messages"]:
            if marker in json.dumps(message["payload"], ensure_ascii=False):
                found.setdefault(channel, []).append(message)
    return found


async def settled(admin: httpx.Client, marker: str, expected: int) -> dict[str, list[dict[str, Any]]]:
    # The webhook answers 202 and runs the flow a moment later: wait (bounded) until the runs landed.
    found: dict[str, list[dict[str, Any]]] = {}
    for _ in range(100):
        found = cards_mentioning(admin, marker)
        if sum(len(v) for v in found.values()) >= expected:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # a duplicate would land in this time too
    return cards_mentioning(admin, marker)


def structure_under(unique: str) -> Structure:
    return load_structure().with_overrides(root=unique)


async def prepare(tenant_info: dict[str, Any], editor: httpx.Client, unique: str, tmp_path: Path,
                  files: Sequence[str]) -> tuple[Settings, Store]:
    settings = settings_for(tenant_info, tmp_path)
    for folder in ("Working groups/WG-TF", "Countries/KAZ", "Negotiating texts", "Secretariat"):
        upload(editor, f"/{unique}/{folder}/.keep")
    baseline = await sync_once(settings)
    assert baseline.mode == "initial"
    for path in files:
        upload(editor, f"/{unique}/{path}")
    result = await sync_once(settings)
    assert {c.path for c in result.changes} >= {f"/{unique}/{p}" for p in files}
    return settings, Store.open(settings.store.url)


async def test_changes_reach_exactly_the_channels_whose_audience_may_read_them(
        tenant_info: dict[str, Any], editor: httpx.Client, admin: httpx.Client, unique: str, tmp_path: Path) -> None:
    tag = unique.removeprefix("t-")
    files = {f"Working groups/WG-TF/agenda-{tag}.docx": {"WG-TF", "Chief Negotiators", "Secretariat"},
             f"Countries/KAZ/position-{tag}.docx": {"Secretariat"},
             f"Negotiating texts/draft-{tag}.docx": {"Chief Negotiators", "Plenary", "Secretariat"}}
    settings, store = await prepare(tenant_info, editor, unique, tmp_path, list(files))
    structure = structure_under(unique)
    notifier = build_workflows_notifier(settings)
    try:
        report = await drain(store, notifier, Router(structure), NoticeConfig.from_settings(settings))
    finally:
        await notifier.aclose()
        store.close()
    assert report.parked == 0 and report.retrying == 0, report.errors
    found = await settled(admin, tag, expected=4)
    for name, expected in files.items():
        leaf = name.rsplit("/", 1)[1]
        heard = {ch for ch, messages in found.items() if any(leaf in json.dumps(m["card"]) for m in messages)}
        assert heard == expected, f"{leaf}: posted to {sorted(heard)}, expected {sorted(expected)}"
    for messages in found.values():
        assert len(messages) == 1, "one card per channel for the whole batch"
        [message] = messages
        assert message["status"] == "posted", message["reason"]
        assert message["size"] <= 28 * 1024
        validate_card(message["card"])


async def test_a_ten_minute_outage_then_each_notice_is_delivered_once(
        tenant_info: dict[str, Any], editor: httpx.Client, admin: httpx.Client, unique: str, tmp_path: Path) -> None:
    tag = unique.removeprefix("t-")
    settings, store = await prepare(tenant_info, editor, unique, tmp_path,
                                    [f"Secretariat/budget-{tag}.xlsx", f"Working groups/WG-TF/annex-{tag}.docx"])
    clock = FakeClock()
    notifier = build_workflows_notifier(settings, sleep=clock.sleep,
                                        gate=PauseGate(clock=clock.monotonic, sleep=clock.sleep))
    rule = admin.post("/faults", json={"kind": "503", "route": "teams.webhook", "retry_after": "5"}).json()
    outage_ends = clock.now.timestamp() + 600
    config = NoticeConfig.from_settings(settings)
    drains = 0
    try:
        while clock.now.timestamp() < outage_ends:
            report = await drain(store, notifier, Router(structure_under(unique)), config, clock=clock)
            drains += 1
            assert report.sent == 0 and report.parked == 0
            assert report.next_due is not None
            clock.now = max(report.next_due, clock.now)
        admin.delete(f"/faults/{rule['rules'][0]['id']}").raise_for_status()
        sent = 0
        for _ in range(10):  # each channel's notice is due at its own back-off time
            report = await drain(store, notifier, Router(structure_under(unique)), config, clock=clock)
            sent += report.cards
            if report.next_due is None:
                break
            clock.now = max(report.next_due, clock.now)
        assert sent == 3, "one card per channel"
        again = await drain(store, notifier, Router(structure_under(unique)), config, clock=clock)
        assert again.sent == 0 and again.next_due is None
    finally:
        admin.delete("/faults")
        await notifier.aclose()
    assert drains >= 4, "the outage spanned several backed-off attempts"
    attempts = {n.channel: n.attempts for n in list_notices(store)}
    store.close()
    assert all(a >= 4 for a in attempts.values()), attempts
    found = await settled(admin, tag, expected=3)
    assert sorted(found) == ["Chief Negotiators", "Secretariat", "WG-TF"]
    assert all(len(messages) == 1 for messages in found.values()), {k: len(v) for k, v in found.items()}


async def test_a_crash_between_sending_and_marking_sent_posts_no_duplicate(  # noqa: PLR0917 - fixtures
        tenant_info: dict[str, Any], editor: httpx.Client, admin: httpx.Client, unique: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tag = unique.removeprefix("t-")
    settings, store = await prepare(tenant_info, editor, unique, tmp_path, [f"Secretariat/minutes-{tag}.docx"])
    clock = FakeClock()
    config = NoticeConfig.from_settings(settings)
    router = Router(structure_under(unique))

    def crash(_: Sequence[int]) -> None:
        raise Crash

    notifier = build_workflows_notifier(settings)
    try:
        with pytest.raises(Crash):
            await drain(store, notifier, router, config, clock=clock, after_send=crash)
        # The restarted process: the notice is still leased, then found interrupted and parked.
        assert (await drain(store, notifier, router, config, clock=clock)).sent == 0
        clock.advance(config.lease_seconds + 1)
        rerun = await drain(store, notifier, router, config, clock=clock)
        assert rerun.recovered == 1 and rerun.sent == 0
    finally:
        await notifier.aclose()
    [parked] = list_notices(store, failed_only=True)
    store.close()
    assert "interrupted between sending and marking sent" in (parked.last_error or "")
    found = await settled(admin, tag, expected=1)
    assert {k: len(v) for k, v in found.items()} == {"Secretariat": 1}

    # The operator sees it, and decides to send it again (then, and only then, it is there twice).
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(Path(tenant_info["data_dir"]) / "tenant.json"))
    monkeypatch.setenv("CARTIF_STORE__DATA_DIR", str(tmp_path))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["notices", "list", "--failed", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["id"] == parked.id and listed["channel"] == "Secretariat" and listed["status"] == "failed"
    assert await asyncio.to_thread(main, ["notices", "retry", str(parked.id)]) == 0
    assert "1 notice(s) queued again" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["notices", "send"]) == 0
    assert "1 card(s) posted" in capsys.readouterr().out
    found = await settled(admin, tag, expected=2)
    assert {k: len(v) for k, v in found.items()} == {"Secretariat": 2}


async def test_the_service_step_drains_and_reports_counts(
        tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    from bot.notices.step import NoticesStep
    from bot.service.steps import CycleContext

    settings = settings_for(tenant_info, tmp_path)
    with Store.open(settings.store.url) as store:
        store.enqueue("changes", "change:step-1", {"type": "change", "change_id": 1, "kind": "created",
                                                   "path": f"/Secretariat/step-{tmp_path.name}.docx",
                                                   "old_path": None, "at": "2026-12-02T08:00:00Z"})
        result = await NoticesStep().run(CycleContext("run-1", "manual", settings, store))
        again = await NoticesStep().run(CycleContext("run-2", "manual", settings, store))
    assert result.counts["routed"] == 1 and result.counts["cards"] == 1 and result.counts["sent"] == 1
    assert again.counts["cards"] == 0 and again.counts["routed"] == 0
    found = await settled(admin, f"step-{tmp_path.name}", expected=1)
    assert {k: len(v) for k, v in found.items()} == {"Secretariat": 1}
