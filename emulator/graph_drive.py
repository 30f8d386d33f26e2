"""Graph v1.0 drives for the local tenant: sites, drives, driveItems, uploads, versions and delta.

Sources: graph-api.md §1 (conventions, addressing, conflict behaviour, eTags), §2.1–2.9, and the
published examples in graph-examples/. The model is ``emulator.state``; permissions, list items,
``$batch`` and subscriptions live in ``emulator.graph_misc`` (whose site/drive/item resolution
this module shares, so both surfaces address items identically).

Delta is the part clients depend on most. Tokens are opaque, HMAC-signed positions in the
tenant's change sequence: a full enumeration first lists the live items stamped up to a
snapshot (parents before children), then continues with everything changed after the snapshot,
so edits made while a client pages are never lost; the feed shows each item's latest state.
A token from an older delta generation (``delta_expiry`` fault) or older than 30 days gets 410
``resyncRequired`` with a ``Location`` to start over.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from emulator.app import require_site
from emulator.graph_misc import (
    _DRIVE,
    _drive_of,
    _item_web_url,
    _library_url,
    _select,
    _site,
    _site_web_url,
)
from emulator.http import Ctx, HttpError, Req, Resp, Router, empty, json_resp
from emulator.state import Drive, Item, Site, State, Version, iso, parse_iso, utcnow

_V = r"/v1\.0"
# An item by id, by path from the root, or by path below an item (graph-api.md §1 "Drive addressing").
# With a path and a further segment the closing ':' is required; at the end of the URL it is optional.
_ADDR = (_DRIVE + r"/(?:items/(?P<item>[^/:]+)(?::(?P<relpath>/[^:]*):)?"
         r"|(?:items/)?root(?::(?P<path>/[^:]*):)?)")
_ADDR_END = (_DRIVE + r"/(?:items/(?P<item>[^/:]+)(?::(?P<relpath>/[^:]*):?)?"
             r"|(?:items/)?root(?::(?P<path>/[^:]*):?)?)")

DEFAULT_PAGE = 200
MAX_PAGE = 999
FRAGMENT_UNIT = 320 * 1024  # upload fragments must be multiples of 320 KiB (graph-api.md §2.6)
MAX_FRAGMENT = 60 * 1024 * 1024
SESSION_LIFETIME = timedelta(hours=24)
DOWNLOAD_LIFETIME = 3600  # @microsoft.graph.downloadUrl lives about an hour
DELTA_TOKEN_MAX_AGE = 30 * 24 * 3600  # users saw tokens stop working after about 30 days


# ====================================================================== addressing
def _secret(state: State, name: str) -> bytes:
    value = state.meta(name)
    if value is None:
        value = secrets.token_hex(32)
        state.set_meta(name, value)
    return bytes.fromhex(value)


def resolve(ctx: Ctx, need: str = "read", *, create_parents: bool = False) -> tuple[Site, Drive, Item | None, Item,
                                                                                   str | None]:
    """(site, drive, item or None, parent, leaf name) for an addressed item.

    When the address ends in a path that does not exist, ``item`` is None and ``parent``/``leaf``
    say where it would be (for uploads by path); missing intermediate folders are 404, or
    created with ``create_parents`` as OneDrive does for uploads.
    """
    site, drive = _drive_of(ctx)
    require_site(ctx, site.id, need)
    st: State = ctx.state
    p = ctx.params
    if "item" in p and p["item"].lower() != "root":
        base = st.item(drive.id, p["item"])
        if base is None:
            raise HttpError(404, "itemNotFound", "The resource could not be found.")
        rel = p.get("relpath")
    else:
        base = st.root(drive.id)
        rel = p.get("path") or p.get("relpath")
    if not rel or rel.strip("/") == "":
        return site, drive, base, base, None
    parts = [part for part in rel.strip("/").split("/") if part]
    target_path = (base.path + "/" + "/".join(parts))
    found = st.item_by_path(drive.id, target_path)
    if found is not None:
        parent = st.item(drive.id, found.parent_id) if found.parent_id else found
        return site, drive, found, parent or found, found.name
    parent = base
    for part in parts[:-1]:
        child = st.child_named(parent, part)
        if child is None:
            if not create_parents:
                raise HttpError(404, "itemNotFound", "The resource could not be found.")
            child = st.create_folder(parent, part, by=ctx.by, conflict="fail")
        if not child.is_folder:
            raise HttpError(400, "invalidRequest", f"'{part}' is a file, not a folder.")
        parent = child
    return site, drive, None, parent, parts[-1]


def resolve_existing(ctx: Ctx, need: str = "read") -> tuple[Site, Drive, Item]:
    site, drive, item, _, _ = resolve(ctx, need)
    if item is None:
        raise HttpError(404, "itemNotFound", "The resource could not be found.")
    return site, drive, item


# ====================================================================== JSON shapes
def identity_of(state: State, name: str) -> dict[str, Any]:
    """createdBy/lastModifiedBy: an app that made the change shows as ``application`` (with its id)."""
    app = state.app_by_display_name(name)
    if app is not None:
        # SharePoint names app-only writers "SharePoint App" as the user, beside the application.
        return {"application": {"id": app.client_id, "displayName": app.display_name},
                "user": {"displayName": "SharePoint App"}}
    user = state.q1("SELECT id, mail FROM users WHERE display_name=?", (name,))
    if user is not None:
        return {"user": {"id": user["id"], "displayName": name, "email": user["mail"]}}
    return {"user": {"displayName": name}}


def item_json(ctx: Ctx, site: Site, drive: Drive, item: Item, *, for_delta: bool = False) -> dict[str, Any]:
    st: State = ctx.state
    if item.deleted:
        # ODB omits name and cTag (and more) on deletions (graph-api.md §2.8).
        gone: dict[str, Any] = {"id": item.id, "deleted": {"state": "deleted"},
                                "parentReference": {"driveId": drive.id, "driveType": "documentLibrary",
                                                    "id": item.parent_id, "siteId": site.id}}
        gone["folder" if item.is_folder else "file"] = {}
        return gone
    data: dict[str, Any] = {
        "createdBy": identity_of(st, item.created_by),
        "createdDateTime": item.created_at,
        "eTag": item.etag,
        "id": item.id,
        "lastModifiedBy": identity_of(st, item.modified_by),
        "lastModifiedDateTime": item.modified_at,
        "name": item.name if not item.is_root else "root",
        "webUrl": _library_url(ctx, site, drive) if item.is_root else _item_web_url(ctx, site, drive, item),
        "fileSystemInfo": {"createdDateTime": item.created_at, "lastModifiedDateTime": item.modified_at},
        "size": st.folder_size(item) if item.is_folder else item.size,
    }
    if item.description:
        data["description"] = item.description
    if item.is_root:
        data["root"] = {}
        data["parentReference"] = {"driveId": drive.id, "driveType": "documentLibrary", "siteId": site.id}
    else:
        parent_path = item.path.rsplit("/", 1)[0]
        ref: dict[str, Any] = {"driveId": drive.id, "driveType": "documentLibrary", "id": item.parent_id,
                               "siteId": site.id}
        if not for_delta:  # delta never returns parentReference.path (graph-api.md §2.8)
            ref["path"] = f"/drives/{drive.id}/root:{quote(parent_path)}"
            ref["name"] = parent_path.rsplit("/", 1)[-1] if parent_path else drive.name
        data["parentReference"] = ref
    if item.is_folder:
        data["folder"] = {"childCount": st.child_count(item)}
    else:
        data["cTag"] = item.ctag  # SharePoint returns cTag for files only
        data["file"] = {"mimeType": item.mime or _mime(item.name),
                        "hashes": {"sha256Hash": (item.sha256 or "").upper()}}
        if not for_delta:
            data["@microsoft.graph.downloadUrl"] = download_url(ctx, item)
    return data


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _with_context(ctx: Ctx, data: dict[str, Any], fragment: str) -> dict[str, Any]:
    return {"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#{fragment}", **data}


def _respond_item(ctx: Ctx, site: Site, drive: Drive, item: Item, status: int = 200) -> Resp:
    body = _select(item_json(ctx, site, drive, item), ctx.req.q("$select"))
    return json_resp(_with_context(ctx, body, f"drives('{drive.id}')/items/$entity"), status,
                     headers=[("etag", item.etag)])


def site_json(ctx: Ctx, site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "createdDateTime": site.created_at,
        "description": site.description,
        "displayName": site.title,
        "lastModifiedDateTime": site.created_at,
        "name": site.server_relative_url.rsplit("/", 1)[-1],
        "webUrl": _site_web_url(ctx, site),
        "root": {},
        "siteCollection": {"hostname": site.hostname},
    }


def drive_json(ctx: Ctx, site: Site, drive: Drive) -> dict[str, Any]:
    st: State = ctx.state
    used = int((st.q1("SELECT COALESCE(SUM(size),0) AS s FROM items WHERE drive_id=? AND deleted=0 AND is_folder=0",
                      (drive.id,)) or {"s": 0})["s"])
    total = 1024 ** 4
    return {
        "id": drive.id, "driveType": "documentLibrary", "name": drive.name, "description": "",
        "createdDateTime": drive.created_at, "lastModifiedDateTime": drive.created_at,
        "webUrl": _library_url(ctx, site, drive),
        "createdBy": {"user": {"displayName": "System Account"}},
        "owner": {"group": {"id": site.site_guid, "displayName": f"{site.title} Owners"}},
        "quota": {"deleted": 0, "remaining": total - used, "state": "normal", "total": total, "used": used},
    }


# ====================================================================== sites and drives
async def get_site_by_path(ctx: Ctx) -> Resp:
    st: State = ctx.state
    hostname, path = ctx.params["host"], "/" + ctx.params["spath"].strip("/")
    site = st.site(path)
    if site is None or site.hostname.lower() != hostname.lower():
        raise HttpError(404, "itemNotFound", "Requested site could not be found")
    require_site(ctx, site.id, "read")
    return json_resp(_with_context(ctx, site_json(ctx, site), "sites/$entity"))


async def get_site(ctx: Ctx) -> Resp:
    key = ctx.params["site"]
    if key.lower() == "root":
        raise HttpError(404, "itemNotFound", "This local tenant has no root site collection; address sites "
                        "by id or by path (/sites/{hostname}:/sites/{name}).")
    site = _site(ctx, key)
    require_site(ctx, site.id, "read")
    return json_resp(_with_context(ctx, site_json(ctx, site), "sites/$entity"))


async def list_site_drives(ctx: Ctx) -> Resp:
    site = _site(ctx, ctx.params["site"])
    require_site(ctx, site.id, "read")
    drives = [drive_json(ctx, site, d) for d in ctx.state.drives(site.id)]
    return json_resp({"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#drives", "value": drives})


async def get_drive(ctx: Ctx) -> Resp:
    site, drive = _drive_of(ctx)
    require_site(ctx, site.id, "read")
    return json_resp(_with_context(ctx, drive_json(ctx, site, drive), "drives/$entity"))


# ====================================================================== items
def _check_none_match(ctx: Ctx, item: Item) -> Resp | None:
    tag = ctx.req.headers.get("if-none-match")
    if tag and tag.strip() in (item.etag, item.ctag, "*"):
        return empty(304, [("etag", item.etag)])
    return None


async def get_item(ctx: Ctx) -> Resp:
    site, drive, item = resolve_existing(ctx)
    return _check_none_match(ctx, item) or _respond_item(ctx, site, drive, item)


async def list_children(ctx: Ctx) -> Resp:
    site, drive, item = resolve_existing(ctx)
    if not item.is_folder:
        return json_resp({"value": []})
    not_modified = _check_none_match(ctx, item)
    if not_modified:
        return not_modified
    top = _top(ctx.req)
    after = _unpack_skiptoken(ctx.req.q("$skiptoken"))
    children = ctx.state.children(item, after_name=after, limit=top + 1)
    select = ctx.req.q("$select")
    page = [_select(item_json(ctx, site, drive, c), select) for c in children[:top]]
    body: dict[str, Any] = {"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#drives('{drive.id}')/items"
                                              f"('{item.id}')/children", "value": page}
    if len(children) > top:
        query = {k: v for k, v in ctx.req.query.items() if k.lstrip("$").lower() != "skiptoken"}
        query["$skiptoken"] = _pack_skiptoken(children[top - 1].name)
        body["@odata.nextLink"] = f"{ctx.req.base_url}{quote(ctx.req.path)}?{urlencode(query)}"
    return json_resp(body)


def _top(req: Req) -> int:
    raw = req.q("$top")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or int(raw) < 1:
        raise HttpError(400, "invalidRequest", f"Invalid $top value '{raw}': a positive integer is required.")
    return min(int(raw), MAX_PAGE)


def _pack_skiptoken(name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": name}).encode()).decode().rstrip("=")


def _unpack_skiptoken(token: str | None) -> str | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(value["after"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise HttpError(400, "invalidRequest", "Invalid $skiptoken.") from exc


def _conflict(ctx: Ctx, body: dict[str, Any] | None, default: str) -> str:
    value = ctx.req.q("@microsoft.graph.conflictBehavior") or (body or {}).get(
        "@microsoft.graph.conflictBehavior") or default
    if value not in ("fail", "replace", "rename"):
        raise HttpError(400, "invalidRequest", f"Invalid conflict behavior '{value}': use fail, replace or rename.")
    return str(value)


def _json_body(ctx: Ctx) -> dict[str, Any]:
    content_type = (ctx.req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HttpError(415, "invalidRequest", "The Content-Type must be application/json.")
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "invalidRequest", "The request body must be a JSON object.")
    return body


async def create_child(ctx: Ctx) -> Resp:
    site, drive, parent = resolve_existing(ctx, "write")
    body = _json_body(ctx)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HttpError(400, "invalidRequest", "A 'name' is required to create an item.")
    if "folder" not in body:
        raise HttpError(400, "invalidRequest", "Only folders can be created this way: include \"folder\": {}; "
                        "upload files with PUT …/content or an upload session.")
    if not parent.is_folder:
        raise HttpError(400, "invalidRequest", "The parent is not a folder.")
    created = ctx.state.create_folder(parent, name, by=ctx.by, conflict=_conflict(ctx, body, "fail"))
    return _respond_item(ctx, site, drive, created, 201)


async def put_content(ctx: Ctx) -> Resp:
    site, drive, item, parent, leaf = resolve(ctx, "write", create_parents=True)
    data = ctx.req.body
    if len(data) > ctx.tenant.config.max_put_bytes:
        raise HttpError(413, "invalidRequest", f"The file is larger than {ctx.tenant.config.max_put_bytes} bytes; "
                        "use an upload session.", inner_code="maxFileSizeExceeded")
    if_match = ctx.req.headers.get("if-match")
    if item is not None:
        if item.is_folder:
            raise HttpError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
        conflict = _conflict(ctx, None, "replace")
        if conflict == "fail":
            raise HttpError(409, "nameAlreadyExists", f"An item named '{item.name}' already exists.")
        if conflict == "replace":
            updated = ctx.state.overwrite(item, data, by=ctx.by, if_match=if_match)
            # Both published examples answer 201, even for a replace (graph-api.md §2.5).
            return _respond_item(ctx, site, drive, updated, 201)
    assert leaf is not None
    content_type = (ctx.req.headers.get("content-type") or "").split(";")[0].strip() or None
    mime = content_type if content_type not in (None, "application/octet-stream", "text/plain") else None
    created, _ = ctx.state.put_file(parent, leaf, data, by=ctx.by, conflict=_conflict(ctx, None, "replace"),
                                    mime=mime, if_match=if_match)
    return _respond_item(ctx, site, drive, created, 201)


async def update_item(ctx: Ctx) -> Resp:
    site, drive, item = resolve_existing(ctx, "write")
    body = _json_body(ctx)
    st: State = ctx.state
    new_parent: Item | None = None
    ref = body.get("parentReference")
    if isinstance(ref, dict) and (ref.get("id") or ref.get("path")):
        if ref.get("id"):
            new_parent = st.item(drive.id, str(ref["id"]))
        else:
            m = re.match(r"^/drives/[^/]+/root:?(.*)$", str(ref["path"])) or re.match(r"^/drive/root:?(.*)$",
                                                                                        str(ref["path"]))
            new_parent = st.item_by_path(drive.id, m.group(1) if m else str(ref["path"]))
        if new_parent is None:
            raise HttpError(400, "invalidRequest", "The destination folder in parentReference does not exist.")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise HttpError(400, "invalidRequest", "'name' must be a string.")
    if name is None and new_parent is None and "description" not in body:
        return _respond_item(ctx, site, drive, item)
    updated = st.update_item(item, by=ctx.by, name=name, new_parent=new_parent,
                             description=body.get("description"), conflict=_conflict(ctx, body, "fail"),
                             if_match=ctx.req.headers.get("if-match"))
    return _respond_item(ctx, site, drive, updated)


async def delete_item(ctx: Ctx) -> Resp:
    _, _, item = resolve_existing(ctx, "write")
    ctx.state.delete_item(item, by=ctx.by, if_match=ctx.req.headers.get("if-match"))
    return empty(204)


# ====================================================================== download
def download_url(ctx: Ctx, item: Item, major: int | None = None) -> str:
    """A short-lived, pre-authenticated URL (no bearer token needed), as Graph's downloadUrl is."""
    payload = f"{item.id}:{major or item.major}:{int(time.time()) + DOWNLOAD_LIFETIME}"
    sig = hmac.new(_secret(ctx.state, "download_secret"), payload.encode(), hashlib.sha256).hexdigest()[:32]
    token = base64.urlsafe_b64encode(f"{payload}:{sig}".encode()).decode().rstrip("=")
    return f"{ctx.req.base_url}/_layouts/15/download.aspx?tempauth={token}"


