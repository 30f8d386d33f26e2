"""Graph v1.0 drive surface of the local tenant: sites, drives, driveItems, content, upload
sessions, versions, delta and check-in/out (graph-api.md §1, §2.1–2.9, §2.14).

It sits between the router (``emulator.http``) and the model (``emulator.state``): handlers
resolve a Graph address to State objects, authorize through ``app.require_site`` and render
State objects in Microsoft's JSON shapes (checked against ``graph-examples/``). Two routes take
no bearer token because Graph pre-authorizes them with a secret in the URL: the upload URL of an
upload session (``/_upload/{secret}``) and the short-lived ``@microsoft.graph.downloadUrl``
(``/_layouts/15/download.aspx?tempauth=…``), as SharePoint serves them.

Change notifications are not scheduled here: ``Tenant.dispatch`` notices every change of the
change sequence and schedules them for all surfaces alike.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from emulator.app import require_site
from emulator.http import Ctx, HttpError, Req, Resp, Router, empty, json_resp, odata_args
from emulator.state import (
    Drive,
    Item,
    ListRecord,
    Site,
    State,
    StateError,
    UploadSession,
    Version,
    check_name,
    iso,
    parse_iso,
    utcnow,
)

# ---------------------------------------------------------------------------------------- limits
DEFAULT_PAGE = 200  # children default page size (driveitem-list-children.md)
MAX_PAGE = 999
FRAGMENT_UNIT = 320 * 1024  # upload fragments are multiples of 320 KiB (createuploadsession.md)
MAX_FRAGMENT = 60 * 1024 * 1024  # "must be less than 60 MiB"
MAX_FILE = 250 * 1024 ** 3  # SharePoint's 250 GB file size limit
QUOTA_TOTAL = 25 * 1024 ** 4  # a site collection's default 25 TB storage
SESSION_LIFETIME = timedelta(hours=1)
DOWNLOAD_LIFETIME = 3600  # downloadUrl "is only valid for a short period" (1 h, graph-api.md §1)
DELTA_MAX_AGE = 30 * 24 * 3600  # users saw tokens stop working after ~30 days (anchors-sync-notify §0)

# ---------------------------------------------------------------------------------------- addresses
#: A site inside a longer path: ``root``, ``host:/server/relative:`` (closed by a colon) or an id.
SITE_REF = r"(?:root|[^/:]+:/[^:]*:|[^/:]+)"
#: A site at the end of a path: the path form may omit its closing colon.
SITE_REF_END = r"(?:root|[^/:]+:/[^:]*:?|[^/:]+)"
DRIVE_PREFIX = (r"/v1\.0/(?:drives/(?P<drive>[^/]+)|sites/(?P<site>" + SITE_REF
                + r")/drive(?:s/(?P<sdrive>[^/]+))?)")
#: An item followed by a further segment: a path part must be closed with ``:``.
ITEM_MID = r"/(?P<addr>(?:root|items/[^/:]+)(?::/[^:]*:)?)"
#: An item at the end of the URL: ``root:/A/b.txt`` with or without the closing colon.
ITEM_END = r"/(?P<addr>(?:root|items/[^/:]+)(?::(?:/[^:]*)?:?)?)"
_ADDR = re.compile(r"(?:root|items/(?P<item>[^/:]+))(?::(?P<path>/[^:]*)?:?)?", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Address:
    """A parsed driveItem address: a base item (None for the root) and a path below it."""

    base_id: str | None
    path: str  # "" or "/A/b.txt", relative to the base item


def parse_address(addr: str) -> Address:
    """Parse ``root``, ``root:/A/B:``, ``items/{id}``, ``items/{id}:/rel:`` and the percent-decoded
    ``items/root:/A/B.txt:`` msgraph-sdk sends (``by_drive_item_id("root:/A/B.txt:")``)."""
    m = _ADDR.fullmatch(addr.strip())
    if m is None:
        raise HttpError(400, "invalidRequest", f"Invalid driveItem address '{addr}'.")
    item = m.group("item")
    base = None if item is None or item.lower() == "root" else item
    raw = (m.group("path") or "").rstrip("/")
    parts = [p for p in raw.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise HttpError(400, "invalidRequest", f"Invalid path '{raw}'.")
    return Address(base, "".join("/" + p for p in parts))


def resolve_site(state: State, ref: str) -> Site:
    """A site by ``root``, ``{host}``, ``{host}:/{server-relative-path}[:]``, ``{host},{guid},{guid}``
    or a bare site-collection GUID; 404 ``itemNotFound`` otherwise (graph-api.md §2.1)."""
    ref = ref.strip()
    site: Site | None
    host: str | None = None
    if ref.lower() == "root":
        site = state.site("")
    elif ":" in ref:
        host, _, path = ref.partition(":")
        site = state.site(path.rstrip(":").rstrip("/"))
    elif "," in ref:
        parts = ref.split(",")
        host = parts[0]
        site = state.site(ref) or (state.site_by_guid(parts[1]) if len(parts) >= 2 else None)
        if site is not None and len(parts) >= 3 and parts[2].lower() != site.web_guid.lower():
            site = None
    elif re.fullmatch(r"\{?[0-9a-fA-F-]{36}\}?", ref):
        site = state.site_by_guid(ref.strip("{}"))
    else:
        host, site = ref, state.site("")
    if site is None or (host is not None and host.lower() != site.hostname.lower()):
        raise HttpError(404, "itemNotFound", "Requested site could not be found")
    return site


# ---------------------------------------------------------------------------------------- signed tokens
class TokenCodec:
    """Opaque, HMAC-signed tokens (base64url JSON ``.`` signature) so forged ones are refused."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def for_state(cls, state: State) -> TokenCodec:
        key = state.meta("graph_drive_token_key")
        if not key:
            key = secrets.token_hex(32)
            state.set_meta("graph_drive_token_key", key)
        return cls(bytes.fromhex(key))

    def encode(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest()[:18])}"

    def decode(self, token: str, use: str) -> dict[str, Any]:
        """The payload of a token made for ``use``; ``ValueError`` when malformed or forged."""
        body, dot, sig = token.strip().partition(".")
        if not dot or not body:
            raise ValueError("not a token")
        expected = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest()[:18])
        if not hmac.compare_digest(expected, sig):
            raise ValueError("bad signature")
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise ValueError("bad payload") from exc
        if not isinstance(payload, dict) or payload.get("u") != use:
            raise ValueError("wrong token kind")
        return payload


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ---------------------------------------------------------------------------------------- rendering
class View:
    """One request's view of a drive: resolves addresses and renders Graph JSON (with caches)."""

    def __init__(self, ctx: Ctx, site: Site, drive: Drive) -> None:
        self.ctx, self.site, self.drive = ctx, site, drive
        self.state: State = ctx.state
        self.base = ctx.req.base_url.rstrip("/")
        lst = self.state.get_list(site.id, drive.list_id)
        assert isinstance(lst, ListRecord)
        self.library = lst
        self.library_url = self.base + quote(f"{site.server_relative_url}/{lst.url_name}")
        self._people: dict[str, dict[str, Any]] = {}

    # ---- resolution
    def item(self, addr: str) -> Item:
        found = self.find(parse_address(addr))
        if found is None:
            raise HttpError(404, "itemNotFound", "The resource could not be found.")
        return found

    def base_item(self, address: Address) -> Item:
        if address.base_id is None:
            return self.state.root(self.drive.id)
        base = self.state.item(self.drive.id, address.base_id)
        if base is None:
            raise HttpError(404, "itemNotFound", "Item not found")
        return base

    def find(self, address: Address) -> Item | None:
        base = self.base_item(address)
        if not address.path:
            return base
        if not base.is_folder:
            return None
        return self.state.item_by_path(self.drive.id, base.path + address.path)

    # ---- JSON
    def identity(self, name: str) -> dict[str, Any]:
        """createdBy/lastModifiedBy: app-only writes show the app and "SharePoint App" as user."""
        if name not in self._people:
            app = self.state.app_by_display_name(name)
            if app is not None:
                self._people[name] = {"application": {"id": app.client_id, "displayName": app.display_name},
                                      "user": {"displayName": "SharePoint App"}}
            else:
                user = self.state.user(name)
                self._people[name] = {"user": {"displayName": name} | ({"email": user["mail"], "id": user["id"]}
                                                                        if user else {})}
        return self._people[name]

    def parent_ref(self, item: Item, *, with_path: bool) -> dict[str, Any]:
        ref: dict[str, Any] = {"driveType": "documentLibrary", "driveId": self.drive.id}
        if item.parent_id is not None:
            ref["id"] = item.parent_id
            if with_path:
                ref["path"] = f"/drives/{self.drive.id}/root:{item.path.rsplit('/', 1)[0]}"
        ref["siteId"] = self.site.id
        return ref

    def item_json(self, item: Item, *, delta: bool = False, select: set[str] | None = None) -> dict[str, Any]:
        if item.deleted:
            # ODB tombstones: no name, no cTag (graph-api.md §2.8).
            gone: dict[str, Any] = {"id": item.id, "deleted": {"state": "deleted"},
                                    "parentReference": self.parent_ref(item, with_path=False)}
            gone["folder" if item.is_folder else "file"] = {}
            return apply_select(gone, select)
        data: dict[str, Any] = {}
        if not item.is_folder:
            data["@microsoft.graph.downloadUrl"] = self.download_url(item)
        data |= {
            "createdBy": self.identity(item.created_by),
            "createdDateTime": item.created_at,
            "eTag": item.etag,
            "id": item.id,
            "lastModifiedBy": self.identity(item.modified_by),
            "lastModifiedDateTime": item.modified_at,
            "name": item.name,  # a SharePoint library's root folder is named "root"
            "parentReference": self.parent_ref(item, with_path=not delta),
            "webUrl": self.library_url + quote(item.path),
        }
        if not item.is_folder and not delta:
            data["cTag"] = item.ctag  # SharePoint omits cTag for folders, and in delta (graph-api.md §1, §2.8)
        if item.description:
            data["description"] = item.description
        data["fileSystemInfo"] = {"createdDateTime": item.created_at, "lastModifiedDateTime": item.modified_at}
        if item.is_folder:
            data["folder"] = {"childCount": self.state.child_count(item)}
            data["size"] = self.state.folder_size(item)
        else:
            data["file"] = {"mimeType": item.mime or guess_mime(item.name),
                            # quickXorHash only: Graph's hashes resource marks sha256Hash "isn't supported".
                            "hashes": {"quickXorHash": item.quick_xor or ""}}
            data["size"] = item.size
        if item.is_root:
            data["root"] = {}
        if select and "sharepointids" in select:
            data["sharepointIds"] = {"listId": self.library.id, "listItemId": str(item.list_item_id),
                                     "listItemUniqueId": item.uid, "siteId": self.site.site_guid,
                                     "siteUrl": self.base + quote(self.site.server_relative_url),
                                     "webId": self.site.web_guid}
        return apply_select(data, select)

    def download_url(self, item: Item, major: int | None = None) -> str:
        client = self.ctx.caller.client_id if self.ctx.caller else ""
        token = TokenCodec.for_state(self.state).encode(
            {"u": "dl", "d": self.drive.id, "i": item.id, "v": major, "c": client,
             "e": int(time.time()) + DOWNLOAD_LIFETIME})
        return f"{self.base}/_layouts/15/download.aspx?" + urlencode({"UniqueId": item.uid, "tempauth": token})

    def context(self, fragment: str) -> str:
        return f"{self.base}/v1.0/$metadata#{fragment}"


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


