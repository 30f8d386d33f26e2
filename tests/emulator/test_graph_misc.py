"""Graph v1.0 permissions, sharing links, site grants, list items, ``$batch``, subscriptions and the
directory, through the real msgraph-sdk (and raw HTTP where the SDK can't say it).

We test these aspects:
- driveItem permissions: inherited listing (site groups, ``inheritedFrom``, no Limited Access),
  ``invite`` (break inheritance keeping or dropping inherited grants, 400 for owner and unknown
  guests), deleting a direct grant (204) and an inherited one (403 notAllowed), ``createLink``
  (201 then 200, ``embed`` refused, deleting the link permission removes the link);
- Sites.Selected grants: only Sites.FullControl.All creates them, and a grant opens the site;
- lists and list items: create a list with columns, items with fields, ``$top`` paging, fields
  PATCH (200 fieldValueSet, unknown field 400, stale If-Match 412), a file's ``listItem``;
- ``$batch``: limits, duplicate ids, ``dependsOn`` → 424, sub-requests throttled on their own
  (sub-status 429 with ``Retry-After``), and msgraph-core's ``BatchRequestContent``;
- subscriptions: the validation handshake, resource and expiry rules, renew and delete, and a
  change through Graph reaching the receiver as a detail-free notification;
- users and groups: paging, ``$filter``, ``$select``, members, and 403 without directory roles.
Bodies are compared by key subset with ``graph-examples/`` (README: shape, not equality).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.drives.item.items.item.create_link.create_link_post_request_body import (
    CreateLinkPostRequestBody,
)
from msgraph.generated.drives.item.items.item.invite.invite_post_request_body import InvitePostRequestBody
from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder
from msgraph.generated.models.drive_recipient import DriveRecipient
from msgraph.generated.models.field_value_set import FieldValueSet
from msgraph.generated.models.identity import Identity
from msgraph.generated.models.identity_set import IdentitySet
from msgraph.generated.models.permission import Permission
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests import sdk
from tests.examples import load_example

GUEST = "wei.zhang@mofcom.gov.cn"  # a seeded guest (CHN chief negotiator)
OTHER_GUEST = "li.na@mofcom.gov.cn"


def example(name: str) -> Any:
    return load_example(name)


def assert_keys(actual: dict[str, Any], expected: dict[str, Any], *, skip: tuple[str, ...] = ()) -> None:
    """Every key of the published example is present (recursively for objects)."""
    for key, value in expected.items():
        if key in skip:
            continue
        assert key in actual, f"missing {key!r} in {sorted(actual)}"
        if isinstance(value, dict) and isinstance(actual[key], dict):
            assert_keys(actual[key], value, skip=skip)


def make_folder(admin: httpx.Client, path: str) -> None:
    """Create ``path`` (and its parents) through the tenant's admin generator: no Graph drive calls."""
    r = admin.post("/seed", json={"generate": {"files": 0, "folders": 0, "depth": 1, "under": path}})
    assert r.status_code == 201, r.text


def item(graph: Any, tenant_info: dict[str, Any], path: str) -> Any:
    return graph.drives.by_drive_id(tenant_info["drive_id"]).items.by_drive_item_id(f"root:{path}:")


def site_group_names(perms: list[Permission]) -> set[str]:
    return {p.granted_to_v2.site_group.display_name for p in perms
            if p.granted_to_v2 and p.granted_to_v2.site_group}


def email_of(perm: Permission) -> str | None:
    """A user permission's email (the SDK's Identity model has no email property: it's additional data)."""
    user = perm.granted_to_v2.user if perm.granted_to_v2 else None
    return user.additional_data.get("email") if user else None


def invite_body(email: str, role: str, *, retain: bool = True) -> InvitePostRequestBody:
    # The SDK model defaults every flag to False and always sends them (anchors-permissions §1.4):
    # say all three on purpose.
    return InvitePostRequestBody(recipients=[DriveRecipient(email=email)], roles=[role], require_sign_in=True,
                                 send_invitation=False, retain_inherited_permissions=retain)