async def get_content(ctx: Ctx) -> Resp:
    _, _, item = resolve_existing(ctx)
    if item.is_folder:
        raise HttpError(400, "invalidRequest", "Cannot download a folder.")
    return empty(302, [("location", download_url(ctx, item))])


async def get_version_content(ctx: Ctx) -> Resp:
    _, _, item = resolve_existing(ctx)
    version = _version(ctx, item)
    return empty(302, [("location", download_url(ctx, item, version.major))])


async def download(ctx: Ctx) -> Resp:
    token = ctx.req.q("tempauth") or ""
    try:
        item_id, major, expires, sig = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise HttpError(401, "unauthenticated", "The download URL is not valid.") from exc
    expected = hmac.new(_secret(ctx.state, "download_secret"), f"{item_id}:{major}:{expires}".encode(),
                        hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(sig, expected):
        raise HttpError(401, "unauthenticated", "The download URL is not valid.")
    if int(expires) < time.time():
        raise HttpError(401, "unauthenticated", "The download URL has expired; ask for the item again.")
    item = ctx.state.item_any_drive(item_id)
    if item is None:
        raise HttpError(404, "itemNotFound", "The resource could not be found.")
    data = ctx.state.content(item, int(major))
    return Resp(200, data, [("content-type", item.mime or _mime(item.name)),
                            ("content-disposition", f"attachment; filename*=UTF-8''{quote(item.name)}")])


# ====================================================================== versions
def _version_json(state: State, v: Version) -> dict[str, Any]:
    return {"id": v.label, "lastModifiedBy": identity_of(state, v.modified_by),
            "lastModifiedDateTime": v.modified_at, "size": v.size}


def _version(ctx: Ctx, item: Item) -> Version:
    label = ctx.params["version"]
    st: State = ctx.state
    for v in st.versions(item):
        if v.label == label or str(v.major) == label:
            return v
    raise HttpError(404, "itemNotFound", f"The version '{label}' does not exist.")


async def list_versions(ctx: Ctx) -> Resp:
    _, drive, item = resolve_existing(ctx)
    if item.is_folder:
        raise HttpError(400, "invalidRequest", "Folders have no versions.")
    value = [_version_json(ctx.state, v) for v in ctx.state.versions(item)]
    return json_resp({"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#drives('{drive.id}')/items('{item.id}')"
                                        "/versions", "value": value})


async def get_version(ctx: Ctx) -> Resp:
    _, _, item = resolve_existing(ctx)
    return json_resp(_version_json(ctx.state, _version(ctx, item)))


async def restore_version(ctx: Ctx) -> Resp:
    _, _, item = resolve_existing(ctx, "write")
    version = _version(ctx, item)
    ctx.state.restore_version(item, version.major, by=ctx.by)
    return empty(204)


# ====================================================================== upload sessions
def _session_row(ctx: Ctx) -> dict[str, Any]:
    row = ctx.state.q1("SELECT * FROM upload_sessions WHERE id=?", (ctx.params["session"],))
    if row is None or parse_iso(row["expires"]) < utcnow():
        raise HttpError(404, "itemNotFound", "The upload session was not found or has expired.",
                        inner_code="uploadSessionNotFound")
    return dict(row)


def _session_status(row: dict[str, Any]) -> dict[str, Any]:
    received = len(row["received"])
    return {"expirationDateTime": row["expires"], "nextExpectedRanges": [f"{received}-"]}


async def create_upload_session(ctx: Ctx) -> Resp:
    site, drive, item, parent, leaf = resolve(ctx, "write", create_parents=True)
    body = ctx.req.json() if ctx.req.body else {}
    spec = body.get("item") or {} if isinstance(body, dict) else {}
    conflict = spec.get("@microsoft.graph.conflictBehavior") or ctx.req.q("@microsoft.graph.conflictBehavior") or "fail"
    if conflict not in ("fail", "replace", "rename"):
        raise HttpError(400, "invalidRequest", f"Invalid conflict behavior '{conflict}'.")
    if item is not None and item.is_folder:
        raise HttpError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
    name = str(spec.get("name") or (item.name if item else leaf))
    if item is not None and conflict == "fail":
        raise HttpError(409, "nameAlreadyExists", f"An item named '{name}' already exists.")
    if item is not None:
        ctx.state.check_if_match(item, ctx.req.headers.get("if-match"))
    size = spec.get("fileSize")
    if isinstance(size, int) and size > 1024 ** 4:
        raise HttpError(507, "quotaLimitReached", "Insufficient Space Available")
    session_id = secrets.token_urlsafe(24)
    expires = iso(utcnow() + SESSION_LIFETIME)
    ctx.state.x("INSERT INTO upload_sessions(id,drive_id,parent_id,name,conflict,total,expires,defer_commit,"
                "client_id,description) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (session_id, drive.id, parent.id, name, conflict, size if isinstance(size, int) else None, expires,
                 int(bool(body.get("deferCommit")) if isinstance(body, dict) else 0),
                 ctx.caller.client_id if ctx.caller else "", spec.get("description")))
    del site
    return json_resp({"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#microsoft.graph.uploadSession",
                      "uploadUrl": f"{ctx.req.base_url}/_api/v2.0/uploadsessions/{session_id}",
                      "expirationDateTime": expires, "nextExpectedRanges": ["0-"]})


