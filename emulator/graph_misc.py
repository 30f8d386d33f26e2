"""Graph v1.0 beyond files: permissions, sharing links, Sites.Selected grants, list items, ``$batch``,
subscriptions and change notifications, users and groups.

Where it sits: one surface module of the local tenant (``emulator.app`` registers it next to
``graph_drive``). It reads and writes the same ``State`` as SharePoint REST, so a role assignment
added through ``/_api/web/…/roleassignments`` is a permission here and an ``invite`` here is a role
assignment there. Spec: graph-api.md §2.10–2.13, §2.15, §2.16, §2.18–2.20 and the §5 checklist;
bodies follow ``graph-examples/``.

Change notifications are pushed by ``notify_drive_change(tenant, drive_id)``, which
``Tenant.dispatch`` calls for every drive a request changed (whatever the surface): changes are
coalesced per subscription for ``config.notification_delay`` and POSTed to the receiver, with
bounded retries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import re
import ssl
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import httpx

from emulator.app import require_site
from emulator.http import Ctx, Headers, HttpError, Req, Resp, Router, empty, json_resp
from emulator.state import (
    CONTRIBUTE,
    DESIGN,
    EDIT,
    FULL_CONTROL,
    LIMITED_ACCESS,
    READ,
    VIEW_ONLY,
    Drive,
    Item,
    ListRecord,
    Principal,
    SharingLink,
    Site,
    State,
    Subscription,
    iso,
    new_guid,
    parse_iso,
    utcnow,
)

if TYPE_CHECKING:
    from emulator.app import Tenant

log = logging.getLogger("emulator.graph_misc")

_V = r"/v1\.0"
_SITE = _V + r"/sites/(?P<site>[^/]+)"
_DRIVE = _V + r"/(?:drives/(?P<drive>[^/]+)|sites/(?P<dsite>[^/]+)/drive)"
# msgraph-sdk addresses by path as items/root:/A/B: (percent-encoded, decoded by the tenant);
# Graph also takes root:/A/B: and root alone (graph-api.md §1 "Drive addressing").
_ITEM = _DRIVE + r"/(?:items/(?P<item>[^/:]+)|(?:items/)?root:(?P<path>/[^:]*):|(?P<root>root))"

GRAPH_CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;" \
                     "charset=utf-8"


# ====================================================================== shared helpers
def _odata_context(ctx: Ctx, fragment: str) -> str:
    return f"{ctx.req.base_url}/v1.0/$metadata#{fragment}"


def _site(ctx: Ctx, key: str) -> Site:
    """A site by its Graph id ``host,siteGuid,webGuid`` (or the site collection GUID alone)."""
    st: State = ctx.state
    site = st.site(key)
    if site is None and "," in key:
        parts = key.split(",")
        site = st.site_by_guid(parts[1]) if len(parts) >= 2 else None
    if site is None and re.fullmatch(r"[0-9a-fA-F-]{36}", key):
        site = st.site_by_guid(key)
    if site is None:
        raise HttpError(404, "itemNotFound", "Requested site could not be found")
    return site


def _drive_of(ctx: Ctx) -> tuple[Site, Drive]:
    st: State = ctx.state
    if "dsite" in ctx.params:
        site = _site(ctx, ctx.params["dsite"])
        drives = st.drives(site.id)
        if not drives:
            raise HttpError(404, "itemNotFound", "The site has no default document library.")
        return site, drives[0]
    drive = st.drive(ctx.params["drive"])
    if drive is None:
        raise HttpError(404, "itemNotFound", "The requested drive was not found.")
    owner = st.site(drive.site_id)
    assert owner is not None
    return owner, drive


def resolve_item(ctx: Ctx, need: str = "read") -> tuple[Site, Drive, Item]:
    """The site, drive and driveItem a ``_ITEM`` route names, after authorizing ``need`` on the site."""
    site, drive = _drive_of(ctx)
    require_site(ctx, site.id, need)
    st: State = ctx.state
    item: Item | None
    if "root" in ctx.params or ctx.params.get("item", "").lower() == "root":
        item = st.root(drive.id)
    elif "path" in ctx.params:
        item = st.item_by_path(drive.id, ctx.params["path"])
    else:
        item = st.item(drive.id, ctx.params["item"])
    if item is None:
        raise HttpError(404, "itemNotFound", "The resource could not be found.")
    return site, drive, item


def _scope_of(drive: Drive, item: Item) -> str:
    """The securable behind a driveItem: a library's root folder *is* the library (list) in SharePoint."""
    return f"list:{drive.list_id}" if item.is_root else item.scope_key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _site_web_url(ctx: Ctx, site: Site) -> str:
    return ctx.req.base_url + quote(site.server_relative_url)


def _library_url(ctx: Ctx, site: Site, drive: Drive) -> str:
    lst = ctx.state.get_list(site.id, drive.list_id)
    return _site_web_url(ctx, site) + "/" + quote(lst.url_name if lst else drive.name)


def _item_web_url(ctx: Ctx, site: Site, drive: Drive, item: Item) -> str:
    return _library_url(ctx, site, drive) + quote(item.path)


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise HttpError(400, "invalidRequest", f"The value of '{key}' must be a Boolean.")
    return value


def _body_object(ctx: Ctx) -> dict[str, Any]:
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "invalidRequest", "The request body must be a JSON object.")
    return body


def _select(obj: dict[str, Any], select: str | None, keep: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """Apply ``$select`` (annotations and ``keep`` stay, as Graph keeps ``id``)."""
    if not select:
        return obj
    wanted = {s.strip().lower() for s in select.split(",") if s.strip()} | {k.lower() for k in keep}
    return {k: v for k, v in obj.items() if k.startswith("@") or k.lower() in wanted}


# ====================================================================== driveItem permissions
_ROLE_OF_DEFINITION = {FULL_CONTROL: "owner", DESIGN: "write", EDIT: "write", CONTRIBUTE: "write",
                       READ: "read", VIEW_ONLY: "read"}
_MANAGE_PERMISSIONS_BIT = 0x02000000
_EDIT_LIST_ITEMS_BIT = 0x00000004
_DEPRECATED_GRANTED_TO = "GrantedTo has been deprecated. Refer to GrantedToV2"
_DEPRECATED_IDENTITIES = "GrantedToIdentities has been deprecated. Refer to GrantedToIdentitiesV2"


def _graph_roles(st: State, site_id: str, roledef_ids: list[int]) -> list[str]:
    """SharePoint permission levels as Graph roles; Limited Access is not a permission Graph shows."""
    found: set[str] = set()
    for rid in roledef_ids:
        if rid == LIMITED_ACCESS:
            continue
        role = _ROLE_OF_DEFINITION.get(rid)
        if role is None:  # a custom permission level: judge it by its base permissions
            rd = st.role_definition(site_id, id=rid)
            if rd is None or rd.role_type_kind == 1:
                continue
            role = ("owner" if rd.perm_low & _MANAGE_PERMISSIONS_BIT else
                    "write" if rd.perm_low & _EDIT_LIST_ITEMS_BIT else "read")
        found.add(role)
    return [r for r in ("owner", "write", "read") if r in found]


def _app_id_of(login: str) -> str | None:
    m = re.fullmatch(r"i:0i\.t\|ms\.sp\.ext\|([^@]+)@.*", login, re.IGNORECASE)
    return m.group(1) if m else None


def _identities(p: Principal) -> tuple[dict[str, Any], dict[str, Any]]:
    """``grantedToV2`` (sharePointIdentitySet) and the deprecated ``grantedTo`` for a site principal."""
    site_entity = {"id": str(p.id), "displayName": p.title, "loginName": p.login_name}
    if p.kind == "user":
        user = {"id": p.directory_id, "displayName": p.title, "email": p.email}
        return {"user": user, "siteUser": site_entity | {"email": p.email}}, {"user": user}
    if p.kind == "group":
        return {"siteGroup": site_entity}, {"user": {"displayName": p.title}}
    if p.kind == "app":
        app = {"id": _app_id_of(p.login_name), "displayName": p.title}
        return {"application": app, "siteUser": site_entity}, {"application": app}
    group: dict[str, Any] = {"displayName": p.title}
    if p.directory_id:
        group = {"id": p.directory_id, "displayName": p.title, "email": p.email}
    return {"group": group, "siteUser": site_entity}, {"user": {"displayName": p.title}}


def _link_web_url(ctx: Ctx, site: Site, link: SharingLink, is_folder: bool) -> str:
    # SharePoint sharing URLs: https://host/:f:/s/{site}/{token} (":f:" folders, ":u:" other files).
    parts = site.server_relative_url.strip("/").split("/")
    prefix = f"/{parts[0][0]}/{'/'.join(parts[1:])}" if len(parts) >= 2 else ""
    token = "E" + _b64url(uuid.UUID(link.id).bytes + b"\x00cartif")
    return f"{ctx.req.base_url}/:{'f' if is_folder else 'u'}:{prefix}/{token}"


def _link_permission(ctx: Ctx, site: Site, link: SharingLink, roles: list[str]) -> dict[str, Any]:
    st: State = ctx.state
    target = st.item_any_drive(link.item_id)
    web_url = _link_web_url(ctx, site, link, bool(target and target.is_folder))
    link_facet: dict[str, Any] = {"type": link.type, "scope": link.scope, "webUrl": web_url,
                                  "preventsDownload": False}
    app = st.app_by_display_name(link.created_by)
    if app is not None:
        link_facet["application"] = {"id": app.client_id, "displayName": app.display_name}
    members = [_identities(m) for m in st.site_group_members(site.id, link.group_principal_id)]
    perm: dict[str, Any] = {
        "id": link.id, "roles": roles or (["write"] if link.type == "edit" else ["read"]),
        "shareId": "u!" + _b64url(web_url.encode()), "hasPassword": link.has_password,
        "link": link_facet,
        "@deprecated.GrantedToIdentities": _DEPRECATED_IDENTITIES,
        "grantedToIdentities": [legacy for _, legacy in members],
        "grantedToIdentitiesV2": [v2 for v2, _ in members],
    }
    if link.expiration:
        perm["expirationDateTime"] = link.expiration
    return perm


def _inherited_from(st: State, drive: Drive, item: Item, scope: str) -> dict[str, Any] | None:
    """``inheritedFrom`` for an inheriting item, ``None`` when it has unique permissions.

    Doc disagreement (graph-api.md §2.10): the v1.0 permission resource says SharePoint libraries
    do not return ``inheritedFrom``, while permission-delete relies on it ("must be null") and
    the issue this emulator serves asks for it. We return it, naming the nearest folder with
    unique permissions, else the library root; the library root itself inherits from the site,
    which no itemReference can name, so it gets ``{}`` (what microsoft-graph-devx-api#223 saw).
    """
    if st.has_unique(scope):
        return None
    effective = st.effective_scope(scope)
    kind, _, key = effective.partition(":")
    if kind == "item":
        source = st.item_any_drive(key)
        if source is not None:
            path = f"/drives/{drive.id}/root:{quote(source.path)}"
            return {"driveId": drive.id, "id": source.id, "path": path}
    if item.is_root:
        return {}
    root = st.root(drive.id)
    return {"driveId": drive.id, "id": root.id, "path": f"/drives/{drive.id}/root:"}


@dataclasses.dataclass
class _Perm:
    body: dict[str, Any]
    principal: Principal
    link: SharingLink | None


def _permissions(ctx: Ctx, site: Site, drive: Drive, item: Item) -> list[_Perm]:
    """The item's effective permissions: its (or its ancestor's) role assignments as Graph shows them."""
    st: State = ctx.state
    scope = _scope_of(drive, item)
    inherited = _inherited_from(st, drive, item, scope)
    result: list[_Perm] = []
    for principal_id, roledefs in st.role_assignments(scope).items():
        roles = _graph_roles(st, site.id, roledefs)
        if not roles:
            continue  # Limited Access only: a by-product of sharing something below, not a permission
        principal = st.principal(site.id, principal_id)
        if principal is None:
            continue
        link = st.link_for_group(site.id, principal.id) if principal.kind == "group" else None
        if link is not None:
            body = _link_permission(ctx, site, link, roles)
        else:
            v2, legacy = _identities(principal)
            body = {
                "id": _b64url(principal.login_name.encode()),
                "@deprecated.GrantedTo": _DEPRECATED_GRANTED_TO,
                "roles": roles,
                "grantedTo": legacy,
                "grantedToV2": v2,
            }
        if inherited is not None:
            body["inheritedFrom"] = inherited
        result.append(_Perm(body, principal, link))
    return result


def _find_permission(ctx: Ctx, site: Site, drive: Drive, item: Item, perm_id: str) -> _Perm:
    for perm in _permissions(ctx, site, drive, item):
        if perm.body["id"] == perm_id or perm.body["id"] == perm_id.rstrip("="):
            return perm
    raise HttpError(404, "itemNotFound", "The permission could not be found.")


async def list_permissions(ctx: Ctx) -> Resp:
    site, drive, item = resolve_item(ctx, "read")
    select = ctx.req.q("$select")
    value = [_select(p.body, select) for p in _permissions(ctx, site, drive, item)]
    return json_resp(
        {"@odata.context": _odata_context(ctx, "Collection(microsoft.graph.permission)"), "value": value}
    )


async def get_permission(ctx: Ctx) -> Resp:
    site, drive, item = resolve_item(ctx, "read")
    perm = _find_permission(ctx, site, drive, item, ctx.params["perm"])
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, "microsoft.graph.permission"),
            **_select(perm.body, ctx.req.q("$select")),
        }
    )