_DRIVEITEM_PROPERTIES = {
    "id", "name", "etag", "ctag", "size", "createddatetime", "lastmodifieddatetime", "weburl", "createdby",
    "lastmodifiedby", "parentreference", "folder", "file", "root", "filesysteminfo", "deleted", "description",
    "@microsoft.graph.downloadurl", "content.downloadurl", "sharepointids", "listitem", "permissions",
    "children", "thumbnails", "versions", "shared", "specialfolder", "package", "image", "photo", "video",
    "audio", "location", "remoteitem", "searchresult", "malware", "publication", "bundle", "webdavurl",
    "createdbyuser", "lastmodifiedbyuser", "analytics", "subscriptions", "retentionlabel",
}


def parse_select(req: Req) -> set[str] | None:
    raw = req.q("$select")
    if not raw:
        return None
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    for name in names:
        if name not in _DRIVEITEM_PROPERTIES:
            raise HttpError(400, "invalidRequest",
                            f"Could not find a property named '{name}' on type 'microsoft.graph.driveItem'.")
    return names


def apply_select(data: dict[str, Any], select: set[str] | None) -> dict[str, Any]:
    """``$select``: keep the chosen properties; ``id`` and the ``deleted`` facet always stay."""
    if not select:
        return data
    keep = select | {"id", "deleted"}
    if "content.downloadurl" in select:
        keep.add("@microsoft.graph.downloadurl")
    return {k: v for k, v in data.items() if k.lower() in keep}