_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


async def upload_fragment(ctx: Ctx) -> Resp:
    row = _session_row(ctx)
    header = ctx.req.headers.get("content-range") or ""
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        raise HttpError(400, "invalidRequest", "A Content-Range header 'bytes start-end/total' is required.",
                        inner_code="invalidRange")
    start, end, total_raw = int(m.group(1)), int(m.group(2)), m.group(3)
    data = ctx.req.body
    declared_length = ctx.req.headers.get("content-length")
    if end < start or len(data) != end - start + 1 or (declared_length and int(declared_length) != len(data)):
        raise HttpError(400, "invalidRequest", "The fragment's length does not match its Content-Range.",
                        inner_code="fragmentLengthMismatch")
    if len(data) >= MAX_FRAGMENT:
        raise HttpError(413, "invalidRequest", "Fragments must be smaller than 60 MiB.")
    total = int(total_raw) if total_raw != "*" else None
    if row["total"] is not None and total is not None and total != row["total"]:
        raise HttpError(400, "invalidRequest", "The total size must be the same on every fragment.",
                        inner_code="invalidRange")
    received = bytes(row["received"])
    if start < len(received):
        raise HttpError(416, "invalidRange", "The uploaded fragment overlaps with data that has already been "
                        "received.", inner_code="fragmentOverlap")
    if start > len(received):
        raise HttpError(416, "invalidRange", f"Expected the fragment starting at byte {len(received)}.",
                        inner_code="fragmentOutOfOrder")
    is_last = total is not None and end + 1 == total
    if not is_last and len(data) % FRAGMENT_UNIT:
        raise HttpError(400, "invalidRequest", "Fragments other than the last must be a multiple of 320 KiB "
                        "(327,680 bytes).", inner_code="invalidRange")
    received += data
    ctx.state.x("UPDATE upload_sessions SET received=?, total=COALESCE(total, ?) WHERE id=?",
                (received, total, row["id"]))
    if not is_last:
        return json_resp({"expirationDateTime": row["expires"], "nextExpectedRanges": [f"{len(received)}-"]}, 202)
    if row["defer_commit"]:
        return json_resp({"expirationDateTime": row["expires"], "nextExpectedRanges": []}, 202)
    return _commit(ctx, row, received)