async def delete_permission(ctx: Ctx) -> Resp:
    site, drive, item = resolve_item(ctx, "manage")
    st: State = ctx.state
    perm = _find_permission(ctx, site, drive, item, ctx.params["perm"])
    scope = _scope_of(drive, item)
    if "inheritedFrom" in perm.body:
        # permission-delete: "Only sharing permissions that are not inherited can be deleted";
        # the status is undocumented, 403 notAllowed is what the service was seen to answer (§2.12).
        raise HttpError(
            403,
            "notAllowed",
            "Operation not allowed: the permission is inherited. Only "
            "permissions that are not inherited can be deleted.",
        )
    if perm.link is not None and perm.link.item_id == item.id:
        st.delete_sharing_link(perm.link.id)  # deleting a link permission deletes the link
    else:
        st.remove_role_assignment(scope, perm.principal.id, None)
    return empty(204)


def _resolve_recipient(ctx: Ctx, site: Site, recipient: Any) -> tuple[Principal, str]:
    """A driveRecipient → the site principal it names (ensured), and the address for ``invitation``."""
    st: State = ctx.state
    if not isinstance(recipient, dict):
        raise HttpError(400, "invalidRequest", "Each recipient must be a driveRecipient object.")
    email, object_id, alias = recipient.get("email"), recipient.get("objectId"), recipient.get("alias")
    if object_id:
        user = st.user(str(object_id))
        if user is not None and user["id"].lower() == str(object_id).lower():
            return st.ensure_user(site.id, user["upn"]), user["mail"] or user["upn"]
        group = st.group(str(object_id))
        if group is not None:
            return _ensure_group(st, site, group), group["mail_nickname"]
        raise HttpError(
            400,
            "invalidRequest",
            f"The recipient with objectId '{object_id}' could not be found in the directory.",
        )
    if email:
        user = st.user(str(email))
        if user is None:
            # driveitem-invite: "New guests can't be invited using app-only access."
            raise HttpError(
                400,
                "invalidRequest",
                f"The recipient '{email}' is not a user of this directory, "
                "and new guests can't be invited using app-only access.",
            )
        return st.ensure_user(site.id, user["upn"]), str(email)
    if alias:
        for group in st.groups():
            if group["mail_nickname"].lower() == str(alias).lower():
                return _ensure_group(st, site, group), str(alias)
        user = st.user(str(alias))
        if user is not None:
            return st.ensure_user(site.id, user["upn"]), str(alias)
        raise HttpError(400, "invalidRequest", f"The recipient alias '{alias}' could not be resolved.")
    raise HttpError(400, "invalidRequest", "A recipient needs an email, objectId or alias.")


def _ensure_group(st: State, site: Site, group: dict[str, Any]) -> Principal:
    claim = (
        f"c:0t.c|tenant|{group['id']}"
        if group["security_enabled"] or not group["mail_enabled"]
        else f"c:0o.c|federateddirectoryclaimprovider|{group['id']}"
    )
    return st.ensure_user(site.id, claim)


def _add_limited_access(st: State, scope: str, principal_id: int) -> None:
    """SharePoint gives a principal shared something below Limited Access on every unique ancestor."""
    current = st.scope_parent(scope)
    while current is not None:
        effective = st.effective_scope(current)
        if principal_id not in st.role_assignments(effective):
            st.add_role_assignment(effective, principal_id, LIMITED_ACCESS)
        current = st.scope_parent(effective)


async def invite(ctx: Ctx) -> Resp:
    site, drive, item = resolve_item(ctx, "manage")
    st: State = ctx.state
    body = _body_object(ctx)
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise HttpError(400, "invalidRequest", "At least one recipient is required.")
    roles = body.get("roles")
    if not isinstance(roles, list) or not roles:
        raise HttpError(400, "invalidRequest", "At least one role is required.")
    roledefs = []
    for role in roles:
        # Only read and write can be granted; "owner" is refused (microsoft-graph-docs #15059, #4541).
        if not isinstance(role, str) or role.lower() not in ("read", "write"):
            raise HttpError(400, "invalidRequest", "Invalid value for role")
        roledefs.append(CONTRIBUTE if role.lower() == "write" else READ)
    message = body.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > 2000):
        raise HttpError(400, "invalidRequest", "The message must be a string of at most 2000 characters.")
    require_sign_in = _bool(body, "requireSignIn", True)
    send_invitation = _bool(body, "sendInvitation", True)
    retain = _bool(body, "retainInheritedPermissions", True)
    if body.get("expirationDateTime") is not None:
        _parse_time(body["expirationDateTime"], "expirationDateTime")
    principals = [_resolve_recipient(ctx, site, r) for r in recipients]
    scope = _scope_of(drive, item)
    with st.transaction():
        if not st.has_unique(scope):
            # "If false, all existing permissions are removed when sharing for the first time."
            st.break_inheritance(
                scope, copy_role_assignments=retain, clear_subscopes=False, current_principal_id=None
            )
        for principal, _ in principals:
            for roledef in roledefs:
                st.add_role_assignment(scope, principal.id, roledef)
            _add_limited_access(st, scope, principal.id)
    by_principal = {p.principal.id: p.body for p in _permissions(ctx, site, drive, item)}
    value = []
    for principal, address in principals:
        perm = dict(by_principal[principal.id])
        if send_invitation:
            perm["invitation"] = {"email": address, "signInRequired": require_sign_in}
        value.append(perm)
    return json_resp(
        {"@odata.context": _odata_context(ctx, "Collection(microsoft.graph.permission)"), "value": value}
    )


