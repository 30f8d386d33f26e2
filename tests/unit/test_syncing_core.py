"""The sync engine on plain values, the store, and the retry transport — no tenant.

We test these aspects: reconcile (events per kind, last occurrence wins, folder re-listing is no
event, renamed/moved folders rewrite descendants' paths, deleted folders take descendants, full
listings report what disappeared, own writes flagged), the classifier, the mass-deletion guard
(cursor kept), 410 detection in the innerError chain, the store's migrations/audit/cursor check,
and the retry transport (Retry-After floor across requests, jittered bounded back-off, methods).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from bot.store import AuditEntry, CursorMoved, Store, TrackedItem, utc_now
from bot.syncing import (
    MIN_GUARDED_DELETIONS,
    FolderConventionClassifier,
    MassDeletionError,
    Syncer,
    content_changed,
    reconcile,
)
from connectors.graph_delta import DeltaItem, DeltaPage, parse_delta_item, parse_page, resync_code
from connectors.retrying import (
    PauseGate,
    RetryingTransport,
    RetryPolicy,
    rate_limit_hold,
    retry_after_seconds,
    server_wait,
)

D = "drive"


def tracked(id_: str, parent: str | None, path: str, *, folder: bool = False, ctag: str = "c1") -> TrackedItem:
    return TrackedItem(D, id_, parent, path, path.rsplit("/", 1)[-1] if path else "root", folder,
                       etag="e1", ctag=None if folder else ctag, size=1)


def delta(id_: str, parent: str | None, name: str, *, folder: bool = False, ctag: str = "c1",
          deleted: bool = False, app: str | None = None) -> DeltaItem:
    return DeltaItem(id_, name, parent, folder, is_root=parent is None, deleted=deleted, etag="e2",
                     ctag=None if folder else ctag, size=1, modified_by_app=app)


TREE = {t.id: t for t in [
    tracked("root", None, "", folder=True),
    tracked("a", "root", "/A", folder=True),
    tracked("b", "a", "/A/B", folder=True),
    tracked("f", "b", "/A/B/f.txt"),
    tracked("g", "a", "/A/g.txt"),
    tracked("x", "root", "/X", folder=True),
]}


def descendants_of(known: dict[str, TrackedItem]):  # type: ignore[no-untyped-def]
    return lambda path: [t for t in known.values() if t.path.startswith(path + "/") and not t.deleted]


def kinds(result) -> list[tuple[str, str, str, str | None]]:  # type: ignore[no-untyped-def]
    return sorted((e.item_id, e.kind, e.path, e.old_path) for e in result.events)


def test_renaming_nested_folders_rewrites_every_descendant_path_without_events_for_them() -> None:
    batch = [delta("b", "a", "B2", folder=True), delta("a", "root", "A2", folder=True)]
    result = reconcile(D, TREE, batch, descendants=descendants_of(TREE))
    assert kinds(result) == [("a", "renamed", "/A2", "/A"), ("b", "renamed", "/A2/B2", "/A/B")]
    paths = {r.id: r.path for r in result.rows}
    assert paths == {"a": "/A2", "b": "/A2/B2", "f": "/A2/B2/f.txt", "g": "/A2/g.txt"}


def test_a_file_changed_under_a_renamed_grandparent_gets_the_new_path() -> None:
    # Found by tests/test_sync_property.py: "a" renamed and "f" (in "b", which the batch does not
    # list) modified in the same batch; "f" must not keep the old "/A/B" prefix.
    batch = [delta("a", "root", "A2", folder=True), delta("f", "b", "f.txt", ctag="c2")]
    result = reconcile(D, TREE, batch, descendants=descendants_of(TREE))
    assert kinds(result) == [("a", "renamed", "/A2", "/A"), ("f", "modified", "/A2/B/f.txt", None)]
    paths = {r.id: r.path for r in result.rows}
    assert paths["f"] == "/A2/B/f.txt" and paths["b"] == "/A2/B" and paths["g"] == "/A2/g.txt"


def test_moving_a_folder_is_one_moved_event_and_its_files_follow() -> None:
    result = reconcile(D, TREE, [delta("b", "x", "B", folder=True)], descendants=descendants_of(TREE))
    assert kinds(result) == [("b", "moved", "/X/B", "/A/B")]
    assert {r.id: r.path for r in result.rows}["f"] == "/X/B/f.txt"


def test_content_change_is_modified_and_a_relisted_parent_folder_is_no_event() -> None:
    batch = [delta("a", "root", "A", folder=True), delta("g", "a", "g.txt", ctag="c2"), delta("root", None, "root")]
    result = reconcile(D, TREE, batch, descendants=descendants_of(TREE))
    assert kinds(result) == [("g", "modified", "/A/g.txt", None)]


def test_last_occurrence_wins_and_a_created_then_renamed_item_is_one_created_event() -> None:
    batch = [delta("n", "x", "draft.txt"), delta("n", "x", "final.txt")]
    result = reconcile(D, TREE, batch, descendants=descendants_of(TREE))
    assert kinds(result) == [("n", "created", "/X/final.txt", None)]


def test_deleting_a_folder_marks_its_descendants_deleted_and_counts_them() -> None:
    result = reconcile(D, TREE, [delta("a", "root", "", folder=True, deleted=True)],
                       descendants=descendants_of(TREE))
    assert kinds(result) == [("a", "deleted", "/A", None)]
    assert {r.id for r in result.rows if r.deleted} == {"a", "b", "f", "g"}
    assert result.deletions == 4


def test_a_folder_moved_out_of_a_folder_deleted_in_the_same_batch_keeps_its_contents() -> None:
    # Found by tests/test_sync_property.py: "b" moved from "/A" to "/X", then "/A" deleted; "f"
    # (in "b", not in the batch) still has the stale stored path "/A/B/f.txt" but is alive.
    batch = [delta("b", "x", "B", folder=True), delta("a", "root", "", folder=True, deleted=True)]
    result = reconcile(D, TREE, batch, descendants=descendants_of(TREE))
    assert kinds(result) == [("a", "deleted", "/A", None), ("b", "moved", "/X/B", "/A/B")]
    rows = {r.id: r for r in result.rows}
    assert {i for i, r in rows.items() if r.deleted} == {"a", "g"}
    assert rows["f"].path == "/X/B/f.txt" and not rows["f"].deleted
    assert result.deletions == 2


def test_a_full_listing_reports_only_real_differences() -> None:
    listing = [delta("root", None, "root"), delta("a", "root", "A", folder=True),
               delta("b", "a", "B", folder=True), delta("f", "b", "f.txt"), delta("g", "a", "g.txt", ctag="c9")]
    result = reconcile(D, TREE, listing, descendants=descendants_of(TREE), full=True)
    assert kinds(result) == [("g", "modified", "/A/g.txt", None), ("x", "deleted", "/X", None)]


def test_the_bots_own_writes_are_flagged() -> None:
    result = reconcile(D, TREE, [delta("n", "x", "copy.txt", app="me"), delta("m", "x", "other.txt", app="you")],
                       descendants=descendants_of(TREE), own_app_id="me")
    assert sorted((e.item_id, e.by_self) for e in result.events) == [("m", False), ("n", True)]


@pytest.mark.parametrize(("path", "expected"), [
    ("/Working Groups/WG-TF Trade facilitation/KAZ/W/draft.docx",
     {"area": "Working Groups", "working_group": "WG-TF", "country": "KAZ", "series": "W"}),
    ("/Delegations/UZB - Uzbekistan", {"area": "Delegations", "working_group": None, "country": "UZB",
                                       "series": None}),
    ("/Plenary/ABC notes.txt", {"area": "Plenary", "working_group": None, "country": None, "series": None}),
    ("", {"area": None, "working_group": None, "country": None, "series": None}),
])
def test_folder_conventions_classify_paths(path: str, expected: dict[str, str | None]) -> None:
    assert FolderConventionClassifier()(path) == expected


def test_resync_codes_are_found_anywhere_in_the_inner_error_chain() -> None:
    nested = {"error": {"code": "generalException", "innerError": {"code": "x", "innerError": {
        "code": "resyncChangesApplyDifferences"}}}}
    assert resync_code(nested) == "resyncChangesApplyDifferences"
    assert resync_code({"error": {"code": "resyncRequired"}}) == "resyncRequired"
    assert resync_code({"error": {"code": "itemNotFound", "innerError": {"code": "nope"}}}) is None


def test_delta_json_parses_into_light_items() -> None:
    page = parse_page(b'{"value": [{"id": "1", "name": "a.txt", "parentReference": {"id": "0"}, "cTag": "c",'
                      b'"file": {"hashes": {"quickXorHash": "AB=="}}, "size": 3, "lastModifiedBy": {"application":'
                      b'{"id": "app-1"}}}, {"id": "2", "deleted": {"state": "deleted"}, "folder": {}}],'
                      b'"@odata.deltaLink": "L"}')
    assert page.delta_link == "L" and page.next_link is None
    assert page.items[0] == DeltaItem("1", "a.txt", "0", False, ctag="c", size=3, quick_xor="AB==",
                                      modified_by="app:app-1", modified_by_app="app-1")
    assert page.items[1].deleted and page.items[1].is_folder
    assert parse_delta_item({"id": "r", "root": {}, "folder": {}}).is_root


@pytest.mark.parametrize(("before", "after", "changed"), [
    # SharePoint's delta: no cTag, a quickXorHash; a column edit moves only the eTag.
    ({"quick_xor": "q1", "etag": "e1"}, {"quick_xor": "q1", "etag": "e2"}, False),
    ({"quick_xor": "q1", "etag": "e1"}, {"quick_xor": "q2", "etag": "e2"}, True),
    # the same size with other bytes: only the hash can tell
    ({"quick_xor": "q1", "size": 3}, {"quick_xor": "q2", "size": 3}, True),
    ({"quick_xor": "q1", "size": 3}, {"quick_xor": "q1", "size": 4}, True),
    # a store written before the tenant served a hash: one side only proves nothing, the cTag decides
    ({"sha256": "S", "ctag": "c1", "etag": "e1"}, {"quick_xor": "q1", "ctag": "c1", "etag": "e2"}, False),
    ({"ctag": "c1"}, {"ctag": "c2"}, True),
    # a file without any fingerprint yet: the eTag is all there is
    ({"etag": "e1"}, {"etag": "e2"}, True),
    ({"etag": "e1"}, {"etag": "e1"}, False),
    ({}, {}, False),
])
def test_a_file_is_modified_when_its_content_fingerprint_changes(
        before: dict[str, str | int], after: dict[str, str | int], changed: bool) -> None:
    old = TrackedItem(D, "f", "root", "/f.txt", "f.txt", False, **{"size": 3, **before})  # type: ignore[arg-type]
    new = DeltaItem("f", "f.txt", "root", False, **{"size": 3, **after})  # type: ignore[arg-type]
    assert content_changed(old, new) is changed


# ---------------------------------------------------------------------------------------------- guard + store
class ListReader:
    def __init__(self, pages: Sequence[DeltaPage]) -> None:
        self._pages = pages

    async def pages(self, start: str | None) -> AsyncIterator[DeltaPage]:
        for page in self._pages:
            yield page


def _baseline(store: Store, files: int) -> None:
    items = [tracked("root", None, "", folder=True)] + [tracked(f"f{i}", "root", f"/f{i}.txt") for i in range(files)]
    store.commit_sync(D, items=items, changes=[], delta_link="L0", expected_link=None)


async def test_mass_deletion_stops_the_cycle_keeps_the_cursor_and_passes_when_confirmed(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/s.db")
    _baseline(store, 40)
    gone = [delta(f"f{i}", "root", "", deleted=True) for i in range(MIN_GUARDED_DELETIONS)]  # 10 of 40 > 20 %
    reader = ListReader([DeltaPage(gone, None, "L1")])
    with pytest.raises(MassDeletionError, match="--confirm-deletions"):
        await Syncer(store, reader, D).run()
    assert store.cursor(D).delta_link == "L0"  # type: ignore[union-attr]
    assert store.count_live(D) == 40
    result = await Syncer(store, reader, D, confirm_deletions=True).run()
    assert result.counts() == {"deleted": 10}
    assert store.cursor(D).delta_link == "L1"  # type: ignore[union-attr]
    assert store.count_live(D) == 30


async def test_a_few_deletions_pass_the_guard(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/s.db")
    _baseline(store, 5)
    reader = ListReader([DeltaPage([delta(f"f{i}", "root", "", deleted=True) for i in range(3)], None, "L1")])
    assert (await Syncer(store, reader, D).run()).counts() == {"deleted": 3}


def test_store_migrates_to_head_records_audit_and_refuses_a_moved_cursor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/store.db"
    with Store.open(url) as store:
        assert store.revision() == Store.head_revision()
        store.record_audit([AuditEntry("grant", "/A", utc_now(), "c1", before=None, after={"role": "read"},
                                       rule="wg members read")])
        _baseline(store, 1)
        with pytest.raises(CursorMoved):
            store.commit_sync(D, items=[], changes=[], delta_link="L9", expected_link="stale")
    with Store.open(url) as store:  # reopening migrates nothing and keeps everything
        [entry] = store.audit()
        assert (entry.action, entry.after, entry.rule) == ("grant", {"role": "read"}, "wg members read")
        assert store.audit(since="2999-01-01") == []
        assert store.cursor(D).delta_link == "L0"  # type: ignore[union-attr]
        assert store.enqueue("teams", "k", {"a": 1}) and not store.enqueue("teams", "k", {"a": 1})


# ---------------------------------------------------------------------------------------------- retrying
class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def _transport(handler, fake: FakeTime, **policy: float) -> RetryingTransport:  # type: ignore[no-untyped-def]
    gate = PauseGate(clock=fake.clock, sleep=fake.sleep)
    return RetryingTransport(httpx.MockTransport(handler), RetryPolicy(**policy),  # type: ignore[arg-type]
                             gate=gate, sleep=fake.sleep)


async def test_retry_after_is_a_floor_for_every_request_of_the_client() -> None:
    fake = FakeTime()
    sent: list[tuple[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, fake.now))
        if request.url.path == "/a" and len([p for p, _ in sent if p == "/a"]) == 1:
            return httpx.Response(429, headers={"Retry-After": "1.5"})
        return httpx.Response(200)

    transport = _transport(handler, fake, max_retries=3, base_delay=0.1)
    async with httpx.AsyncClient(transport=transport, base_url="https://graph.test") as client:
        first = await client.get("/a")
        second = await client.get("/b")  # leaves only after the pause
    assert first.status_code == 200 and second.status_code == 200
    assert sent[0] == ("/a", 0.0)
    assert all(at >= 1.5 for _, at in sent[1:])
    assert retry_after_seconds("2.128") == pytest.approx(2.128)


def test_the_greater_of_retry_after_and_ratelimit_reset_and_the_low_water_hold() -> None:
    # SharePoint's published 429: Retry-After 31 with RateLimit-Reset 31; "honor the greater".
    assert server_wait(429, {"retry-after": "2", "ratelimit-reset": "31"}) == 31
    assert server_wait(503, {"retry-after": "2.5"}) == 2.5
    assert server_wait(429, {"ratelimit-reset": "7"}) == 7
    assert server_wait(429, {}) is None
    assert server_wait(500, {"retry-after": "3", "ratelimit-reset": "40"}) == 3  # Reset only for throttling
    assert server_wait(429, {"retry-after": "1", "ratelimit-reset": "soon"}) == 1
    # 5 % of 1,200 is 60 RU: at or below it, hold until Reset; above it, nothing.
    assert rate_limit_hold({"ratelimit-limit": "1200", "ratelimit-remaining": "60", "ratelimit-reset": "7"}) == 7
    assert rate_limit_hold({"ratelimit-limit": "1200", "ratelimit-remaining": "61", "ratelimit-reset": "7"}) == 0
    assert rate_limit_hold({"ratelimit-limit": "1200", "ratelimit-remaining": "0", "ratelimit-reset": "9999"}) == 180
    assert rate_limit_hold({"ratelimit-remaining": "0", "ratelimit-reset": "7"}) == 0  # incomplete: ignored
    assert rate_limit_hold({"ratelimit-limit": "x", "ratelimit-remaining": "0", "ratelimit-reset": "7"}) == 0


async def test_a_nearly_spent_budget_holds_every_request_until_reset_without_a_retry() -> None:
    fake = FakeTime()
    sent: list[tuple[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, fake.now))
        if request.url.path == "/a":  # 30 RU left of 1,200: the next requests would be throttled
            return httpx.Response(200, headers={"RateLimit-Limit": "1200", "RateLimit-Remaining": "30",
                                                "RateLimit-Reset": "4"})
        return httpx.Response(200)

    transport = _transport(handler, fake, max_retries=3, base_delay=0.1)
    async with httpx.AsyncClient(transport=transport, base_url="https://graph.test") as client:
        first = await client.get("/a")
        second = await client.get("/b")
    assert first.status_code == 200 and second.status_code == 200
    assert [p for p, _ in sent] == ["/a", "/b"]  # held, not retried
    assert sent[1][1] >= 4


async def test_server_errors_back_off_with_bounded_jittered_retries_on_idempotent_methods_only() -> None:
    fake = FakeTime()
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(502)

    transport = _transport(handler, fake, max_retries=2, base_delay=1.0)
    async with httpx.AsyncClient(transport=transport, base_url="https://graph.test") as client:
        assert (await client.get("/x")).status_code == 502
        assert calls == ["GET"] * 3
        assert 0.5 <= fake.sleeps[0] <= 1.0 and 1.0 <= fake.sleeps[1] <= 2.0
        calls.clear()
        assert (await client.post("/x")).status_code == 502
        assert calls == ["POST"]


async def test_connection_resets_are_retried_then_raised() -> None:
    fake = FakeTime()
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ReadError("reset", request=request)

    transport = _transport(handler, fake, max_retries=2, base_delay=0.01)
    async with httpx.AsyncClient(transport=transport, base_url="https://graph.test") as client:
        with pytest.raises(httpx.ReadError):
            await client.get("/x")
    assert attempts == 3