def _commit(ctx: Ctx, row: dict[str, Any], data: bytes) -> Resp:
    st: State = ctx.state
    drive = st.drive(row["drive_id"])
    parent = st.item(row["drive_id"], row["parent_id"])
    if drive is None or parent is None:
        raise HttpError(404, "itemNotFound", "The destination folder no longer exists.")
    site = st.site(drive.site_id)
    assert site is not None
    existing = st.child_named(parent, row["name"])
    if existing is not None and row["conflict"] == "fail":
        # graph-examples/uploadsession-name-conflict-error.json
        raise HttpError(409, "upload_name_conflict", "Another file exists with the same name as the uploaded "
                        "session. You can redirect the upload session to use a new filename by calling PUT with "
                        "the new metadata and @microsoft.graph.sourceUrl attribute.")
    app = st.get_app(row["client_id"])
    by = app.display_name if app is not None else "System Account"
    item, created = st.put_file(parent, row["name"], data, by=by, conflict=row["conflict"])
    st.x("DELETE FROM upload_sessions WHERE id=?", (row["id"],))
    return _respond_item(ctx, site, drive, item, 201 if created else 200)


async def upload_status(ctx: Ctx) -> Resp:
    return json_resp(_session_status(_session_row(ctx)))


async def upload_cancel(ctx: Ctx) -> Resp:
    row = _session_row(ctx)
    ctx.state.x("DELETE FROM upload_sessions WHERE id=?", (row["id"],))
    return empty(204)