async def create_link(ctx: Ctx) -> Resp:
    site, _drive, item = resolve_item(ctx, "manage")
    st: State = ctx.state
    body = _body_object(ctx)
    link_type = body.get("type")
    if link_type == "embed":
        raise HttpError(400, "invalidRequest", "Embed links are only supported on OneDrive personal.")
    if link_type not in ("view", "edit"):
        raise HttpError(400, "invalidRequest", "The link type must be 'view' or 'edit'.")
    # Without a scope the tenant's default link kind is created; ours is "organization".
    scope = body.get("scope") or "organization"
    if scope not in ("anonymous", "organization", "users"):
        raise HttpError(400, "invalidRequest", "The scope must be 'anonymous', 'organization' or 'users'.")
    password = body.get("password")
    if password is not None and (scope != "anonymous" or not isinstance(password, str)):
        raise HttpError(400, "invalidRequest", "A password can only be set on an anonymous link.")
    expiration = None
    if body.get("expirationDateTime") is not None:
        expires = _parse_time(body["expirationDateTime"], "expirationDateTime")
        if expires <= utcnow():
            raise HttpError(400, "invalidRequest", "The expiration date must be in the future.")
        expiration = iso(expires)
    retain = _bool(body, "retainInheritedPermissions", True)
    if item.is_root:
        raise HttpError(400, "invalidRequest", "Sharing links can't be created on the root of a library.")
    with st.transaction():
        if not retain and not st.has_unique(item.scope_key):
            st.break_inheritance(
                item.scope_key, copy_role_assignments=False, clear_subscopes=False, current_principal_id=None
            )
        link, created = st.create_sharing_link(
            item,
            site.id,
            link_type=link_type,
            scope=scope,
            by=ctx.by,
            expiration=expiration,
            has_password=bool(password),
        )
    perm = _link_permission(ctx, site, link, ["write"] if link.type == "edit" else ["read"])
    return json_resp(
        {"@odata.context": _odata_context(ctx, "microsoft.graph.permission"), **perm},
        status=201 if created else 200,
    )


# ====================================================================== Sites.Selected grants (§2.19)
_SITE_ROLES = ("read", "write", "owner", "fullcontrol", "manage")


def _require_full_control_all(ctx: Ctx) -> None:
    """Site grants can only be managed with the application permission Sites.FullControl.All (§2.19)."""
    if ctx.caller is None or "Sites.FullControl.All" not in ctx.caller.roles:
        raise HttpError(
            403,
            "accessDenied",
            "Access denied: managing site permissions requires the "
            "Sites.FullControl.All application permission.",
        )


def _grant_json(grant: dict[str, Any]) -> dict[str, Any]:
    identity = {"application": {"id": grant["client_id"], "displayName": grant["display_name"]}}
    return {
        "id": grant["id"],
        "@deprecated.GrantedToIdentities": _DEPRECATED_IDENTITIES,
        "roles": list(grant["roles"]),
        "grantedToIdentities": [identity],
        "grantedToIdentitiesV2": [identity],
    }


def _grant(ctx: Ctx, site: Site, grant_id: str) -> dict[str, Any]:
    for grant in ctx.state.site_grants(site.id):
        if grant["id"] == grant_id:
            return dict(grant)
    raise HttpError(404, "itemNotFound", "The permission could not be found.")


def _site_roles(body: dict[str, Any]) -> list[str]:
    roles = body.get("roles")
    if not isinstance(roles, list) or not roles:
        raise HttpError(400, "invalidRequest", "At least one role is required.")
    result = []
    for role in roles:
        if not isinstance(role, str) or role.lower() not in _SITE_ROLES:
            raise HttpError(400, "invalidRequest", f"Invalid value for role: '{role}'.")
        result.append(role.lower())
    return result


async def list_site_permissions(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "manage")
    value = [_grant_json(g) for g in ctx.state.site_grants(site.id)]
    return json_resp(
        {"@odata.context": _odata_context(ctx, f"sites('{site.id}')/permissions"), "value": value}
    )


async def get_site_permission(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "manage")
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, f"sites('{site.id}')/permissions/$entity"),
            **_grant_json(_grant(ctx, site, ctx.params["perm"])),
        }
    )


async def create_site_permission(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    _require_full_control_all(ctx)
    body = _body_object(ctx)
    roles = _site_roles(body)
    identities: Any = None
    for key in ("grantedToIdentities", "grantedToIdentitiesV2", "grantedTo", "grantedToV2"):
        if body.get(key):
            identities = body[key]
            break
    if isinstance(identities, dict):
        identities = [identities]
    if not isinstance(identities, list) or len(identities) != 1 or not isinstance(identities[0], dict):
        raise HttpError(400, "invalidRequest", "Exactly one identity with an application is required.")
    app_ref = identities[0].get("application")
    if not isinstance(app_ref, dict) or not app_ref.get("id"):
        # Only application permissions can be created this way (site-post-permissions).
        raise HttpError(400, "invalidRequest", "Only application identities can be granted site permissions.")
    app = ctx.state.get_app(str(app_ref["id"]))
    if app is None:
        raise HttpError(
            400, "invalidRequest", f"The application '{app_ref['id']}' was not found in the directory."
        )
    grant = ctx.state.add_site_grant(
        site.id, app.client_id, str(app_ref.get("displayName") or app.display_name), roles
    )
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, f"sites('{site.id}')/permissions/$entity"),
            **_grant_json(grant),
        },
        status=201,
    )


async def update_site_permission(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    _require_full_control_all(ctx)
    grant = _grant(ctx, site, ctx.params["perm"])
    body = _body_object(ctx)
    unknown = set(body) - {"roles"}
    if unknown:
        raise HttpError(
            400, "invalidRequest", f"Only roles can be updated, not {', '.join(sorted(unknown))}."
        )
    updated = ctx.state.add_site_grant(site.id, grant["client_id"], grant["display_name"], _site_roles(body))
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, f"sites('{site.id}')/permissions/$entity"),
            **_grant_json(updated),
        }
    )


async def delete_site_permission(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    _require_full_control_all(ctx)
    grant = _grant(ctx, site, ctx.params["perm"])
    ctx.state.delete_site_grant(site.id, grant["id"])
    return empty(204)


# ====================================================================== lists and list items (§2.15)
_READ_ONLY_FIELDS = {
    "id",
    "contenttype",
    "created",
    "modified",
    "author",
    "editor",
    "_uiversionstring",
    "filesizedisplay",
    "itemchildcount",
    "folderchildcount",
    "linkfilename",
    "docicon",
    "attachments",
    "authorlookupid",
    "editorlookupid",
    "fileref",
    "linktitle",
}
_SKIPTOKEN_RE = re.compile(r"Paged=TRUE&p_ID=(\d+)")


def _list(ctx: Ctx, site: Site, key: str) -> ListRecord:
    st: State = ctx.state
    lst = st.get_list(site.id, key)
    if lst is None:
        raise HttpError(404, "itemNotFound", "The specified list was not found")
    return lst


def _list_json(ctx: Ctx, site: Site, lst: ListRecord) -> dict[str, Any]:
    web_url = _site_web_url(ctx, site) + (
        "/" + quote(lst.url_name) if lst.drive_id else "/Lists/" + quote(lst.url_name)
    )
    return {
        "@odata.etag": f'"{lst.id},1"',
        "createdDateTime": lst.created_at,
        "description": lst.description,
        "eTag": f'"{lst.id},1"',
        "id": lst.id,
        "lastModifiedDateTime": lst.modified_at,
        "name": lst.url_name,
        "webUrl": web_url,
        "displayName": lst.title,
        "createdBy": {"user": {"displayName": "System Account"}},
        "parentReference": {"siteId": site.id},
        "list": {
            "contentTypesEnabled": False,
            "hidden": False,
            "template": "documentLibrary" if lst.drive_id else "genericList",
        },
    }


def _generic_etag(row: dict[str, Any]) -> str:
    return f'"{{{str(row["uid"]).upper()}}},{row["version"]}"'


def _drive_item_fields(item: Item) -> dict[str, Any]:
    """A library item's columns. Graph leaves out empty columns, so Title shows only once set."""
    name = item.name
    fields: dict[str, Any] = {
        "@odata.etag": item.etag,
        "id": str(item.list_item_id),
        "ContentType": "Folder" if item.is_folder else "Document",
        "FileLeafRef": name,
        "LinkFilename": name,
        "Created": item.created_at,
        "Modified": item.modified_at,
        "_UIVersionString": f"{max(item.major, 1)}.0",
        "ItemChildCount": "0",
        "FolderChildCount": "0",
    }
    if not item.is_folder:
        fields["FileSizeDisplay"] = str(item.size)
        if "." in name:
            fields["DocIcon"] = name.rsplit(".", 1)[1].lower()
    fields |= {k: v for k, v in item.fields.items() if v is not None}
    return fields


def _generic_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "@odata.etag": _generic_etag(row),
        "id": str(row["id"]),
        "ContentType": "Item",
        "Created": row["created_at"],
        "Modified": row["modified_at"],
        "_UIVersionString": f"{row['version']}.0",
        "Attachments": False,
    }
    fields |= {k: v for k, v in row["fields"].items() if v is not None}
    return fields


def _fields_select(ctx: Ctx) -> tuple[bool, str | None]:
    """Whether ``expand=fields`` was asked, and the ``$select`` inside ``fields(...)`` if any."""
    expand = ctx.req.q("$expand") or ""
    m = re.search(r"(?:^|,)\s*fields\s*(?:\((?:\$?select=([^)]*))?\))?", expand, re.IGNORECASE)
    if not m:
        return False, None
    return True, m.group(1)


