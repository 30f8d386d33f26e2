"""The notices outbox on a real SQLite store with the in-memory notifier and an injected clock.

We test these aspects: change references are written by ``commit_sync`` in the cycle's
transaction and the bot's own writes are silent; a drain routes them into per-channel notices
and posts ONE card per channel; a second drain posts nothing; the debounce window merges a
burst into one digest card; a Teams outage backs off, parks after N attempts, and
``retry_notices`` re-queues; a permanent error parks at once; a crash between sending and
marking sent posts no duplicate and parks the notice after the lease (re-sent when the
transport dedupes); circulation events go out at once with symbol, brackets and redline; the
optional daily digest sends each channel one card a day of what it was told.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.events import CirculationEvent
from bot.notices import MemoryNotifier, NoticeConfig, Router, drain, list_notices, retry_notices
from bot.notices.cards import Links
from bot.notices.outbox import EVENTS, FakeClock
from bot.notices.references import change_references
from bot.store import ChangeRecord, Store, TrackedItem, schema
from config.structure import load_structure
from connectors.errors import NotFound

CHANNELS = ["WG-TF", "WG-FW", "Chief Negotiators", "Plenary", "Secretariat"]


class Crash(BaseException):
    """Stands for the process dying (kill -9) right after the POST."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_structure())


def config(**kw: Any) -> NoticeConfig:
    values: dict[str, Any] = {"links": Links("https://contoso.sharepoint.com/sites/CARTIF"), "debounce_seconds": 0}
    values.update(kw)
    return NoticeConfig(**values)


def commit(store: Store, changes: Sequence[tuple[str, str, str | None]], *, by_self: bool = False,
           link: str = "d1") -> None:
    cursor = store.cursor("drive")
    records = [ChangeRecord("c1", "2026-12-02T08:00:00Z", "drive", f"i-{path}", kind, path, old,  # type: ignore[arg-type]
                            {}, by_self) for kind, path, old in changes]
    items = {f"i-{path}": TrackedItem("drive", f"i-{path}", "p", path, path.rsplit("/", 1)[-1], False,
                                      modified_by="Aigerim Nurlanova", modified_at="2026-12-02T07:59:00Z")
             for _, path, _ in changes}
    store.commit_sync("drive", items=list(items.values()), changes=records, delta_link=link,
                      expected_link=cursor.delta_link if cursor else None,
                      outbox=lambda kept: change_references(kept, items))