def parse_top(req: Req, default: int = DEFAULT_PAGE) -> int:
    raw = req.q("$top")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise HttpError(400, "invalidRequest", f"Invalid $top value '{raw}'.") from exc
    if value < 1:
        raise HttpError(400, "invalidRequest", "$top must be a positive integer.")
    return min(value, MAX_PAGE)  # larger pages are served in pages of at most 999, with a nextLink


def conflict_behavior(req: Req, body: dict[str, Any] | None, default: str) -> str:
    """``@microsoft.graph.conflictBehavior`` from the body or the URL (graph-api.md §1: accept both)."""
    value: Any = None
    if body:
        value = next((v for k, v in body.items() if k.lower() == "@microsoft.graph.conflictbehavior"), None)
    if value is None:
        value = next((v for k, v in req.query.items() if k.lower() == "@microsoft.graph.conflictbehavior"), None)
    behavior = str(value or default).lower()
    if behavior not in ("fail", "replace", "rename"):
        raise HttpError(400, "invalidRequest", f"Invalid conflictBehavior '{behavior}'.")
    return behavior


def _json_body(req: Req) -> dict[str, Any]:
    ctype = (req.headers.get("content-type") or "").lower()
    if req.body and "json" not in ctype:
        raise HttpError(415, "invalidRequest", "Content-Type must be application/json.")
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "invalidRequest", "The request body must be a JSON object.")
    return body


# ---------------------------------------------------------------------------------------- access helpers
def _site(ctx: Ctx, need: str) -> Site:
    site = resolve_site(ctx.state, ctx.params["site"])
    require_site(ctx, site.id, need)
    return site


def _view(ctx: Ctx, need: str) -> View:
    """The drive addressed by ``drives/{d}``, ``sites/{s}/drive`` or ``sites/{s}/drives/{d}``."""
    state: State = ctx.state
    drive: Drive | None
    if "drive" in ctx.params:
        drive = state.drive(ctx.params["drive"])
        if drive is None:
            raise HttpError(404, "itemNotFound", "The drive could not be found.")
        site = state.site(drive.site_id)
        assert site is not None
        require_site(ctx, site.id, need)
    else:
        site = _site(ctx, need)
        if "sdrive" in ctx.params:
            drive = state.drive(ctx.params["sdrive"])
            if drive is None or drive.site_id != site.id:
                raise HttpError(404, "itemNotFound", "The drive could not be found.")
        else:
            drive = default_drive(state, site)
    return View(ctx, site, drive)


def default_drive(state: State, site: Site) -> Drive:
    """The site's default library: "Shared Documents" if present, else its first library."""
    drives = state.drives(site.id)
    for drive in drives:
        lst = state.get_list(site.id, drive.list_id)
        if lst is not None and lst.url_name.lower() == "shared documents":
            return drive
    if not drives:
        raise HttpError(404, "itemNotFound", "The site has no document library.")
    return drives[0]


def _check_lock(view: View, item: Item) -> None:
    holder = view.state.checkout_holder(item)
    if holder and holder != view.ctx.by:
        raise HttpError(423, "notAllowed", f"The file \"{item.path}\" is checked out for editing by {holder}.",
                        inner_code="resourceLocked")


def _not_modified(req: Req, item: Item) -> bool:
    tag = (req.headers.get("if-none-match") or "").strip()
    return bool(tag) and (tag == "*" or tag in (item.etag, item.ctag))


# ---------------------------------------------------------------------------------------- sites and drives
def site_json(ctx: Ctx, site: Site) -> dict[str, Any]:
    base = ctx.req.base_url.rstrip("/")
    modified = max([site.created_at, *(lst.modified_at for lst in ctx.state.lists(site.id))])
    data: dict[str, Any] = {
        "@odata.context": f"{base}/v1.0/$metadata#sites/$entity",
        "createdDateTime": site.created_at,
        "description": site.description,
        "id": site.id,
        "lastModifiedDateTime": modified,
        "name": site.server_relative_url.rsplit("/", 1)[-1] or site.title,
        "webUrl": base + quote(site.server_relative_url or "/"),
        "displayName": site.title,
        "siteCollection": {"hostname": site.hostname},
    }
    if not site.server_relative_url:
        data["root"] = {}
    return data


def drive_json(ctx: Ctx, site: Site, drive: Drive) -> dict[str, Any]:
    view = View(ctx, site, drive)
    used = ctx.state.drive_used_bytes(drive.id)
    return {
        "createdDateTime": drive.created_at,
        "description": view.library.description,
        "id": drive.id,
        "lastModifiedDateTime": view.library.modified_at,
        "name": drive.name,
        "webUrl": view.library_url,
        "driveType": "documentLibrary",
        "createdBy": {"user": {"displayName": "System Account"}},
        "owner": {"user": {"displayName": "System Account"}},
        "quota": {"deleted": 0, "remaining": QUOTA_TOTAL - used, "state": "normal", "total": QUOTA_TOTAL,
                  "used": used},
    }


async def get_site(ctx: Ctx) -> Resp:
    return json_resp(site_json(ctx, _site(ctx, "read")))


async def list_drives(ctx: Ctx) -> Resp:
    site = _site(ctx, "read")
    base = ctx.req.base_url.rstrip("/")
    return json_resp({"@odata.context": f"{base}/v1.0/$metadata#Collection(drive)",
                      "value": [drive_json(ctx, site, d) for d in ctx.state.drives(site.id)]})


