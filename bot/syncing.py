"""One sync cycle of a drive: read the delta feed, derive change events, commit them with the cursor.

Where it sits: ``cartif-bot sync`` (and later the scheduler and the notification handler) runs
``Syncer.run``; what it records in the store's change log feeds notices and the register.

The cycle::

    read   every delta page from the stored deltaLink (none: a full first listing; 410: the
           Location link, a full re-listing) — pages are plain JSON (connectors.graph_delta)
    derive reconcile(): the latest state of each item (last occurrence wins) against the tracked
           items → new rows and events; pure, no I/O
    guard  more than ``max_deletion_share`` of the tracked items deleted → MassDeletionError,
           nothing written, the cursor kept, unless confirmed
    commit items + events + the new deltaLink in ONE transaction (Store.commit_sync)

So a crash anywhere before the commit leaves the old cursor and the next run reads the same
changes again; a crash after it leaves nothing to redo. Nothing is lost, nothing counted twice.

Terminology (delta semantics, anchors-sync-notify §0): the feed gives each item's *latest
state*, possibly several times; renaming a folder does not list its children, so paths are ours
to maintain — items are tracked by id and a moved or renamed folder rewrites its descendants'
paths. Events: ``created``, ``modified`` (a file's content: cTag, hash or size), ``renamed``
(same parent, new name), ``moved`` (new parent, maybe a new name too), ``deleted``. A folder
listed again only because something inside it changed is no event. The first listing of a
drive is a *baseline*: items are tracked, no events are emitted. A resync after a 410 compares
the full listing with the tracked items and emits only real differences, including deletions of
items the listing no longer has. Writes by the bot itself (``lastModifiedBy.application.id`` is
our client id) are logged with ``by_self`` and not emitted, so the bot never reacts to itself.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from bot.errors import UserError
from bot.notices.references import change_references
from bot.store import ChangeRecord, Store, TrackedItem, utc_now
from bot.store.rows import ChangeKind
from connectors.graph_delta import DeltaItem, DeltaReader, ResyncRequired

__all__ = [
    "CARTIF_COUNTRIES",
    "MIN_GUARDED_DELETIONS",
    "Classifier",
    "Event",
    "FolderConventionClassifier",
    "MassDeletionError",
    "Reconciled",
    "SyncResult",
    "Syncer",
    "reconcile",
]

#: Below this many deletions the guard stays quiet whatever the share: deleting 3 of 10 files
#: is ordinary work, not a library emptied by mistake.
MIN_GUARDED_DELETIONS = 10

#: The nine CARTIF parties (ISO 3166-1 alpha-3), as the seeded tenant (emulator/seed.py) names them.
CARTIF_COUNTRIES = frozenset({"CHN", "GEO", "KAZ", "KGZ", "MNG", "PAK", "TJK", "TKM", "UZB"})
#: Document series folders (symbols like CARTIF/WG-TF/W/3: W = working documents, INF, RD, …).
SERIES = frozenset({"W", "INF", "RD", "NP", "NON-PAPERS", "CRP"})

#: Crash points for the crash-injection tests ONLY (``settings.sync.crash_at``, CARTIF_SYNC__CRASH_AT):
#: the process kills itself (SIGKILL, as kill -9) at that point of the cycle.
CRASH_POINTS = ("before_commit", "after_commit")


class Classifier(Protocol):
    """Maps a drive-relative path to what it belongs to in the negotiation, e.g.
    ``{"area": "Working Groups", "working_group": "WG-TF", "country": "KAZ"}``.

    The hook for the declared structure (issue #3): a classifier built from it replaces
    ``FolderConventionClassifier`` without any change here.
    """

    def __call__(self, path: str) -> dict[str, Any]: ...


_WG = re.compile(r"^(WG-[A-Z]{2,5})\b", re.IGNORECASE)
_COUNTRY = re.compile(r"^([A-Z]{3})(?:\b|$)")


class FolderConventionClassifier:
    """Classification from CARTIF's folder naming conventions alone.

    * ``area``: the top-level folder ("Working Groups", "Delegations", "Plenary", …), None for the root;
    * ``working_group``: the first segment named like ``WG-TF`` or ``WG-TF Trade facilitation``;
    * ``country``: the first segment that is, or starts with, a party's ISO alpha-3 code
      ("KAZ", "KAZ - Kazakhstan");
    * ``series``: the first segment naming a document series (W, INF, RD, NP, CRP).
    """

    def __init__(self, countries: Iterable[str] = CARTIF_COUNTRIES) -> None:
        self.countries = frozenset(c.upper() for c in countries)

    def __call__(self, path: str) -> dict[str, Any]:
        segments = [s for s in path.split("/") if s]
        result: dict[str, Any] = {"area": segments[0] if segments else None,
                                  "working_group": None, "country": None, "series": None}
        # Every segment counts, the item's own name too: the folder "KAZ" belongs to KAZ.
        for segment in segments:
            if result["working_group"] is None and (m := _WG.match(segment)):
                result["working_group"] = m.group(1).upper()
            elif result["country"] is None and (m := _COUNTRY.match(segment)) and m.group(1) in self.countries:
                result["country"] = m.group(1)
            elif result["series"] is None and segment.upper() in SERIES:
                result["series"] = segment.upper()
        return result


class MassDeletionError(UserError):
    """A delta would delete more than the allowed share of tracked items; nothing was written."""

    def __init__(self, deletions: int, tracked: int, share: float) -> None:
        super().__init__(
            f"this sync would mark {deletions} of {tracked} tracked items deleted "
            f"({deletions / max(tracked, 1):.0%} > {share:.0%}); nothing was recorded and the delta cursor is "
            "kept. Check the library; if the deletions are intended, run again with --confirm-deletions "
            "(or raise CARTIF_SYNC__MAX_DELETION_SHARE)")
        self.deletions = deletions
        self.tracked = tracked
        self.share = share


# ---------------------------------------------------------------------------------------------- pure core
@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """A change derived by ``reconcile``; ``path`` is the new path (the old one for deletions)."""

    item_id: str
    kind: ChangeKind
    path: str
    old_path: str | None
    by_self: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Reconciled:
    rows: list[TrackedItem]
    events: list[Event]
    #: items marked deleted (reported ones and the descendants of deleted folders)
    deletions: int


def _latest(batch: Iterable[DeltaItem]) -> dict[str, DeltaItem]:
    # The feed may list an item several times; the last occurrence is its latest state.
    latest: dict[str, DeltaItem] = {}
    for item in batch:
        latest.pop(item.id, None)
        latest[item.id] = item
    return latest


def content_changed(old: TrackedItem, new: DeltaItem) -> bool:
    """Whether a file's bytes changed between what the store saw and what the feed now says.

    SharePoint's delta carries no cTag and, of the hashes, only ``quickXorHash`` (Graph's hashes
    resource: ``sha256Hash`` "isn't supported"); the eTag also moves when only a column value
    changes, which is not a change to the text. So the evidence is, in order: a content hash both
    sides have, else a cTag both sides have, else the eTag (a file still without a hash). A value
    only one side has proves nothing: a store written before a field was served would otherwise
    report every file as modified on its next full crawl.
    """
    if old.size != new.size:
        return True
    for before, after in ((old.quick_xor, new.quick_xor), (old.sha256, new.sha256), (old.ctag, new.ctag)):
        if before is not None and after is not None:
            return before != after
    return old.etag is not None and new.etag is not None and old.etag != new.etag


def _row(drive_id: str, d: DeltaItem, path: str) -> TrackedItem:
    return TrackedItem(drive_id, d.id, d.parent_id, path, d.name, d.is_folder, d.etag, d.ctag, d.size,
                       d.sha256, d.quick_xor, d.modified_by, d.modified_at, False)


def reconcile(drive_id: str, known: Mapping[str, TrackedItem], batch: Iterable[DeltaItem], *,
              descendants: Callable[[str], Sequence[TrackedItem]], full: bool = False,
              own_app_id: str | None = None) -> Reconciled:
    """New tracked rows and change events for a batch of delta items. Pure: no I/O, no clock.

    ``known`` holds the tracked items for every id of the batch and its parents (for a ``full``
    listing: every tracked item of the drive); ``descendants(path)`` returns the tracked live
    items under a folder path. With ``full``, tracked live items missing from the batch were
    deleted.
    """
    latest = _latest(batch)
    paths: dict[str, str | None] = {}

    def path_of(item_id: str | None, depth: int = 0) -> str | None:
        if item_id is None or depth > 512:
            return None
        if item_id in paths:
            return paths[item_id]
        d = latest.get(item_id)
        if d is None:
            # Not in the batch: its own parent and name are unchanged, but an ancestor may have
            # been renamed or moved in this batch, so the path is rebuilt from the parent's.
            stored = known.get(item_id)
            if stored is None or stored.deleted:
                result = None
            elif stored.parent_id is None or (stored.parent_id not in known and stored.parent_id not in latest):
                result = stored.path
            else:
                parent = path_of(stored.parent_id, depth + 1)
                result = f"{parent}/{stored.name}" if parent is not None else stored.path
        elif d.deleted:
            stored = known.get(item_id)
            result = stored.path if stored is not None and not stored.deleted else None
        elif d.is_root:
            result = ""
        else:
            parent = path_of(d.parent_id, depth + 1)
            # An unknown parent (never listed) should not happen; keep the item findable by name.
            result = f"{parent if parent is not None else ''}/{d.name}"
        paths[item_id] = result
        return result

    rows: dict[str, TrackedItem] = {}
    events: list[Event] = []
    moved_folders: list[str] = []  # old paths of folders whose path changed
    deleted_folders: list[str] = []
    deletions = 0
    for d in latest.values():
        old = known.get(d.id)
        live = old is not None and not old.deleted
        by_self = own_app_id is not None and d.modified_by_app == own_app_id
        if d.deleted:
            if old is not None and live:
                rows[d.id] = dataclasses.replace(old, deleted=True)
                deletions += 1
                if old.parent_id is not None:
                    events.append(Event(d.id, "deleted", old.path, None, by_self))
                if old.is_folder:
                    deleted_folders.append(old.path)
            continue
        path = path_of(d.id) or ""
        rows[d.id] = _row(drive_id, d, path)
        if d.is_root:
            continue
        if old is None or not live:
            events.append(Event(d.id, "created", path, None, by_self))
            continue
        if old.is_folder and old.path != path:
            moved_folders.append(old.path)
        if old.parent_id != d.parent_id:
            events.append(Event(d.id, "moved", path, old.path, by_self))
        elif old.name != d.name:
            events.append(Event(d.id, "renamed", path, old.path, by_self))
        elif not d.is_folder and content_changed(old, d):
            events.append(Event(d.id, "modified", path, None, by_self))

    # Descendants of deleted folders that the batch does not mention are gone with them — unless
    # an ancestor between them and the deleted folder moved out of it in this same batch (a folder
    # moved away, then its old parent deleted): their stored paths are stale, so the decision is
    # made on the parent chain as the batch leaves it, not on the path prefix.
    under_deleted = {c.id: c for folder in deleted_folders for c in descendants(folder)}

    def still_under_deleted(item: TrackedItem) -> bool:
        parent_id = item.parent_id
        for _ in range(512):
            if parent_id is None:
                return False
            if parent_id in latest:
                if latest[parent_id].deleted:
                    return True
                parent_id = latest[parent_id].parent_id
            elif parent_id in under_deleted:
                parent_id = under_deleted[parent_id].parent_id
            else:
                return False  # reached an unchanged folder outside every deleted subtree
        return False

    for child in under_deleted.values():
        if child.id not in latest and child.id not in rows and still_under_deleted(child):
            rows[child.id] = dataclasses.replace(child, deleted=True)
            deletions += 1
    # Descendants of moved/renamed folders: new path from the (new) parent's path, parents first.
    pending = {c.id: c for folder in moved_folders for c in descendants(folder)
               if c.id not in latest and not rows.get(c.id, c).deleted}
    for child in sorted(pending.values(), key=lambda c: c.path.count("/")):
        parent_row = rows.get(child.parent_id or "")
        parent_path = parent_row.path if parent_row is not None else path_of(child.parent_id)
        if parent_path is not None:
            rows[child.id] = dataclasses.replace(child, path=f"{parent_path}/{child.name}")
    if full:
        for item in known.values():
            if not item.deleted and item.id not in latest and item.id not in rows and item.parent_id is not None:
                rows[item.id] = dataclasses.replace(item, deleted=True)
                events.append(Event(item.id, "deleted", item.path, None, False))
                deletions += 1
    return Reconciled(list(rows.values()), events, deletions)


# ---------------------------------------------------------------------------------------------- the cycle
@dataclasses.dataclass(frozen=True)
class SyncResult:
    """What one cycle did. ``changes`` are the emitted events (not the bot's own writes)."""

    cycle_id: str
    drive_id: str
    #: "initial" (baseline listing), "incremental" or "resync" (after a 410)
    mode: str
    changes: list[ChangeRecord]
    own_writes: int
    items_seen: int
    pages: int
    tracked: int
    seconds: float
    #: the delta pages' parsing + reconcile time, without the network (for items/s)
    processing_seconds: float

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.changes:
            out[change.kind] = out.get(change.kind, 0) + 1
        return out


class Syncer:
    """Runs sync cycles of one drive into a store (see the module docstring)."""

    def __init__(self, store: Store, reader: DeltaReader, drive_id: str, *,
                 classifier: Classifier | None = None, own_app_id: str | None = None,
                 max_deletion_share: float = 0.2, confirm_deletions: bool = False,
                 progress: Callable[[int, int], None] | None = None, crash_at: str | None = None,
                 notices: bool = True) -> None:
        self.store = store
        self.reader = reader
        self.drive_id = drive_id
        self.classify: Classifier = classifier or FolderConventionClassifier()
        self.own_app_id = own_app_id
        self.max_deletion_share = max_deletion_share
        self.confirm_deletions = confirm_deletions
        #: called with (pages, items) after each page: the CLI's progress line
        self.progress = progress
        #: test-only crash injection point (settings.sync.crash_at); None in production
        self.crash_at = crash_at
        #: write a change reference per change to the outbox in the commit (bot.notices.references)
        self.notices = notices

    async def run(self) -> SyncResult:
        started = time.perf_counter()
        cycle_id = uuid.uuid4().hex[:12]
        cursor = self.store.cursor(self.drive_id)
        start = cursor.delta_link if cursor else None
        mode = "incremental" if cursor else "initial"
        try:
            batch, link, pages, busy = await self._read(start)
        except ResyncRequired as exc:
            mode = "resync" if cursor else "initial"
            batch, link, pages, busy = await self._read(exc.location)
        t0 = time.perf_counter()
        full = mode != "incremental"
        if full:
            known = {i.id: i for i in self.store.items(self.drive_id, include_deleted=True)}
        else:
            ids = {d.id for d in batch} | {d.parent_id for d in batch if d.parent_id}
            known = self.store.items_by_id(self.drive_id, ids)
            # The ancestors too (one query per level): a file changed inside a folder whose
            # grand-parent was renamed in the same batch gets its path from the renamed chain.
            frontier = {i.parent_id for i in known.values() if i.parent_id and i.parent_id not in known}
            while frontier:
                found = self.store.items_by_id(self.drive_id, frontier)
                known.update(found)
                frontier = {i.parent_id for i in found.values() if i.parent_id and i.parent_id not in known}
        outcome = reconcile(self.drive_id, known, batch, full=full, own_app_id=self.own_app_id,
                            descendants=lambda path: self.store.descendants(self.drive_id, path))
        tracked = self.store.count_live(self.drive_id)
        self._guard(outcome.deletions, tracked)
        at = utc_now()
        records = [] if mode == "initial" else [
            ChangeRecord(cycle_id, at, self.drive_id, e.item_id, e.kind, e.path, e.old_path,
                         self.classify(e.old_path if e.kind == "deleted" and e.old_path else e.path), e.by_self)
            for e in outcome.events]
        busy += time.perf_counter() - t0
        _crash_hook(self.crash_at, "before_commit")
        rows_by_id = {row.id: row for row in outcome.rows}
        stored = self.store.commit_sync(self.drive_id, items=outcome.rows, changes=records, delta_link=link,
                                        expected_link=start,
                                        outbox=(lambda kept: change_references(kept, rows_by_id))
                                        if self.notices else None)
        _crash_hook(self.crash_at, "after_commit")
        emitted = [r for r in stored if not r.by_self]
        return SyncResult(cycle_id, self.drive_id, mode, emitted, len(stored) - len(emitted), len(batch), pages,
                          self.store.count_live(self.drive_id), time.perf_counter() - started, busy)

    async def _read(self, start: str | None) -> tuple[list[DeltaItem], str, int, float]:
        batch: list[DeltaItem] = []
        pages = 0
        busy = 0.0
        link: str | None = None
        iterator = self.reader.pages(start).__aiter__()
        while True:
            try:
                page = await iterator.__anext__()
            except StopAsyncIteration:
                break
            t0 = time.perf_counter()
            pages += 1
            batch.extend(page.items)
            link = page.delta_link or link
            busy += time.perf_counter() - t0
            if self.progress is not None:
                self.progress(pages, len(batch))
        if link is None:
            raise RuntimeError("the delta feed ended without an @odata.deltaLink")
        return batch, link, pages, busy

    def _guard(self, deletions: int, tracked: int) -> None:
        if self.confirm_deletions or deletions < MIN_GUARDED_DELETIONS or tracked == 0:
            return
        if deletions > self.max_deletion_share * tracked:
            raise MassDeletionError(deletions, tracked, self.max_deletion_share)


def _crash_hook(configured: str | None, point: str) -> None:
    if configured == point:
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- wiring
async def sync_once(settings: Any, *, confirm_deletions: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> SyncResult:
    """One cycle with the real connectors, from ``settings`` (what ``cartif-bot sync`` runs)."""
    from connectors.auth import Authenticator
    from connectors.graph import build_graph_client
    from connectors.graph_delta import GraphDeltaReader

    authenticator = Authenticator(settings)
    try:
        graph = build_graph_client(settings, authenticator)
        drive_id = settings.endpoints.drive_id or await _default_drive(graph, settings.endpoints.site_id)
        reader = GraphDeltaReader(graph, drive_id, page_size=settings.sync.page_size)
        with Store.open(settings.store.url) as store:
            syncer = Syncer(store, reader, drive_id, own_app_id=settings.auth.client_id,
                            max_deletion_share=settings.sync.max_deletion_share,
                            confirm_deletions=confirm_deletions, progress=progress,
                            crash_at=settings.sync.crash_at)
            return await syncer.run()
    finally:
        authenticator.close()


async def _default_drive(graph: Any, site_id: str | None) -> str:
    if not site_id:
        raise UserError("CARTIF_ENDPOINTS__DRIVE_ID: required for sync — the Graph id of the document library's "
                        "drive (or set CARTIF_ENDPOINTS__SITE_ID to use the site's default library)")
    drive = await graph.sites.by_site_id(site_id).drive.get()
    return str(drive.id)