def _list_item_json(
    ctx: Ctx,
    site: Site,
    lst: ListRecord,
    *,
    item: Item | None = None,
    row: dict[str, Any] | None = None,
    with_fields: bool,
    fields_select: str | None,
) -> dict[str, Any]:
    sharepoint_ids = {
        "listId": lst.id,
        "siteId": site.site_guid,
        "webId": site.web_guid,
        "siteUrl": _site_web_url(ctx, site),
    }
    if item is not None:
        drive = ctx.state.drive(item.drive_id)
        assert drive is not None
        body: dict[str, Any] = {
            "@odata.etag": item.etag,
            "createdDateTime": item.created_at,
            "eTag": item.etag,
            "id": str(item.list_item_id),
            "lastModifiedDateTime": item.modified_at,
            "webUrl": _item_web_url(ctx, site, drive, item),
            "createdBy": {"user": {"displayName": item.created_by}},
            "lastModifiedBy": {"user": {"displayName": item.modified_by}},
            "parentReference": {"id": lst.id, "siteId": site.id},
            "contentType": {
                "id": "0x0120" if item.is_folder else "0x0101",
                "name": "Folder" if item.is_folder else "Document",
            },
            "sharepointIds": sharepoint_ids
            | {"listItemId": str(item.list_item_id), "listItemUniqueId": item.uid},
        }
        fields = _drive_item_fields(item)
    else:
        assert row is not None
        etag = _generic_etag(row)
        body = {
            "@odata.etag": etag,
            "createdDateTime": row["created_at"],
            "eTag": etag,
            "id": str(row["id"]),
            "lastModifiedDateTime": row["modified_at"],
            "webUrl": f"{_site_web_url(ctx, site)}/Lists/{quote(lst.url_name)}/DispForm.aspx?ID={row['id']}",
            "createdBy": {"user": {"displayName": row["created_by"]}},
            "lastModifiedBy": {"user": {"displayName": row["modified_by"]}},
            "parentReference": {"id": lst.id, "siteId": site.id},
            "contentType": {"id": "0x01", "name": "Item"},
            "sharepointIds": sharepoint_ids | {"listItemId": str(row["id"]), "listItemUniqueId": row["uid"]},
        }
        fields = _generic_fields(row)
    if with_fields:
        body["fields@odata.context"] = _odata_context(
            ctx, f"sites('{site.id}')/lists('{lst.id}')/items('{body['id']}')/fields/$entity"
        )
        body["fields"] = _select(fields, fields_select, keep=())
    return body


async def list_lists(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "read")
    value = [_select(_list_json(ctx, site, lst), ctx.req.q("$select")) for lst in ctx.state.lists(site.id)]
    return json_resp({"@odata.context": _odata_context(ctx, f"sites('{site.id}')/lists"), "value": value})


async def get_list(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "read")
    lst = _list(ctx, site, ctx.params["list"])
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, f"sites('{site.id}')/lists/$entity"),
            **_select(_list_json(ctx, site, lst), ctx.req.q("$select")),
        }
    )


_COLUMN_TYPES = {"text": "Text", "number": "Number", "boolean": "Boolean", "dateTime": "DateTime",
                 "choice": "Choice", "currency": "Currency", "personOrGroup": "User",
                 "hyperlinkOrPicture": "URL"}


async def create_list(ctx: Ctx) -> Resp:
    """``POST /sites/{id}/lists`` (list-create): a generic list or a library, with its columns."""
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "manage")  # creating lists needs Manage Lists: the site's owners
    st: State = ctx.state
    body = _body_object(ctx)
    title = body.get("displayName")
    if not isinstance(title, str) or not title.strip():
        raise HttpError(400, "invalidRequest", "displayName is required.")
    template = (body.get("list") or {}).get("template", "genericList")
    if template not in ("genericList", "documentLibrary"):
        raise HttpError(400, "invalidRequest", f"The list template '{template}' is not supported.")
    columns = body.get("columns") or []
    if not isinstance(columns, list):
        raise HttpError(400, "invalidRequest", "columns must be an array of columnDefinition.")
    fields = []
    for column in columns:
        name = column.get("name") if isinstance(column, dict) else None
        kind = next((k for k in _COLUMN_TYPES if isinstance(column, dict) and k in column), None)
        if (
            not isinstance(name, str)
            or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,31}", name)
            or kind is None
        ):
            raise HttpError(
                400,
                "invalidRequest",
                f"Each column needs a valid name and a type facet ({', '.join(_COLUMN_TYPES)}).",
            )
        fields.append(
            {
                "InternalName": name,
                "StaticName": name,
                "Title": column.get("displayName") or name,
                "TypeAsString": _COLUMN_TYPES[kind],
            }
        )
    with st.transaction():
        lst = st.create_list(
            site,
            title.strip(),
            base_template=101 if template == "documentLibrary" else 100,
            description=str(body.get("description") or ""),
        )
        for field in fields:
            st.add_list_field(lst, field)
            fresh = st.get_list(site.id, lst.id)  # add_list_field extends the record it is given
            assert fresh is not None
            lst = fresh
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, f"sites('{site.id}')/lists/$entity"),
            **_list_json(ctx, site, lst),
        },
        status=201,
    )


async def list_list_items(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "read")
    lst = _list(ctx, site, ctx.params["list"])
    if ctx.req.q("$filter") or ctx.req.q("$orderby"):
        raise HttpError(
            400,
            "invalidRequest",
            "$filter and $orderby on list items are not supported by the "
            "local tenant; page through the items instead.",
        )
    top_text = ctx.req.q("$top") or "200"
    if not top_text.isdigit() or not 1 <= int(top_text) <= 5000:
        raise HttpError(400, "invalidRequest", "$top must be an integer between 1 and 5000.")
    top = int(top_text)
    after = 0
    token = ctx.req.q("$skiptoken")
    if token:
        decoded = _unb64url(token)
        m = _SKIPTOKEN_RE.fullmatch(decoded.decode("utf-8", "replace")) if decoded else None
        if m is None:
            raise HttpError(400, "invalidRequest", "The $skiptoken is not valid.")
        after = int(m.group(1))
    with_fields, fields_select = _fields_select(ctx)
    value: list[dict[str, Any]] = []
    last_id: int | None = None
    if lst.drive_id:
        items = ctx.state.library_items(lst.drive_id, after_id=after, limit=top + 1)
        for item in items[:top]:
            value.append(
                _list_item_json(
                    ctx, site, lst, item=item, with_fields=with_fields, fields_select=fields_select
                )
            )
        more = len(items) > top
        last_id = items[top - 1].list_item_id if more else None
    else:
        rows = ctx.state.list_items(lst, after_id=after, limit=top + 1)
        for row in rows[:top]:
            value.append(
                _list_item_json(ctx, site, lst, row=row, with_fields=with_fields, fields_select=fields_select)
            )
        more = len(rows) > top
        last_id = int(rows[top - 1]["id"]) if more else None
    page: dict[str, Any] = {
        "@odata.context": _odata_context(ctx, f"sites('{site.id}')/lists('{lst.id}')/items"),
        "value": value,
    }
    if last_id is not None:
        query = {k: v for k, v in ctx.req.query.items() if k.lower().lstrip("$") != "skiptoken"}
        query["$skiptoken"] = _b64url(f"Paged=TRUE&p_ID={last_id}".encode())
        page["@odata.nextLink"] = f"{ctx.req.base_url}{quote(ctx.req.path)}?{urlencode(query, safe='$(),=')}"
    return json_resp(page)


def _list_item_target(ctx: Ctx, site: Site, lst: ListRecord) -> tuple[Item | None, dict[str, Any] | None]:
    text = ctx.params["n"]
    if not text.isdigit():
        raise HttpError(400, "invalidRequest", f"'{text}' is not a valid list item id.")
    if lst.drive_id:
        item = ctx.state.item_by_list_item_id(lst.drive_id, int(text))
        if item is None:
            raise HttpError(404, "itemNotFound", "The specified list item was not found")
        return item, None
    row = ctx.state.list_item(lst, int(text))
    if row is None:
        raise HttpError(404, "itemNotFound", "The specified list item was not found")
    return None, row


async def get_list_item(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "read")
    lst = _list(ctx, site, ctx.params["list"])
    item, row = _list_item_target(ctx, site, lst)
    with_fields, fields_select = _fields_select(ctx)
    body = _list_item_json(
        ctx, site, lst, item=item, row=row, with_fields=with_fields, fields_select=fields_select
    )
    return json_resp(
        {"@odata.context": _odata_context(ctx, f"sites('{site.id}')/lists('{lst.id}')/items/$entity"), **body}
    )


async def get_list_item_fields(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "read")
    lst = _list(ctx, site, ctx.params["list"])
    item, row = _list_item_target(ctx, site, lst)
    fields = _drive_item_fields(item) if item is not None else _generic_fields(row or {})
    return json_resp(_select(fields, ctx.req.q("$select"), keep=()))


def _check_writable(lst: ListRecord, current: dict[str, Any], changes: dict[str, Any]) -> None:
    """Graph refuses read-only and unknown columns: 'Field 'X' is not recognized'."""
    known = (
        {"title"}
        | {str(f.get("InternalName", "")).lower() for f in lst.fields}
        | {str(f.get("StaticName", "")).lower() for f in lst.fields}
        | {k.lower() for k in current}
    )
    if lst.drive_id:
        known.add("fileleafref")
    for name in changes:
        if name.startswith("@"):
            continue
        if name.lower() in _READ_ONLY_FIELDS:
            raise HttpError(400, "invalidRequest", f"Field '{name}' is read-only")
        if name.lower() not in known:
            raise HttpError(400, "invalidRequest", f"Field '{name}' is not recognized")


def _update_drive_item_fields(ctx: Ctx, lst: ListRecord, item: Item, changes: dict[str, Any]) -> Item:
    st: State = ctx.state
    st.check_if_match(item, ctx.req.headers.get("if-match"))
    _check_writable(lst, item.fields, changes)
    changes = {k: v for k, v in changes.items() if not k.startswith("@")}
    with st.transaction():
        new_name = next((v for k, v in changes.items() if k.lower() == "fileleafref"), None)
        if new_name is not None:
            if not isinstance(new_name, str):
                raise HttpError(400, "invalidRequest", "FileLeafRef must be a string.")
            item = st.update_item(item, by=ctx.by, name=new_name)
        rest = {k: v for k, v in changes.items() if k.lower() != "fileleafref"}
        if rest:
            item = st.set_fields(item, rest, by=ctx.by)
    return item


async def update_list_item_fields(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "write")
    lst = _list(ctx, site, ctx.params["list"])
    item, row = _list_item_target(ctx, site, lst)
    changes = _body_object(ctx)
    if item is not None:
        updated = _update_drive_item_fields(ctx, lst, item, changes)
        return json_resp(_drive_item_fields(updated))
    assert row is not None
    if_match = ctx.req.headers.get("if-match")
    if if_match and if_match.strip() != "*" and if_match.strip() != _generic_etag(row):
        raise HttpError(412, "resourceModified", "ETag does not match current item's value")
    _check_writable(lst, row["fields"], changes)
    updated_row = ctx.state.update_list_item(
        lst, int(row["id"]), {k: v for k, v in changes.items() if not k.startswith("@")}, by=ctx.by
    )
    # listitem-update: 200 with the fieldValueSet (G21 showed 201; current docs 200, graph-api.md §2.15).
    return json_resp(_generic_fields(updated_row))