async def upload_commit(ctx: Ctx) -> Resp:
    row = _session_row(ctx)
    received = bytes(row["received"])
    if not row["defer_commit"] or row["total"] is None or len(received) != row["total"]:
        raise HttpError(400, "invalidRequest", "Only a deferred session with all its bytes can be committed.")
    return _commit(ctx, row, received)


def _upload_cost(ctx: Ctx) -> int:
    return 2


# ====================================================================== delta
class DeltaToken:
    """Opaque to clients: ``base64url(json).hmac``. Phase ``full`` lists the snapshot up to ``seq``
    after ``key`` (depth, id); phase ``inc`` lists changes after ``seq``."""

    @staticmethod
    def pack(state: State, drive: Drive, phase: str, seq: int, key: tuple[int, str] | None = None) -> str:
        payload = json.dumps({"d": drive.id, "g": drive.delta_generation, "p": phase, "s": seq,
                              "k": list(key) if key else None, "t": int(time.time())}, separators=(",", ":"))
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        sig = hmac.new(_secret(state, "delta_secret"), body.encode(), hashlib.sha256).digest()[:12]
        return body + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")

    @staticmethod
    def unpack(state: State, token: str) -> dict[str, Any]:
        body, _, sig = token.partition(".")
        expected = base64.urlsafe_b64encode(
            hmac.new(_secret(state, "delta_secret"), body.encode(), hashlib.sha256).digest()[:12]).decode().rstrip("=")
        if not sig or not hmac.compare_digest(sig, expected):
            raise HttpError(400, "invalidRequest", "The delta token is not valid.")
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return data


