"""Property: random site operations, synced at random points, leave the store equal to the site.

We test this aspect of ``bot.syncing`` against the local tenant: for any sequence of folder and
file creations, overwrites, renames, moves (folders with their contents too) and deletions (of
whole subtrees too) made through Graph by another app, every sync leaves the store's live items
under the example's root folder equal to what the site holds there — the same ids at the same
paths, nothing missing, nothing stale. Each example works in its own root folder of the shared
library; one store follows them all (so incremental cycles, not baselines, are what is tested).

And the same operations made *while a first full crawl is paging* (between two of its delta
pages, as negotiators keep working while the bot starts): once the crawl reaches its deltaLink,
the fresh store equals the site — a folder moved or deleted before or after its children were
listed, a file changed after it was listed, nothing lost and nothing stale.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.store import Store
from bot.syncing import Syncer, sync_once
from connectors.graph_delta import DeltaPage, DeltaReader
from tests import sdk
from tests.test_syncing import settings_for

NAMES = ["a.txt", "KAZ", "WG-TF", "W", "notes é.md", "b"]
Op = tuple[Any, ...]

ops = st.lists(st.one_of(
    st.tuples(st.just("mkdir"), st.integers(0, 99), st.sampled_from(NAMES)),
    st.tuples(st.just("put"), st.integers(0, 99), st.sampled_from(NAMES)),
    st.tuples(st.just("overwrite"), st.integers(0, 99), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("rename"), st.integers(0, 99), st.sampled_from(NAMES)),
    st.tuples(st.just("move"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.integers(0, 99)),
    # Folders renamed or moved after a sync: their descendants' paths are ours to rewrite.
    st.tuples(st.just("rename"), st.integers(0, 99), st.sampled_from(NAMES), st.just("folder")),
    st.tuples(st.just("move"), st.integers(0, 99), st.integers(0, 99), st.just("folder")),
    st.tuples(st.just("sync")),
    st.tuples(st.just("sync")),
), min_size=1, max_size=12)


#: root/WG-TF-0/KAZ-1/a-2.txt, root/WG-TF-0/W-3/b-4, root/notes-5.md (indices into folders())
SCAFFOLD: list[Op] = [("mkdir", 0, "WG-TF"), ("mkdir", 1, "KAZ"), ("put", 2, "a.txt"), ("mkdir", 1, "W"),
                      ("put", 3, "b"), ("put", 0, "notes.md")]


class Site:
    """The example's root folder on the tenant, changed through Graph as the admin app."""

    def __init__(self, client: httpx.Client, root_name: str) -> None:
        self.client = client
        resp = client.post("/root/children", json={"name": root_name, "folder": {}})
        resp.raise_for_status()
        self.root = str(resp.json()["id"])
        self.root_name = root_name
        #: live items under the root: id → (parent id, is folder)
        self.items: dict[str, tuple[str, bool]] = {}
        self.counter = itertools.count()

    def folders(self) -> list[str]:
        # Creation order, so the folders made early in an example (and synced since) get filled.
        return [self.root, *(i for i, (_, folder) in self.items.items() if folder)]

    def pick(self, index: int, *, files_only: bool = False, folders_only: bool = False) -> str | None:
        candidates = sorted(i for i, (_, folder) in self.items.items()
                            if (not files_only or not folder) and (not folders_only or folder))
        return candidates[index % len(candidates)] if candidates else None

    def unique_name(self, name: str) -> str:
        stem, dot, ext = name.partition(".")
        return f"{stem}-{next(self.counter)}{dot}{ext}"  # unique: no conflict decides the outcome

    def inside(self, item: str, folder: str) -> bool:
        while folder != self.root:
            if folder == item:
                return True
            folder = self.items[folder][0]
        return False

    def apply(self, op: Op) -> None:
        kind = op[0]
        if kind in {"mkdir", "put"}:
            parent = self.folders()[op[1] % len(self.folders())]
            name = self.unique_name(op[2])
            if kind == "mkdir":
                resp = self.client.post(f"/items/{parent}/children", json={
                    "name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"})
            else:
                resp = self.client.put(f"/items/{parent}:/{name}:/content", content=name.encode())
            resp.raise_for_status()
            self.items[str(resp.json()["id"])] = (parent, kind == "mkdir")
        elif kind == "overwrite":
            if (item := self.pick(op[1], files_only=True)) is not None:
                self.client.put(f"/items/{item}/content", content=op[2]).raise_for_status()
        elif kind == "rename":
            if (item := self.pick(op[1], folders_only=op[-1] == "folder")) is not None:
                self.client.patch(f"/items/{item}", json={"name": self.unique_name(op[2])}).raise_for_status()
        elif kind == "move":
            item = self.pick(op[1], folders_only=op[-1] == "folder")
            target = self.folders()[op[2] % len(self.folders())]
            if item is not None and target != self.items[item][0] and not self.inside(item, target):
                self.client.patch(f"/items/{item}", json={"parentReference": {"id": target}}).raise_for_status()
                self.items[item] = (target, self.items[item][1])
        elif kind == "delete" and (item := self.pick(op[1])) is not None:
            self.client.delete(f"/items/{item}").raise_for_status()
            gone = {item}
            while True:  # the subtree goes with it
                more = {i for i, (parent, _) in self.items.items() if parent in gone} - gone
                if not more:
                    break
                gone |= more
            for i in gone:
                del self.items[i]

    def listing(self) -> dict[str, str]:
        """id → drive-relative path of the root and everything under it, as the site has it now."""
        found = {self.root: f"/{self.root_name}"}
        pending = [(self.root, f"/{self.root_name}")]
        while pending:
            folder, path = pending.pop()
            url: str | None = f"/items/{folder}/children?$select=id,name,folder"
            while url:
                resp = self.client.get(url)
                resp.raise_for_status()
                page = resp.json()
                for child in page["value"]:
                    found[child["id"]] = f"{path}/{child['name']}"
                    if "folder" in child:
                        pending.append((child["id"], f"{path}/{child['name']}"))
                url = page.get("@odata.nextLink")
        return found