async def create_list_item(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "write")
    lst = _list(ctx, site, ctx.params["list"])
    if lst.drive_id:
        raise HttpError(
            400,
            "invalidRequest",
            "Files and folders should only be added to a DocumentLibrary via the OneDrive API",
        )
    body = _body_object(ctx)
    fields = body.get("fields", {})
    if not isinstance(fields, dict):
        raise HttpError(400, "invalidRequest", "'fields' must be an object.")
    _check_writable(lst, {}, fields)
    row = ctx.state.add_list_item(lst, {k: v for k, v in fields.items() if not k.startswith("@")}, by=ctx.by)
    body_out = _list_item_json(ctx, site, lst, row=row, with_fields=True, fields_select=None)
    return json_resp(
        {
            "@odata.context": _odata_context(ctx, f"sites('{site.id}')/lists('{lst.id}')/items/$entity"),
            **body_out,
        },
        status=201,
    )


async def delete_list_item(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "write")
    lst = _list(ctx, site, ctx.params["list"])
    item, row = _list_item_target(ctx, site, lst)
    if item is not None:
        ctx.state.delete_item(item, by=ctx.by, if_match=ctx.req.headers.get("if-match"))
    elif row is not None:
        ctx.state.delete_list_item(lst, int(row["id"]))
    return empty(204)


def _drive_list_item(ctx: Ctx, need: str) -> tuple[Site, ListRecord, Item]:
    site, drive, item = resolve_item(ctx, need)
    if item.is_root:
        raise HttpError(404, "itemNotFound", "The root folder of a library has no list item.")
    lst = ctx.state.get_list(site.id, drive.list_id)
    assert lst is not None
    return site, lst, item


async def get_drive_list_item(ctx: Ctx) -> Resp:
    site, lst, item = _drive_list_item(ctx, "read")
    with_fields, fields_select = _fields_select(ctx)
    body = _list_item_json(ctx, site, lst, item=item, with_fields=with_fields, fields_select=fields_select)
    return json_resp({"@odata.context": _odata_context(ctx, "listItems/$entity"), **body})


async def get_drive_list_item_fields(ctx: Ctx) -> Resp:
    _, _, item = _drive_list_item(ctx, "read")
    return json_resp(_select(_drive_item_fields(item), ctx.req.q("$select"), keep=()))


async def update_drive_list_item_fields(ctx: Ctx) -> Resp:
    _, lst, item = _drive_list_item(ctx, "write")
    updated = _update_drive_item_fields(ctx, lst, item, _body_object(ctx))
    return json_resp(_drive_item_fields(updated))


# ====================================================================== $batch (§2.16)
MAX_BATCH_REQUESTS = 20


def _batch_error(message: str) -> HttpError:
    return HttpError(400, "BadRequest", message)


def _sub_request(ctx: Ctx, entry: dict[str, Any]) -> Req:
    """Build the sub-request as the tenant would have received it over the wire."""
    url = str(entry["url"])
    # Batch URLs are relative to the version ("/users", "users"). An absolute URL is taken as a
    # path segment and fails as it does in Graph (msgraph-sdk-python#1015: "Resource not found").
    raw_path, _, query_string = url.lstrip("/").partition("?")
    path = "/v1.0/" + unquote(raw_path)
    headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
    headers["authorization"] = ctx.req.headers.get("authorization") or ""
    body = b""
    if "body" in entry and entry["body"] is not None:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        value = entry["body"]
        if "json" in content_type.lower() or isinstance(value, dict | list):
            body = json.dumps(value).encode() if not isinstance(value, str) else value.encode()
        else:
            try:
                body = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError, TypeError) as exc:
                raise _batch_error(
                    f"The body of request id {entry['id']} is neither JSON nor base64."
                ) from exc
    return Req(
        method=str(entry["method"]).upper(),
        path=path,
        query=dict(parse_qsl(query_string, keep_blank_values=True)),
        headers=Headers(headers),
        body=body,
        base_url=ctx.req.base_url,
        raw_path="/v1.0/" + raw_path,
        client_host=ctx.req.client_host,
    )


# Sub-response headers as Graph writes them (batch-response.json): canonical case.
_HEADER_CASE = {"content-type": "Content-Type", "retry-after": "Retry-After",
                "cache-control": "Cache-Control", "odata-version": "OData-Version", "location": "Location",
                "etag": "ETag", "x-ms-resource-unit": "x-ms-resource-unit"}


def _sub_response(request_id: str, resp: Resp | None, ru: int | None = None) -> dict[str, Any]:
    if resp is None:  # an injected connection reset: the service would have failed this one request
        return {
            "id": request_id,
            "status": 500,
            "headers": {},
            "body": {"error": {"code": "generalException", "message": "The request failed."}},
        }
    headers = {"Cache-Control": "no-cache"}
    if ru is not None:
        headers["x-ms-resource-unit"] = str(ru)
    content_type = resp.header("content-type") or ""
    if "json" in content_type.lower() and resp.status < 400:
        headers["OData-Version"] = "4.0"
    for key, value in resp.headers:
        if key.lower() not in ("content-length",):
            headers[_HEADER_CASE.get(key.lower(), key)] = value
    body: Any = None
    if resp.body:
        if "json" in content_type.lower():
            try:
                body = json.loads(resp.body)
            except json.JSONDecodeError:
                body = base64.b64encode(resp.body).decode()
        else:
            body = base64.b64encode(resp.body).decode()
    return {"id": request_id, "status": resp.status, "headers": headers, "body": body}


def _route_cost(ctx: Ctx, sub: Req) -> int | None:
    """The resource units a sub-request's route costs (what Graph reports in x-ms-resource-unit)."""
    route, params, _ = ctx.tenant.router.match(sub.method, sub.path)
    if route is None or route.cost is None:
        return None
    if isinstance(route.cost, int):
        return route.cost
    return route.cost(Ctx(sub, params, ctx.tenant, route, ctx.caller))