async def test_permissions_inherited_then_invite_and_delete(graph: Any, graph_http: httpx.AsyncClient,
                                                            admin: httpx.Client, tenant_info: dict[str, Any],
                                                            unique: str) -> None:
    make_folder(admin, f"/{unique}/Sub")
    folder = item(graph, tenant_info, f"/{unique}")

    inherited = (await folder.permissions.get()).value
    assert {"CARTIF Owners", "CARTIF Members", "CARTIF Visitors"} <= site_group_names(inherited)
    assert all(p.inherited_from is not None for p in inherited)
    groups = [p for p in inherited if p.granted_to_v2.site_group]
    roles = {p.granted_to_v2.site_group.display_name: p.roles for p in groups}
    assert roles["CARTIF Owners"] == ["owner"]
    assert roles["CARTIF Members"] == ["write"]
    assert roles["CARTIF Visitors"] == ["read"]

    granted = (await folder.invite.post(invite_body(GUEST, "write"))).value
    assert len(granted) == 1
    assert granted[0].roles == ["write"]
    assert email_of(granted[0]) == GUEST
    assert granted[0].granted_to_v2.site_user.login_name
    raw = (
        await graph_http.get(f"/drives/{tenant_info['drive_id']}/items/root:/{unique}:/permissions")
    ).json()
    mine = next(p for p in raw["value"] if p.get("grantedToV2", {}).get("user", {}).get("email") == GUEST)
    assert_keys(
        mine,
        example("driveitem-invite.json")["value"][0],
        skip=("hasPassword", "invitation", "expirationDateTime"),
    )
    assert all("inheritedFrom" not in p for p in raw["value"])  # the folder now has unique permissions
    assert {"CARTIF Owners", "CARTIF Members"} <= {
        p["grantedToV2"].get("siteGroup", {}).get("displayName") for p in raw["value"]
    }  # retained

    # The child still inherits: it shows the new grant, marked inherited from the folder; Limited
    # Access given to the guest on the site and library is never a Graph permission.
    child = (await item(graph, tenant_info, f"/{unique}/Sub").permissions.get()).value
    from_folder = next(p for p in child if email_of(p) == GUEST)
    assert from_folder.inherited_from.path.endswith(f"root:/{unique}")
    root_perms = (
        await graph.drives.by_drive_id(tenant_info["drive_id"])
        .items.by_drive_item_id("root")
        .permissions.get()
    ).value
    assert all(email_of(p) != GUEST for p in root_perms)

    with pytest.raises(APIError) as inherited_delete:
        await item(graph, tenant_info, f"/{unique}/Sub").permissions.by_permission_id(from_folder.id).delete()
    assert inherited_delete.value.response_status_code == 403
    assert inherited_delete.value.error.code == "notAllowed"

    one = await folder.permissions.by_permission_id(granted[0].id).get()
    assert one.id == granted[0].id
    assert one.roles == ["write"]
    await folder.permissions.by_permission_id(granted[0].id).delete()
    after = (await folder.permissions.get()).value
    assert all(p.id != granted[0].id for p in after)
    with pytest.raises(APIError) as gone:
        await folder.permissions.by_permission_id(granted[0].id).get()
    assert gone.value.response_status_code == 404


async def test_invite_without_retaining_and_refusals(
    graph: Any, admin: httpx.Client, tenant_info: dict[str, Any], unique: str
) -> None:
    make_folder(admin, f"/{unique}")
    folder = item(graph, tenant_info, f"/{unique}")
    await folder.invite.post(invite_body(OTHER_GUEST, "read", retain=False))
    perms = (await folder.permissions.get()).value
    # Breaking inheritance without copying leaves exactly the invited recipient.
    assert [(email_of(p), p.roles) for p in perms] == [(OTHER_GUEST, ["read"])]
    assert all(p.inherited_from is None for p in perms)

    for body, status in (
        (invite_body(GUEST, "owner"), 400),
        (invite_body("nobody@example.org", "read"), 400),
    ):
        with pytest.raises(APIError) as refused:
            await folder.invite.post(body)
        assert refused.value.response_status_code == status
        assert refused.value.error.code == "invalidRequest"
    with pytest.raises(APIError) as owner:
        await folder.invite.post(invite_body(GUEST, "owner"))
    assert "Invalid value for role" in owner.value.error.message