def stored(settings: Any, drive_id: str, root_name: str) -> dict[str, str]:
    prefix = f"/{root_name}"
    with Store.open(settings.store.url) as store:
        return {i.id: i.path for i in store.items(drive_id)
                if i.path == prefix or i.path.startswith(prefix + "/")}


def test_random_operations_synced_at_random_points_leave_the_store_equal_to_the_site(
        tenant_info: dict[str, Any], tokens: sdk.Tokens, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = settings_for(tenant_info, tmp_path_factory.mktemp("property-store"))
    drive_id = tenant_info["drive_id"]
    token = tokens.graph("admin")
    with httpx.Client(base_url=tenant_info["graph_url"] + f"/drives/{drive_id}", verify=tenant_info["ca_path"],
                      trust_env=False, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        asyncio.run(sync_once(settings))  # the baseline of the whole library, once

        def sync_and_compare(site: Site) -> None:
            asyncio.run(sync_once(settings, confirm_deletions=True))
            assert stored(settings, drive_id, site.root_name) == site.listing()

        @given(ops)
        @hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def run(sequence: list[Op]) -> None:
            site = Site(client, "p-" + uuid.uuid4().hex[:8])
            # A small synced tree to start from, so that renames, moves and deletions of folders
            # with contents (the hard cases) come up in a few examples, not only in rare ones.
            for op in SCAFFOLD:
                site.apply(op)
            sync_and_compare(site)
            for op in sequence:
                if op[0] == "sync":
                    sync_and_compare(site)
                else:
                    site.apply(op)
            sync_and_compare(site)

        run()


class OperationsBetweenPages:
    """A ``DeltaReader`` that makes site operations after chosen pages of the wrapped reader's
    listing, before the next page is fetched (never after the last page: those would fall after
    the deltaLink and belong to the next cycle)."""

    def __init__(self, inner: DeltaReader, site: Site, between: dict[int, list[Op]]) -> None:
        self.inner = inner
        self.site = site
        self.between = between
        self.applied = 0

    async def pages(self, start: str | None) -> AsyncIterator[DeltaPage]:
        index = 0
        async for page in self.inner.pages(start):
            if page.delta_link is None:
                for op in self.between.get(index, []):
                    self.site.apply(op)
                    self.applied += 1
            index += 1
            yield page


#: (where in the crawl, as a percentage of its pages; an operation)
between_pages = st.lists(st.tuples(st.integers(0, 99), ops.map(lambda seq: seq[0]).filter(lambda op: op[0] != "sync")),
                         min_size=1, max_size=6)


def test_operations_made_while_a_first_crawl_is_paging_are_all_in_the_store_at_its_deltalink(
        tenant_info: dict[str, Any], tokens: sdk.Tokens) -> None:
    from connectors.auth import Authenticator
    from connectors.graph import build_graph_client
    from connectors.graph_delta import GraphDeltaReader

    drive_id = tenant_info["drive_id"]
    token = tokens.graph("admin")
    with httpx.Client(base_url=tenant_info["graph_url"] + f"/drives/{drive_id}", verify=tenant_info["ca_path"],
                      trust_env=False, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:

        def library_size() -> int:
            listed, url = 0, "/root/delta"
            while url:
                page = client.get(url).json()
                listed += len(page["value"])
                url = page.get("@odata.nextLink")
            return listed

        # The shared library's size depends on the tests run before: pages of a twentieth of it
        # give the first listing about twenty pages in which to act, whatever that size.
        page_size = max(2, library_size() // 20)

        async def crawl(site: Site, between: dict[int, list[Op]], data_dir: Path) -> tuple[int, int]:
            settings = settings_for(tenant_info, data_dir, sync={"page_size": page_size})
            authenticator = Authenticator(settings)
            try:
                reader = OperationsBetweenPages(GraphDeltaReader(build_graph_client(settings, authenticator),
                                                                 drive_id, page_size=page_size), site, between)
                with Store.open(settings.store.url) as store:
                    result = await Syncer(store, reader, drive_id, own_app_id=settings.auth.client_id,
                                          confirm_deletions=True).run()
                assert result.mode == "initial"
                assert stored(settings, drive_id, site.root_name) == site.listing()
                again = await sync_once(settings, confirm_deletions=True)  # and the next cycle agrees
                assert again.mode == "incremental"
                assert stored(settings, drive_id, site.root_name) == site.listing()
                return result.pages, reader.applied
            finally:
                authenticator.close()

        applied_somewhere: list[int] = []

        @given(between_pages)
        @hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def run(chosen: list[tuple[int, Op]]) -> None:
            site = Site(client, "c-" + uuid.uuid4().hex[:8])
            for op in SCAFFOLD:
                site.apply(op)
            pages = -(-library_size() // page_size)
            between: dict[int, list[Op]] = {}
            for percent, op in chosen:  # never after the last page
                between.setdefault(min(percent * pages // 100, max(pages - 2, 0)), []).append(op)
            with tempfile.TemporaryDirectory() as data_dir:
                pages, applied = asyncio.run(crawl(site, between, Path(data_dir)))
            assert pages >= 2
            applied_somewhere.append(applied)

        run()
        assert sum(applied_somewhere) > 0, "no operation ever happened between two pages"