async def batch(ctx: Ctx) -> Resp:
    try:
        payload = json.loads(ctx.req.body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _batch_error("Invalid batch payload format.") from exc
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        raise _batch_error("Invalid batch payload format.")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise _batch_error(f"Number of batch requests exceeds the limit of {MAX_BATCH_REQUESTS}.")
    seen: dict[str, dict[str, Any]] = {}
    for entry in requests:
        if (
            not isinstance(entry, dict)
            or not entry.get("id")
            or not entry.get("method")
            or not entry.get("url")
        ):
            raise _batch_error("Each batch request needs an id, a method and a url.")
        key = str(entry["id"]).lower()
        if key in seen:
            raise _batch_error(f"Batch request contains duplicate id '{entry['id']}'.")
        has_body = entry.get("body") is not None
        has_type = any(str(k).lower() == "content-type" for k in (entry.get("headers") or {}))
        if has_body and not has_type:
            raise _batch_error(
                f"Write request id : {entry['id']} does not contain Content-Type header or body."
            )
        depends = entry.get("dependsOn") or []
        if not isinstance(depends, list) or any(str(d).lower() not in seen for d in depends):
            # A dependency must name a request earlier in the array (msgraph-sdk-dotnet-core#891).
            raise _batch_error(f"Invalid dependency for request Id {entry['id']}.")
        seen[key] = entry
    sub_requests = {str(e["id"]).lower(): _sub_request(ctx, e) for e in requests}
    results: dict[str, asyncio.Future[dict[str, Any]]] = {}
    loop = asyncio.get_running_loop()
    for key in seen:
        results[key] = loop.create_future()

    async def run(entry: dict[str, Any]) -> None:
        key = str(entry["id"]).lower()
        try:
            for dep in entry.get("dependsOn") or []:
                dep_result = await results[str(dep).lower()]
                if not 200 <= dep_result["status"] < 300:
                    results[key].set_result(
                        {
                            "id": entry["id"],
                            "status": 424,
                            "body": {"error": {"code": "FailedDependency", "message": "Failed dependency."}},
                        }
                    )
                    return
            sub = sub_requests[key]
            resp = await ctx.tenant.dispatch(sub, caller=ctx.caller, in_batch=True)
            results[key].set_result(_sub_response(str(entry["id"]), resp, _route_cost(ctx, sub)))
        except Exception as exc:  # never leave dependents waiting
            log.exception("batch sub-request %s failed", entry["id"])
            results[key].set_result(
                {
                    "id": entry["id"],
                    "status": 500,
                    "body": {
                        "error": {"code": "generalException", "message": f"{type(exc).__name__}: {exc}"}
                    },
                }
            )

    # Independent requests run concurrently, as Graph runs them; responses keep completion order.
    order: list[dict[str, Any]] = []

    async def run_and_record(entry: dict[str, Any]) -> None:
        await run(entry)
        order.append(results[str(entry["id"]).lower()].result())

    await asyncio.gather(*(run_and_record(e) for e in requests))
    return json_resp({"responses": order}, content_type="application/json")


# ====================================================================== subscriptions (§2.18)
MAX_EXPIRATION_MINUTES = 42_300  # driveItem and SharePoint list
MIN_EXPIRATION_MINUTES = 45  # shorter requests are raised to 45 minutes (anchors-sync-notify §0)
VALIDATION_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 3.0
# Graph retries failed deliveries for up to 4 hours; the local tenant keeps the same shape on a
# seconds scale (1, 2, 4, 8, 16 s back-off, giving up after RETRY_WINDOW seconds).
RETRY_WINDOW = 60.0
RETRY_FIRST_DELAY = 1.0


def _parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise HttpError(400, "invalidRequest", f"'{name}' must be a date and time string.")
    try:
        text = value.strip()
        # .NET writes 7 fractional digits; Python's fromisoformat takes at most 6 before 3.11 rules.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        parsed = parse_iso(text)
    except ValueError as exc:
        raise HttpError(400, "invalidRequest", f"'{name}' is not a valid date and time: {value!r}.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _subscription_drive(ctx: Ctx, resource: str) -> Drive:
    """The drive a subscription resource names; only a drive's root folder can be watched (§2.18)."""
    st: State = ctx.state
    text = resource.strip().strip("/")
    lowered = text.lower()
    if lowered in ("me/drive/root", "drive/root") or lowered.startswith(("me/", "users/")):
        raise HttpError(
            400,
            "InvalidRequest",
            f"Resource '{resource}' is not supported with app-only "
            "authentication; subscribe to /drives/{drive-id}/root.",
        )
    m = re.fullmatch(r"drives/([^/]+)/(root|items/([^/]+)|root:(/.*?):?)", text, re.IGNORECASE)
    s = re.fullmatch(r"sites/([^/]+)/drive/(root|items/([^/]+)|root:(/.*?):?)", text, re.IGNORECASE)
    match = m or s
    if match is None:
        raise HttpError(
            400,
            "InvalidRequest",
            f"Resource '{resource}' is not supported for change notifications "
            "by this tenant; subscribe to a drive root.",
        )
    if m is not None:
        drive = st.drive(m.group(1))
    else:
        site = _site(ctx, match.group(1))
        drives = st.drives(site.id)
        drive = drives[0] if drives else None
    if drive is None:
        raise HttpError(404, "itemNotFound", f"The drive of resource '{resource}' was not found.")
    target: Item | None
    if match.group(2).lower() == "root":
        target = st.root(drive.id)
    elif match.group(3):
        target = st.root(drive.id) if match.group(3).lower() == "root" else st.item(drive.id, match.group(3))
    else:
        target = st.item_by_path(drive.id, unquote(match.group(4)))
    if target is None:
        raise HttpError(404, "itemNotFound", f"The item of resource '{resource}' was not found.")
    if not target.is_root:
        # OneDrive for Business and SharePoint only support subscriptions on the root folder.
        raise HttpError(
            400,
            "InvalidRequest",
            "Subscriptions on OneDrive for Business and SharePoint are only "
            "supported on the root folder of a drive.",
        )
    return drive


def _clamp_expiration(value: Any) -> str:
    expires = _parse_time(value, "expirationDateTime")
    now = utcnow()
    if expires <= now:
        raise HttpError(400, "InvalidRequest", "Subscription expiration must be in the future.")
    if expires > now + timedelta(minutes=MAX_EXPIRATION_MINUTES):
        raise HttpError(
            400,
            "InvalidRequest",
            f"Subscription expiration can only be {MAX_EXPIRATION_MINUTES} minutes in the future.",
        )
    return iso(max(expires, now + timedelta(minutes=MIN_EXPIRATION_MINUTES)))


def _subscription_json(ctx: Ctx, sub: Subscription, *, with_context: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sub.id,
        "resource": sub.resource,
        "applicationId": sub.client_id,
        "changeType": sub.change_type,
        "clientState": sub.client_state,
        "notificationUrl": sub.notification_url,
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": sub.lifecycle_url,
        "expirationDateTime": sub.expiration,
        "creatorId": sub.client_id,
        "includeResourceData": False,
        "latestSupportedTlsVersion": sub.latest_tls or "v1_2",
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
        "notificationContentType": "application/json",
    }
    if with_context:
        body = {"@odata.context": _odata_context(ctx, "subscriptions/$entity"), **body}
    return body


def _live(sub: Subscription) -> bool:
    return parse_iso(sub.expiration) > utcnow()


def _flowing(sub: Subscription) -> bool:
    """Live, and not paused by an unanswered reauthorization: change notifications are sent."""
    return _live(sub) and sub.challenged_at is None


def _own_subscription(ctx: Ctx) -> Subscription:
    st: State = ctx.state
    sub = st.subscription(ctx.params["sub"])
    assert ctx.caller is not None
    if sub is None or sub.client_id != ctx.caller.client_id or not _live(sub):
        if sub is not None and not _live(sub):
            st.delete_subscription(sub.id)  # Graph removes expired subscriptions
        raise HttpError(404, "itemNotFound", f"The object was not found: subscription '{ctx.params['sub']}'.")
    return sub


def _client_for(tenant: Tenant, url: str) -> httpx.AsyncClient:
    """An HTTP client for a receiver. Localhost receivers are not certificate-checked (they are test
    servers); others are checked against the system store plus the tenant's own CA."""
    host = (urlsplit(url).hostname or "").lower()
    verify: bool | ssl.SSLContext = False
    if host not in ("localhost", "127.0.0.1", "::1"):
        verify = ssl.create_default_context()
        ca = tenant.identity.ca_path
        if ca.exists():
            verify.load_verify_locations(cafile=str(ca))
    return httpx.AsyncClient(verify=verify, follow_redirects=False, trust_env=False)


def _check_notification_url(url: Any, name: str) -> str:
    if not isinstance(url, str) or not url:
        raise HttpError(400, "InvalidRequest", f"'{name}' is required.")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    # Graph requires HTTPS; plain http is accepted only for receivers on this machine (tests, demos).
    if parts.scheme != "https" and not (parts.scheme == "http" and host in ("localhost", "127.0.0.1", "::1")):
        raise HttpError(400, "InvalidRequest", f"The {name} must use the https scheme.")
    return url


async def _validate_endpoint(tenant: Tenant, url: str) -> None:
    """The validation handshake: POST ?validationToken=…; the receiver echoes the decoded token."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    target = url + ("&" if urlsplit(url).query else "?") + urlencode({"validationToken": token})
    failure = (
        "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
        "validation request."
    )
    try:
        async with _client_for(tenant, url) as client:
            resp = await client.post(
                target,
                content=b"",
                headers={"content-type": "text/plain; charset=utf-8"},
                timeout=VALIDATION_TIMEOUT,
            )
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        raise HttpError(400, "ValidationError", f"{failure} ({type(exc).__name__})") from exc
    content_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if resp.status_code != 200:
        raise HttpError(400, "ValidationError", f"{failure} (status {resp.status_code})")
    if content_type != "text/plain":
        raise HttpError(
            400,
            "ValidationError",
            f"{failure} (the response must be text/plain, not '{content_type or 'none'}')",
        )
    if resp.text != token:
        raise HttpError(
            400, "ValidationError", f"{failure} (the response body must be the decoded validationToken)"
        )


async def create_subscription(ctx: Ctx) -> Resp:
    assert ctx.caller is not None
    body = _body_object(ctx)
    for key in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not body.get(key):
            raise HttpError(400, "InvalidRequest", f"'{key}' is required.")
    resource = str(body["resource"])
    drive = _subscription_drive(ctx, resource)
    require_site(ctx, drive.site_id, "read")
    change_types = [c.strip() for c in str(body["changeType"]).split(",") if c.strip()]
    if change_types != ["updated"]:
        raise HttpError(
            400,
            "InvalidRequest",
            f"ChangeType '{body['changeType']}' is not supported for this "
            "resource; drive root subscriptions support only 'updated'.",
        )
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise HttpError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
    expiration = _clamp_expiration(body["expirationDateTime"])
    notification_url = _check_notification_url(body["notificationUrl"], "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = _check_notification_url(lifecycle_url, "lifecycleNotificationUrl")
    tls = body.get("latestSupportedTlsVersion") or "v1_2"
    if tls not in ("v1_0", "v1_1", "v1_2", "v1_3"):
        raise HttpError(400, "InvalidRequest", f"Invalid latestSupportedTlsVersion '{tls}'.")
    # Both URLs are validated before the subscription exists (webhooks.md).
    await _validate_endpoint(ctx.tenant, notification_url)
    if lifecycle_url:
        await _validate_endpoint(ctx.tenant, lifecycle_url)
    sub = Subscription(
        id=new_guid(),
        client_id=ctx.caller.client_id,
        resource=resource,
        change_type="updated",
        notification_url=notification_url,
        client_state=client_state,
        expiration=expiration,
        lifecycle_url=lifecycle_url,
        created_at=iso(),
        drive_id=drive.id,
        latest_tls=tls,
        # SharePoint/OneDrive for Business: permission changes are notified too (graph-api.md §2.18)
        include_security="includesecuritywebhooks" in (ctx.req.headers.get("prefer") or "").lower(),
    )
    ctx.state.add_subscription(sub)
    return json_resp(_subscription_json(ctx, sub), status=201)


async def list_subscriptions(ctx: Ctx) -> Resp:
    assert ctx.caller is not None
    value = [
        _subscription_json(ctx, s, with_context=False)
        for s in ctx.state.subscriptions(ctx.caller.client_id)
        if _live(s)
    ]
    return json_resp({"@odata.context": _odata_context(ctx, "subscriptions"), "value": value})


async def get_subscription(ctx: Ctx) -> Resp:
    return json_resp(_subscription_json(ctx, _own_subscription(ctx)))


async def update_subscription(ctx: Ctx) -> Resp:
    sub = _own_subscription(ctx)
    body = _body_object(ctx)
    if "lifecycleNotificationUrl" in body:
        raise HttpError(
            400,
            "InvalidRequest",
            "lifecycleNotificationUrl can only be set when the subscription is created.",
        )
    unknown = set(body) - {"expirationDateTime", "notificationUrl"}
    if unknown:
        raise HttpError(400, "InvalidRequest", f"Cannot update {', '.join(sorted(unknown))}.")
    st: State = ctx.state
    if "notificationUrl" in body:
        url = _check_notification_url(body["notificationUrl"], "notificationUrl")
        await _validate_endpoint(ctx.tenant, url)
        st.x("UPDATE subscriptions SET notification_url=? WHERE id=?", (url, sub.id))
    if "expirationDateTime" in body:
        st.renew_subscription(sub.id, _clamp_expiration(body["expirationDateTime"]))
    updated = st.subscription(sub.id)
    assert updated is not None
    return json_resp(_subscription_json(ctx, updated))


async def delete_subscription(ctx: Ctx) -> Resp:
    sub = _own_subscription(ctx)
    ctx.state.delete_subscription(sub.id)
    return empty(204)


async def reauthorize_subscription(ctx: Ctx) -> Resp:
    """Answer an authorization challenge: the paused notification flow resumes (204)."""
    sub = _own_subscription(ctx)
    ctx.state.challenge_subscription(sub.id, cleared=True)
    return empty(204)


# ---------------------------------------------------------------------- lifecycle notifications
#: The lifecycle events Graph sends for a drive subscription: only reauthorizationRequired
#: ("All resources"); subscriptionRemoved and missed are Outlook/Teams only (graph-api.md §2.18).
DRIVE_LIFECYCLE_EVENTS = ("reauthorizationRequired",)


async def require_reauthorization(tenant: Tenant, sub_id: str) -> dict[str, Any]:
    """What Graph does when the app's authorization must be checked again (the token behind the
    subscription about to expire, consent revoked, …): change notifications pause until the app
    calls ``/reauthorize`` or PATCHes a new expiration, and a ``reauthorizationRequired`` lifecycle
    notification goes to the lifecycleNotificationUrl — if the subscription has one; without it the
    app is never told and its notifications stay paused until it happens to renew.
    """
    sub = tenant.state.subscription(sub_id)
    if sub is None or not _live(sub):
        raise HttpError(404, "itemNotFound", f"There is no live subscription '{sub_id}'.")
    tenant.state.challenge_subscription(sub.id)
    outcome: dict[str, Any] = {"subscriptionId": sub.id, "lifecycleEvent": "reauthorizationRequired",
                               "paused": True, "lifecycleNotificationUrl": sub.lifecycle_url, "delivered": False}
    if sub.lifecycle_url:
        payload = {"value": [{
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": sub.expiration,
            "tenantId": tenant.tenant_id,
            "clientState": sub.client_state,
            "lifecycleEvent": "reauthorizationRequired",
        }]}
        outcome["delivered"] = await _post_notification(tenant, sub.lifecycle_url, payload)
    return outcome


async def _post_notification(tenant: Tenant, url: str,
                             payload: dict[str, Any] | Callable[[], dict[str, Any] | None]) -> bool:
    """POST a notification body, retried with back-off for RETRY_WINDOW seconds; delivered?

    ``payload`` may be a function, asked again before each attempt; None means nothing to send any
    more (the subscriptions went away meanwhile)."""
    deadline = asyncio.get_running_loop().time() + RETRY_WINDOW
    delay = RETRY_FIRST_DELAY
    while True:
        body = payload() if callable(payload) else payload
        if body is None:
            return False
        try:
            async with _client_for(tenant, url) as client:
                resp = await client.post(url, json=body, timeout=DELIVERY_TIMEOUT)
            if 200 <= resp.status_code < 300:
                return True
            reason = f"status {resp.status_code}"
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            reason = type(exc).__name__
        if asyncio.get_running_loop().time() + delay > deadline:
            log.warning("dropping change notification to %s after retries (%s)", url, reason)
            return False
        await asyncio.sleep(delay)
        delay *= 2


# ---------------------------------------------------------------------- change notifications
class _Notifier:
    """Per-tenant delivery: one pending flush per drive, coalescing changes for ``notification_delay``."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant_ref = weakref.ref(tenant)
        #: drive id → whether content changed (True) or only permissions (False), until the flush
        self.pending: dict[str, bool] = {}
        self.delivered = 0  # notifications accepted by receivers (for diagnostics)

    def touch(self, drive_id: str, *, security: bool = False) -> None:
        tenant = self.tenant_ref()
        if tenant is None:
            return
        if drive_id in self.pending:
            # a flush for this drive is already scheduled: this change joins it
            self.pending[drive_id] = self.pending[drive_id] or not security
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (seeding, offline scripts): nobody could be listening anyway
        self.pending[drive_id] = not security
        tenant.spawn(self._flush(drive_id))

    async def _flush(self, drive_id: str) -> None:
        tenant = self.tenant_ref()
        if tenant is None:
            return
        await asyncio.sleep(tenant.config.notification_delay)
        content = self.pending.pop(drive_id, True)  # later changes schedule their own flush
        subs = [s for s in tenant.state.subscriptions()
                if s.drive_id == drive_id and _flowing(s) and (content or s.include_security)]
        by_url: dict[str, list[Subscription]] = {}
        for sub in subs:
            by_url.setdefault(sub.notification_url, []).append(sub)
        for url, group in by_url.items():
            tenant.spawn(self._deliver(tenant, url, [s.id for s in group]))

    async def _deliver(self, tenant: Tenant, url: str, sub_ids: list[str]) -> None:
        def payload() -> dict[str, Any] | None:
            subs = [s for s in (tenant.state.subscription(i) for i in sub_ids) if s is not None and _flowing(s)]
            # deleted, expired or paused meanwhile: they get nothing
            return {"value": [_notification(tenant, s) for s in subs]} if subs else None

        if await _post_notification(tenant, url, payload):
            self.delivered += 1


def _notification(tenant: Tenant, sub: Subscription) -> dict[str, Any]:
    # Drive notifications carry no change detail (graph-api.md §2.18): the receiver calls delta.
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": sub.expiration,
        "tenantId": tenant.tenant_id,
        "clientState": sub.client_state,
        "changeType": "updated",
        "resource": sub.resource,
        "resourceData": None,
    }