async def test_create_link_is_idempotent_and_deletable(
    graph: Any, graph_http: httpx.AsyncClient, admin: httpx.Client, tenant_info: dict[str, Any], unique: str
) -> None:
    make_folder(admin, f"/{unique}")
    url = f"/drives/{tenant_info['drive_id']}/items/root:/{unique}:/createLink"
    first = await graph_http.post(url, json={"type": "view", "scope": "organization"})
    assert first.status_code == 201
    again = await graph_http.post(url, json={"type": "view", "scope": "organization"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    body = first.json()
    assert_keys(body, example("driveitem-createlink-organization.json"))
    assert body["roles"] == ["read"]
    assert body["link"]["webUrl"].startswith("https://")
    assert body["link"]["application"]["displayName"] == "cartif-bot"
    embed = await graph_http.post(url, json={"type": "embed"})
    assert embed.status_code == 400

    folder = item(graph, tenant_info, f"/{unique}")
    edit = await folder.create_link.post(CreateLinkPostRequestBody(type="edit", scope="anonymous"))
    assert edit.link.type == "edit"
    assert edit.link.scope == "anonymous"
    assert edit.roles == ["write"]
    links = [p for p in (await folder.permissions.get()).value if p.link is not None]
    assert {p.id for p in links} == {body["id"], edit.id}
    await folder.permissions.by_permission_id(edit.id).delete()
    links = [p for p in (await folder.permissions.get()).value if p.link is not None]
    assert [p.id for p in links] == [body["id"]]
    recreated = await graph_http.post(url, json={"type": "edit", "scope": "anonymous"})
    assert recreated.status_code == 201
    assert recreated.json()["id"] != edit.id


async def test_site_permissions_need_full_control_all(
    graph: Any, tenant_info: dict[str, Any], tokens: sdk.Tokens
) -> None:
    site_id = tenant_info["site_id"]
    grants = (await graph.sites.by_site_id(site_id).permissions.get()).value
    bot = next(g for g in grants if g.granted_to_identities_v2[0].application.id == tenant_info["client_id"])
    assert bot.roles == ["fullcontrol"]

    unprivileged_id = tenant_info["unprivileged_client_id"]
    request = Permission(
        roles=["read"],
        granted_to_identities=[
            IdentitySet(application=Identity(id=unprivileged_id, display_name="cartif-unprivileged"))
        ],
    )
    with pytest.raises(APIError) as denied:
        await graph.sites.by_site_id(site_id).permissions.post(request)
    assert denied.value.response_status_code == 403

    async with (
        sdk.graph_http(tenant_info, tokens, "admin") as admin_graph,
        sdk.graph_http(tenant_info, tokens, "unprivileged") as unprivileged,
    ):
        assert (await unprivileged.get(f"/sites/{site_id}/lists")).status_code == 403
        created = await admin_graph.post(
            f"/sites/{site_id}/permissions",
            json={
                "roles": ["read"],
                "grantedToIdentities": [
                    {"application": {"id": unprivileged_id, "displayName": "cartif-unprivileged"}}
                ],
            },
        )
        assert created.status_code == 201, created.text
        assert_keys(created.json(), example("site-permission-create.json"))
        grant_id = created.json()["id"]
        try:
            assert (await unprivileged.get(f"/sites/{site_id}/lists")).status_code == 200
            path = f"/sites/{site_id}/permissions/{quote(grant_id, safe='')}"
            patched = await admin_graph.patch(path, json={"roles": ["write"]})
            assert patched.status_code == 200
            assert patched.json()["roles"] == ["write"]
            assert (await admin_graph.get(path)).json()["roles"] == ["write"]
        finally:
            assert (
                await admin_graph.delete(f"/sites/{site_id}/permissions/{quote(grant_id, safe='')}")
            ).status_code == 204
        assert (await unprivileged.get(f"/sites/{site_id}/lists")).status_code == 403


async def test_list_items_and_fields(
    graph: Any, graph_http: httpx.AsyncClient, admin: httpx.Client, tenant_info: dict[str, Any], unique: str
) -> None:
    site = tenant_info["site_id"]
    created = await graph_http.post(
        f"/sites/{site}/lists",
        json={
            "displayName": f"Tracker {unique}",
            "columns": [{"name": "Color", "text": {}}, {"name": "Quantity", "number": {}}],
            "list": {"template": "genericList"},
        },
    )
    assert created.status_code == 201, created.text
    list_id = created.json()["id"]
    items = graph.sites.by_site_id(site).lists.by_list_id(list_id).items
    for n in range(3):
        r = await graph_http.post(
            f"/sites/{site}/lists/{list_id}/items",
            json={"fields": {"Title": f"Widget {n}", "Color": "Blue", "Quantity": n}},
        )
        assert r.status_code == 201
        assert r.json()["fields"]["Color"] == "Blue"

    page = (
        await graph_http.get(f"/sites/{site}/lists/{list_id}/items", params={"expand": "fields", "$top": "2"})
    ).json()
    assert len(page["value"]) == 2
    assert "@odata.nextLink" in page
    rest = (await graph_http.get(page["@odata.nextLink"])).json()
    assert [i["fields"]["Title"] for i in rest["value"]] == ["Widget 2"]
    assert "@odata.nextLink" not in rest
    first_id = page["value"][0]["id"]
    one = (await graph_http.get(f"/sites/{site}/lists/{list_id}/items/{first_id}?$expand=fields")).json()
    assert_keys(one, example("listitem-get-expand-fields.json"), skip=("Name",))

    updated = await items.by_list_item_id(first_id).fields.patch(
        FieldValueSet(additional_data={"Color": "Fuchsia", "Quantity": 934})
    )
    assert updated.additional_data["Color"] == "Fuchsia"
    assert updated.additional_data["Quantity"] == 934
    unknown = await graph_http.patch(
        f"/sites/{site}/lists/{list_id}/items/{first_id}/fields", json={"Colour": "Red"}
    )
    assert unknown.status_code == 400
    assert "not recognized" in unknown.json()["error"]["message"]
    stale = await graph_http.patch(
        f"/sites/{site}/lists/{list_id}/items/{first_id}/fields",
        json={"Color": "Red"},
        headers={"If-Match": one["eTag"]},
    )
    assert stale.status_code == 412
    assert (await graph_http.delete(f"/sites/{site}/lists/{list_id}/items/{first_id}")).status_code == 204
    assert (await graph_http.get(f"/sites/{site}/lists/{list_id}/items/{first_id}")).status_code == 404

    # A library's list items are its files and folders; a folder's listItem carries FileLeafRef.
    make_folder(admin, f"/{unique}")
    base = f"/drives/{tenant_info['drive_id']}/items/root:/{unique}:/listItem"
    list_item = (await graph_http.get(base, params={"expand": "fields"})).json()
    assert list_item["fields"]["FileLeafRef"] == unique
    assert list_item["fields"]["ContentType"] == "Folder"
    changed = await graph_http.patch(base + "/fields", json={"Title": "Round 3"})
    assert changed.status_code == 200
    assert changed.json()["Title"] == "Round 3"
    via_list = (
        await graph_http.get(
            f"/sites/{site}/lists/Documents/items/{list_item['id']}",
            params={"expand": "fields(select=Title,FileLeafRef)"},
        )
    ).json()
    assert {k: v for k, v in via_list["fields"].items() if not k.startswith("@")} == {
        "Title": "Round 3",
        "FileLeafRef": unique,
    }
    stale = await graph_http.patch(
        base + "/fields", json={"Title": "x"}, headers={"If-Match": list_item["eTag"]}
    )
    assert stale.status_code == 412
    library_post = await graph_http.post(
        f"/sites/{site}/lists/Documents/items", json={"fields": {"Title": "x"}}
    )
    assert library_post.status_code == 400


async def test_batch(
    graph: Any, graph_http: httpx.AsyncClient, admin: httpx.Client, tenant_info: dict[str, Any]
) -> None:
    users = (await graph_http.get("/users", params={"$top": "3"})).json()["value"]
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{users[0]['id']}"},
            {"id": "2", "method": "GET", "url": "users/nobody@example.org"},
            {"id": "3", "method": "GET", "url": f"/users/{users[1]['id']}", "dependsOn": ["2"]},
            {
                "id": "4",
                "method": "PATCH",
                "url": "/sites/x/lists/y/items/1/fields",
                "body": {"a": 1},
                "headers": {"Content-Type": "application/json"},
            },
        ]
    }
    r = await graph_http.post("/$batch", json=batch)
    assert r.status_code == 200
    responses = {x["id"]: x for x in r.json()["responses"]}
    assert responses["1"]["status"] == 200
    assert responses["1"]["body"]["id"] == users[0]["id"]
    assert responses["2"]["status"] == 404
    assert responses["3"]["status"] == 424
    assert responses["4"]["status"] == 404
    assert_keys(r.json()["responses"][0], example("batch-response.json")["responses"][0], skip=("body",))

    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    assert (await graph_http.post("/$batch", json=too_many)).status_code == 400
    duplicate = {
        "requests": [
            {"id": "a", "method": "GET", "url": "/users"},
            {"id": "A", "method": "GET", "url": "/groups"},
        ]
    }
    assert (await graph_http.post("/$batch", json=duplicate)).status_code == 400
    no_type = {"requests": [{"id": "1", "method": "POST", "url": "/subscriptions", "body": {"a": 1}}]}
    assert (await graph_http.post("/$batch", json=no_type)).status_code == 400

    # msgraph-core builds absolute URLs (msgraph-sdk-python#1015); Graph wants them relative.
    from msgraph_core.requests.batch_request_content import BatchRequestContent
    from msgraph_core.requests.batch_request_item import BatchRequestItem

    info = graph.users.by_user_id(users[2]["id"]).to_get_request_information()
    step = BatchRequestItem(request_information=info, id="u")
    step.url = f"/users/{users[2]['id']}"
    content = BatchRequestContent({"u": step})
    result = await graph.batch.post(batch_request_content=content)
    assert result.get_response_by_id("u").status == 200

    # Sub-requests are charged and throttled one by one: the envelope stays 200.
    budget = admin.get("/throttle").json()["ru_per_minute"]
    admin.post("/throttle", json={"reset": True, "ru_per_minute": 6})
    try:
        twenty = {
            "requests": [
                {"id": str(i), "method": "GET", "url": f"/users/{users[0]['id']}"} for i in range(20)
            ]
        }
        r = await graph_http.post("/$batch", json=twenty)
        assert r.status_code == 200
        statuses = sorted(x["status"] for x in r.json()["responses"])
        assert statuses.count(200) == 6
        assert statuses.count(429) == 14
        throttled = next(x for x in r.json()["responses"] if x["status"] == 429)
        assert {k.lower() for k in throttled["headers"]} >= {"retry-after"}
    finally:
        admin.post("/throttle", json={"reset": True, "ru_per_minute": budget})