async def get_drive(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    return json_resp({"@odata.context": view.context("drives/$entity")} | drive_json(ctx, view.site, view.drive))


# ---------------------------------------------------------------------------------------- items
async def get_item(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    item = view.item(ctx.params["addr"])
    if _not_modified(ctx.req, item):
        return empty(304, [("etag", item.etag)])
    body = {"@odata.context": view.context(f"drives('{view.drive.id}')/items/$entity")}
    return json_resp(body | view.item_json(item, select=parse_select(ctx.req)), headers=[("etag", item.etag)])


async def list_children(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    folder = view.item(ctx.params["addr"])
    if _not_modified(ctx.req, folder):
        # The folder's eTag does not change for child-derived properties (driveitem.md), so a
        # matching If-None-Match is answered 304 even if children changed: use delta for that.
        return empty(304)
    select, top = parse_select(ctx.req), parse_top(ctx.req)
    order = (ctx.req.q("$orderby") or "name").strip().lower().split()
    field, desc = (order[0] if order else "name"), (len(order) > 1 and order[1] == "desc")
    keys: dict[str, Callable[[Item], Any]] = {
        "name": lambda i: i.name.lower(), "lastmodifieddatetime": lambda i: i.modified_at,
        "createddatetime": lambda i: i.created_at, "size": lambda i: i.size}
    if field not in keys or (len(order) > 1 and order[1] not in ("asc", "desc")) or len(order) > 2:
        raise HttpError(400, "invalidRequest", f"Ordering by '{' '.join(order)}' is not supported.")
    skip = ctx.req.q("$skiptoken")
    try:
        position = json.loads(base64.urlsafe_b64decode(skip + "=" * (-len(skip) % 4))) if skip else {}
        assert isinstance(position, dict)
    except (ValueError, AssertionError, binascii.Error) as exc:
        raise HttpError(400, "invalidRequest", "Invalid $skiptoken.") from exc
    if field == "name" and not desc:
        # Keyset paging by name: stable under inserts and deletes elsewhere in the folder.
        rows = ctx.state.children(folder, after_name=position.get("a"), limit=top + 1)
        more = len(rows) > top
        page = rows[:top]
        token = {"a": page[-1].name} if more and page else None
    else:
        ordered = sorted(ctx.state.children(folder, limit=1_000_000), key=keys[field], reverse=desc)
        offset = int(position.get("o", 0))
        page = ordered[offset:offset + top]
        token = {"o": offset + top} if offset + top < len(ordered) else None
    body: dict[str, Any] = {"@odata.context": view.context(f"drives('{view.drive.id}')/items('{folder.id}')/children"),
                            "value": [view.item_json(i, select=select) for i in page]}
    if token is not None:
        query = {k: v for k, v in ctx.req.query.items() if k.lower().lstrip("$") != "skiptoken"}
        query["$skiptoken"] = _b64(json.dumps(token).encode())
        body["@odata.nextLink"] = view.base + quote(ctx.req.path, safe="/:@!$&'()*+,;=-._~") + "?" + urlencode(query)
    return json_resp(body)


async def create_child(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    parent = view.item(ctx.params["addr"])
    body = _json_body(ctx.req)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HttpError(400, "invalidRequest", "The 'name' property is required.")
    if "folder" not in body:
        raise HttpError(400, "invalidRequest", "Only folders can be created with POST children; "
                        "upload files with PUT …/content or an upload session.")
    if not parent.is_folder:
        raise HttpError(400, "invalidRequest", "The parent item is not a folder.")
    conflict = conflict_behavior(ctx.req, body, "fail")
    folder = ctx.state.create_folder(parent, name, by=ctx.by, conflict=conflict)
    return json_resp({"@odata.context": view.context(f"drives('{view.drive.id}')/items/$entity")}
                     | view.item_json(folder), status=201)


def _ensure_folders(state: State, base: Item, parts: list[str], by: str) -> Item:
    """Path uploads create missing parent folders (OneDrive/onedrive-api-docs#83: PUT upserts)."""
    current = base
    for part in parts:
        child = state.child_named(current, part)
        if child is None:
            child = state.create_folder(current, part, by=by)
        elif not child.is_folder:
            raise HttpError(409, "nameAlreadyExists", f"'{child.path}' is a file, not a folder.")
        current = child
    return current


async def put_content(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    address = parse_address(ctx.params["addr"])
    data = ctx.req.body
    if len(data) > ctx.tenant.config.max_put_bytes:
        raise HttpError(413, "invalidRequest", f"The file exceeds the {ctx.tenant.config.max_put_bytes} byte limit "
                        "of a simple upload; use an upload session.", inner_code="maxFileSizeExceeded")
    if_match = ctx.req.headers.get("if-match")
    # Both published examples (new and replace) answer 201 Created (graph-examples
    # driveitem-put-content-*.json); graph-api.md §2.5 follows them, so replace is 201 too.
    if not address.path:
        item = view.base_item(address)
        if item.is_folder:
            raise HttpError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
        _check_lock(view, item)
        updated = ctx.state.overwrite(item, data, by=ctx.by, if_match=if_match)
        return json_resp({"@odata.context": view.context(f"drives('{view.drive.id}')/items/$entity")}
                         | view.item_json(updated), status=201)
    base = view.base_item(address)
    if not base.is_folder:
        raise HttpError(400, "invalidRequest", "The parent item is not a folder.")
    *dirs, name = address.path.strip("/").split("/")
    conflict = conflict_behavior(ctx.req, None, "replace")
    with ctx.state.transaction():
        existing = view.find(address)
        if existing is not None and existing.is_folder:
            raise HttpError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
        if existing is not None and conflict == "replace":
            _check_lock(view, existing)
        parent = _ensure_folders(ctx.state, base, dirs, ctx.by)
        item, _created = ctx.state.put_file(parent, name, data, by=ctx.by, conflict=conflict, mime=guess_mime(name),
                                            if_match=if_match)
    return json_resp({"@odata.context": view.context(f"drives('{view.drive.id}')/items/$entity")}
                     | view.item_json(item), status=201)


async def get_content(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    item = view.item(ctx.params["addr"])
    if item.is_folder:
        raise HttpError(400, "invalidRequest", "A folder has no content to download.")
    if _not_modified(ctx.req, item):
        return empty(304)
    # graph-api.md §1: GET …/content answers 302 to the pre-authenticated downloadUrl.
    return empty(302, [("location", view.download_url(item))])


async def patch_item(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    item = view.item(ctx.params["addr"])
    body = _json_body(ctx.req)
    _check_lock(view, item)
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise HttpError(400, "invalidRequest", "'name' must be a string.")
    new_parent: Item | None = None
    ref = body.get("parentReference")
    if isinstance(ref, dict) and (ref.get("id") or ref.get("path")):
        if ref.get("driveId") and ref["driveId"] != view.drive.id:
            raise HttpError(400, "notSupported", "Moving an item to another drive is not supported; copy it.")
        if ref.get("id"):
            new_parent = ctx.state.item(view.drive.id, ref["id"])
        else:
            path = str(ref["path"])
            if "root:" not in path:
                raise HttpError(400, "invalidRequest", f"Invalid parentReference path '{path}'.")
            new_parent = ctx.state.item_by_path(view.drive.id, path.split("root:", 1)[1])
        if new_parent is None:
            raise HttpError(404, "itemNotFound", "The destination folder could not be found.")
    description = body.get("description")
    if name is None and new_parent is None and description is None:
        return json_resp(view.item_json(item))  # nothing to change: Graph answers the item as is
    updated = ctx.state.update_item(item, by=ctx.by, name=name, new_parent=new_parent,
                                    description=None if description is None else str(description),
                                    conflict=conflict_behavior(ctx.req, body, "fail"),
                                    if_match=ctx.req.headers.get("if-match"))
    return json_resp({"@odata.context": view.context(f"drives('{view.drive.id}')/items/$entity")}
                     | view.item_json(updated))


async def delete_item(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    item = view.item(ctx.params["addr"])
    _check_lock(view, item)
    ctx.state.delete_item(item, by=ctx.by, if_match=ctx.req.headers.get("if-match"))
    return empty(204)


# ---------------------------------------------------------------------------------------- versions
def _version_json(view: View, v: Version) -> dict[str, Any]:
    return {"id": v.label, "lastModifiedBy": view.identity(v.modified_by), "lastModifiedDateTime": v.modified_at,
            "size": v.size}


def _version(view: View, item: Item, label: str) -> Version:
    if item.is_folder:
        raise HttpError(400, "invalidRequest", "Folders have no versions.")
    m = re.fullmatch(r"(\d+)(?:\.0)?", label)
    major = item.major if label.lower() == "current" else int(m.group(1)) if m else -1
    for v in view.state.versions(item):
        if v.major == major:
            return v
    raise HttpError(404, "itemNotFound", f"The version '{label}' could not be found.")


async def list_versions(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    item = view.item(ctx.params["addr"])
    if item.is_folder:
        raise HttpError(400, "invalidRequest", "Folders have no versions.")
    return json_resp({"@odata.context": view.context(f"drives('{view.drive.id}')/items('{item.id}')/versions"),
                      "value": [_version_json(view, v) for v in ctx.state.versions(item)]})


async def get_version(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    item = view.item(ctx.params["addr"])
    version = _version(view, item, ctx.params["version"])
    return json_resp({"@odata.context": view.context(
        f"drives('{view.drive.id}')/items('{item.id}')/versions/$entity")} | _version_json(view, version))


async def get_version_content(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    item = view.item(ctx.params["addr"])
    version = _version(view, item, ctx.params["version"])
    return empty(302, [("location", view.download_url(item, version.major))])


async def restore_version(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    item = view.item(ctx.params["addr"])
    version = _version(view, item, ctx.params["version"])
    _check_lock(view, item)
    ctx.state.restore_version(item, version.major, by=ctx.by)
    return empty(204)  # driveitemversion-restore.md: 204 No Content


# ---------------------------------------------------------------------------------------- check in / out
async def checkout(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    item = view.item(ctx.params["addr"])
    if item.is_folder:
        raise HttpError(400, "invalidRequest", "Only files can be checked out.")
    _check_lock(view, item)
    ctx.state.set_checkout(item, ctx.by)
    return empty(204)


async def checkin(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    item = view.item(ctx.params["addr"])
    body = _json_body(ctx.req)
    if body.get("checkInAs") not in (None, "", "published"):
        raise HttpError(400, "invalidRequest", "checkInAs must be 'published' or unspecified.")
    holder = ctx.state.checkout_holder(item)
    if not holder:
        raise HttpError(400, "invalidRequest", f"The file \"{item.path}\" is not checked out.")
    _check_lock(view, item)
    ctx.state.set_checkout(item, None)
    return empty(204)


async def discard_checkout(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    item = view.item(ctx.params["addr"])
    if not ctx.state.checkout_holder(item):
        raise HttpError(400, "invalidRequest", f"The file \"{item.path}\" is not checked out.")
    _check_lock(view, item)
    ctx.state.set_checkout(item, None)
    return empty(204)


# ---------------------------------------------------------------------------------------- delta
@dataclasses.dataclass(frozen=True)
class DeltaPosition:
    """Where a delta enumeration stands: ``snapshot`` phase (the live items at or below ``seq``, in
    the order fixed when the enumeration began, ``snapshot`` its id — None until the first page —
    and ``done`` positions served) or ``changes`` phase (changes after ``seq``)."""

    drive_id: str
    generation: int
    phase: str  # "s" snapshot | "c" changes
    seq: int
    snapshot: str | None
    done: int
    issued: int

    def encode(self, codec: TokenCodec) -> str:
        return codec.encode({"u": "delta", "d": self.drive_id, "g": self.generation, "p": self.phase,
                             "s": self.seq, "n": self.snapshot, "o": self.done, "t": self.issued})

    @classmethod
    def decode(cls, codec: TokenCodec, token: str) -> DeltaPosition:
        p = codec.decode(token, "delta")
        try:
            if p["p"] not in ("s", "c"):
                raise ValueError("bad phase")
            snapshot = str(p["n"]) if p.get("n") else None
            return cls(str(p["d"]), int(p["g"]), str(p["p"]), int(p["s"]), snapshot, int(p.get("o") or 0),
                       int(p["t"]))
        except (KeyError, TypeError) as exc:
            raise ValueError("bad delta token") from exc


def _delta_token_arg(ctx: Ctx) -> str | None:
    args = ctx.params.get("dargs")
    if args:
        parsed = odata_args(args)
        value = parsed.get("token", parsed.get(""))
        if value:
            return value
    value = ctx.req.q("token")
    return value if value else None


def _delta_cost(ctx: Ctx) -> int:
    return 1 if _delta_token_arg(ctx) else 2  # SharePoint RU: delta with a token 1, without 2


def _parents_first(items: list[Item]) -> list[Item]:
    """Within one page, emit a live folder before live items under it that precede it."""
    by_id = {i.id: i for i in items if not i.deleted}
    out: list[Item] = []
    seen: set[str] = set()

    def emit(item: Item) -> None:
        if item.id in seen:
            return
        seen.add(item.id)
        parent = by_id.get(item.parent_id or "")
        if not item.deleted and parent is not None:
            emit(parent)
        out.append(item)

    for item in items:
        emit(item)
    return out


async def delta(ctx: Ctx) -> Resp:
    view = _view(ctx, "read")
    folder = view.item(ctx.params["addr"])
    if not folder.is_root:
        # ODB/SharePoint: delta is only supported on the root folder of a drive.
        raise HttpError(400, "invalidRequest", "Delta is only supported on the root of a drive.")
    state: State = ctx.state
    drive = state.drive(view.drive.id)
    assert drive is not None
    codec = TokenCodec.for_state(state)
    select, top = parse_select(ctx.req), parse_top(ctx.req)
    now = int(time.time())
    extra = {k: v for k, v in ctx.req.query.items() if k.lower().lstrip("$") in ("select", "top", "expand")}

    def link(pos: DeltaPosition) -> str:
        return (f"{view.base}/v1.0/drives/{quote(drive.id, safe='!')}/root/delta?"
                + urlencode({**extra, "token": pos.encode(codec)}))

    fresh = DeltaPosition(drive.id, drive.delta_generation, "s", state.current_seq(), None, 0, now)
    raw = _delta_token_arg(ctx)
    if raw is None:
        pos = fresh
    elif raw.lower() == "latest":
        latest = DeltaPosition(drive.id, drive.delta_generation, "c", state.current_seq(), None, 0, now)
        return json_resp({"@odata.context": view.context("Collection(driveItem)"), "value": [],
                          "@odata.deltaLink": link(latest)})
    elif re.fullmatch(r"\d{4}-\d\d-\d\d(T[\d:.]+)?(Z|[+-]\d\d:?\d\d)?", raw.strip()):
        # ODB/SharePoint timestamp tokens: changes since that moment (graph-api.md §2.8).
        try:
            when = parse_iso(raw.strip() if "T" in raw else raw.strip() + "T00:00:00Z")
        except ValueError as exc:
            raise HttpError(400, "invalidRequest", f"Invalid delta token '{raw}'.") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=utcnow().tzinfo)
        if (utcnow() - when).total_seconds() > DELTA_MAX_AGE:
            raise _resync(link(fresh))
        pos = DeltaPosition(drive.id, drive.delta_generation, "c", state.seq_at(when), None, 0, now)
    else:
        try:
            pos = DeltaPosition.decode(codec, raw)
        except ValueError as exc:
            raise HttpError(400, "invalidRequest", "The delta token is malformed.") from exc
        if pos.drive_id != drive.id:
            raise HttpError(400, "invalidRequest", "The delta token belongs to another drive.")
        if pos.generation != drive.delta_generation or now - pos.issued > DELTA_MAX_AGE:
            raise _resync(link(fresh))

    page: list[Item] = []
    after = pos.seq
    if pos.phase == "s":
        snapshot = pos.snapshot or state.open_snapshot(drive.id, pos.seq)
        size = state.snapshot_size(snapshot)
        if size is None:
            raise _resync(link(fresh))  # an abandoned enumeration no longer kept
        page = state.snapshot_items(snapshot, upto_seq=pos.seq, after=pos.done, limit=top)
        if pos.done + top < size:
            nxt = dataclasses.replace(pos, snapshot=snapshot, done=pos.done + top)
            return _delta_page(view, page, select, next_link=link(nxt))
        state.close_snapshot(snapshot)  # snapshot done: changes made while paging follow in the same page
    room = top - len(page)
    changes = state.delta_items(drive.id, after_seq=after, limit=room + 1)
    more = len(changes) > room
    changes = changes[:room]
    last = changes[-1].seq if changes else after
    nxt = DeltaPosition(drive.id, drive.delta_generation, "c", last, None, 0, now if not more else pos.issued)
    page = page + _parents_first(changes)
    if more:
        return _delta_page(view, page, select, next_link=link(nxt))
    return _delta_page(view, page, select, delta_link=link(nxt))


def _resync(location: str) -> HttpError:
    # graph-api.md §2.8: no verbatim 410 body is published; this is the suggested one.
    return HttpError(410, "resyncRequired", "The delta token is no longer valid; re-enumerate from scratch.",
                     inner_code="resyncChangesApplyDifferences", headers=[("location", location)])


def _delta_page(view: View, items: list[Item], select: set[str] | None, *, next_link: str | None = None,
                delta_link: str | None = None) -> Resp:
    body: dict[str, Any] = {"@odata.context": view.context("Collection(driveItem)"),
                            "value": [view.item_json(i, delta=True, select=select) for i in items]}
    if next_link:
        body["@odata.nextLink"] = next_link
    if delta_link:
        body["@odata.deltaLink"] = delta_link
    return json_resp(body)


# ---------------------------------------------------------------------------------------- upload sessions
async def create_upload_session(ctx: Ctx) -> Resp:
    view = _view(ctx, "write")
    address = parse_address(ctx.params["addr"])
    body = _json_body(ctx.req)
    spec = body.get("item") if isinstance(body.get("item"), dict) else {}
    assert isinstance(spec, dict)
    size = spec.get("fileSize")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise HttpError(400, "invalidRequest", "fileSize must be a non-negative integer.")
    if size is not None and size > MAX_FILE:
        raise HttpError(413, "invalidRequest", "The file exceeds the maximum file size.",
                        inner_code="maxFileSizeExceeded")
    if size is not None and size > QUOTA_TOTAL - ctx.state.drive_used_bytes(view.drive.id):
        raise HttpError(507, "quotaLimitReached", "Insufficient storage for the upload.")
    if address.path:
        base = view.base_item(address)
        if not base.is_folder:
            raise HttpError(400, "invalidRequest", "The parent item is not a folder.")
        # Missing parent folders are created at commit, as for simple path uploads (the 2016
        # "parent must exist" restriction was tracked as a bug: OneDrive/onedrive-api-docs#364).
        # The session keeps the deepest existing folder and the rest of the path as its name.
        parts = address.path.strip("/").split("/")
        for part in parts:
            check_name(part)
        parent, depth = base, 0
        while depth < len(parts) - 1:
            child = ctx.state.child_named(parent, parts[depth])
            if child is None:
                break
            if not child.is_folder:
                raise HttpError(409, "nameAlreadyExists", f"'{child.path}' is a file, not a folder.")
            parent, depth = child, depth + 1
        name = "/".join(parts[depth:])
        conflict = conflict_behavior(ctx.req, spec, "fail")
        existing = view.find(address)
        if existing is not None and existing.is_folder:
            raise HttpError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
        if existing is not None and conflict == "fail":
            # Checked here and again at commit (the name may be taken meanwhile).
            raise HttpError(409, "nameAlreadyExists", f"An item with the name '{existing.name}' already exists.")
    else:
        existing = view.base_item(address)
        if existing.is_folder:
            raise HttpError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
        parent_found = ctx.state.item(view.drive.id, existing.parent_id or "")
        assert parent_found is not None
        parent, name, conflict = parent_found, existing.name, "replace"
    if spec.get("name") and spec["name"] != name.rsplit("/", 1)[-1]:
        raise HttpError(400, "invalidRequest", "The name in the body does not match the name in the URL.")
    if existing is not None:
        ctx.state.check_if_match(existing, ctx.req.headers.get("if-match"))
        _check_lock(view, existing)
    expires = iso(utcnow() + SESSION_LIFETIME)
    session = ctx.state.create_upload_session(
        drive_id=view.drive.id, parent_id=parent.id, name=name, conflict=conflict, total=size, expires=expires,
        defer_commit=bool(body.get("deferCommit")), client_id=ctx.caller.client_id if ctx.caller else "",
        description=spec.get("description"))
    return json_resp({"@odata.context": view.context("microsoft.graph.uploadSession"),
                      "uploadUrl": f"{view.base}/_upload/{session.id}", "expirationDateTime": session.expires,
                      "nextExpectedRanges": ["0-"]})


def _session(ctx: Ctx) -> UploadSession:
    session: UploadSession | None = ctx.state.upload_session(ctx.params["session"])
    if session is not None and parse_iso(session.expires) < utcnow():
        ctx.state.delete_upload_session(session.id)
        session = None
    if session is None:
        raise HttpError(404, "itemNotFound", "The upload session was not found or has expired.",
                        inner_code="uploadSessionNotFound")
    return session


def _charge(ctx: Ctx, client_id: str, units: int) -> None:
    """Pre-authorized URLs carry no token, so dispatch cannot charge them: charge the app here."""
    if not client_id:
        return
    denied = ctx.tenant.throttle.charge(client_id, units)
    ctx.tenant.stats.ru_by_app[client_id] += units
    if denied is not None:
        raise HttpError(429, "activityLimitReached", "The request has been throttled",
                        inner_code="throttledRequest", headers=denied.headers)


def _status_json(session: UploadSession) -> dict[str, Any]:
    total = session.total
    ranges = [] if total is not None and session.received >= total else [f"{session.received}-"]
    return {"expirationDateTime": session.expires, "nextExpectedRanges": ranges}


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


async def upload_fragment(ctx: Ctx) -> Resp:
    session = _session(ctx)
    _charge(ctx, session.client_id, 2)
    header = ctx.req.headers.get("content-range") or ""
    m = _RANGE.fullmatch(header.strip())
    if m is None or m.group(3) == "*":
        raise HttpError(400, "invalidRequest", f"Invalid Content-Range header '{header}'; expected "
                        "'bytes start-end/total'.")
    start, end, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
    data = ctx.req.body
    if end < start or end >= total:
        raise HttpError(416, "invalidRange", "The Content-Range is not satisfiable.")
    if len(data) != end - start + 1:
        raise HttpError(400, "invalidRequest", "The fragment length does not match the Content-Range.",
                        inner_code="fragmentLengthMismatch")
    if session.total is not None and total != session.total:
        raise HttpError(400, "invalidRequest", f"The declared total size {total} differs from the session's "
                        f"{session.total}.", inner_code="fragmentLengthMismatch")
    if total > MAX_FILE:
        raise HttpError(413, "invalidRequest", "The file exceeds the maximum file size.",
                        inner_code="maxFileSizeExceeded")
    if len(data) >= MAX_FRAGMENT:
        raise HttpError(413, "invalidRequest", "A fragment must be smaller than 60 MiB.")
    if start < session.received:
        raise HttpError(416, "invalidRange", "Uploaded fragment overlaps with existing data.",
                        inner_code="fragmentOverlap")
    if start > session.received:
        raise HttpError(416, "invalidRange", f"Fragments must be uploaded in order; expected {session.received}-.",
                        inner_code="fragmentOutOfOrder")
    if end + 1 < total and len(data) % FRAGMENT_UNIT:
        # Microsoft: fragments that are not multiples of 320 KiB "can result in large file transfers
        # failing"; refusing them at once makes the mistake visible.
        raise HttpError(400, "invalidRequest", "Fragment sizes must be a multiple of 320 KiB (327,680 bytes) "
                        "except for the last fragment.")
    expires = iso(utcnow() + SESSION_LIFETIME)
    ctx.state.append_upload(session.id, data, total=total, expires=expires)
    session = dataclasses.replace(session, received=session.received + len(data), total=total, expires=expires)
    if session.received < total or session.defer_commit:
        return json_resp(_status_json(session), status=202)
    return _commit(ctx, session)


def _commit(ctx: Ctx, session: UploadSession) -> Resp:
    state: State = ctx.state
    parent = state.item(session.drive_id, session.parent_id)
    drive = state.drive(session.drive_id)
    if parent is None or drive is None:
        state.delete_upload_session(session.id)
        raise HttpError(404, "itemNotFound", "The destination folder no longer exists.",
                        inner_code="uploadSessionNotFound")
    site = state.site(drive.site_id)
    assert site is not None
    content = state.upload_bytes(session.id)
    by = _session_by(state, session)
    *dirs, name = session.name.split("/")
    try:
        with state.transaction():
            folder = _ensure_folders(state, parent, dirs, by)
            item, created = state.put_file(folder, name, content, by=by, conflict=session.conflict,
                                           mime=guess_mime(name))
    except StateError as exc:
        if exc.status != 409:
            raise
        # graph-examples/uploadsession-name-conflict-error.json (the session stays for a retry).
        raise HttpError(409, "upload_name_conflict", "Another file exists with the same name as the uploaded "
                        "session. You can redirect the upload session to use a new filename by calling PUT "
                        "with the new metadata and @microsoft.graph.sourceUrl attribute.") from exc
    if session.description:
        item = state.update_item(item, by=item.modified_by, description=session.description, conflict="fail")
    state.delete_upload_session(session.id)
    view = View(ctx, site, drive)
    return json_resp(view.item_json(item), status=201 if created else 200)


def _session_by(state: State, session: UploadSession) -> str:
    app = state.get_app(session.client_id) if session.client_id else None
    return app.display_name if app else "System Account"


async def upload_commit(ctx: Ctx) -> Resp:
    session = _session(ctx)
    _charge(ctx, session.client_id, 2)
    if session.total is None or session.received < session.total:
        raise HttpError(400, "invalidRequest", "The upload is incomplete; upload the remaining bytes first.")
    return _commit(ctx, session)


async def upload_status(ctx: Ctx) -> Resp:
    session = _session(ctx)
    _charge(ctx, session.client_id, 1)
    return json_resp(_status_json(session))


async def upload_cancel(ctx: Ctx) -> Resp:
    session = _session(ctx)
    ctx.state.delete_upload_session(session.id)
    return empty(204)


# ---------------------------------------------------------------------------------------- download URL
async def download(ctx: Ctx) -> Resp:
    token = ctx.req.q("tempauth") or ""
    try:
        grant = TokenCodec.for_state(ctx.state).decode(token, "dl")
    except ValueError as exc:
        raise HttpError(401, "unauthenticated", "Invalid or missing tempauth.") from exc
    if int(grant.get("e", 0)) < time.time():
        raise HttpError(401, "unauthenticated", "The download URL has expired.")
    _charge(ctx, str(grant.get("c") or ""), 1)
    item = ctx.state.item(str(grant["d"]), str(grant["i"]))
    if item is None or item.is_folder:
        raise HttpError(404, "itemNotFound", "The file could not be found.")
    data = ctx.state.content(item, grant.get("v"))
    headers = [("content-type", item.mime or guess_mime(item.name)), ("etag", item.etag),
               ("accept-ranges", "bytes"),
               ("content-disposition", f"attachment; filename*=UTF-8''{quote(item.name)}")]
    spec = ctx.req.headers.get("range")
    if spec:
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
        if m is None or (not m.group(1) and not m.group(2)):
            raise HttpError(416, "invalidRange", "Invalid Range header.")
        if m.group(1):
            first = int(m.group(1))
            last = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
        else:
            first, last = max(0, len(data) - int(m.group(2))), len(data) - 1
        if first >= len(data) or last < first:
            raise HttpError(416, "invalidRange", "The requested range is not satisfiable.",
                            headers=[("content-range", f"bytes */{len(data)}")])
        return Resp(206, data[first:last + 1], [*headers, ("content-range", f"bytes {first}-{last}/{len(data)}")])
    return Resp(200, data, headers)


# ---------------------------------------------------------------------------------------- routes
def register(router: Router) -> None:
    g = "graph"
    router.add("GET", r"/v1\.0/sites/(?P<site>" + SITE_REF_END + ")", get_site, name="graph.site.get",
               surface=g, cost=1)
    router.add("GET", r"/v1\.0/sites/(?P<site>" + SITE_REF + ")/drives", list_drives, name="graph.drive.list",
               surface=g, cost=2)
    router.add("GET", DRIVE_PREFIX, get_drive, name="graph.drive.get", surface=g, cost=1)

    def item(method: str, suffix: str, handler: Any, name: str, cost: Any) -> None:
        pattern = DRIVE_PREFIX + (ITEM_END if not suffix else ITEM_MID + suffix)
        router.add(method, pattern, handler, name=f"graph.item.{name}", surface=g, cost=cost)

    item("GET", "", get_item, "get", 1)
    item("PATCH", "", patch_item, "update", 2)
    item("DELETE", "", delete_item, "delete", 2)
    item("GET", "/children", list_children, "children", 2)
    item("POST", "/children", create_child, "create", 2)
    item("GET", "/content", get_content, "content.get", 1)
    item("PUT", "/content", put_content, "content.put", 2)
    item("POST", "/createUploadSession", create_upload_session, "uploadsession", 2)
    item("GET", "/versions", list_versions, "versions", 2)
    item("GET", "/versions/(?P<version>[^/]+)", get_version, "version.get", 1)
    item("GET", "/versions/(?P<version>[^/]+)/content", get_version_content, "version.content", 1)
    item("POST", "/versions/(?P<version>[^/]+)/restoreVersion", restore_version, "version.restore", 2)
    item("POST", "/checkout", checkout, "checkout", 2)
    item("POST", "/checkin", checkin, "checkin", 2)
    item("POST", "/discardCheckout", discard_checkout, "discardcheckout", 2)
    router.add("GET", DRIVE_PREFIX + ITEM_MID + r"/delta(?:\((?P<dargs>[^)]*)\))?", delta, name="graph.delta",
               surface=g, cost=_delta_cost)

    # Pre-authorized URLs: no bearer token (a token sent anyway is ignored, not refused).
    session = r"/_upload/(?P<session>[A-Za-z0-9_-]{20,})"
    router.add("PUT", session, upload_fragment, name="graph.upload.put", surface="upload")
    router.add("POST", session, upload_commit, name="graph.upload.commit", surface="upload")
    router.add("GET", session, upload_status, name="graph.upload.status", surface="upload")
    router.add("DELETE", session, upload_cancel, name="graph.upload.cancel", surface="upload")
    router.add("GET", r"/_layouts/15/download\.aspx", download, name="graph.download", surface="download")