_NOTIFIERS: weakref.WeakKeyDictionary[Tenant, _Notifier] = weakref.WeakKeyDictionary()


def notify_drive_change(tenant: Tenant, drive_id: str, *, security: bool = False) -> None:
    """Note a change in ``drive_id``; subscribers get one coalesced notification shortly after.

    ``Tenant.dispatch`` calls this after any request that changed content in the drive, or, with
    ``security``, only its permissions: then only subscriptions created with ``Prefer:
    includesecuritywebhooks`` are notified. It never blocks and never fails the caller's request.
    """
    notifier = _NOTIFIERS.get(tenant)
    if notifier is None:
        notifier = _NOTIFIERS[tenant] = _Notifier(tenant)
    notifier.touch(drive_id, security=security)


# ====================================================================== users and groups (§2.20)
_USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
_USER_ROLES = {
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "User.ReadBasic.All",
}
_GROUP_ROLES = {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
_MEMBER_ROLES = _GROUP_ROLES | {"GroupMember.Read.All", "GroupMember.ReadWrite.All"}
_FILTER_CLAUSE = re.compile(
    r"\s*(?:(?P<prop>\w+)\s+eq\s+'(?P<value>(?:[^']|'')*)'|startswith\(\s*(?P<sprop>\w+)"
    r"\s*,\s*'(?P<svalue>(?:[^']|'')*)'\s*\))\s*",
    re.IGNORECASE,
)


def _require_directory(ctx: Ctx, allowed: set[str]) -> None:
    if ctx.caller is None or not (ctx.caller.roles & allowed):
        raise HttpError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )


def _user_json(ctx: Ctx, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "businessPhones": [],
        "displayName": user["display_name"],
        "givenName": user["given_name"],
        "jobTitle": user["job_title"],
        "mail": user["mail"],
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": user["surname"],
        "userPrincipalName": user["upn"],
        "id": user["id"],
        "userType": user["user_type"],
        "department": user["department"],
        "country": user["country"],
        "accountEnabled": bool(user["account_enabled"]),
    }


def _group_json(ctx: Ctx, group: dict[str, Any]) -> dict[str, Any]:
    domain = ctx.state.meta("tenant_domain") or ""
    mail_enabled = bool(group["mail_enabled"])
    return {
        "id": group["id"],
        "deletedDateTime": None,
        "description": group["description"],
        "displayName": group["display_name"],
        "groupTypes": ["Unified"] if mail_enabled and not group["security_enabled"] else [],
        "mail": f"{group['mail_nickname']}@{domain}" if mail_enabled else None,
        "mailEnabled": mail_enabled,
        "mailNickname": group["mail_nickname"],
        "securityEnabled": bool(group["security_enabled"]),
        "visibility": None,
    }


def _shape(obj: dict[str, Any], select: str | None, default: tuple[str, ...] | None) -> dict[str, Any]:
    if select:
        wanted = [s.strip() for s in select.split(",") if s.strip()]
        lowered = {k.lower(): k for k in obj}
        return {lowered[w.lower()]: obj[lowered[w.lower()]] for w in wanted if w.lower() in lowered}
    if default is not None:
        return {k: obj[k] for k in default if k in obj}
    return obj


def _apply_filter(objs: list[dict[str, Any]], text: str | None, resource: str) -> list[dict[str, Any]]:
    """The ``$filter`` subset directory clients use: ``prop eq 'v'`` and ``startswith(prop,'v')``
    joined by one kind of ``and``/``or``."""
    if not text:
        return objs
    joiner = "or" if re.search(r"\s+or\s+", text, re.IGNORECASE) else "and"
    clauses = re.split(rf"\s+{joiner}\s+", text, flags=re.IGNORECASE)
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for clause in clauses:
        m = _FILTER_CLAUSE.fullmatch(clause)
        if m is None:
            raise HttpError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for resource '{resource}'.",
            )
        prop = m.group("prop") or m.group("sprop")
        value = (m.group("value") if m.group("prop") else m.group("svalue")).replace("''", "'").lower()
        exact = m.group("prop") is not None
        if not objs or prop.lower() not in {k.lower() for k in objs[0]}:
            raise HttpError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause "
                f"specified for property '{prop}' of resource "
                f"'{resource}'.",
            )

        def test(obj: dict[str, Any], prop: str = prop, value: str = value, exact: bool = exact) -> bool:
            actual = next((v for k, v in obj.items() if k.lower() == prop.lower()), None)
            text_value = str(actual).lower() if actual is not None else ""
            return text_value == value if exact else text_value.startswith(value)

        tests.append(test)
    combine = any if joiner == "or" else all
    return [o for o in objs if combine(t(o) for t in tests)]