def texts(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


async def test_references_are_committed_with_the_changes_and_own_writes_are_silent(store: Store) -> None:
    commit(store, [("created", "/Working groups/WG-TF/a.docx", None)])
    commit(store, [("modified", "/Working groups/WG-TF/b.docx", None)], by_self=True, link="d2")
    rows = store.outbox(status=None)
    assert [(r.channel, r.idempotency_key) for r in rows] == [("changes", rows[0].idempotency_key)]
    assert rows[0].payload["path"] == "/Working groups/WG-TF/a.docx"
    assert rows[0].payload["by"] == "Aigerim Nurlanova"
    with store.engine.connect() as conn:  # the change log holds both; only one is a notice
        assert conn.execute(schema.changes.select()).all().__len__() == 2


async def test_one_card_per_channel_and_a_second_drain_posts_nothing(store: Store, router: Router) -> None:
    commit(store, [("created", "/Working groups/WG-TF/a.docx", None),
                   ("modified", "/Working groups/WG-TF/b.docx", None),
                   ("created", "/Countries/KAZ/secret.docx", None),
                   ("modified", "/Plenary/agenda.docx", None)])
    notifier = MemoryNotifier(CHANNELS)
    report = await drain(store, notifier, router, config(), clock=FakeClock())
    posted: dict[str, list[str]] = {}
    for channel, card, _ in notifier.posted:
        posted.setdefault(channel, []).append(texts(card))
    assert sorted(posted) == ["Chief Negotiators", "Plenary", "Secretariat", "WG-TF"]
    assert all(len(cards) == 1 for cards in posted.values()), "one card per channel batch"
    assert "2 files changed in WG-TF" in posted["WG-TF"][0]
    assert "secret.docx" in posted["Secretariat"][0]
    assert not any("secret.docx" in card for ch, cards in posted.items() if ch != "Secretariat" for card in cards)
    assert "agenda.docx" not in posted["WG-TF"][0]
    assert report.cards == 4 and report.sent == report.notices
    again = await drain(store, notifier, router, config(), clock=FakeClock())
    assert again.cards == 0 and len(notifier.posted) == 4


async def test_a_burst_within_the_window_becomes_one_digest_card(store: Store, router: Router) -> None:
    clock = FakeClock()
    notifier = MemoryNotifier(["WG-TF"])
    commit(store, [("created", "/Working groups/WG-TF/1.docx", None)])
    first = await drain(store, notifier, router, config(debounce_seconds=120), clock=clock)
    assert first.cards == 0 and first.deferred == 1 and first.next_due is not None
    clock.advance(60)
    commit(store, [("created", f"/Working groups/WG-TF/{n}.docx", None) for n in (2, 3, 4, 5)], link="d2")
    assert (await drain(store, notifier, router, config(debounce_seconds=120), clock=clock)).cards == 0
    clock.advance(61)
    done = await drain(store, notifier, router, config(debounce_seconds=120), clock=clock)
    assert done.cards == 1 and done.sent == 5
    assert "5 files changed in WG-TF" in texts(notifier.posted[0][1])


async def test_an_outage_backs_off_parks_after_n_attempts_and_retry_requeues(store: Store, router: Router) -> None:
    clock = FakeClock()
    notifier = MemoryNotifier(["Secretariat"])
    notifier.down = True
    commit(store, [("created", "/Secretariat/budget.xlsx", None)])
    cfg = config(max_attempts=4, backoff_seconds=30)
    waits = []
    for _ in range(10):
        report = await drain(store, notifier, router, cfg, clock=clock)
        if report.next_due is None:
            break
        waits.append((report.next_due - clock()).total_seconds())
        clock.now = report.next_due
    assert waits == [30, 60, 120], "exponential back-off between the 4 attempts"
    [parked] = list_notices(store, failed_only=True)
    assert parked.attempts == 4 and "after 4 attempts" in (parked.last_error or "")
    notifier.down = False
    assert retry_notices(store, [parked.id or 0]) == 1
    assert (await drain(store, notifier, router, cfg, clock=clock)).sent == 1
    assert len(notifier.posted) == 1 and not list_notices(store, failed_only=True)


async def test_a_permanent_error_parks_at_once(store: Store, router: Router) -> None:
    notifier = MemoryNotifier(["Secretariat"])
    notifier.fail_next.append(NotFound(404, "WorkflowNotFound", "gone", surface="teams"))
    commit(store, [("created", "/Secretariat/x.docx", None)])
    report = await drain(store, notifier, router, config(), clock=FakeClock())
    assert report.parked == 1 and [n.status for n in list_notices(store)] == ["failed"]


@pytest.mark.parametrize("idempotent", [False, True])
async def test_a_crash_between_sending_and_marking_sent_posts_no_duplicate(
        store: Store, router: Router, idempotent: bool) -> None:
    clock = FakeClock()
    notifier = MemoryNotifier(["Secretariat"])
    notifier.idempotent = idempotent  # type: ignore[misc]
    commit(store, [("created", "/Secretariat/x.docx", None)])

    def crash(_: Sequence[int]) -> None:
        raise Crash

    with pytest.raises(Crash):
        await drain(store, notifier, router, config(), clock=clock, after_send=crash)
    assert len(notifier.posted) == 1
    assert (await drain(store, notifier, router, config(), clock=clock)).sent == 0, "still leased: not re-sent"
    clock.advance(config().lease_seconds + 1)
    after = await drain(store, notifier, router, config(), clock=clock)
    assert after.recovered == 1
    if idempotent:  # the transport dedupes by key: sent again with the same key
        assert after.sent == 1 and notifier.posted[0][2] == notifier.posted[1][2]
    else:
        assert len(notifier.posted) == 1, "Workflows cannot dedupe: never re-sent automatically"
        [parked] = list_notices(store, failed_only=True)
        assert "interrupted between sending and marking sent" in (parked.last_error or "")


async def test_a_circulated_text_goes_out_at_once_with_its_details(store: Store, router: Router) -> None:
    event = CirculationEvent(
        symbol="CARTIF/WG-TF/W/3/Rev.2", series="WG-TF", title="Draft protocol on trade facilitation",
        kind="revision", revises="CARTIF/WG-TF/W/3/Rev.1", folder="Negotiating texts",
        archive_path="Negotiating texts/Archive/CARTIF-WG-TF-W-3-Rev.2.docx",
        archive_url="https://contoso.sharepoint.com/sites/CARTIF/Shared%20Documents/x.docx",
        redline_url="https://contoso.sharepoint.com/sites/CARTIF/redline.html", brackets_total=7,
        brackets_previous=12, clean_articles=("Art. 3", "Art. 5"), circulated_at="2026-12-02T08:00:00Z",
        circulated_by="elena.petrova@cartif.onmicrosoft.com")
    store.enqueue(EVENTS, "circulation:CARTIF/WG-TF/W/3/Rev.2", event.to_json())
    notifier = MemoryNotifier(CHANNELS)
    report = await drain(store, notifier, router, config(debounce_seconds=3600), clock=FakeClock())
    assert sorted(ch for ch, _, _ in notifier.posted) == ["Chief Negotiators", "Plenary", "Secretariat"]
    assert report.deferred == 0
    card = texts(notifier.posted[0][1])
    for expected in ("CARTIF/WG-TF/W/3/Rev.2", "Rev.1", "12 → 7 (-5)", "Redline", "Art. 3"):
        assert expected in card, expected


async def test_the_daily_digest_goes_once_a_day_to_each_channel_that_heard_something(
        store: Store, router: Router) -> None:
    import datetime as dt

    clock = FakeClock(dt.datetime(2026, 12, 2, 0, 30, tzinfo=dt.UTC))  # 08:30 in Manila
    notifier = MemoryNotifier(["WG-TF", "Plenary"])
    cfg = config(daily_digest_hour=9)
    commit(store, [("created", "/Working groups/WG-TF/a.docx", None),
                   ("created", "/Working groups/WG-TF/b.docx", None)])
    assert (await drain(store, notifier, router, cfg, clock=clock)).cards == 1
    clock.advance(3600)  # 09:30 local: digest time
    first = await drain(store, notifier, router, cfg, clock=clock)
    assert first.cards == 1 and [ch for ch, _, _ in notifier.posted] == ["WG-TF", "WG-TF"]
    assert "Daily digest for WG-TF: 2 files changed" in texts(notifier.posted[-1][1])
    clock.advance(3600)
    assert (await drain(store, notifier, router, cfg, clock=clock)).cards == 0, "once a day"
