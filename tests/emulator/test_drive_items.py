"""Graph drives on the local tenant, through the real msgraph-sdk where it has builders.

We test these aspects:
- sites by path and id, drives, items by id and by (percent-encoded) path, with bodies carrying
  the keys of Microsoft's published examples;
- folders with conflict behaviour, children paging with ``@odata.nextLink``, If-None-Match;
- simple uploads, versions (list, content, restore), downloads through the redirect;
- file hashes: ``quickXorHash`` only, Microsoft's vector, in items and in the delta feed;
- upload sessions: fragments, 320 KiB rule, overlap, status, cancel, name conflict at commit;
- rename and move with descendants following, If-Match, delete;
- delta: full enumeration in pages, incremental changes with latest-state semantics and
  tombstones, ``token=latest``, timestamps, 410 with a Location after token expiry, forged tokens;
  a folder moved shallower in the middle of a full enumeration loses none of its files.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.folder import Folder
from msgraph.generated.models.item_reference import ItemReference

from tests.examples import load_example

example = load_example


def keys_of(obj: dict[str, Any]) -> set[str]:
    return {k for k in obj if not k.startswith("@odata")}


@pytest.fixture
def drive(graph: Any, tenant_info: dict[str, Any]) -> Any:
    return graph.drives.by_drive_id(tenant_info["drive_id"])


async def make_folder(drive: Any, name: str, parent: str = "root") -> DriveItem:
    created = await drive.items.by_drive_item_id(parent).children.post(DriveItem(name=name, folder=Folder()))
    assert created is not None
    return created


async def test_site_by_path_and_id_and_its_drives(graph: Any, tenant_info: dict[str, Any],
                                                 graph_http: httpx.AsyncClient) -> None:
    by_path = await graph.sites.by_site_id("localhost:/sites/CARTIF:").get()
    assert by_path.id == tenant_info["site_id"]
    by_id = await graph.sites.by_site_id(tenant_info["site_id"]).get()
    assert by_id.display_name == "CARTIF"
    raw = (await graph_http.get(f"/sites/{tenant_info['site_id']}")).json()
    assert keys_of(example("site-getbypath")) <= keys_of(raw)
    drives = await graph.sites.by_site_id(tenant_info["site_id"]).drives.get()
    assert [d.id for d in drives.value] == [tenant_info["drive_id"]]
    drive_raw = (await graph_http.get(f"/drives/{tenant_info['drive_id']}")).json()
    assert keys_of(example("drive-get")) - {"driveType"} <= keys_of(drive_raw)
    assert drive_raw["driveType"] == "documentLibrary"
    missing = await graph_http.get("/sites/localhost:/sites/NoSuchSite")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "itemNotFound"


async def test_folders_conflicts_children_paging_and_if_none_match(drive: Any, unique: str,
                                                                  graph_http: httpx.AsyncClient,
                                                                  tenant_info: dict[str, Any]) -> None:
    folder = await make_folder(drive, unique)
    with pytest.raises(APIError) as clash:
        await make_folder(drive, unique)
    assert clash.value.response_status_code == 409
    renamed = await drive.items.by_drive_item_id("root").children.post(DriveItem(
        name=unique, folder=Folder(), additional_data={"@microsoft.graph.conflictBehavior": "rename"}))
    assert renamed.name == f"{unique} 1"

    for name in ("c", "a", "e", "b", "d"):
        await make_folder(drive, name, folder.id)
    children = drive.items.by_drive_item_id(folder.id).children
    config = RequestConfiguration(query_parameters=children.ChildrenRequestBuilderGetQueryParameters(top=2))
    page = await children.get(request_configuration=config)
    names, pages = [], 0
    while page is not None:
        pages += 1
        names += [i.name for i in page.value]
        page = await children.with_url(page.odata_next_link).get() if page.odata_next_link else None
    assert names == ["a", "b", "c", "d", "e"] and pages == 3

    raw = (await graph_http.get(f"/drives/{tenant_info['drive_id']}/items/{folder.id}/children")).json()
    assert keys_of(example("driveitem-list-children")["value"][0]) - {"file", "cTag"} <= keys_of(raw["value"][0])
    url = f"/drives/{tenant_info['drive_id']}/items/{folder.id}"
    etag = (await graph_http.get(url)).json()["eTag"]
    assert (await graph_http.get(url, headers={"If-None-Match": etag})).status_code == 304


async def test_uploads_versions_download_and_restore(drive: Any, unique: str, graph_http: httpx.AsyncClient,
                                                     tenant_info: dict[str, Any]) -> None:
    path = f"root:/{unique}/draft/zero-draft.txt:"
    created = await drive.items.by_drive_item_id(path).content.put(b"Article 1 [text]")
    assert created.name == "zero-draft.txt" and created.size == 16
    assert created.parent_reference.path.endswith(f"/{unique}/draft")  # missing folders were created
    await drive.items.by_drive_item_id(created.id).content.put(b"Article 1 text")
    versions = await drive.items.by_drive_item_id(created.id).versions.get()
    assert [v.id for v in versions.value] == ["2.0", "1.0"]
    raw = (await graph_http.get(f"/drives/{tenant_info['drive_id']}/items/{created.id}/versions")).json()
    assert keys_of(example("driveitem-list-versions")["value"][0]) <= keys_of(raw["value"][0])

    assert await drive.items.by_drive_item_id(created.id).content.get() == b"Article 1 text"
    old = await graph_http.get(f"/drives/{tenant_info['drive_id']}/items/{created.id}/versions/1.0/content",
                               follow_redirects=True)
    assert old.content == b"Article 1 [text]"
    await drive.items.by_drive_item_id(created.id).versions.by_drive_item_version_id("1.0").restore_version.post()
    assert await drive.items.by_drive_item_id(created.id).content.get() == b"Article 1 [text]"
    versions = await drive.items.by_drive_item_id(created.id).versions.get()
    assert [v.id for v in versions.value] == ["3.0", "2.0", "1.0"]

    folder = await drive.items.by_drive_item_id(f"root:/{unique}:").get()
    with pytest.raises(APIError) as on_folder:
        await drive.items.by_drive_item_id(folder.id).content.put(b"x")
    assert on_folder.value.response_status_code == 400


async def test_files_carry_quick_xor_hash_only_as_sharepoint_serves(
        drive: Any, unique: str, graph_http: httpx.AsyncClient, tenant_info: dict[str, Any]) -> None:
    created = await drive.items.by_drive_item_id(f"root:/{unique}/hash/hello.txt:").content.put(b"hello world")
    # The vector of the quickxorhash C library; sha256Hash "isn't supported" (Graph hashes resource).
    assert created.file.hashes.quick_xor_hash == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    assert created.file.hashes.sha256_hash is None and created.file.hashes.sha1_hash is None
    edited = await drive.items.by_drive_item_id(created.id).content.put(b"HELLO WORLD")
    assert edited.file.hashes.quick_xor_hash not in (None, "aCgDG9jwBhDc4Q1yawMZAAAAAAA=")
    listed = (await graph_http.get(f"/drives/{tenant_info['drive_id']}/root/delta")).json()
    while "@odata.nextLink" in listed:
        if any(i["id"] == created.id for i in listed["value"]):
            break
        listed = (await graph_http.get(listed["@odata.nextLink"])).json()
    in_feed = next(i for i in listed["value"] if i["id"] == created.id)
    assert in_feed["file"]["hashes"] == {"quickXorHash": edited.file.hashes.quick_xor_hash}


async def test_upload_session_fragments_and_rules(graph_http: httpx.AsyncClient, tenant_info: dict[str, Any],
                                                  unique: str) -> None:
    base = f"/drives/{tenant_info['drive_id']}/items/root:/{unique}/big.bin:"
    session = (await graph_http.post(base + "/createUploadSession", json={})).json()
    upload = session["uploadUrl"]
    assert keys_of(example("uploadsession-create")) <= keys_of(session)
    data = bytes(range(256)) * 2000  # 512,000 bytes
    unit = 320 * 1024
    async with httpx.AsyncClient(verify=tenant_info["ca_path"], trust_env=False) as anonymous:
        bad = await anonymous.put(upload, content=data[:1000], headers={"Content-Range": f"bytes 0-999/{len(data)}"})
        assert bad.status_code == 400  # not a multiple of 320 KiB and not the last fragment
        first = await anonymous.put(upload, content=data[:unit],
                                    headers={"Content-Range": f"bytes 0-{unit - 1}/{len(data)}"})
        assert first.status_code == 202 and first.json()["nextExpectedRanges"] == [f"{unit}-"]
        overlap = await anonymous.put(upload, content=data[:unit],
                                      headers={"Content-Range": f"bytes 0-{unit - 1}/{len(data)}"})
        assert overlap.status_code == 416
        status = (await anonymous.get(upload)).json()
        assert status["nextExpectedRanges"] == [f"{unit}-"]
        last = await anonymous.put(upload, content=data[unit:],
                                   headers={"Content-Range": f"bytes {unit}-{len(data) - 1}/{len(data)}"})
        assert last.status_code == 201 and last.json()["size"] == len(data)
        content = await graph_http.get(base + "/content", follow_redirects=True)
        assert content.content == data

        again = (await graph_http.post(base + "/createUploadSession",
                                       json={"item": {"@microsoft.graph.conflictBehavior": "fail"}}))
        assert again.status_code == 409
        other = (await graph_http.post(f"/drives/{tenant_info['drive_id']}/items/root:/{unique}/tmp.bin:"
                                       "/createUploadSession", json={})).json()["uploadUrl"]
        assert (await anonymous.delete(other)).status_code == 204
        assert (await anonymous.get(other)).status_code == 404


async def test_rename_move_if_match_and_delete(drive: Any, unique: str, graph_http: httpx.AsyncClient,
                                               tenant_info: dict[str, Any]) -> None:
    top = await make_folder(drive, unique)
    wg = await make_folder(drive, "WG-TF", top.id)
    await drive.items.by_drive_item_id(f"root:/{unique}/WG-TF/KAZ/note.txt:").content.put(b"n")
    archive = await make_folder(drive, "Archive", top.id)
    moved = await drive.items.by_drive_item_id(wg.id).patch(DriveItem(
        name="WG-TF (closed)", parent_reference=ItemReference(id=archive.id)))
    assert moved.name == "WG-TF (closed)"
    note = await drive.items.by_drive_item_id(f"root:/{unique}/Archive/WG-TF (closed)/KAZ/note.txt:").get()
    assert note.name == "note.txt"

    url = f"/drives/{tenant_info['drive_id']}/items/{note.id}"
    stale = await graph_http.patch(url, json={"name": "x.txt"}, headers={"If-Match": '"{0000},1"'})
    assert stale.status_code == 412
    assert (await graph_http.delete(url)).status_code == 204
    gone = await graph_http.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "itemNotFound"


async def _delta_all(graph_http: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], str, int]:
    items, pages = [], 0
    while True:
        r = await graph_http.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items += body["value"]
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
            continue
        return items, body["@odata.deltaLink"], pages


async def test_delta_full_then_incremental_with_latest_state_and_tombstones(
        drive: Any, unique: str, graph_http: httpx.AsyncClient, tenant_info: dict[str, Any]) -> None:
    d = tenant_info["drive_id"]
    top = await make_folder(drive, unique)
    for i in range(4):
        await drive.items.by_drive_item_id(f"root:/{unique}/f{i}.txt:").content.put(b"x")
    items, link, pages = await _delta_all(graph_http, f"/drives/{d}/root/delta?$top=3")
    assert pages >= 2
    ids = [i["id"] for i in items]
    assert top.id in ids
    assert ids.index(top.id) < min(ids.index(i["id"]) for i in items if i.get("name", "").startswith("f")
                                   and i["parentReference"].get("id") == top.id)
    assert all("path" not in i["parentReference"] for i in items if not i.get("root"))

    await drive.items.by_drive_item_id(f"root:/{unique}/f0.txt:").content.put(b"changed")
    await drive.items.by_drive_item_id(f"root:/{unique}/f0.txt:").content.put(b"changed twice")
    f1 = await drive.items.by_drive_item_id(f"root:/{unique}/f1.txt:").get()
    await drive.items.by_drive_item_id(f1.id).delete()
    changed, link2, _ = await _delta_all(graph_http, link)
    by_id = {i["id"]: i for i in changed}
    assert len(changed) == 2, changed  # the file changed twice appears once, at its latest state
    assert by_id[f1.id]["deleted"] == {"state": "deleted"} and "name" not in by_id[f1.id]
    assert next(i for i in changed if i["id"] != f1.id)["size"] == len(b"changed twice")
    nothing, _, _ = await _delta_all(graph_http, link2)
    assert nothing == []


async def test_a_folder_moved_during_a_full_enumeration_loses_none_of_its_files(
        drive: Any, unique: str, graph_http: httpx.AsyncClient, tenant_info: dict[str, Any]) -> None:
    # The enumeration lists parents first; a folder moved shallower between two pages takes its
    # unchanged files to a depth the listing has already passed. Microsoft's feed still delivers
    # every item once the deltaLink arrives: nothing may be lost, repeats are allowed.
    d = tenant_info["drive_id"]
    c = await make_folder(drive, "c", (await make_folder(drive, "b", (await make_folder(
        drive, "a", (await make_folder(drive, unique)).id)).id)).id)
    deep = await make_folder(drive, "deep", c.id)
    for i in range(30):  # more than a page of depth-5 items: a page boundary between c and the files
        await drive.items.by_drive_item_id(f"{c.id}:/filler{i}.txt:").content.put(b"f")
    files = [(await drive.items.by_drive_item_id(f"{deep.id}:/x{i}.txt:").content.put(b"x")).id for i in range(5)]
    seen: set[str] = set()
    url, moved, link = f"/drives/{d}/root/delta?$top=25", False, None
    while link is None:
        body = (await graph_http.get(url)).json()
        seen |= {i["id"] for i in body["value"]}
        if not moved and c.id in seen:
            moved = True  # the listing is past depth 4; the files are about to be at depth 2
            root_id = (await graph_http.get(f"/drives/{d}/root")).json()["id"]
            resp = await graph_http.patch(f"/drives/{d}/items/{deep.id}",
                                          json={"parentReference": {"id": root_id}, "name": f"deep-{unique}"})
            assert resp.status_code == 200, resp.text
        url, link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
    assert moved
    assert set(files) | {deep.id} <= seen


async def test_delta_sdk_paging_by_hand_token_latest_and_timestamps(
        drive: Any, unique: str, graph_http: httpx.AsyncClient, tenant_info: dict[str, Any]) -> None:
    latest = await graph_http.get(f"/drives/{tenant_info['drive_id']}/root/delta?token=latest")
    body = latest.json()
    assert body["value"] == [] and "@odata.deltaLink" in body
    assert keys_of(example("driveitem-delta-latest")) <= keys_of(body) | {"value"}
    before = (await graph_http.get(f"/drives/{tenant_info['drive_id']}/root")).json()  # a request to mark time
    del before
    await make_folder(drive, unique)
    page = await drive.items.by_drive_item_id("root").delta.with_url(body["@odata.deltaLink"]).get()
    assert [i.name for i in page.value] == [unique]
    assert page.odata_delta_link  # msgraph's PageIterator would lose it; paging by hand keeps it


async def test_delta_410_after_expiry_with_location_and_forged_tokens(
        graph_http: httpx.AsyncClient, admin: httpx.Client, tenant_info: dict[str, Any]) -> None:
    d = tenant_info["drive_id"]
    link = (await graph_http.get(f"/drives/{d}/root/delta?token=latest")).json()["@odata.deltaLink"]
    assert admin.post("/faults", json={"kind": "delta_expiry", "count": 1,
                                        "route": "graph.delta"}).status_code == 201
    try:
        gone = await graph_http.get(link)
    finally:
        admin.delete("/faults")
    # The expiry fault fires on the request it matches, which then already sees the new generation.
    assert gone.status_code == 410, gone.text
    error = gone.json()["error"]
    assert error["code"] == "resyncRequired"
    assert error["innerError"]["code"] == "resyncChangesApplyDifferences"
    restart = await graph_http.get(gone.headers["location"])
    assert restart.status_code == 200
    forged = await graph_http.get(f"/drives/{d}/root/delta?token=abc.def")
    assert forged.status_code == 400