def _page(
    ctx: Ctx, objs: list[dict[str, Any]], context: str, *, default_top: int = 100, max_top: int = 999
) -> dict[str, Any]:
    top_text = ctx.req.q("$top") or str(default_top)
    if not top_text.isdigit() or not 1 <= int(top_text) <= max_top:
        raise HttpError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{top_text}'. Must be between 1 and {max_top} inclusive.",
        )
    top = int(top_text)
    start = 0
    token = ctx.req.q("$skiptoken")
    if token:
        raw = _unb64url(token)
        if raw is None or not raw.startswith(b"X:") or not raw[2:].isdigit():
            raise HttpError(
                400, "Request_BadRequest", "The specified page token value has expired or is invalid."
            )
        start = int(raw[2:])
    page: dict[str, Any] = {"@odata.context": _odata_context(ctx, context)}
    count = ctx.req.q("$count")
    if count and count.lower() == "true":
        if (ctx.req.headers.get("consistencylevel") or "").lower() != "eventual":
            # $count on directory objects is an advanced query (group-list-members §2.20).
            raise HttpError(
                400,
                "Request_BadRequest",
                "$count is not currently supported without the header ConsistencyLevel: eventual.",
            )
        page["@odata.count"] = len(objs)
    if start + top < len(objs):
        query = {k: v for k, v in ctx.req.query.items() if k.lower().lstrip("$") != "skiptoken"}
        query["$skiptoken"] = _b64url(f"X:{start + top}".encode())
        page["@odata.nextLink"] = f"{ctx.req.base_url}{quote(ctx.req.path)}?{urlencode(query, safe='$(),')}"
    page["value"] = objs[start : start + top]
    return page


def _select_suffix(ctx: Ctx) -> str:
    select = ctx.req.q("$select")
    return f"({select})" if select else ""


async def list_users(ctx: Ctx) -> Resp:
    _require_directory(ctx, _USER_ROLES)
    users = _apply_filter([_user_json(ctx, u) for u in ctx.state.users()], ctx.req.q("$filter"), "User")
    select = ctx.req.q("$select")
    shaped = [_shape(u, select, _USER_DEFAULT) for u in users]
    return json_resp(_page(ctx, shaped, "users" + _select_suffix(ctx)))


async def get_user(ctx: Ctx) -> Resp:
    _require_directory(ctx, _USER_ROLES)
    user = ctx.state.user(ctx.params["user"])
    if user is None:
        raise HttpError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{ctx.params['user']}' does not exist or one "
            "of its queried reference-property objects are not present.",
        )
    body = _shape(_user_json(ctx, user), ctx.req.q("$select"), _USER_DEFAULT)
    return json_resp(
        {"@odata.context": _odata_context(ctx, "users" + _select_suffix(ctx) + "/$entity"), **body}
    )


async def list_groups(ctx: Ctx) -> Resp:
    _require_directory(ctx, _GROUP_ROLES)
    groups = _apply_filter([_group_json(ctx, g) for g in ctx.state.groups()], ctx.req.q("$filter"), "Group")
    shaped = [_shape(g, ctx.req.q("$select"), None) for g in groups]
    return json_resp(_page(ctx, shaped, "groups" + _select_suffix(ctx)))


def _group(ctx: Ctx) -> dict[str, Any]:
    group = ctx.state.group(ctx.params["group"])
    if group is None:
        raise HttpError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{ctx.params['group']}' does not exist or one "
            "of its queried reference-property objects are not present.",
        )
    return dict(group)


async def get_group(ctx: Ctx) -> Resp:
    _require_directory(ctx, _GROUP_ROLES)
    body = _shape(_group_json(ctx, _group(ctx)), ctx.req.q("$select"), None)
    return json_resp(
        {"@odata.context": _odata_context(ctx, "groups" + _select_suffix(ctx) + "/$entity"), **body}
    )


def _member_objects(ctx: Ctx, group_id: str, *, transitive: bool) -> list[dict[str, Any]]:
    st: State = ctx.state
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    queue = [group_id]
    while queue:
        current = queue.pop(0)
        for member_id in st.group_member_ids(current):
            if member_id in seen:
                continue
            seen.add(member_id)
            user = st.user(member_id)
            if user is not None and user["id"] == member_id:
                result.append({"@odata.type": "#microsoft.graph.user", **_user_json(ctx, user)})
                continue
            group = st.group(member_id)
            if group is not None:
                result.append({"@odata.type": "#microsoft.graph.group", **_group_json(ctx, group)})
                if transitive:
                    queue.append(member_id)
    return result


async def _members(ctx: Ctx, transitive: bool) -> Resp:
    _require_directory(ctx, _MEMBER_ROLES)
    group = _group(ctx)
    members = _apply_filter(
        _member_objects(ctx, group["id"], transitive=transitive), ctx.req.q("$filter"), "DirectoryObject"
    )
    select = ctx.req.q("$select")
    shaped = []
    for member in members:
        default = _USER_DEFAULT if member["@odata.type"].endswith("user") else None
        shaped.append({"@odata.type": member["@odata.type"], **_shape(member, select, default)})
    context = "users" + _select_suffix(ctx) if select else "directoryObjects"
    return json_resp(_page(ctx, shaped, context))


async def list_members(ctx: Ctx) -> Resp:
    return await _members(ctx, transitive=False)


async def list_transitive_members(ctx: Ctx) -> Resp:
    return await _members(ctx, transitive=True)


# ====================================================================== registration
def register(router: Router) -> None:
    def add(
        method: str, pattern: str, fn: Callable[[Ctx], Awaitable[Resp]], name: str, cost: int | None
    ) -> None:
        router.add(method, pattern, fn, name=f"graph.{name}", surface="graph", cost=cost)

    perms = _ITEM + r"/permissions"
    add("GET", perms, list_permissions, "permissions.list", 5)
    add("GET", perms + r"/(?P<perm>[^/]+)", get_permission, "permissions.get", 5)
    add("DELETE", perms + r"/(?P<perm>[^/]+)", delete_permission, "permissions.delete", 5)
    add("POST", _ITEM + r"/invite", invite, "permissions.invite", 5)
    add("POST", _ITEM + r"/createLink", create_link, "permissions.createLink", 5)
    add("GET", _ITEM + r"/listItem", get_drive_list_item, "listItem.get", 1)
    add("GET", _ITEM + r"/listItem/fields", get_drive_list_item_fields, "listItem.fields.get", 1)
    add("PATCH", _ITEM + r"/listItem/fields", update_drive_list_item_fields, "listItem.fields.update", 2)

    # Site grant ids are base64 (they may hold '/' once percent-decoded), so the id takes the rest.
    add("GET", _SITE + r"/permissions", list_site_permissions, "sitePermissions.list", 5)
    add("POST", _SITE + r"/permissions", create_site_permission, "sitePermissions.create", 5)
    add("GET", _SITE + r"/permissions/(?P<perm>.+)", get_site_permission, "sitePermissions.get", 5)
    add("PATCH", _SITE + r"/permissions/(?P<perm>.+)", update_site_permission, "sitePermissions.update", 5)
    add("DELETE", _SITE + r"/permissions/(?P<perm>.+)", delete_site_permission, "sitePermissions.delete", 5)

    lists = _SITE + r"/lists"
    one = lists + r"/(?P<list>[^/]+)"
    add("GET", lists, list_lists, "lists.list", 2)
    add("POST", lists, create_list, "lists.create", 2)
    add("GET", one, get_list, "lists.get", 1)
    add("GET", one + r"/items", list_list_items, "listItems.list", 2)
    add("POST", one + r"/items", create_list_item, "listItems.create", 2)
    add("GET", one + r"/items/(?P<n>[^/]+)", get_list_item, "listItems.get", 1)
    add("DELETE", one + r"/items/(?P<n>[^/]+)", delete_list_item, "listItems.delete", 2)
    add("GET", one + r"/items/(?P<n>[^/]+)/fields", get_list_item_fields, "listItems.fields.get", 1)
    add("PATCH", one + r"/items/(?P<n>[^/]+)/fields", update_list_item_fields, "listItems.fields.update", 2)

    # The batch itself costs nothing: each sub-request is charged (and throttled) on its own.
    add("POST", _V + r"/\$batch", batch, "batch", None)

    add("POST", _V + r"/subscriptions", create_subscription, "subscriptions.create", 1)
    add("GET", _V + r"/subscriptions", list_subscriptions, "subscriptions.list", 1)
    add("GET", _V + r"/subscriptions/(?P<sub>[^/]+)", get_subscription, "subscriptions.get", 1)
    add("PATCH", _V + r"/subscriptions/(?P<sub>[^/]+)", update_subscription, "subscriptions.update", 1)
    add("DELETE", _V + r"/subscriptions/(?P<sub>[^/]+)", delete_subscription, "subscriptions.delete", 1)
    add(
        "POST",
        _V + r"/subscriptions/(?P<sub>[^/]+)/reauthorize",
        reauthorize_subscription,
        "subscriptions.reauthorize",
        1,
    )

    add("GET", _V + r"/users", list_users, "users.list", 2)
    add("GET", _V + r"/users/(?P<user>[^/]+)", get_user, "users.get", 1)
    add("GET", _V + r"/groups", list_groups, "groups.list", 2)
    add("GET", _V + r"/groups/(?P<group>[^/]+)", get_group, "groups.get", 1)
    add("GET", _V + r"/groups/(?P<group>[^/]+)/members", list_members, "groups.members", 2)
    add(
        "GET",
        _V + r"/groups/(?P<group>[^/]+)/transitiveMembers",
        list_transitive_members,
        "groups.transitiveMembers",
        2,
    )


__all__ = ["notify_drive_change", "register", "resolve_item"]