def _delta_token_param(ctx: Ctx) -> str | None:
    if ctx.params.get("fn_token") is not None:
        return ctx.params["fn_token"]
    return ctx.req.q("token")


def _delta_cost(ctx: Ctx) -> int:
    # Graph prices a delta with a token at 1 RU and without at 2 (anchors-sync-notify.md §0).
    return 1 if _delta_token_param(ctx) else 2


async def delta(ctx: Ctx) -> Resp:
    site, drive = _drive_of(ctx)
    require_site(ctx, site.id, "read")
    st: State = ctx.state
    token = _delta_token_param(ctx)
    top = _top(ctx.req)
    if token is None or token == "":
        return _delta_page(ctx, site, drive, phase="full", seq=st.current_seq(), key=None, top=top)
    if token.lower() == "latest":
        return _delta_link_only(ctx, drive, st.current_seq())
    if re.match(r"^\d{4}-\d{2}-\d{2}T", token):
        try:
            when = parse_iso(token)
        except ValueError as exc:
            raise HttpError(400, "invalidRequest", f"Invalid timestamp token '{token}'.") from exc
        return _delta_page(ctx, site, drive, phase="inc", seq=st.seq_at(when), key=None, top=top)
    try:
        data = DeltaToken.unpack(st, token)
    except (ValueError, binascii.Error) as exc:
        raise HttpError(400, "invalidRequest", "The delta token is not valid.") from exc
    if data.get("d") != drive.id:
        raise HttpError(400, "invalidRequest", "The delta token belongs to another drive.")
    if data.get("g") != drive.delta_generation or time.time() - float(data.get("t", 0)) > DELTA_TOKEN_MAX_AGE:
        restart = _link(ctx, drive, DeltaToken.pack(st, drive, "full", st.current_seq()), top)
        raise HttpError(410, "resyncRequired", "Resync required. Replace any local items with the server's version "
                        "(including deletes) if you're sure that the service was up to date with your local changes "
                        "when you last sync'd. Upload any local changes that the server doesn't know about.",
                        inner_code="resyncChangesApplyDifferences", headers=[("location", restart)])
    key = tuple(data["k"]) if data.get("k") else None
    return _delta_page(ctx, site, drive, phase=str(data["p"]), seq=int(data["s"]),
                       key=(int(key[0]), str(key[1])) if key else None, top=top)