class Receiver:
    """A tiny webhook receiver on a free localhost port (plain http, which Graph allows us locally)."""

    def __init__(self) -> None:
        self.validations: list[str] = []
        self.notifications: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

        async def hook(request: Request) -> Response:
            token = request.query_params.get("validationToken")
            if token is not None:
                self.validations.append(token)
                return PlainTextResponse(token)
            self.notifications.extend((await request.json())["value"])
            self.arrived.set()
            return Response(status_code=202)

        async def wrong(request: Request) -> Response:
            return PlainTextResponse("not the token")

        self.app = Starlette(
            routes=[Route("/hook", hook, methods=["POST"]), Route("/wrong", wrong, methods=["POST"])]
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/hook"

    async def after(self, change: Callable[[], Awaitable[Any]], within: float, settle: float = 0.0
                    ) -> list[dict[str, Any]]:
        """The notifications that arrive after ``change``: waits for the first up to ``within``
        seconds, then ``settle`` seconds more for the rest of the batch."""
        self.notifications.clear()
        self.arrived.clear()
        await change()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), timeout=within)
        await asyncio.sleep(settle)
        return list(self.notifications)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    task = asyncio.create_task(rec.server.serve())
    while not rec.server.started:
        await asyncio.sleep(0.02)
    yield rec
    rec.server.should_exit = True
    await task


