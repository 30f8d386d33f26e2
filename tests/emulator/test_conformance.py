"""Our bodies against Microsoft's published examples: every key they show, with the same JSON type.

We test these aspects: for each published example of an endpoint the bot relies on, the local
tenant's answer for the same call carries all the example's keys (recursively) with the same JSON
types. Keys that describe a different kind of object than the one we ask for (a personal drive's
``driveType``, an Outlook subscription's resource) are named in ``ignore`` with the reason.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.examples import load_example, shape_mismatches


def check(ours: Any, example: str, *ignore: str) -> None:
    problems = shape_mismatches(ours, load_example(example), ignore=frozenset(ignore))
    assert not problems, f"{example}: " + "; ".join(problems)


@pytest.fixture
async def folder(graph_http: httpx.AsyncClient, tenant_info: dict[str, Any], unique: str) -> dict[str, Any]:
    r = await graph_http.post(f"/drives/{tenant_info['drive_id']}/root/children",
                              json={"name": unique, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"})
    assert r.status_code == 201
    body: dict[str, Any] = r.json()
    check(body, "driveitem-create-folder", "$.createdBy.user.id", "$.lastModifiedBy.user.id")
    return body


async def test_site_drive_and_root(graph_http: httpx.AsyncClient, tenant_info: dict[str, Any]) -> None:
    check((await graph_http.get("/sites/localhost:/sites/CARTIF")).json(), "site-getbypath")
    check((await graph_http.get(f"/sites/{tenant_info['site_id']}")).json(), "site-get")
    # The example is a personal OneDrive ("business"); a library's owner is the site's group.
    check((await graph_http.get(f"/drives/{tenant_info['drive_id']}")).json(), "drive-get", "$.owner.user")
    check((await graph_http.get(f"/sites/{tenant_info['site_id']}/drives")).json(), "drive-list",
          "$.value.owner.user")
    # SharePoint omits cTag on folders (graph-api.md §1), the root included.
    # The root was made by the System Account, which has no directory id.
    check((await graph_http.get(f"/drives/{tenant_info['drive_id']}/root")).json(), "driveitem-get-root", "$.cTag",
          "$.createdBy.user.id", "$.lastModifiedBy.user.id")


async def test_items_children_uploads_versions(graph_http: httpx.AsyncClient, tenant_info: dict[str, Any],
                                               folder: dict[str, Any]) -> None:
    base = f"/drives/{tenant_info['drive_id']}/items/{folder['id']}"
    new = await graph_http.put(base + ":/FileB.txt:/content", content=b"The contents of the file goes here.")
    assert new.status_code == 201
    check(new.json(), "driveitem-put-content-new")
    replaced = await graph_http.put(f"/drives/{tenant_info['drive_id']}/items/{new.json()['id']}/content",
                                    content=b"new")
    check(replaced.json(), "driveitem-put-content-replace")
    await graph_http.post(base + "/children", json={"name": "Documents", "folder": {}})
    check((await graph_http.get(base + "/children")).json(), "driveitem-list-children", "$.@odata.nextLink")
    versions = await graph_http.get(f"/drives/{tenant_info['drive_id']}/items/{new.json()['id']}/versions")
    # Written by an app: SharePoint shows the user "SharePoint App", which has no directory id.
    check(versions.json(), "driveitem-list-versions", "$.value.lastModifiedBy.user.id")
    session = await graph_http.post(base + ":/big.bin:/createUploadSession", json={})
    check(session.json(), "uploadsession-create")


async def test_delta_pages(graph_http: httpx.AsyncClient, tenant_info: dict[str, Any],
                           folder: dict[str, Any]) -> None:
    d = tenant_info["drive_id"]
    latest = (await graph_http.get(f"/drives/{d}/root/delta?token=latest")).json()
    check(latest, "driveitem-delta-latest")
    await graph_http.put(f"/drives/{d}/items/{folder['id']}:/kept.txt:/content", content=b"kept")
    gone = (await graph_http.put(f"/drives/{d}/items/{folder['id']}:/gone.txt:/content", content=b"x")).json()
    await graph_http.delete(f"/drives/{d}/items/{gone['id']}")
    sub = (await graph_http.post(f"/drives/{d}/items/{folder['id']}/children", json={"name": "f2", "folder": {}}))
    await graph_http.delete(f"/drives/{d}/items/{sub.json()['id']}")
    await graph_http.post(f"/drives/{d}/items/{folder['id']}/children", json={"name": "f3", "folder": {}})
    changes = (await graph_http.get(latest["@odata.deltaLink"])).json()
    # SharePoint (unlike the personal OneDrive of the example) omits a deleted item's name.
    check(changes, "driveitem-delta-last", "$.value.name")
    check(changes, "driveitem-delta-first", "$.@odata.nextLink", "$.value.name")
    first = (await graph_http.get(f"/drives/{d}/root/delta?$top=1")).json()
    assert "@odata.nextLink" in first


async def test_permissions_invite_and_links(graph_http: httpx.AsyncClient, tenant_info: dict[str, Any],
                                            folder: dict[str, Any]) -> None:
    base = f"/drives/{tenant_info['drive_id']}/items/{folder['id']}"
    invite = await graph_http.post(base + "/invite", json={
        "recipients": [{"email": "wei.zhang@mofcom.gov.cn"}], "roles": ["write"], "requireSignIn": True,
        "sendInvitation": False, "retainInheritedPermissions": True})
    assert invite.status_code == 200
    # No password (OneDrive personal only), no expiry and no invitation mail (sendInvitation false).
    check(invite.json(), "driveitem-invite", "$.value.hasPassword", "$.value.expirationDateTime",
          "$.value.invitation")
    link = await graph_http.post(base + "/createLink", json={"type": "edit", "scope": "organization"})
    check(link.json(), "driveitem-createlink-organization")
    listed = (await graph_http.get(base + "/permissions")).json()
    check(listed, "permission-list", "$.value.inheritedFrom", "$.value.link.application")
    one = listed["value"][0]
    check((await graph_http.get(base + f"/permissions/{one['id']}")).json(), "permission-get",
          "$.inheritedFrom", "$.link", "$.grantedTo", "$.hasPassword")


async def test_list_items_site_permissions_groups_and_errors(graph_http: httpx.AsyncClient,
                                                             tenant_info: dict[str, Any],
                                                             folder: dict[str, Any]) -> None:
    item = f"/drives/{tenant_info['drive_id']}/items/{folder['id']}/listItem"
    check((await graph_http.get(item + "?expand=fields")).json(), "listitem-get-expand-fields",
          "$.fields.Name", "$.fields.Color", "$.fields.Quantity")
    groups = (await graph_http.get("/groups")).json()["value"]
    members = (await graph_http.get(f"/groups/{groups[0]['id']}/members")).json()
    check(members, "group-list-members")
    clash = await graph_http.post(f"/drives/{tenant_info['drive_id']}/root/children",
                                  json={"name": folder["name"], "folder": {}})
    check(clash.json(), "error-invalidrange", "$.error.innerError.requestId")