def _link(ctx: Ctx, drive: Drive, token: str, top: int | None = None) -> str:
    query = {"token": token}
    if top is not None and ctx.req.q("$top"):
        query["$top"] = str(top)
    if ctx.req.q("$select"):
        query["$select"] = ctx.req.q("$select") or ""
    return f"{ctx.req.base_url}/v1.0/drives/{drive.id}/root/delta?{urlencode(query)}"


def _delta_link_only(ctx: Ctx, drive: Drive, seq: int) -> Resp:
    return json_resp({"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#Collection(driveItem)", "value": [],
                      "@odata.deltaLink": _link(ctx, drive, DeltaToken.pack(ctx.state, drive, "inc", seq))})


def _delta_page(ctx: Ctx, site: Site, drive: Drive, *, phase: str, seq: int, key: tuple[int, str] | None,
                top: int) -> Resp:
    st: State = ctx.state
    items: list[Item] = []
    next_token: str | None = None
    if phase == "full":
        snapshot = st.snapshot_items(drive.id, upto_seq=seq, after_key=key, limit=top + 1)
        items = snapshot[:top]
        if len(snapshot) > top:
            last = items[-1]
            next_token = DeltaToken.pack(st, drive, "full", seq, (State.depth_of(last), last.id))
        else:
            phase, key = "inc", None  # the snapshot is done: go on with what changed since it was taken
    if phase == "inc" and next_token is None:
        room = top - len(items)
        changed = st.delta_items(drive.id, after_seq=seq, limit=room + 1) if room > 0 else []
        if room <= 0:
            next_token = DeltaToken.pack(st, drive, "inc", seq)
        elif len(changed) > room:
            items += changed[:room]
            next_token = DeltaToken.pack(st, drive, "inc", changed[room - 1].seq)
        else:
            items += changed
    select = ctx.req.q("$select")
    value = [_select(item_json(ctx, site, drive, i, for_delta=True), select) if not i.deleted
             else item_json(ctx, site, drive, i, for_delta=True) for i in items]
    body: dict[str, Any] = {"@odata.context": f"{ctx.req.base_url}/v1.0/$metadata#Collection(driveItem)",
                            "value": value}
    if next_token is not None:
        body["@odata.nextLink"] = _link(ctx, drive, next_token, top)
    else:
        body["@odata.deltaLink"] = _link(ctx, drive, DeltaToken.pack(st, drive, "inc", st.current_seq()), top)
    return json_resp(body)