async def test_subscription_handshake_rules_and_notification(  # noqa: PLR0917 - fixtures
    graph: Any,
    graph_http: httpx.AsyncClient,
    admin: httpx.Client,
    receiver: Receiver,
    tenant_info: dict[str, Any],
    tokens: sdk.Tokens,
    unique: str,
) -> None:
    drive = tenant_info["drive_id"]
    make_folder(admin, f"/{unique}")
    soon = datetime.now(UTC) + timedelta(minutes=10)
    created = await graph.subscriptions.post(
        Subscription(
            change_type="updated",
            notification_url=receiver.url,
            resource=f"/drives/{drive}/root",
            expiration_date_time=soon,
            client_state=unique,
        )
    )
    assert receiver.validations
    assert receiver.validations[0].startswith("Validation: ")
    assert created.client_state == unique
    assert created.expiration_date_time >= soon + timedelta(minutes=34)  # raised to 45 minutes
    raw = (await graph_http.get(f"/subscriptions/{created.id}")).json()
    assert_keys(raw, example("subscription-create.json"))

    base = {
        "changeType": "updated",
        "notificationUrl": receiver.url,
        "resource": f"drives/{drive}/root",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    for change, status in (
        ({"resource": f"/drives/{drive}/root:/{unique}:"}, 400),
        ({"changeType": "created"}, 400),
        ({"expirationDateTime": (datetime.now(UTC) + timedelta(days=30)).isoformat()}, 400),
        ({"clientState": "x" * 129}, 400),
    ):
        r = await graph_http.post("/subscriptions", json=base | change)
        assert r.status_code == status, (change, r.text)
    wrong = await graph_http.post(
        "/subscriptions", json=base | {"notificationUrl": receiver.url[:-4] + "wrong"}
    )
    assert "Subscription validation request failed" in wrong.json()["error"]["message"]

    # Another app does not see the subscription.
    async with sdk.graph_http(tenant_info, tokens, "unprivileged") as other:
        assert (await other.get(f"/subscriptions/{created.id}")).status_code == 404

    # A change made through Graph arrives, coalesced and without detail, within a few seconds.
    changed = await graph_http.patch(
        f"/drives/{drive}/items/root:/{unique}:/listItem/fields", json={"Title": "changed"}
    )
    assert changed.status_code == 200
    await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
    note = next(n for n in receiver.notifications if n["subscriptionId"] == created.id)
    assert note["clientState"] == unique
    assert note["changeType"] == "updated"
    assert note["tenantId"] == tenant_info["tenant_id"]
    assert note["resourceData"] is None
    assert_keys(note, example("change-notification-message.json")["value"][0], skip=("id",))

    later = datetime.now(UTC) + timedelta(days=2)
    renewed = await graph.subscriptions.by_subscription_id(created.id).patch(
        Subscription(expiration_date_time=later)
    )
    assert abs((renewed.expiration_date_time - later).total_seconds()) < 1
    listed = (await graph.subscriptions.get()).value
    assert created.id in {s.id for s in listed}
    await graph.subscriptions.by_subscription_id(created.id).delete()
    with pytest.raises(APIError) as gone:
        await graph.subscriptions.by_subscription_id(created.id).get()
    assert gone.value.response_status_code == 404


async def test_a_reauthorization_pauses_notifications_until_the_app_answers(  # noqa: PLR0917 - fixtures
        graph: Any, graph_http: httpx.AsyncClient, admin: httpx.Client, receiver: Receiver,
        tenant_info: dict[str, Any], unique: str) -> None:
    drive = tenant_info["drive_id"]
    make_folder(admin, f"/{unique}")
    # The receiver runs in this event loop: the tenant's lifecycle POST needs the loop free.
    tenant_admin = httpx.AsyncClient(base_url=tenant_info["admin_url"], verify=tenant_info["ca_path"],
                                     trust_env=False, timeout=30)
    created = await graph.subscriptions.post(Subscription(
        change_type="updated", notification_url=receiver.url, lifecycle_notification_url=receiver.url,
        resource=f"/drives/{drive}/root", expiration_date_time=datetime.now(UTC) + timedelta(hours=2),
        client_state=unique))
    assert len(receiver.validations) == 2  # both URLs are validated, even when equal

    async def change_arrives(title: str, within: float) -> bool:
        async def change() -> None:
            (await graph_http.patch(f"/drives/{drive}/items/root:/{unique}:/listItem/fields",
                                    json={"Title": title})).raise_for_status()
        notes = await receiver.after(change, within)
        return any(n["subscriptionId"] == created.id and "changeType" in n for n in notes)

    challenged = (await tenant_admin.post(f"/subscriptions/{created.id}/reauthorize")).json()
    assert challenged["delivered"] and challenged["paused"]
    lifecycle = next(n for n in receiver.notifications if n.get("lifecycleEvent"))
    assert lifecycle["lifecycleEvent"] == "reauthorizationRequired" and lifecycle["clientState"] == unique
    assert_keys(lifecycle, example("lifecycle-notification-generic.json")["value"][0])
    assert [s["paused"] for s in admin.get("/subscriptions").json()["value"] if s["id"] == created.id] == [True]
    assert not await change_arrives("while paused", within=2.5)  # the flow is paused, nothing queued

    await graph.subscriptions.by_subscription_id(created.id).reauthorize.post()  # 204
    assert await change_arrives("after reauthorize", within=5)

    (await tenant_admin.post(f"/subscriptions/{created.id}/reauthorize")).raise_for_status()
    # A PATCH with a new expiration renews and reauthorizes in one request (lifecycle-events doc).
    await graph.subscriptions.by_subscription_id(created.id).patch(
        Subscription(expiration_date_time=datetime.now(UTC) + timedelta(hours=3)))
    assert await change_arrives("after renewal", within=5)
    await graph.subscriptions.by_subscription_id(created.id).delete()
    assert (await tenant_admin.post(f"/subscriptions/{created.id}/reauthorize")).status_code == 404
    await tenant_admin.aclose()


async def test_permission_changes_are_notified_only_with_includesecuritywebhooks(
        graph_http: httpx.AsyncClient, admin: httpx.Client, receiver: Receiver,
        tenant_info: dict[str, Any], unique: str) -> None:
    drive = tenant_info["drive_id"]
    make_folder(admin, f"/{unique}")
    base = {"changeType": "updated", "notificationUrl": receiver.url, "resource": f"/drives/{drive}/root",
            "expirationDateTime": (datetime.now(UTC) + timedelta(hours=2)).isoformat(), "clientState": unique}
    plain = (await graph_http.post("/subscriptions", json=base)).json()["id"]
    secured = (await graph_http.post("/subscriptions", json=base,
                                     headers={"Prefer": "includesecuritywebhooks"})).json()["id"]

    async def notified_after(change: Callable[[], Awaitable[Any]]) -> set[str]:
        await asyncio.sleep(1.5)  # earlier changes have landed
        return {n["subscriptionId"] for n in await receiver.after(change, 4, settle=0.5)} & {plain, secured}

    async def share() -> None:
        (await graph_http.post(f"/drives/{drive}/items/root:/{unique}:/createLink",
                               json={"type": "view", "scope": "organization"})).raise_for_status()

    async def write() -> None:
        (await graph_http.put(f"/drives/{drive}/root:/{unique}/a.txt:/content", content=b"a")).raise_for_status()

    try:
        assert await notified_after(share) == {secured}  # a sharing link: a permission change only
        assert await notified_after(write) == {plain, secured}
    finally:
        for sub in (plain, secured):
            await graph_http.delete(f"/subscriptions/{sub}")


async def test_users_and_groups(
    graph: Any, graph_http: httpx.AsyncClient, tenant_info: dict[str, Any], tokens: sdk.Tokens
) -> None:
    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            top=10, select=["id", "displayName", "mail"]
        )
    )
    first = await graph.users.get(request_configuration=config)
    assert len(first.value) == 10
    assert first.odata_next_link
    second = await graph.users.with_url(first.odata_next_link).get()
    assert not {u.id for u in first.value} & {u.id for u in second.value}
    assert first.value[0].user_principal_name is None  # not selected

    found = (await graph_http.get("/users", params={"$filter": f"mail eq '{GUEST}'"})).json()["value"]
    assert [u["mail"] for u in found] == [GUEST]
    by_upn = await graph.users.by_user_id(found[0]["userPrincipalName"]).get()
    assert by_upn.id == found[0]["id"]
    assert by_upn.user_principal_name.endswith("#EXT#@cartif.onmicrosoft.com")
    missing = await graph_http.get("/users/nobody@example.org")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"

    groups = (
        await graph_http.get("/groups", params={"$filter": "displayName eq 'CARTIF Delegation CHN'"})
    ).json()["value"]
    assert len(groups) == 1
    members = await graph.groups.by_group_id(groups[0]["id"]).members.get()
    assert len(members.value) == 4
    assert all(isinstance(m, User) for m in members.value)
    assert GUEST in {m.mail for m in members.value}
    raw = (await graph_http.get(f"/groups/{groups[0]['id']}/members")).json()
    assert_keys(raw, example("group-list-members.json"))
    counting = RequestConfiguration(
        query_parameters=MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(
            count=True, select=["displayName", "id"]
        )
    )
    counting.headers.add("ConsistencyLevel", "eventual")
    counted = await graph.groups.by_group_id(groups[0]["id"]).members.get(request_configuration=counting)
    assert counted.odata_count == 4

    async with sdk.graph_http(tenant_info, tokens, "unprivileged") as unprivileged:
        denied = await unprivileged.get("/users")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