# ====================================================================== registration
def register(router: Router) -> None:
    g = "graph"
    router.add("GET", _V + r"/sites/(?P<host>[^/:]+):(?P<spath>/[^:]+):?", get_site_by_path, name="graph.site",
               surface=g, cost=1)
    router.add("GET", _V + r"/sites/(?P<site>[^/]+)", get_site, name="graph.site", surface=g, cost=1)
    router.add("GET", _V + r"/sites/(?P<site>[^/]+)/drives", list_site_drives, name="graph.drives", surface=g,
               cost=2)
    router.add("GET", _DRIVE, get_drive, name="graph.drive", surface=g, cost=1)
    delta_path = _DRIVE + r"/(?:items/)?root/delta(?:\(\)|\(token='?(?P<fn_token>[^')]*)'?\))?"
    router.add("GET", delta_path, delta, name="graph.delta", surface=g, cost=_delta_cost)
    router.add("GET", _ADDR_END, get_item, name="graph.item", surface=g, cost=1)
    router.add("PATCH", _ADDR_END, update_item, name="graph.item.update", surface=g, cost=2)
    router.add("DELETE", _ADDR_END, delete_item, name="graph.item.delete", surface=g, cost=2)
    router.add("GET", _ADDR + r"/children", list_children, name="graph.children", surface=g, cost=2)
    router.add("POST", _ADDR + r"/children", create_child, name="graph.children.create", surface=g, cost=2)
    router.add("PUT", _ADDR + r"/content", put_content, name="graph.content.put", surface=g, cost=2)
    router.add("GET", _ADDR + r"/content", get_content, name="graph.content", surface=g, cost=1)
    router.add("POST", _ADDR + r"/createUploadSession", create_upload_session, name="graph.upload.create",
               surface=g, cost=2)
    router.add("GET", _ADDR + r"/versions", list_versions, name="graph.versions", surface=g, cost=2)
    router.add("GET", _ADDR + r"/versions/(?P<version>[^/]+)", get_version, name="graph.version", surface=g,
               cost=1)
    router.add("GET", _ADDR + r"/versions/(?P<version>[^/]+)/content", get_version_content,
               name="graph.version.content", surface=g, cost=1)
    router.add("POST", _ADDR + r"/versions/(?P<version>[^/]+)/restoreVersion", restore_version,
               name="graph.version.restore", surface=g, cost=2)
    # Pre-authorized URLs: no bearer token (sending one to an upload URL may even be refused).
    session = r"/_api/v2\.0/uploadsessions/(?P<session>[A-Za-z0-9_-]+)"
    router.add("PUT", session, upload_fragment, name="graph.upload.fragment", surface="upload", cost=_upload_cost)
    router.add("GET", session, upload_status, name="graph.upload.status", surface="upload")
    router.add("DELETE", session, upload_cancel, name="graph.upload.cancel", surface="upload")
    router.add("POST", session, upload_commit, name="graph.upload.commit", surface="upload")
    router.add("GET", r"/_layouts/15/download\.aspx", download, name="graph.download", surface="download")
