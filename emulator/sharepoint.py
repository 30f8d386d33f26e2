"""SharePoint REST (``{site}/_api/…``) for the local tenant: OData v3 over the shared State model.

Where it sits: ``emulator.app.Tenant`` routes ``/sites/{site}/_api/…`` here (surface
``sharepoint``: SharePoint-audience bearer tokens, OData v3 error envelope rendered by
``render_error``). Everything shown is read from and written to ``emulator.state.State``, the
same model Graph uses, so a role assignment added here is what Graph's ``/permissions`` shows.

How a request is answered (graph-api.md §3, anchors-permissions.md §1.1):

* The path after ``/_api`` is split into OData segments (``GetFolderByServerRelativeUrl('A/B')``,
  ``Items(3)``, ``RoleAssignments``, ``AddRoleAssignment(principalid=5,roledefid=…)``) and walked
  from ``web``/``site``: every resource is a ``Node``; navigation properties, keyed access and
  functions return further nodes or a primitive ``Value``.
* GET renders the final node with ``$select``/``$expand``/``$filter``/``$top`` in the flavour the
  ``Accept`` header asks for (verbose ``d``/``results``/``__next``/``__deferred``, nometadata,
  minimalmetadata). POST runs the last segment as an action (method parameters from the URL,
  positional or named, or from a JSON body, names case-insensitive), or creates into a
  collection; ``X-HTTP-Method`` MERGE/PUT/DELETE (or the real verbs) update or delete.
* Every write needs a valid ``X-RequestDigest`` from ``POST /_api/contextinfo`` (HMAC-bound to
  site and app, 1800 s), authorization is ``require_site`` (read/write/manage) and costs follow
  SharePoint's resource units (1 single read, 2 collection or write, 5 permission calls).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from emulator.app import require_site
from emulator.http import Ctx, HttpError, Req, Resp, Router, parse_odata_args
from emulator.state import (
    SYSTEM_ACCOUNT_ID,
    Item,
    ListRecord,
    Principal,
    RoleDefinition,
    Site,
    State,
    StateError,
    Version,
)

# ---------------------------------------------------------------------------------------------- errors
# SharePoint error codes are "<HRESULT>, <.NET exception type>" (graph-examples/sp-odata-error.json);
# office365-rest-python-client classifies errors by them (office365/sharepoint/exceptions.py).
SP_EXCEPTION = "-2146232832, Microsoft.SharePoint.SPException"
ITEM_MISSING = "-2130575338, Microsoft.SharePoint.SPException"
FILE_NOT_FOUND = "-2147024894, System.IO.FileNotFoundException"
ARGUMENT = "-2147024809, System.ArgumentException"
LIST_MISSING = "-1, System.ArgumentException"
BAD_QUERY = "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
ACCESS_DENIED = "-2147024891, System.UnauthorizedAccessException"
SECURITY_VALIDATION = "-2130575251, Microsoft.SharePoint.SPException"
VERSION_CONFLICT = "-2130575305, Microsoft.SharePoint.SPException"
USER_MISSING = "-2146232832, Microsoft.SharePoint.SPException"
ALREADY_EXISTS = "-2130575257, Microsoft.SharePoint.SPException"

_DEFAULT_SP_CODES = {
    400: SP_EXCEPTION,
    401: ACCESS_DENIED,
    403: ACCESS_DENIED,
    404: FILE_NOT_FOUND,
    405: BAD_QUERY,
    406: BAD_QUERY,
    409: ALREADY_EXISTS,
    412: VERSION_CONFLICT,
    413: "-2147024816, Microsoft.SharePoint.SPException",
    423: "-2147018894, Microsoft.SharePoint.SPFileLockException",
    429: "-2147024860, Microsoft.SharePoint.SPQueryThrottledException",
    503: "-2147024860, Microsoft.SharePoint.SPQueryThrottledException",
}
_GRAPHISH = {
    400: "invalidRequest",
    401: "unauthenticated",
    403: "accessDenied",
    404: "itemNotFound",
    409: "nameAlreadyExists",
    412: "resourceModified",
}


def sp_error(status: int, sp_code: str, message: str) -> HttpError:
    return HttpError(status, _GRAPHISH.get(status, "generalException"), message, sp_code=sp_code)


def _content_type(fmt: str) -> str:
    return {
        "verbose": "application/json;odata=verbose;charset=utf-8",
        "nometadata": "application/json;odata=nometadata;charset=utf-8",
    }.get(fmt, "application/json;odata=minimalmetadata;streaming=true;charset=utf-8")


def response_format(req: Req) -> str:
    """The OData v3 JSON flavour the client asked for.

    ``odata=verbose`` (office365-rest-python-client's default) and ``odata=nometadata`` are
    explicit. Anything else, including a bare ``application/json``, ``*/*`` or no Accept at
    all, gets minimalmetadata: that is what SharePoint Online answers today (older on-premises
    servers answered verbose or refused with 406). Atom/XML is not offered.
    """
    accept = (req.headers.get("accept") or "").lower().replace(" ", "")
    if "odata=verbose" in accept:
        return "verbose"
    if "odata=nometadata" in accept or "odata.metadata=none" in accept:
        return "nometadata"
    return "minimal"


def render_error(req: Req, exc: HttpError) -> Resp:
    """The OData v3 error envelope: ``error`` under verbose, ``odata.error`` otherwise."""
    fmt = response_format(req)
    code = exc.sp_code or _DEFAULT_SP_CODES.get(exc.status, "-1, System.Exception")
    if exc.status == 400 and exc.code not in ("invalidRequest", "generalException") and not exc.sp_code:
        code = SP_EXCEPTION
    error = {"code": code, "message": {"lang": "en-US", "value": exc.message}}
    body = {"error": error} if fmt == "verbose" else {"odata.error": error}
    # SharePoint repeats the reason in X-MS-Diagnostics; a header value must be printable ASCII.
    reason = re.sub(r"[^\x20-\x7e]+", " ", exc.message[:120]).replace('"', "'")
    headers = [
        ("content-type", _content_type(fmt)),
        ("x-ms-diagnostics", f'{code.split(",")[0]};reason="{reason}"'),
        ("sprequestguid", str(uuid.uuid4())),
        *exc.headers,
    ]
    return Resp(exc.status, json.dumps(body, ensure_ascii=False).encode(), headers)


# ---------------------------------------------------------------------------------------------- paths
@dataclasses.dataclass(frozen=True)
class Seg:
    """One OData path segment: ``Name`` or ``Name(args)``."""

    name: str
    args: str | None

    @property
    def key(self) -> str:
        return self.name.lower()


def split_path(rest: str) -> list[Seg]:
    """Split ``web/GetFolderByServerRelativeUrl('A/B (1)')/Folders`` on slashes outside literals."""
    segs: list[Seg] = []
    i, n = 0, len(rest)
    while i < n:
        if rest[i] == "/":
            i += 1
            continue
        j = i
        while j < n and rest[j] not in "/(":
            j += 1
        name = rest[i:j]
        args: str | None = None
        if j < n and rest[j] == "(":
            depth, k, in_str = 0, j, False
            while k < n:
                c = rest[k]
                if in_str:
                    if c == "'" and k + 1 < n and rest[k + 1] == "'":
                        k += 1
                    elif c == "'":
                        in_str = False
                elif c == "'":
                    in_str = True
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            if k >= n:
                raise sp_error(400, BAD_QUERY, f'The expression "{rest}" is not valid.')
            args = rest[j + 1 : k]
            j = k + 1
        segs.append(Seg(name, args))
        i = j
    return segs


def _literal(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


class Params:
    """Method parameters merged from the URL (named or positional, ``@alias`` resolved from the
    query string) and the JSON body; names compare case-insensitively."""

    def __init__(self, seg: Seg | None, req: Req, body: dict[str, Any]) -> None:
        self.positional: list[Any] = []
        self.named: dict[str, Any] = {}
        for arg in parse_odata_args(seg.args) if seg and seg.args else []:
            value: Any = arg.value
            if not arg.quoted and arg.value.startswith("@"):
                alias = next((v for k, v in req.query.items() if k.lower() == arg.value.lower()), None)
                if alias is None:
                    raise sp_error(400, BAD_QUERY, f"The parameter alias '{arg.value}' has no value.")
                value = _literal(alias)
            if arg.name is None:
                self.positional.append(value)
            else:
                self.named[arg.name] = value
        for k, v in body.items():
            if k != "__metadata":
                self.named.setdefault(k.lower(), v)

    def get(self, name: str, index: int | None = None) -> Any:
        if name.lower() in self.named:
            return self.named[name.lower()]
        if index is not None and index < len(self.positional):
            return self.positional[index]
        return None

    def require(self, name: str, index: int | None = None) -> Any:
        value = self.get(name, index)
        if value is None or value == "":
            raise sp_error(400, ARGUMENT, f"Value cannot be null.\r\nParameter name: {name}")
        return value


def as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise sp_error(400, BAD_QUERY, f"The value '{value}' is not a valid Boolean.")


def as_int(value: Any, name: str) -> int:
    try:
        return int(str(value).strip().strip("'"))
    except ValueError as exc:
        raise sp_error(
            400, BAD_QUERY, f"The value '{value}' of parameter '{name}' is not a valid Int32."
        ) from exc


# ---------------------------------------------------------------------------------------------- digest
DIGEST_LIFETIME = 1800  # seconds; what contextinfo reports as FormDigestTimeoutSeconds (probe: 1800)
LIBRARY_VERSION = "16.0.25409.12004"


def _digest_secret(state: State) -> bytes:
    secret = state.meta("sp_digest_secret")
    if secret is None:
        secret = secrets.token_hex(32)
        state.set_meta("sp_digest_secret", secret)
    return secret.encode()


def _digest_mac(state: State, site_id: str, client_id: str, stamp: str) -> str:
    return (
        hmac.new(_digest_secret(state), f"{site_id}|{client_id.lower()}|{stamp}".encode(), hashlib.sha512)
        .hexdigest()
        .upper()
    )


def make_digest(state: State, site_id: str, client_id: str, now: float | None = None) -> str:
    """A form digest shaped like SharePoint's: ``0x<128 hex>,<RFC 1123-ish UTC time> -0000``."""
    moment = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    stamp = f"{moment.day} {moment.strftime('%b %Y %H:%M:%S')} -0000"
    return f"0x{_digest_mac(state, site_id, client_id, stamp)},{stamp}"


def check_digest(state: State, site_id: str, client_id: str, value: str | None) -> None:
    """403 with SharePoint's security-validation error unless ``value`` is this site's, this app's
    and not older than ``DIGEST_LIFETIME``.

    SharePoint Online skips this check for OAuth bearer requests (sp-dev-docs: the digest is
    needed "if you aren't using OAuth"); the local tenant is stricter on purpose, as the lead's
    design asks, so a client that forgets the digest fails here rather than on an old farm.
    """
    invalid = sp_error(
        403,
        SECURITY_VALIDATION,
        "The security validation for this page is invalid and might be "
        "corrupted. Please use your web browser's Back button to try your operation again.",
    )
    if not value or not value.startswith("0x") or "," not in value:
        raise invalid
    mac, _, stamp = value[2:].partition(",")
    if not hmac.compare_digest(mac.upper(), _digest_mac(state, site_id, client_id, stamp)):
        raise invalid
    try:
        issued = datetime.strptime(stamp.replace(" -0000", ""), "%d %b %Y %H:%M:%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise invalid from exc
    if time.time() - issued.timestamp() > DIGEST_LIFETIME:
        raise sp_error(
            403,
            SECURITY_VALIDATION,
            "The security validation for this page has timed out. Click Back "
            "in your Web browser, refresh the page, and try your operation again.",
        )


# ---------------------------------------------------------------------------------------------- helpers
def sp_time(value: str | None) -> str | None:
    """SharePoint REST timestamps: UTC, whole seconds, ``Z``."""
    if not value:
        return None
    return value[:19] + "Z"


def _guid_from(text: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def _quote_rel(rel: str) -> str:
    return quote(rel, safe="/:@!$&'()*+,;=-._~")


def _odata_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclasses.dataclass
class Value:
    """A primitive result: a property read (``…/HasUniqueRoleAssignments``) or a method's return."""

    name: str
    value: Any
    edm: str = "Edm.String"


class Void:
    """A method without a return value (BreakRoleInheritance, AddRoleAssignment, …)."""

    def __init__(self, name: str) -> None:
        self.name = name


Result = Any  # Node | Value | Void | None


# ---------------------------------------------------------------------------------------------- request scope
class Sp:
    """Per-request context the nodes share: state, site, caller, URLs and small caches."""

    def __init__(self, ctx: Ctx, site: Site) -> None:
        self.ctx = ctx
        self.req = ctx.req
        self.state: State = ctx.state
        self.site = site
        self.fmt = response_format(ctx.req)
        self.site_url = ctx.req.base_url + _quote_rel(site.server_relative_url)
        self._by_title: dict[str, int] | None = None

    def abs(self, rel: str) -> str:
        return f"{self.site_url}/_api/{_quote_rel(rel)}"

    @property
    def by(self) -> str:
        return self.ctx.by

    def app_principal(self) -> Principal:
        caller = self.ctx.caller
        assert caller is not None
        return self.state.ensure_app_principal(self.site.id, caller.app)

    def principal_id_for(self, display: str) -> int:
        """createdBy/modifiedBy are display names in State; SharePoint shows principal ids."""
        if self._by_title is None:
            self._by_title = {p.title: p.id for p in self.state.principals(self.site.id, ("user", "app"))}
        return self._by_title.get(display, SYSTEM_ACCOUNT_ID)

    def libraries(self) -> list[ListRecord]:
        return [lst for lst in self.state.lists(self.site.id) if lst.drive_id]

    def site_relative(self, url: str) -> str:
        """``/sites/X/Shared Documents/A``, an absolute URL or ``Shared Documents/A`` → site-relative.

        SharePoint accepts both server-relative and site-relative forms in
        GetFolderByServerRelativeUrl; a server-relative URL of another site is an error.
        """
        text = url.strip().replace("\\", "/")
        if re.match(r"https?://", text, re.IGNORECASE):
            text = unquote(urlsplit(text).path)
        srv = self.site.server_relative_url.rstrip("/")
        low = text.lower()
        if low.rstrip("/") == srv.lower():
            return ""
        if low.startswith(srv.lower() + "/"):
            text = text[len(srv) + 1 :]
        elif text.startswith("/"):
            raise sp_error(
                400,
                ARGUMENT,
                f"Server relative urls must start with SPWeb.ServerRelativeUrl ('{srv}'); got '{url}'.",
            )
        return text.strip("/")

    def resolve(self, url: str) -> tuple[ListRecord, Item] | None:
        """A library folder or file by server- or site-relative URL; None for the web's root folder."""
        rel = self.site_relative(url)
        if rel == "":
            return None
        head, _, tail = rel.partition("/")
        for lst in self.libraries():
            if lst.url_name.lower() == head.lower():
                assert lst.drive_id is not None
                item = self.state.item_by_path(lst.drive_id, "/" + tail if tail else "")
                if item is None:
                    raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
                return lst, item
        raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")

    def list_of_item(self, item: Item) -> ListRecord:
        drive = self.state.drive(item.drive_id)
        assert drive is not None
        lst = self.state.get_list(self.site.id, drive.list_id)
        if lst is None:
            raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
        return lst

    def server_url(self, lst: ListRecord, item: Item | None = None) -> str:
        base = (
            f"{self.site.server_relative_url}/{lst.url_name}"
            if lst.drive_id
            else f"{self.site.server_relative_url}/Lists/{lst.url_name}"
        )
        return base + (item.path if item is not None else "")

    def body(self) -> dict[str, Any]:
        data = self.req.json()
        if not isinstance(data, dict):
            raise sp_error(400, BAD_QUERY, "The request body must be a JSON object.")
        if set(data) - {"__metadata"} == {"parameters"} and isinstance(data.get("parameters"), dict):
            data = {
                **data["parameters"],
                **({"__metadata": data["__metadata"]} if "__metadata" in data else {}),
            }
        return data


# ---------------------------------------------------------------------------------------------- nodes
class Node:
    """An addressable SharePoint REST resource."""

    type_name = "SP.Object"
    navs: tuple[str, ...] = ()
    select_only: frozenset[str] = frozenset()
    is_collection = False
    scope_key: str | None = None  # set on securables (web, list, library item)

    def __init__(self, sp: Sp, rel: str) -> None:
        self.sp = sp
        self.rel = rel  # path below _api/, e.g. "Web/Lists(guid'…')"

    @property
    def uri(self) -> str:
        return self.sp.abs(self.rel)

    def props(self) -> dict[str, Any]:
        return {}

    def etag(self) -> str | None:
        return None

    def nav(self, name: str) -> Node | None:
        raise sp_error(404, BAD_QUERY, f"Cannot find resource for the request {name}.")

    def call(self, seg: Seg) -> Result:
        """A function or keyed access in a path (GET-able); NotImplemented when unknown."""
        del seg
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        """A POST-only method as the last segment; NotImplemented when ``seg`` is not one."""
        del seg, params
        return NotImplemented

    def update(self, body: dict[str, Any]) -> None:
        del body
        raise sp_error(400, BAD_QUERY, f"The type {self.type_name} does not support HTTP MERGE method.")

    def delete(self) -> None:
        raise sp_error(400, BAD_QUERY, f"The type {self.type_name} does not support HTTP DELETE method.")

    def check_if_match(self) -> None:
        wanted = self.sp.req.headers.get("if-match")
        current = self.etag()
        if wanted and wanted.strip() != "*" and current is not None and wanted.strip() != current:
            raise sp_error(412, VERSION_CONFLICT, "Version conflict.")


class Collection(Node):
    is_collection = True
    item_type = "SP.Object"
    pages = False  # only list items page with __next (SharePoint returns other collections whole)

    def members(self, after: int, limit: int) -> Sequence[Node]:
        del after, limit
        return []

    def keyed(self, args: str) -> Result:
        del args
        return NotImplemented

    def create(self, body: dict[str, Any]) -> Node:
        del body
        raise sp_error(
            400, BAD_QUERY, f"The type {self.item_type} collection does not support HTTP POST method."
        )

    def page_key(self, node: Node) -> int:
        del node
        return 0


# ---------------------------------------------------------------------------------------------- securables
class Securable(Node):
    """Web, list or library list item: role assignments and inheritance (MS-CSOMSPT)."""

    def unique(self) -> bool:
        assert self.scope_key is not None
        return bool(self.sp.state.has_unique(self.scope_key))

    def secure_nav(self, name: str) -> Node | None:
        if name == "RoleAssignments":
            return RoleAssignments(self.sp, self)
        if name == "FirstUniqueAncestorSecurableObject":
            assert self.scope_key is not None
            return securable_for_scope(self.sp, self.sp.state.effective_scope(self.scope_key))
        return None

    def secure_action(self, seg: Seg, params: Params) -> Result:
        state, key = self.sp.state, self.scope_key
        assert key is not None
        if seg.key == "breakroleinheritance":
            copy = as_bool(params.get("copyRoleAssignments", 0), True)
            clear = as_bool(params.get("clearSubscopes", 1), False)
            state.break_inheritance(
                key,
                copy_role_assignments=copy,
                clear_subscopes=clear,
                current_principal_id=self.sp.app_principal().id,
            )
            return Void("BreakRoleInheritance")
        if seg.key == "resetroleinheritance":
            state.reset_inheritance(key)
            return Void("ResetRoleInheritance")
        return NotImplemented


def securable_for_scope(sp: Sp, scope_key: str) -> Node:
    kind, _, key = scope_key.partition(":")
    if kind == "web":
        return WebNode(sp)
    if kind == "list":
        lst = sp.state.get_list(sp.site.id, key)
        assert lst is not None
        return ListNode(sp, lst)
    item = sp.state.item_any_drive(key)
    assert item is not None
    return LibraryItemNode(sp, sp.list_of_item(item), item)


# ---------------------------------------------------------------------------------------------- web / site
class WebNode(Securable):
    type_name = "SP.Web"
    navs = (
        "AssociatedMemberGroup",
        "AssociatedOwnerGroup",
        "AssociatedVisitorGroup",
        "CurrentUser",
        "FirstUniqueAncestorSecurableObject",
        "Folders",
        "Lists",
        "RoleAssignments",
        "RoleDefinitions",
        "RootFolder",
        "SiteGroups",
        "SiteUsers",
    )
    select_only = frozenset({"HasUniqueRoleAssignments"})

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web")
        self.scope_key = sp.site.scope_key

    def props(self) -> dict[str, Any]:
        s = self.sp.site
        return {
            "AllowRssFeeds": True,
            "Created": sp_time(s.created_at),
            "Description": s.description,
            "HasUniqueRoleAssignments": self.unique(),
            "Id": s.web_guid,
            "IsMultilingual": False,
            "Language": 1033,
            "LastItemModifiedDate": sp_time(s.created_at),
            "NoCrawl": False,
            "ServerRelativeUrl": s.server_relative_url,
            "SiteLogoUrl": None,
            "Title": s.title,
            "Url": self.sp.site_url,
            "WebTemplate": "STS",
            "Configuration": 3,
        }

    def nav(self, name: str) -> Node | None:
        sp = self.sp
        secured = self.secure_nav(name)
        if secured is not None:
            return secured
        groups = {"AssociatedOwnerGroup": 3, "AssociatedVisitorGroup": 4, "AssociatedMemberGroup": 5}
        if name in groups:
            p = sp.state.principal(sp.site.id, groups[name])
            return principal_node(sp, p) if p is not None else None
        if name == "CurrentUser":
            return principal_node(sp, sp.app_principal())
        makers: dict[str, Callable[[], Node]] = {
            "Folders": lambda: WebFolders(sp),
            "Lists": lambda: Lists(sp),
            "RoleDefinitions": lambda: RoleDefinitions(sp),
            "RootFolder": lambda: WebRootFolder(sp),
            "SiteGroups": lambda: SiteGroups(sp),
            "SiteUsers": lambda: SiteUsers(sp),
        }
        return makers[name]()

    def call(self, seg: Seg) -> Result:
        sp, key = self.sp, seg.key
        params = Params(seg, sp.req, {})
        if key in ("getfolderbyserverrelativeurl", "getfolderbyserverrelativepath", "getfolderbyid"):
            return folder_by(sp, seg, params)
        if key in ("getfilebyserverrelativeurl", "getfilebyserverrelativepath", "getfilebyid"):
            return file_by(sp, seg, params)
        if key == "getlist":
            url = str(params.require("strUrl", 0))
            rel = sp.site_relative(url)
            for lst in sp.state.lists(sp.site.id):
                if sp.site_relative(sp.server_url(lst)).lower() == rel.lower():
                    return ListNode(sp, lst)
            raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
        if key == "getuserbyid":
            return SiteUsers(sp).by_id(as_int(params.require("id", 0), "id"))
        if key == "ensureuser" and sp.req.method == "POST":
            return NotImplemented  # handled as an action
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "ensureuser":
            logon = str(params.require("logonName", 0))
            return principal_node(self.sp, self.sp.state.ensure_user(self.sp.site.id, logon))
        return self.secure_action(seg, params)


class SiteNode(Node):
    type_name = "SP.Site"
    navs = ("RootWeb",)

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Site")

    def props(self) -> dict[str, Any]:
        s = self.sp.site
        return {
            "Id": s.site_guid,
            "ReadOnly": False,
            "ServerRelativeUrl": s.server_relative_url,
            "Url": self.sp.site_url,
            "MaxItemsPerThrottledOperation": 5000,
            "PrimaryUri": self.sp.site_url,
        }

    def nav(self, name: str) -> Node | None:
        return WebNode(self.sp)


# ---------------------------------------------------------------------------------------------- lists
_BUILTIN_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "InternalName": "Title",
        "Title": "Title",
        "TypeAsString": "Text",
        "FieldTypeKind": 2,
        "ReadOnlyField": False,
    },
    {
        "InternalName": "ID",
        "Title": "ID",
        "TypeAsString": "Counter",
        "FieldTypeKind": 5,
        "ReadOnlyField": True,
    },
    {
        "InternalName": "Created",
        "Title": "Created",
        "TypeAsString": "DateTime",
        "FieldTypeKind": 4,
        "ReadOnlyField": True,
    },
    {
        "InternalName": "Modified",
        "Title": "Modified",
        "TypeAsString": "DateTime",
        "FieldTypeKind": 4,
        "ReadOnlyField": True,
    },
    {
        "InternalName": "Author",
        "Title": "Created By",
        "TypeAsString": "User",
        "FieldTypeKind": 20,
        "ReadOnlyField": True,
    },
    {
        "InternalName": "Editor",
        "Title": "Modified By",
        "TypeAsString": "User",
        "FieldTypeKind": 20,
        "ReadOnlyField": True,
    },
)
_LIBRARY_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "InternalName": "FileLeafRef",
        "Title": "Name",
        "TypeAsString": "File",
        "FieldTypeKind": 18,
        "ReadOnlyField": False,
    },
    {
        "InternalName": "FileRef",
        "Title": "URL Path",
        "TypeAsString": "Lookup",
        "FieldTypeKind": 7,
        "ReadOnlyField": True,
    },
)
#: FieldTypeKind → (TypeAsString, entity type) for the column kinds the local tenant can add.
_FIELD_KINDS = {
    2: ("Text", "SP.FieldText"),
    3: ("Note", "SP.FieldMultiLineText"),
    4: ("DateTime", "SP.FieldDateTime"),
    8: ("Boolean", "SP.Field"),
    9: ("Number", "SP.FieldNumber"),
}
_FIELD_TYPES = {v[1].lower(): k for k, v in _FIELD_KINDS.items() if v[1] != "SP.Field"}


class Lists(Collection):
    type_name = item_type = "SP.List"

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web/Lists")

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return [ListNode(self.sp, lst) for lst in self.sp.state.lists(self.sp.site.id)][:limit]

    def by_key(self, key: str, *, by_title: bool) -> ListNode:
        sp = self.sp
        for lst in sp.state.lists(sp.site.id):
            if (by_title and lst.title.lower() == key.lower()) or (
                not by_title and lst.id.lower() == key.strip("{}").lower()
            ):
                return ListNode(sp, lst)
        if by_title:
            raise sp_error(
                404, LIST_MISSING, f"List '{key}' does not exist at site with URL '{sp.site_url}'."
            )
        raise sp_error(
            404,
            LIST_MISSING,
            "List does not exist.\n\nThe page you selected contains a list that does "
            "not exist.  It may have been deleted by another user.",
        )

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.by_key(parsed[0].value, by_title=False) if parsed else NotImplemented

    def call(self, seg: Seg) -> Result:
        params = Params(seg, self.sp.req, {})
        if seg.key == "getbytitle":
            return self.by_key(str(params.require("title", 0)), by_title=True)
        if seg.key == "getbyid":
            return self.by_key(str(params.require("id", 0)), by_title=False)
        return NotImplemented

    def create(self, body: dict[str, Any]) -> Node:
        sp = self.sp
        title = str(body.get("Title") or "").strip()
        if not title:
            raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: Title")
        template = int(body.get("BaseTemplate") or 100)
        if template not in (100, 101):
            raise sp_error(
                400,
                ARGUMENT,
                f"Invalid list template {template}: the local tenant offers 100 "
                f"(Custom List) and 101 (Document Library).",
            )
        lst = sp.state.create_list(
            sp.site, title, base_template=template, description=str(body.get("Description") or "")
        )
        return ListNode(sp, lst)


class ListNode(Securable):
    type_name = "SP.List"
    navs = (
        "Fields",
        "FirstUniqueAncestorSecurableObject",
        "Items",
        "ParentWeb",
        "RoleAssignments",
        "RootFolder",
    )
    select_only = frozenset({"HasUniqueRoleAssignments"})

    def __init__(self, sp: Sp, lst: ListRecord) -> None:
        super().__init__(sp, f"Web/Lists(guid'{lst.id}')")
        self.lst = lst
        self.scope_key = lst.scope_key

    def item_count(self) -> int:
        if self.lst.drive_id:
            return self.sp.state.library_item_count(self.lst.drive_id)
        return len(self.sp.state.list_items(self.lst, limit=1_000_000))

    def props(self) -> dict[str, Any]:
        lst, lib = self.lst, bool(self.lst.drive_id)
        return {
            "AllowContentTypes": True,
            "BaseTemplate": lst.base_template,
            "BaseType": 1 if lib else 0,
            "ContentTypesEnabled": False,
            "Created": sp_time(lst.created_at),
            "Description": lst.description,
            "EnableAttachments": not lib,
            "EnableFolderCreation": lib,
            "EnableMinorVersions": False,
            "EnableVersioning": lib,
            "EntityTypeName": lst.entity_type_name,
            "ForceCheckout": False,
            "HasUniqueRoleAssignments": self.unique(),
            "Hidden": False,
            "Id": lst.id,
            "ItemCount": self.item_count(),
            "LastItemModifiedDate": sp_time(lst.modified_at),
            "ListItemEntityTypeFullName": lst.item_type_name,
            "MajorVersionLimit": 500 if lib else 0,
            "ParentWebUrl": self.sp.site.server_relative_url,
            "Title": lst.title,
        }

    def nav(self, name: str) -> Node | None:
        secured = self.secure_nav(name)
        if secured is not None:
            return secured
        sp = self.sp
        if name == "RootFolder":
            if self.lst.drive_id:
                return FolderNode(sp, self.lst, sp.state.root(self.lst.drive_id))
            return ListRootFolder(sp, self.lst)
        makers: dict[str, Callable[[], Node]] = {
            "Fields": lambda: Fields(sp, self.lst),
            "Items": lambda: ListItems(sp, self.lst),
            "ParentWeb": lambda: WebNode(sp),
        }
        return makers[name]()

    def call(self, seg: Seg) -> Result:
        if seg.key == "getitembyid":
            return ListItems(self.sp, self.lst).by_id(
                as_int(Params(seg, self.sp.req, {}).require("itemId", 0), "id")
            )
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        return self.secure_action(seg, params)


class Fields(Collection):
    type_name = "SP.Field"
    item_type = "SP.Field"

    def __init__(self, sp: Sp, lst: ListRecord) -> None:
        super().__init__(sp, f"Web/Lists(guid'{lst.id}')/Fields")
        self.lst = lst

    def all(self) -> list[dict[str, Any]]:
        extra = _LIBRARY_FIELDS if self.lst.drive_id else ()
        return [*_BUILTIN_FIELDS, *extra, *(_norm_field(f) for f in self.lst.fields)]

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return [FieldNode(self.sp, self.lst, f) for f in self.all()][:limit]

    def find(self, key: str, *, by_id: bool = False) -> FieldNode:
        for f in self.all():
            if (by_id and self.field_id(f) == key.strip("{}").lower()) or (
                not by_id and key.lower() in (str(f["InternalName"]).lower(), str(f["Title"]).lower())
            ):
                return FieldNode(self.sp, self.lst, f)
        raise sp_error(
            400, ARGUMENT, f"Column '{key}' does not exist. It may have been deleted by another user."
        )

    def field_id(self, f: dict[str, Any]) -> str:
        return str(f.get("Id") or _guid_from(f"field:{self.lst.id}:{f['InternalName']}")).lower()

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.find(parsed[0].value, by_id=True) if parsed else NotImplemented

    def call(self, seg: Seg) -> Result:
        if seg.key in ("getbytitle", "getbyinternalnameortitle"):
            return self.find(str(Params(seg, self.sp.req, {}).require("title", 0)))
        if seg.key == "getbyid":
            return self.find(str(Params(seg, self.sp.req, {}).require("id", 0)), by_id=True)
        return NotImplemented

    def create(self, body: dict[str, Any]) -> Node:
        meta = body.get("__metadata") or {}
        kind = body.get("FieldTypeKind")
        if kind is None and isinstance(meta, dict):
            kind = _FIELD_TYPES.get(str(meta.get("type", "")).lower())
        if kind is None or int(kind) not in _FIELD_KINDS:
            raise sp_error(
                400,
                ARGUMENT,
                f"The field type kind '{kind}' is not supported by the local tenant "
                f"(Text 2, Note 3, DateTime 4, Boolean 8, Number 9).",
            )
        title = str(body.get("Title") or "").strip()
        if not title:
            raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: Title")
        # SharePoint derives the internal name from the title, encoding spaces as _x0020_.
        internal = str(body.get("StaticName") or body.get("InternalName") or title).replace(" ", "_x0020_")
        if any(str(f["InternalName"]).lower() == internal.lower() for f in self.all()):
            raise sp_error(
                400,
                "-2130575340, Microsoft.SharePoint.SPException",
                f'A duplicate field name "{internal}" was found.',
            )
        type_as_string = _FIELD_KINDS[int(kind)][0]
        field = {
            "Id": new_id(),
            "InternalName": internal,
            "Title": title,
            "TypeAsString": type_as_string,
            "FieldTypeKind": int(kind),
            "ReadOnlyField": False,
            "Required": bool(body.get("Required", False)),
            "Description": str(body.get("Description") or ""),
        }
        self.sp.state.add_list_field(self.lst, field)
        return FieldNode(self.sp, self.lst, field)


_GRAPH_COLUMN_KINDS = {"text": 2, "number": 9, "dateTime": 4, "boolean": 8}


def _norm_field(f: dict[str, Any]) -> dict[str, Any]:
    """A list column as SharePoint REST shows it, whether it was added here or as a Graph columnDefinition."""
    if "InternalName" in f and "FieldTypeKind" in f:
        return f
    name = str(f.get("InternalName") or f.get("name") or f.get("Title") or "")
    kind = int(f.get("FieldTypeKind") or next((k for key, k in _GRAPH_COLUMN_KINDS.items() if key in f), 2))
    return {
        "Id": f.get("Id") or f.get("id") or _guid_from(f"column:{name}"),
        "InternalName": name,
        "Title": f.get("Title") or f.get("displayName") or name,
        "TypeAsString": _FIELD_KINDS.get(kind, ("Text", ""))[0],
        "FieldTypeKind": kind,
        "ReadOnlyField": bool(f.get("readOnly", False)),
        "Required": bool(f.get("required", False)),
        "Description": f.get("description", ""),
    }


def new_id() -> str:
    return str(uuid.uuid4())


class FieldNode(Node):
    def __init__(self, sp: Sp, lst: ListRecord, field: dict[str, Any]) -> None:
        self.field = field
        self.fid = Fields(sp, lst).field_id(field)
        super().__init__(sp, f"Web/Lists(guid'{lst.id}')/Fields(guid'{self.fid}')")
        self.type_name = _FIELD_KINDS.get(int(field["FieldTypeKind"]), ("", "SP.Field"))[1]

    def props(self) -> dict[str, Any]:
        f = self.field
        return {
            "CanBeDeleted": "Id" in f,
            "Description": f.get("Description", ""),
            "FieldTypeKind": f["FieldTypeKind"],
            "Group": "Custom Columns" if "Id" in f else "_Hidden",
            "Hidden": False,
            "Id": self.fid,
            "InternalName": f["InternalName"],
            "ReadOnlyField": f.get("ReadOnlyField", False),
            "Required": f.get("Required", False),
            "StaticName": f["InternalName"],
            "Title": f["Title"],
            "TypeAsString": f["TypeAsString"],
        }


def _coerce_fields(
    sp: Sp, lst: ListRecord, body: dict[str, Any], entity_type: str, allowed_extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate a list item payload against the list's columns as SharePoint does."""
    meta = body.get("__metadata")
    if isinstance(meta, dict) and meta.get("type") and str(meta["type"]).lower() != entity_type.lower():
        raise sp_error(
            400,
            BAD_QUERY,
            f"A type named '{meta['type']}' could not be resolved by the model. When a "
            f"model is available, each type name must resolve to a valid type.",
        )
    writable = {
        str(f["InternalName"]).lower(): f for f in Fields(sp, lst).all() if not f.get("ReadOnlyField")
    }
    out: dict[str, Any] = {}
    for key, given in body.items():
        if key == "__metadata" or key.lower() in (a.lower() for a in allowed_extra):
            continue
        value: Any = given
        field = writable.get(key.lower())
        if field is None:
            raise sp_error(
                400,
                BAD_QUERY,
                f"The property '{key}' does not exist on type '{entity_type}'. Make sure to "
                f"only use property names that are defined by the type.",
            )
        kind = int(field["FieldTypeKind"])
        if value is not None and kind == 9:
            try:
                value = float(value)
            except (TypeError, ValueError) as exc:
                raise sp_error(
                    400,
                    "-2146232832, Microsoft.SharePoint.SPFieldValidationException",
                    "Invalid number value. A number field contains invalid data. Please check the value "
                    "and try again.",
                ) from exc
        elif value is not None and kind == 8:
            value = as_bool(value, False)
        elif value is not None and kind == 4:
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError as exc:
                raise sp_error(
                    400,
                    "-2146232832, Microsoft.SharePoint.SPFieldValidationException",
                    f"Invalid date/time value: '{value}'.",
                ) from exc
        out[str(field["InternalName"])] = value
    return out


class ListItems(Collection):
    type_name = "SP.ListItem"
    pages = True

    def __init__(self, sp: Sp, lst: ListRecord) -> None:
        super().__init__(sp, f"Web/Lists(guid'{lst.id}')/Items")
        self.lst = lst
        self.item_type = lst.item_type_name

    def members(self, after: int, limit: int) -> Sequence[Node]:
        sp, lst = self.sp, self.lst
        if lst.drive_id:
            return [
                LibraryItemNode(sp, lst, i)
                for i in sp.state.library_items(lst.drive_id, after_id=after, limit=limit)
            ]
        return [GenericItemNode(sp, lst, r) for r in sp.state.list_items(lst, after_id=after, limit=limit)]

    def page_key(self, node: Node) -> int:
        return int(node.props()["Id"])

    def by_id(self, n: int) -> Node:
        sp, lst = self.sp, self.lst
        if lst.drive_id:
            item = sp.state.item_by_list_item_id(lst.drive_id, n) if n > 0 else None
            if item is not None:
                return LibraryItemNode(sp, lst, item)
        else:
            record = sp.state.list_item(lst, n)
            if record is not None:
                return GenericItemNode(sp, lst, record)
        raise sp_error(404, ITEM_MISSING, "Item does not exist. It may have been deleted by another user.")

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.by_id(as_int(parsed[0].value, "id")) if parsed else NotImplemented

    def call(self, seg: Seg) -> Result:
        if seg.key == "getbyid":
            return self.by_id(as_int(Params(seg, self.sp.req, {}).require("id", 0), "id"))
        return NotImplemented

    def create(self, body: dict[str, Any]) -> Node:
        sp, lst = self.sp, self.lst
        if lst.drive_id:
            raise sp_error(
                400,
                "-2147024809, System.ArgumentException",
                "To add an item to a document library, use SPFileCollection.Add()",
            )
        fields = _coerce_fields(sp, lst, body, lst.item_type_name)
        return GenericItemNode(sp, lst, sp.state.add_list_item(lst, fields, by=sp.by))


class GenericItemNode(Node):
    """An item of a custom list (template 100). Not securable in the local tenant's model."""

    navs = ("ParentList",)

    def __init__(self, sp: Sp, lst: ListRecord, record: dict[str, Any]) -> None:
        super().__init__(sp, f"Web/Lists(guid'{lst.id}')/Items({record['id']})")
        self.lst, self.record = lst, record
        self.type_name = lst.item_type_name

    def etag(self) -> str | None:
        return f'"{self.record["version"]}"'

    def props(self) -> dict[str, Any]:
        r, sp = self.record, self.sp
        return {
            "FileSystemObjectType": 0,
            "Id": r["id"],
            "ServerRedirectedEmbedUri": None,
            "ServerRedirectedEmbedUrl": "",
            "ContentTypeId": "0x0100" + self.lst.id.replace("-", "").upper(),
            "Title": r["fields"].get("Title"),
            **{k: v for k, v in r["fields"].items() if k != "Title"},
            "ID": r["id"],
            "Modified": sp_time(r["modified_at"]),
            "Created": sp_time(r["created_at"]),
            "AuthorId": sp.principal_id_for(r["created_by"]),
            "EditorId": sp.principal_id_for(r["modified_by"]),
            "OData__UIVersionString": f"{r['version']}.0",
            "Attachments": False,
            "GUID": r["uid"],
        }

    def nav(self, name: str) -> Node | None:
        return ListNode(self.sp, self.lst)

    def update(self, body: dict[str, Any]) -> None:
        self.check_if_match()
        fields = _coerce_fields(self.sp, self.lst, body, self.lst.item_type_name)
        self.sp.state.update_list_item(self.lst, int(self.record["id"]), fields, by=self.sp.by)

    def delete(self) -> None:
        self.check_if_match()
        self.sp.state.delete_list_item(self.lst, int(self.record["id"]))

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "recycle":
            self.delete()
            return Value("Recycle", _guid_from(f"recycle:{self.record['uid']}"), "Edm.Guid")
        if seg.key in ("breakroleinheritance", "resetroleinheritance") or "roleassignment" in seg.key:
            raise sp_error(
                400,
                SP_EXCEPTION,
                "Unique permissions on items of custom lists are not modelled by the "
                "local tenant; use a document library.",
            )
        return NotImplemented


class LibraryItemNode(Securable):
    """A document library's list item: the ``ListItemAllFields`` of a folder or file."""

    navs = ("File", "FirstUniqueAncestorSecurableObject", "Folder", "ParentList", "RoleAssignments")
    select_only = frozenset(
        {"FileLeafRef", "FileRef", "FileDirRef", "FSObjType", "UniqueId", "HasUniqueRoleAssignments"}
    )

    def __init__(self, sp: Sp, lst: ListRecord, item: Item) -> None:
        super().__init__(sp, f"Web/Lists(guid'{lst.id}')/Items({item.list_item_id})")
        self.lst, self.item = lst, item
        self.type_name = lst.item_type_name
        self.scope_key = item.scope_key

    def etag(self) -> str | None:
        return f'"{self.item.etag_no}"'

    def props(self) -> dict[str, Any]:
        i, sp = self.item, self.sp
        url = sp.server_url(self.lst, i)
        fields = {k: v for k, v in i.fields.items() if k not in ("Title", "FileLeafRef")}
        return {
            "FileSystemObjectType": 1 if i.is_folder else 0,
            "Id": i.list_item_id,
            "ServerRedirectedEmbedUri": None,
            "ServerRedirectedEmbedUrl": "",
            "ContentTypeId": ("0x012000" if i.is_folder else "0x010100")
            + self.lst.id.replace("-", "").upper(),
            "ComplianceAssetId": None,
            "Title": i.fields.get("Title"),
            **fields,
            "ID": i.list_item_id,
            "Created": sp_time(i.created_at),
            "AuthorId": sp.principal_id_for(i.created_by),
            "Modified": sp_time(i.modified_at),
            "EditorId": sp.principal_id_for(i.modified_by),
            "OData__CopySource": None,
            "CheckoutUserId": None,
            "OData__UIVersionString": f"{max(i.major, 1)}.0",
            "GUID": _guid_from(f"listitem:{i.uid}"),
            "FileLeafRef": i.name,
            "FileRef": url,
            "FileDirRef": url.rsplit("/", 1)[0],
            "FSObjType": 1 if i.is_folder else 0,
            "UniqueId": i.uid,
            "HasUniqueRoleAssignments": self.unique(),
        }

    def nav(self, name: str) -> Node | None:
        secured = self.secure_nav(name)
        if secured is not None:
            return secured
        sp, i = self.sp, self.item
        if name == "File":
            return FileNode(sp, self.lst, i) if not i.is_folder else None
        if name == "Folder":
            return FolderNode(sp, self.lst, i) if i.is_folder else None
        return ListNode(sp, self.lst)

    def update(self, body: dict[str, Any]) -> None:
        sp, item = self.sp, self.item
        self.check_if_match()
        fields = _coerce_fields(sp, self.lst, body, self.lst.item_type_name)
        name = fields.pop("FileLeafRef", None)
        if name is not None and str(name) != item.name:
            item = sp.state.update_item(item, by=sp.by, name=str(name))
        if fields:
            sp.state.set_fields(item, fields, by=sp.by)

    def delete(self) -> None:
        self.check_if_match()
        self.sp.state.delete_item(self.item, by=self.sp.by)

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "recycle":
            self.delete()
            return Value("Recycle", _guid_from(f"recycle:{self.item.uid}"), "Edm.Guid")
        return self.secure_action(seg, params)


# ------------------------------------------------------------------------------------------- folders / files
def folder_by(sp: Sp, seg: Seg, params: Params) -> Node:
    if seg.key == "getfolderbyid":
        raise sp_error(400, BAD_QUERY, "GetFolderById is not offered by the local tenant.")
    url = params.get("decodedUrl", 0) if seg.key.endswith("path") else params.get("serverRelativeUrl", 0)
    if url is None:
        url = params.require("url", 0)
    found = sp.resolve(str(url))
    if found is None:
        return WebRootFolder(sp)
    lst, item = found
    if not item.is_folder:
        raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
    return FolderNode(sp, lst, item)


def file_by(sp: Sp, seg: Seg, params: Params) -> Node:
    if seg.key == "getfilebyid":
        raise sp_error(400, BAD_QUERY, "GetFileById is not offered by the local tenant.")
    url = params.get("decodedUrl", 0) if seg.key.endswith("path") else params.get("serverRelativeUrl", 0)
    if url is None:
        url = params.require("url", 0)
    found = sp.resolve(str(url))
    if found is None or found[1].is_folder:
        raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
    return FileNode(sp, *found)


def _folder_rel(sp: Sp, url: str) -> str:
    return f"Web/GetFolderByServerRelativePath(decodedurl={_odata_str(url)})"


class FolderNode(Node):
    type_name = "SP.Folder"
    navs = ("Files", "Folders", "ListItemAllFields", "ParentFolder", "Properties")

    def __init__(self, sp: Sp, lst: ListRecord, item: Item) -> None:
        self.lst, self.item = lst, item
        self.url = sp.server_url(lst, item)
        super().__init__(sp, _folder_rel(sp, self.url))

    def props(self) -> dict[str, Any]:
        i = self.item
        return {
            "Exists": True,
            "ExistsAllowThrowForPolicyFailures": True,
            "IsWOPIEnabled": False,
            "ItemCount": self.sp.state.child_count(i),
            "Name": self.lst.url_name if i.is_root else i.name,
            "ProgID": None,
            "ServerRelativeUrl": self.url,
            "TimeCreated": sp_time(i.created_at),
            "TimeLastModified": sp_time(i.modified_at),
            "UniqueId": i.uid,
            "WelcomePage": "",
        }

    def nav(self, name: str) -> Node | None:
        sp, i = self.sp, self.item
        if name == "ListItemAllFields":
            # A library's root folder has no list item; SharePoint answers null (PnP uses GetList).
            return None if i.is_root else LibraryItemNode(sp, self.lst, i)
        if name == "ParentFolder":
            if i.is_root:
                return WebRootFolder(sp)
            parent = sp.state.item(i.drive_id, i.parent_id or "")
            assert parent is not None
            return FolderNode(sp, self.lst, parent)
        if name == "Properties":
            return PropertyBag(
                sp, self.rel + "/Properties", {"vti_folderitemcount": self.sp.state.child_count(i)}
            )
        if name == "Files":
            return Files(sp, self)
        return Folders(sp, self)

    def delete(self) -> None:
        if self.item.is_root:
            raise sp_error(400, SP_EXCEPTION, "Cannot delete the root folder of a list.")
        self.sp.state.delete_item(self.item, by=self.sp.by)

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "recycle":
            self.delete()
            return Value("Recycle", _guid_from(f"recycle:{self.item.uid}"), "Edm.Guid")
        return NotImplemented


class PropertyBag(Node):
    type_name = "SP.PropertyValues"

    def __init__(self, sp: Sp, rel: str, values: dict[str, Any]) -> None:
        super().__init__(sp, rel)
        self.values = values

    def props(self) -> dict[str, Any]:
        return dict(self.values)


class WebRootFolder(Node):
    """The web's root folder (``/sites/X``): its subfolders are the libraries' root folders."""

    type_name = "SP.Folder"
    navs = ("Files", "Folders", "ListItemAllFields")

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web/RootFolder")

    def props(self) -> dict[str, Any]:
        s = self.sp.site
        return {
            "Exists": True,
            "ExistsAllowThrowForPolicyFailures": True,
            "IsWOPIEnabled": False,
            "ItemCount": len(self.sp.libraries()),
            "Name": "",
            "ProgID": None,
            "ServerRelativeUrl": s.server_relative_url,
            "TimeCreated": sp_time(s.created_at),
            "TimeLastModified": sp_time(s.created_at),
            "UniqueId": _guid_from(f"webroot:{s.id}"),
            "WelcomePage": "SitePages/Home.aspx",
        }

    def nav(self, name: str) -> Node | None:
        if name == "Folders":
            return WebFolders(self.sp)
        if name == "Files":
            return StaticCollection(self.sp, self.rel + "/Files", "SP.File", [])
        return None


class StaticCollection(Collection):
    def __init__(self, sp: Sp, rel: str, item_type: str, nodes: list[Node]) -> None:
        super().__init__(sp, rel)
        self.item_type = self.type_name = item_type
        self.nodes = nodes

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return self.nodes[:limit]


class ListRootFolder(Node):
    """A custom list's root folder (``/sites/X/Lists/Name``)."""

    type_name = "SP.Folder"

    def __init__(self, sp: Sp, lst: ListRecord) -> None:
        self.lst = lst
        super().__init__(sp, _folder_rel(sp, sp.server_url(lst)))

    def props(self) -> dict[str, Any]:
        return {
            "Exists": True,
            "ItemCount": len(self.sp.state.list_items(self.lst, limit=1_000_000)),
            "Name": self.lst.url_name,
            "ServerRelativeUrl": self.sp.server_url(self.lst),
            "TimeCreated": sp_time(self.lst.created_at),
            "TimeLastModified": sp_time(self.lst.modified_at),
            "UniqueId": _guid_from(f"listroot:{self.lst.id}"),
            "WelcomePage": "",
        }


def _create_folder_at(sp: Sp, url: str, *, base: FolderNode | None, overwrite: bool | None) -> FolderNode:
    """Create (or, like SPFolderCollection.Add, return the existing) folder at ``url``.

    ``url`` is relative to ``base`` or server-/site-relative; missing intermediate folders are
    an error, as in SharePoint ("File Not Found.").
    """
    text = url.strip().replace("\\", "/")
    if base is not None and not text.startswith("/") and not text.lower().startswith("http"):
        text = f"{base.url}/{text}"
    text = text.rstrip("/")
    parent_url, _, name = text.rpartition("/")
    found = sp.resolve(parent_url)
    if found is None:
        raise sp_error(400, ARGUMENT, "Folders can only be created inside a document library.")
    lst, parent = found
    if not parent.is_folder:
        raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
    existing = sp.state.child_named(parent, name)
    if existing is not None:
        if existing.is_folder and overwrite is not False:
            return FolderNode(sp, lst, existing)
        raise sp_error(
            409,
            "-2130245363, Microsoft.SharePoint.SPException",
            f"A file or folder with the name {sp.server_url(lst, existing)} already exists.",
        )
    created = sp.state.create_folder(parent, name, by=sp.by, conflict="fail")
    return FolderNode(sp, lst, created)


class Folders(Collection):
    type_name = item_type = "SP.Folder"

    def __init__(self, sp: Sp, folder: FolderNode) -> None:
        super().__init__(sp, folder.rel + "/Folders")
        self.folder = folder

    def members(self, after: int, limit: int) -> Sequence[Node]:
        f = self.folder
        return [
            FolderNode(self.sp, f.lst, c) for c in self.sp.state.children(f.item, limit=5000) if c.is_folder
        ][:limit]

    def call(self, seg: Seg) -> Result:
        if seg.key in ("getbyurl", "getbypath"):
            name = str(
                Params(seg, self.sp.req, {}).require("url" if seg.key == "getbyurl" else "decodedUrl", 0)
            )
            child = self.sp.state.child_named(self.folder.item, name)
            if child is None or not child.is_folder:
                raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
            return FolderNode(self.sp, self.folder.lst, child)
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "add":
            return _create_folder_at(self.sp, str(params.require("url", 0)), base=self.folder, overwrite=None)
        if seg.key == "addusingpath":
            path = params.require("decodedUrl", 0)
            if isinstance(path, dict):  # {"DecodedUrl": …} as an SP.ResourcePath body
                path = next((v for k, v in path.items() if k.lower() == "decodedurl"), "")
            return _create_folder_at(
                self.sp, str(path), base=self.folder, overwrite=as_bool(params.get("overwrite", 1), False)
            )
        return NotImplemented

    def create(self, body: dict[str, Any]) -> Node:
        return _create_folder_at(
            self.sp, str(body.get("ServerRelativeUrl") or ""), base=self.folder, overwrite=None
        )


class WebFolders(Collection):
    """``/_api/web/folders``: the web's top-level folders; POST creates by ServerRelativeUrl."""

    type_name = item_type = "SP.Folder"

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web/Folders")

    def members(self, after: int, limit: int) -> Sequence[Node]:
        sp = self.sp
        nodes: list[Node] = []
        for lst in sp.libraries():
            assert lst.drive_id is not None
            nodes.append(FolderNode(sp, lst, sp.state.root(lst.drive_id)))
        return nodes[:limit]

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key in ("add", "addusingpath"):
            url = params.require("decodedUrl" if seg.key == "addusingpath" else "url", 0)
            return _create_folder_at(self.sp, str(url), base=None, overwrite=None)
        return NotImplemented

    def create(self, body: dict[str, Any]) -> Node:
        url = str(body.get("ServerRelativeUrl") or "")
        if not url:
            raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: ServerRelativeUrl")
        return _create_folder_at(self.sp, url, base=None, overwrite=None)


class Files(Collection):
    type_name = item_type = "SP.File"

    def __init__(self, sp: Sp, folder: FolderNode) -> None:
        super().__init__(sp, folder.rel + "/Files")
        self.folder = folder

    def members(self, after: int, limit: int) -> Sequence[Node]:
        f = self.folder
        return [
            FileNode(self.sp, f.lst, c) for c in self.sp.state.children(f.item, limit=5000) if not c.is_folder
        ][:limit]

    def call(self, seg: Seg) -> Result:
        if seg.key == "getbyurl":
            name = str(Params(seg, self.sp.req, {}).require("url", 0))
            child = self.sp.state.child_named(self.folder.item, name.rsplit("/", 1)[-1])
            if child is None or child.is_folder:
                raise sp_error(404, FILE_NOT_FOUND, "File Not Found.")
            return FileNode(self.sp, self.folder.lst, child)
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key not in ("add", "addusingpath"):
            return NotImplemented
        sp = self.sp
        # The body is the file's bytes here, so parameters come from the URL only.
        url = params.require("decodedUrl" if seg.key == "addusingpath" else "url", 0)
        overwrite = as_bool(params.get("overwrite", 1), False)
        name = str(url).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        parent = self.folder.item
        existing = sp.state.child_named(parent, name)
        if existing is not None and not overwrite:
            raise sp_error(
                400,
                ALREADY_EXISTS,
                f"A file with the name {sp.server_url(self.folder.lst, existing)} "
                f"already exists. It was last modified by {existing.modified_by} on "
                f"{sp_time(existing.modified_at)}.",
            )
        item, _ = sp.state.put_file(parent, name, sp.req.body, by=sp.by, conflict="replace")
        return FileNode(sp, self.folder.lst, item)


class FileNode(Node):
    type_name = "SP.File"
    navs = ("Author", "ListItemAllFields", "ModifiedBy", "Versions")

    def __init__(self, sp: Sp, lst: ListRecord, item: Item) -> None:
        self.lst, self.item = lst, item
        self.url = sp.server_url(lst, item)
        super().__init__(sp, f"Web/GetFileByServerRelativePath(decodedurl={_odata_str(self.url)})")

    def etag(self) -> str | None:
        return self.item.etag

    def props(self) -> dict[str, Any]:
        i = self.item
        return {
            "CheckInComment": "",
            "CheckOutType": 2,
            "ContentTag": i.ctag.strip('"').removeprefix("c:"),
            "CustomizedPageStatus": 0,
            "ETag": i.etag,
            "Exists": True,
            "ExistsAllowThrowForPolicyFailures": True,
            "IrmEnabled": False,
            "Length": str(i.size),
            "Level": 1,
            "LinkingUri": None,
            "LinkingUrl": "",
            "MajorVersion": i.major,
            "MinorVersion": 0,
            "Name": i.name,
            "ServerRelativeUrl": self.url,
            "TimeCreated": sp_time(i.created_at),
            "TimeLastModified": sp_time(i.modified_at),
            "Title": None,
            "UIVersion": i.major * 512,
            "UIVersionLabel": f"{i.major}.0",
            "UniqueId": i.uid,
        }

    def nav(self, name: str) -> Node | None:
        sp = self.sp
        if name == "ListItemAllFields":
            return LibraryItemNode(sp, self.lst, self.item)
        if name == "Versions":
            return Versions(sp, self)
        p = sp.state.principal(
            sp.site.id,
            sp.principal_id_for(self.item.created_by if name == "Author" else self.item.modified_by),
        )
        return principal_node(sp, p) if p is not None else None

    def delete(self) -> None:
        self.check_if_match()
        self.sp.state.delete_item(self.item, by=self.sp.by)

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "recycle":
            self.delete()
            return Value("Recycle", _guid_from(f"recycle:{self.item.uid}"), "Edm.Guid")
        return NotImplemented

    def put_content(self) -> None:
        self.check_if_match()
        self.sp.state.overwrite(self.item, self.sp.req.body, by=self.sp.by)


class Versions(Collection):
    """A file's previous versions; the current version is the file itself (graph-api.md §3.6)."""

    type_name = item_type = "SP.FileVersion"

    def __init__(self, sp: Sp, file: FileNode) -> None:
        super().__init__(sp, file.rel + "/Versions")
        self.file = file

    def all(self) -> list[VersionNode]:
        item = self.file.item
        return [
            VersionNode(self.sp, self, v)
            for v in reversed(self.sp.state.versions(item))
            if v.major < item.major
        ]

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return list(self.all())[:limit]

    def by_id(self, vid: int) -> VersionNode:
        for v in self.all():
            if v.vid == vid:
                return v
        raise sp_error(404, ARGUMENT, "Version does not exist. It may have been deleted by another user.")

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.by_id(as_int(parsed[0].value, "id")) if parsed else NotImplemented

    def call(self, seg: Seg) -> Result:
        if seg.key == "getbyid":
            return self.by_id(as_int(Params(seg, self.sp.req, {}).require("versionid", 0), "versionid"))
        if seg.key == "getbylabel":
            label = str(Params(seg, self.sp.req, {}).require("versionlabel", 0))
            return self.by_id(int(float(label)) * 512)
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "restorebylabel":
            label = str(params.require("versionlabel", 0))
            version = self.by_id(int(float(label)) * 512) if re.fullmatch(r"\d+(\.0)?", label) else None
            if version is None:
                raise sp_error(404, ARGUMENT, "Version does not exist.")
            self.sp.state.restore_version(self.file.item, version.major, by=self.sp.by)
            return Void("RestoreByLabel")
        return NotImplemented


class VersionNode(Node):
    type_name = "SP.FileVersion"

    def __init__(self, sp: Sp, coll: Versions, version: Version) -> None:
        self.vid, self.major, self.size = version.major * 512, version.major, version.size
        self.modified_at, self.modified_by = version.modified_at, version.modified_by
        self.file = coll.file
        super().__init__(sp, f"{coll.rel}({self.vid})")

    def props(self) -> dict[str, Any]:
        url = self.file.url.removeprefix(self.sp.site.server_relative_url + "/")
        return {
            "CheckInComment": "",
            "Created": sp_time(self.modified_at),
            "ID": self.vid,
            "IsCurrentVersion": False,
            "Length": str(self.size),
            "Size": self.size,
            "Url": f"_vti_history/{self.vid}/{url}",
            "VersionLabel": f"{self.major}.0",
        }

    def content(self) -> bytes:
        return self.sp.state.content(self.file.item, self.major)


# ---------------------------------------------------------------------------------------------- principals
def principal_node(sp: Sp, p: Principal) -> Node:
    return GroupNode(sp, p) if p.kind == "group" else UserNode(sp, p)


class UserNode(Node):
    type_name = "SP.User"
    navs = ("Groups",)

    def __init__(self, sp: Sp, p: Principal) -> None:
        super().__init__(sp, f"Web/GetUserById({p.id})")
        self.p = p

    def props(self) -> dict[str, Any]:
        p = self.p
        user_id: dict[str, Any] | None = None
        if p.kind in ("user", "app") and p.id != SYSTEM_ACCOUNT_ID:
            user_id = {
                "NameId": hashlib.sha1((p.directory_id or p.login_name).encode()).hexdigest()[:16],  # noqa: S324
                "NameIdIssuer": "urn:federation:microsoftonline",
            }
            if self.sp.fmt == "verbose":
                user_id = {"__metadata": {"type": "SP.UserIdInfo"}, **user_id}
        return {
            "Id": p.id,
            "IsHiddenInUI": p.hidden,
            "LoginName": p.login_name,
            "Title": p.title,
            "PrincipalType": p.principal_type,
            "Email": p.email,
            "Expiration": "",
            "IsEmailAuthenticationGuestUser": False,
            "IsShareByEmailGuestUser": False,
            "IsSiteAdmin": p.is_site_admin,
            "UserId": user_id,
            "UserPrincipalName": p.upn if p.kind == "user" else None,
        }

    def nav(self, name: str) -> Node | None:
        sp = self.sp
        nodes: list[Node] = []
        for gid in sp.state.groups_of(sp.site.id, self.p.id):
            g = sp.state.principal(sp.site.id, gid)
            if g is not None:
                nodes.append(GroupNode(sp, g))
        return StaticCollection(sp, self.rel + "/Groups", "SP.Group", nodes)


class GroupNode(Node):
    type_name = "SP.Group"
    navs = ("Owner", "Users")

    def __init__(self, sp: Sp, p: Principal) -> None:
        super().__init__(sp, f"Web/SiteGroups/GetById({p.id})")
        self.p = p

    def props(self) -> dict[str, Any]:
        p, sp = self.p, self.sp
        owner = sp.state.principal(sp.site.id, p.owner_id) if p.owner_id is not None else None
        return {
            "Id": p.id,
            "IsHiddenInUI": p.hidden,
            "LoginName": p.login_name,
            "Title": p.title,
            "PrincipalType": 8,
            "AllowMembersEditMembership": False,
            "AllowRequestToJoinLeave": False,
            "AutoAcceptRequestToJoinLeave": False,
            "Description": p.description or None,
            "OnlyAllowMembersViewMembership": not p.hidden,
            "OwnerTitle": owner.title if owner else p.title,
            "RequestToJoinLeaveEmailSetting": None,
        }

    def nav(self, name: str) -> Node | None:
        sp = self.sp
        if name == "Users":
            return GroupUsers(sp, self)
        owner = sp.state.principal(sp.site.id, self.p.owner_id) if self.p.owner_id is not None else None
        return principal_node(sp, owner) if owner is not None else None

    def update(self, body: dict[str, Any]) -> None:
        title = body.get("Title")
        if title is not None and str(title) != self.p.title:
            clash = self.sp.state.site_group_by_name(self.sp.site.id, str(title))
            if clash is not None and clash.id != self.p.id:
                raise sp_error(
                    400,
                    SP_EXCEPTION,
                    "The specified name is already in use.\n\nPlease try again with a new name.",
                )
        self.sp.state.update_site_group(
            self.sp.site.id,
            self.p.id,
            title=None if title is None else str(title),
            description=None if body.get("Description") is None else str(body["Description"]),
        )


def _user_not_found() -> HttpError:
    return sp_error(404, USER_MISSING, "User cannot be found.")


class PrincipalCollection(Collection):
    """Shared lookups of siteusers and group users."""

    def candidates(self) -> list[Principal]:
        return []

    def node(self, p: Principal) -> Node:
        return principal_node(self.sp, p)

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return [self.node(p) for p in self.candidates()][:limit]

    def by_id(self, pid: int) -> Node:
        for p in self.candidates():
            if p.id == pid:
                return self.node(p)
        raise _user_not_found()

    def find(self, seg: Seg) -> Principal | None:
        params = Params(seg, self.sp.req, {})
        if seg.key == "getbyid":
            pid = as_int(params.require("id", 0), "id")
            return next((p for p in self.candidates() if p.id == pid), None)
        if seg.key == "getbyloginname":
            login = str(params.require("loginName", 0)).lower()
            return next((p for p in self.candidates() if p.login_name.lower() == login), None)
        if seg.key == "getbyemail":
            mail = str(params.require("emailAddress", 0)).lower()
            return next((p for p in self.candidates() if p.email.lower() == mail), None)
        raise LookupError

    def call(self, seg: Seg) -> Result:
        try:
            found = self.find(seg)
        except LookupError:
            return NotImplemented
        if found is None:
            raise _user_not_found()
        return self.node(found)

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.by_id(as_int(parsed[0].value, "id")) if parsed else NotImplemented

    def victim(self, seg: Seg, params: Params) -> Principal | None:
        if seg.key == "removebyid":
            pid = as_int(params.require("id", 0), "id")
            return next((p for p in self.candidates() if p.id == pid), None)
        if seg.key == "removebyloginname":
            login = str(params.require("loginName", 0)).lower()
            return next((p for p in self.candidates() if p.login_name.lower() == login), None)
        raise LookupError


class SiteUsers(PrincipalCollection):
    type_name = item_type = "SP.User"

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web/SiteUsers")

    def candidates(self) -> list[Principal]:
        return self.sp.state.principals(self.sp.site.id, ("user", "app", "secgroup"))

    def action(self, seg: Seg, params: Params) -> Result:
        try:
            victim = self.victim(seg, params)
        except LookupError:
            return NotImplemented
        if victim is None:
            raise _user_not_found()
        if victim.id == SYSTEM_ACCOUNT_ID:
            raise sp_error(400, SP_EXCEPTION, "You cannot remove the System Account from the site.")
        self.sp.state.remove_site_user(self.sp.site.id, victim.id)
        return Void("RemoveById" if seg.key == "removebyid" else "RemoveByLoginName")

    def create(self, body: dict[str, Any]) -> Node:
        login = str(body.get("LoginName") or "")
        if not login:
            raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: LoginName")
        return UserNode(self.sp, self.sp.state.ensure_user(self.sp.site.id, login))


class SiteGroups(PrincipalCollection):
    type_name = item_type = "SP.Group"

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web/SiteGroups")

    def candidates(self) -> list[Principal]:
        return self.sp.state.principals(self.sp.site.id, ("group",))

    def find(self, seg: Seg) -> Principal | None:
        if seg.key == "getbyname":
            name = str(Params(seg, self.sp.req, {}).require("name", 0))
            return self.sp.state.site_group_by_name(self.sp.site.id, name)
        return super().find(seg)

    def call(self, seg: Seg) -> Result:
        try:
            found = self.find(seg)
        except LookupError:
            return NotImplemented
        if found is None:
            raise sp_error(404, USER_MISSING, "Group cannot be found.")
        return GroupNode(self.sp, found)

    def by_id(self, pid: int) -> Node:
        for p in self.candidates():
            if p.id == pid:
                return GroupNode(self.sp, p)
        raise sp_error(404, USER_MISSING, "Group cannot be found.")

    def action(self, seg: Seg, params: Params) -> Result:
        if seg.key == "removebyid":
            victim = next(
                (p for p in self.candidates() if p.id == as_int(params.require("id", 0), "id")), None
            )
        elif seg.key == "removebyloginname":
            login = str(params.require("loginName", 0)).lower()
            victim = next((p for p in self.candidates() if p.login_name.lower() == login), None)
        else:
            return NotImplemented
        if victim is None:
            raise sp_error(404, USER_MISSING, "Group cannot be found.")
        self.sp.state.delete_site_group(self.sp.site.id, victim.id)
        return Void("RemoveById" if seg.key == "removebyid" else "RemoveByLoginName")

    def create(self, body: dict[str, Any]) -> Node:
        title = str(body.get("Title") or "").strip()
        if not title:
            raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: Title")
        if len(title) > 255 or any(c in title for c in "\"/\\[]:|<>+=;,?*'@"):
            raise sp_error(400, ARGUMENT, f"The group name '{title}' is not valid.")
        try:
            group = self.sp.state.create_site_group(
                self.sp.site.id,
                title,
                description=str(body.get("Description") or ""),
                owner_id=self.sp.app_principal().id,
            )
        except StateError as exc:
            raise sp_error(
                400,
                SP_EXCEPTION,
                "The specified name is already in use.\n\nPlease try again with a new name.",
            ) from exc
        return GroupNode(self.sp, group)


class GroupUsers(PrincipalCollection):
    type_name = item_type = "SP.User"

    def __init__(self, sp: Sp, group: GroupNode) -> None:
        super().__init__(sp, group.rel + "/Users")
        self.group = group

    def candidates(self) -> list[Principal]:
        return self.sp.state.site_group_members(self.sp.site.id, self.group.p.id)

    def node(self, p: Principal) -> Node:
        return UserNode(self.sp, p)

    def action(self, seg: Seg, params: Params) -> Result:
        try:
            victim = self.victim(seg, params)
        except LookupError:
            return NotImplemented
        if victim is None:
            raise _user_not_found()
        self.sp.state.remove_site_group_member(self.sp.site.id, self.group.p.id, victim.id)
        return Void("RemoveById" if seg.key == "removebyid" else "RemoveByLoginName")

    def create(self, body: dict[str, Any]) -> Node:
        # SharePoint resolves the login name like EnsureUser before adding the member.
        login = str(body.get("LoginName") or "")
        if not login:
            raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: LoginName")
        user = self.sp.state.ensure_user(self.sp.site.id, login)
        self.sp.state.add_site_group_member(self.sp.site.id, self.group.p.id, user.id)
        return UserNode(self.sp, user)


# ---------------------------------------------------------------------------------------------- roles
class RoleDefinitionNode(Node):
    type_name = "SP.RoleDefinition"

    def __init__(self, sp: Sp, rd: RoleDefinition) -> None:
        super().__init__(sp, f"Web/RoleDefinitions({rd.id})")
        self.rd = rd

    def props(self) -> dict[str, Any]:
        rd = self.rd
        perms: dict[str, Any] = {"High": str(rd.perm_high), "Low": str(rd.perm_low)}
        if self.sp.fmt == "verbose":
            perms = {"__metadata": {"type": "SP.BasePermissions"}, **perms}
        return {
            "BasePermissions": perms,
            "Description": rd.description,
            "Hidden": rd.hidden,
            "Id": rd.id,
            "Name": rd.name,
            "Order": rd.order,
            "RoleTypeKind": rd.role_type_kind,
        }


class RoleDefinitions(Collection):
    type_name = item_type = "SP.RoleDefinition"

    def __init__(self, sp: Sp) -> None:
        super().__init__(sp, "Web/RoleDefinitions")

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return [RoleDefinitionNode(self.sp, rd) for rd in self.sp.state.role_definitions(self.sp.site.id)][
            :limit
        ]

    def lookup(self, **kw: Any) -> Node:
        rd = self.sp.state.role_definition(self.sp.site.id, **kw)
        if rd is None:
            what = kw.get("name") or kw.get("id") or kw.get("role_type_kind")
            raise sp_error(404, SP_EXCEPTION, f"Permission level '{what}' does not exist.")
        return RoleDefinitionNode(self.sp, rd)

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.lookup(id=as_int(parsed[0].value, "id")) if parsed else NotImplemented

    def call(self, seg: Seg) -> Result:
        params = Params(seg, self.sp.req, {})
        if seg.key == "getbyname":
            return self.lookup(name=str(params.require("name", 0)))
        if seg.key == "getbyid":
            return self.lookup(id=as_int(params.require("id", 0), "id"))
        if seg.key == "getbytype":
            kind = as_int(params.require("roleType", 0), "roleType")
            if kind == 0:  # RoleType.None is not a permission level
                raise sp_error(400, ARGUMENT, "Value does not fall within the expected range.")
            return self.lookup(role_type_kind=kind)
        return NotImplemented


class RoleAssignmentNode(Node):
    type_name = "SP.RoleAssignment"
    navs = ("Member", "RoleDefinitionBindings")

    def __init__(self, sp: Sp, owner: Securable, principal_id: int, roledefs: list[int]) -> None:
        super().__init__(sp, f"{owner.rel}/RoleAssignments/GetByPrincipalId({principal_id})")
        self.owner, self.principal_id, self.roledefs = owner, principal_id, roledefs

    def props(self) -> dict[str, Any]:
        return {"PrincipalId": self.principal_id}

    def nav(self, name: str) -> Node | None:
        sp = self.sp
        if name == "Member":
            p = sp.state.principal(sp.site.id, self.principal_id)
            if p is None:
                raise _user_not_found()
            return principal_node(sp, p)
        nodes: list[Node] = []
        for rid in self.roledefs:
            rd = sp.state.role_definition(sp.site.id, id=rid)
            if rd is not None:
                nodes.append(RoleDefinitionNode(sp, rd))
        return StaticCollection(sp, self.rel + "/RoleDefinitionBindings", "SP.RoleDefinition", nodes)

    def delete(self) -> None:
        assert self.owner.scope_key is not None
        self.sp.state.remove_role_assignment(self.owner.scope_key, self.principal_id, None)


class RoleAssignments(Collection):
    type_name = item_type = "SP.RoleAssignment"

    def __init__(self, sp: Sp, owner: Securable) -> None:
        super().__init__(sp, owner.rel + "/RoleAssignments")
        self.owner = owner

    def assignments(self) -> dict[int, list[int]]:
        assert self.owner.scope_key is not None
        return dict(self.sp.state.role_assignments(self.owner.scope_key))

    def members(self, after: int, limit: int) -> Sequence[Node]:
        return [
            RoleAssignmentNode(self.sp, self.owner, pid, roles) for pid, roles in self.assignments().items()
        ][:limit]

    def by_principal(self, pid: int) -> Node:
        roles = self.assignments().get(pid)
        if roles is None:
            raise sp_error(400, SP_EXCEPTION, f"Can not find the principal with id: {pid}.")
        return RoleAssignmentNode(self.sp, self.owner, pid, roles)

    def keyed(self, args: str) -> Result:
        parsed = parse_odata_args(args)
        return self.by_principal(as_int(parsed[0].value, "principalId")) if parsed else NotImplemented

    def call(self, seg: Seg) -> Result:
        if seg.key == "getbyprincipalid":
            return self.by_principal(
                as_int(Params(seg, self.sp.req, {}).require("principalId", 0), "principalId")
            )
        return NotImplemented

    def action(self, seg: Seg, params: Params) -> Result:
        sp = self.sp
        key = self.owner.scope_key
        assert key is not None
        if seg.key not in ("addroleassignment", "removeroleassignment"):
            return NotImplemented
        pid = as_int(params.require("principalId", 0), "principalId")
        rdid_raw = params.get("roleDefId", 1)
        if sp.state.principal(sp.site.id, pid) is None:
            raise sp_error(400, SP_EXCEPTION, f"Can not find the principal with id: {pid}.")
        rdid = None if rdid_raw in (None, "") else as_int(rdid_raw, "roleDefId")
        if rdid is not None and sp.state.role_definition(sp.site.id, id=rdid) is None:
            raise sp_error(400, ARGUMENT, "Value does not fall within the expected range.")
        if not sp.state.has_unique(key):
            raise sp_error(
                400, SP_EXCEPTION, "This operation is not allowed on an object that inherits permissions."
            )
        if seg.key == "addroleassignment":
            if rdid is None:
                raise sp_error(400, ARGUMENT, "Value cannot be null.\r\nParameter name: roleDefId")
            sp.state.add_role_assignment(key, pid, rdid)
            return Void("AddRoleAssignment")
        sp.state.remove_role_assignment(key, pid, rdid)
        return Void("RemoveRoleAssignment")


# ---------------------------------------------------------------------------------------------- rendering
def _tree(spec: str | None) -> dict[str, Any]:
    """``A/B,A/C,D`` → ``{"a": {"b": {}, "c": {}}, "d": {}}`` (names lower-cased)."""
    out: dict[str, Any] = {}
    for raw in (spec or "").split(","):
        part = raw.strip()
        if not part:
            continue
        node = out
        for name in part.split("/"):
            node = node.setdefault(name.strip().lower(), {})
    return out


class Renderer:
    def __init__(self, sp: Sp) -> None:
        self.sp = sp
        self.fmt = sp.fmt

    def meta(self, node: Node) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": node.uri, "uri": node.uri}
        etag = node.etag()
        if etag is not None:
            meta["etag"] = etag
        meta["type"] = node.type_name
        return meta

    def entity(self, node: Node, select: dict[str, Any] | None, expand: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.fmt == "verbose":
            out["__metadata"] = self.meta(node)
        elif self.fmt == "minimal":
            out["odata.type"] = node.type_name
            out["odata.id"] = node.uri
            etag = node.etag()
            if etag is not None:
                out["odata.etag"] = etag
            out["odata.editLink"] = node.rel
        sel = None if select is None or "*" in select or not select else select
        navs = {n.lower(): n for n in node.navs}
        for key, name in navs.items():
            if key in expand:
                target = node.nav(name)
                sub_sel = (sel or {}).get(key) or None
                out[name] = self.nested(target, sub_sel, expand[key])
            elif self.fmt == "verbose" and (sel is None or key in sel):
                out[name] = {"__deferred": {"uri": f"{node.uri}/{name}"}}
        for name, value in node.props().items():
            key = name.lower()
            if key in navs:
                continue
            wanted = key in sel if sel is not None else (name not in node.select_only or key in expand)
            if wanted or key in expand:
                out[name] = value
        return out

    def nested(self, target: Node | None, select: dict[str, Any] | None, expand: dict[str, Any]) -> Any:
        if target is None:
            return None
        if isinstance(target, Collection):
            # $filter/$top apply to the addressed collection only, not to expanded ones.
            items = [self.entity(m, select, expand) for m in target.members(0, 5000)]
            return {"results": items} if self.fmt == "verbose" else items
        return self.entity(target, select, expand)

    def filtered(self, coll: Collection, after: int | None, limit: int) -> tuple[list[Node], bool]:
        """Members of a collection with $filter applied; returns (page, more_after_page)."""
        flt = self.sp.req.q("$filter")
        if flt and isinstance(coll, ListItems) and re.search(r"\bHasUniqueRoleAssignments\b", flt, re.IGNORECASE):
            # Not a column of the list: SharePoint cannot query on it, callers read the flag and filter.
            raise sp_error(400, SP_EXCEPTION, "The field 'HasUniqueRoleAssignments' of type 'Boolean' cannot be "
                                              "used in the query filter expression.")
        pred = compile_filter(flt) if flt else None
        start = after or 0
        out: list[Node] = []
        batch = max(limit + 1, 100)
        while True:
            chunk = coll.members(start, batch) if coll.pages else coll.members(0, 1_000_000)
            for node in chunk:
                if pred is None or pred(node.props()):
                    out.append(node)
                    if len(out) > limit:
                        return out[:limit], True
            if not coll.pages or len(chunk) < batch:
                return out, False
            start = coll.page_key(chunk[-1])


_FILTER_CLAUSE = re.compile(
    r"^\s*(?:(?P<prop>[\w/]+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<lit>'(?:[^']|'')*'|[\w.:-]+)"
    r"|(?P<fn>substringof|startswith)\(\s*(?P<a>'(?:[^']|'')*'|[\w/]+)\s*,\s*"
    r"(?P<b>'(?:[^']|'')*'|[\w/]+)\s*\))\s*$",
    re.IGNORECASE,
)


def _split_outside_quotes(text: str, word: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    i, in_str = 0, False
    needle = f" {word} "
    while i < len(text):
        c = text[i]
        if c == "'":
            in_str = not in_str
        if not in_str and text[i : i + len(needle)].lower() == needle:
            parts.append("".join(buf))
            buf = []
            i += len(needle)
            continue
        buf.append(c)
        i += 1
    parts.append("".join(buf))
    return parts


def compile_filter(expr: str) -> Callable[[dict[str, Any]], bool]:
    """A small OData v3 ``$filter``: comparisons, substringof/startswith, ``and``/``or``."""
    ors = [
        [_clause(c) for c in _split_outside_quotes(part, "and")] for part in _split_outside_quotes(expr, "or")
    ]
    return lambda props: any(all(c(props) for c in ands) for ands in ors)


def _lit(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _clause(text: str) -> Callable[[dict[str, Any]], bool]:
    m = _FILTER_CLAUSE.match(
        text.strip().strip("()")
        if text.strip().startswith("(") and text.strip().endswith(")") and "(" not in text.strip()[1:-1]
        else text
    )
    if m is None:
        raise sp_error(400, BAD_QUERY, f'The expression "{text.strip()}" is not valid.')

    def get(props: dict[str, Any], name: str) -> Any:
        return next((v for k, v in props.items() if k.lower() == name.lower()), None)

    def norm(v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    if m.group("prop"):
        prop, op, lit = m.group("prop"), m.group("op").lower(), _lit(m.group("lit"))

        def compare(props: dict[str, Any]) -> bool:
            value = get(props, prop)
            if isinstance(lit, str) and value is not None and not isinstance(value, str):
                value = str(value)
            a, b = norm(value), norm(lit)
            if op == "eq":
                return bool(a == b)
            if op == "ne":
                return bool(a != b)
            if a is None or b is None:
                return False
            try:
                return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op])
            except TypeError:
                return False

        return compare
    fn, a, b = m.group("fn").lower(), m.group("a"), m.group("b")

    def call(props: dict[str, Any]) -> bool:
        if fn == "substringof":
            needle, hay = _lit(a), get(props, b)
            return isinstance(hay, str) and str(needle).lower() in hay.lower()
        hay, prefix = get(props, a), _lit(b)
        return isinstance(hay, str) and hay.lower().startswith(str(prefix).lower())

    return call


# ---------------------------------------------------------------------------------------------- dispatch
_PERM_READ = ("roleassignment", "hasuniqueroleassignments", "firstuniqueancestor", "effectivepermissions")
_PERM_WRITE = (
    "roleassignment",
    "inheritance",
    "sitegroups",
    "siteusers",
    "ensureuser",
    "roledefinition",
    "associated",
    "/users",
    "getuserbyid",
)
_COLLECTIONS = {
    "lists",
    "items",
    "folders",
    "files",
    "fields",
    "versions",
    "roleassignments",
    "roledefinitions",
    "sitegroups",
    "siteusers",
    "users",
    "groups",
    "roledefinitionbindings",
}


def _permission_related(ctx: Ctx) -> bool:
    rest = (ctx.params.get("rest") or "").lower()
    options = ((ctx.req.q("$expand") or "") + "," + (ctx.req.q("$select") or "")).lower()
    words = (
        _PERM_WRITE
        if ctx.req.method != "GET"
        else (*_PERM_READ, "sitegroups", "siteusers", "ensureuser", "roledefinition")
    )
    return any(w in rest for w in words) or any(w in options for w in _PERM_READ)


def _cost(ctx: Ctx) -> int:
    """SharePoint resource units: 5 permission calls, 2 writes and collections, 1 single reads."""
    if _permission_related(ctx):
        return 5
    if ctx.req.method != "GET":
        return 2
    try:
        segs = split_path(ctx.params.get("rest") or "")
    except HttpError:
        return 1
    last = segs[-1] if segs else None
    return 2 if last is not None and last.key in _COLLECTIONS and last.args is None else 1


def _need(ctx: Ctx, method: str) -> str:
    """read / write / manage for ``require_site``.

    Reading role assignments or HasUniqueRoleAssignments needs EnumeratePermissions (only Full
    Control has it), so it is ``manage``; so are all writes to permissions, groups and users.
    Reading users, groups and permission levels only needs Read (BrowseUserInfo).
    """
    rest = (ctx.params.get("rest") or "").lower()
    options = ((ctx.req.q("$expand") or "") + "," + (ctx.req.q("$select") or "")).lower()
    if method == "GET":
        return "manage" if any(w in rest or w in options for w in _PERM_READ) else "read"
    return "manage" if any(w in rest for w in _PERM_WRITE) else "write"


def _site(ctx: Ctx) -> Site:
    site = ctx.state.site(ctx.params["site"])
    if site is None:
        raise sp_error(404, FILE_NOT_FOUND, "The site could not be found.")
    assert isinstance(site, Site)
    return site


def _json(sp: Sp, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Resp:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Resp(status, body, [("content-type", _content_type(sp.fmt)), *(headers or [])])


def _metadata_url(sp: Sp, fragment: str) -> str:
    return f"{sp.site_url}/_api/$metadata#{fragment}"


async def contextinfo(ctx: Ctx) -> Resp:
    """``POST /_api/contextinfo`` → SP.ContextWebInformation with a fresh form digest."""
    site = _site(ctx)
    require_site(ctx, site.id, "read")
    assert ctx.caller is not None
    sp = Sp(ctx, site)
    schemas = ["14.0.0.0", "15.0.0.0"]
    info: dict[str, Any] = {
        "FormDigestTimeoutSeconds": DIGEST_LIFETIME,
        "FormDigestValue": make_digest(ctx.state, site.id, ctx.caller.client_id),
        "LibraryVersion": LIBRARY_VERSION,
        "SiteFullUrl": sp.site_url,
        "SupportedSchemaVersions": schemas,
        "WebFullUrl": sp.site_url,
    }
    if sp.fmt == "verbose":
        info = {
            "__metadata": {"type": "SP.ContextWebInformation"},
            **info,
            "SupportedSchemaVersions": {"__metadata": {"type": "Collection(Edm.String)"}, "results": schemas},
        }
        return _json(sp, {"d": {"GetContextWebInformation": info}})
    if sp.fmt == "minimal":
        info = {"odata.metadata": _metadata_url(sp, "SP.ContextWebInformation"), **info}
    return _json(sp, info)


def _root(sp: Sp, seg: Seg) -> Node:
    if seg.key == "web" and seg.args is None:
        return WebNode(sp)
    if seg.key == "site" and seg.args is None:
        return SiteNode(sp)
    raise sp_error(404, BAD_QUERY, f"Cannot find resource for the request {seg.name}.")


def _child(node: Node | Value, seg: Seg) -> Node | Value | None:
    if isinstance(node, Value) or node is None:
        raise sp_error(404, BAD_QUERY, f"Cannot find resource for the request {seg.name}.")
    navs = {n.lower(): n for n in node.navs}
    if seg.key in navs:
        target = node.nav(navs[seg.key])
        if seg.args is None:
            return target
        if isinstance(target, Collection):
            keyed = target.keyed(seg.args)
            if keyed is not NotImplemented:
                assert isinstance(keyed, Node)
                return keyed
    called = node.call(seg)
    if called is not NotImplemented:
        return called  # type: ignore[no-any-return]
    if seg.args is None:
        for name, value in node.props().items():
            if name.lower() == seg.key:
                return Value(name, value, _edm(value))
    raise sp_error(404, BAD_QUERY, f"Cannot find resource for the request {seg.name}.")


def _edm(value: Any) -> str:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32"
    return "Edm.String"


def _render_value(sp: Sp, value: Value | Void, status: int = 200) -> Resp:
    if isinstance(value, Void):
        return _json(sp, {"d": {value.name: None}} if sp.fmt == "verbose" else {"odata.null": True}, status)
    if sp.fmt == "verbose":
        return _json(sp, {"d": {value.name: value.value}}, status)
    body: dict[str, Any] = {"value": value.value}
    if sp.fmt == "minimal":
        body = {"odata.metadata": _metadata_url(sp, value.edm), **body}
    return _json(sp, body, status)


def _next_link(sp: Sp, last_id: int, top: int) -> str:
    query = {
        k: v for k, v in sp.req.query.items() if k.lower() not in ("$skiptoken", "$top", "skiptoken", "top")
    }
    query["$skiptoken"] = f"Paged=TRUE&p_ID={last_id}"
    query["$top"] = str(top)
    return sp.req.base_url + _quote_rel(sp.req.path) + "?" + urlencode(query, quote_via=quote)


def _render(sp: Sp, node: Node | None, status: int = 200, *, name: str = "") -> Resp:
    r = Renderer(sp)
    req = sp.req
    select = _tree(req.q("$select")) or None
    expand = _tree(req.q("$expand"))
    if node is None:  # a null navigation (the library root folder's ListItemAllFields)
        return _json(sp, {"d": {name: None}} if sp.fmt == "verbose" else {"odata.null": True}, status)
    if isinstance(node, Collection):
        top_raw = req.q("$top")
        default = 100 if node.pages else 1_000_000
        top = as_int(top_raw, "$top") if top_raw else default
        if top < 0:
            raise sp_error(400, BAD_QUERY, "The value of $top must be a non-negative integer.")
        token = req.q("$skiptoken") or ""
        m = re.search(r"p_ID=(\d+)", token, re.IGNORECASE)
        after = int(m.group(1)) if m else 0
        page, more = r.filtered(node, after, top)
        items = [r.entity(n, select, expand) for n in page]
        nxt = _next_link(sp, node.page_key(page[-1]), top) if more and node.pages and page else None
        if sp.fmt == "verbose":
            d: dict[str, Any] = {"results": items}
            if nxt:
                d["__next"] = nxt
            return _json(sp, {"d": d}, status)
        body: dict[str, Any] = {}
        if sp.fmt == "minimal":
            body["odata.metadata"] = _metadata_url(sp, f"Collection({node.item_type})")
        body["value"] = items
        if nxt:
            body["odata.nextLink"] = nxt
        return _json(sp, body, status)
    entity = r.entity(node, select, expand)
    headers = [("etag", node.etag() or "")] if node.etag() else []
    if sp.fmt == "verbose":
        return _json(sp, {"d": entity}, status, headers)
    if sp.fmt == "minimal":
        entity = {"odata.metadata": _metadata_url(sp, f"{node.type_name}/@Element"), **entity}
    return _json(sp, entity, status, headers)


async def handle(ctx: Ctx) -> Resp:
    """Every ``/_api`` call except contextinfo (see the module docstring)."""
    req = ctx.req
    site = _site(ctx)
    sp = Sp(ctx, site)
    method = req.method
    tunnel = (req.headers.get("x-http-method") or "").upper()
    if method == "POST" and tunnel in ("MERGE", "PATCH", "PUT", "DELETE"):
        method = tunnel
    if method not in ("GET", "POST", "MERGE", "PATCH", "PUT", "DELETE"):
        raise sp_error(405, BAD_QUERY, f"The HTTP method '{method}' is not supported.")
    if method != "GET":
        assert ctx.caller is not None
        check_digest(ctx.state, site.id, ctx.caller.client_id, req.headers.get("x-requestdigest"))
    require_site(ctx, site.id, _need(ctx, method))

    segs = split_path(ctx.params.get("rest") or "")
    if not segs:
        raise sp_error(404, BAD_QUERY, "Cannot find resource for the request _api.")
    node: Node | Value | None = _root(sp, segs[0])
    raw_value = False
    walk = segs[1:]
    if walk and walk[-1].key == "$value":
        raw_value = True
        walk = walk[:-1]
    last_name = segs[0].name
    for i, seg in enumerate(walk):
        final = i == len(walk) - 1
        if final and method == "POST" and not raw_value and isinstance(node, Node):
            result = node.action(seg, Params(seg, req, _action_body(sp, node, seg)))
            if result is not NotImplemented:
                return _action_result(sp, result, seg)
        if node is None:
            raise sp_error(
                404, ITEM_MISSING, "Item does not exist. It may have been deleted by another user."
            )
        node = _child(node, seg)
        last_name = seg.name

    if raw_value:
        return _value_op(sp, node, method)
    if isinstance(node, Value):
        if method != "GET":
            raise sp_error(400, BAD_QUERY, f"The property {node.name} cannot be written this way.")
        return _render_value(sp, node)
    if method == "GET":
        return _render(sp, node, name=last_name)
    if node is None:
        raise sp_error(404, ITEM_MISSING, "Item does not exist. It may have been deleted by another user.")
    if method == "POST":
        if isinstance(node, Collection):
            return _render(sp, node.create(sp.body()), 201)
        raise sp_error(400, BAD_QUERY, f"The type {node.type_name} does not support HTTP POST method.")
    if method in ("MERGE", "PATCH"):
        node.update(sp.body())
        return Resp(204, b"", [])
    if method == "DELETE":
        node.delete()
        return Resp(200, b"", [])
    raise sp_error(400, BAD_QUERY, f"The type {node.type_name} does not support HTTP PUT method.")


def _action_body(sp: Sp, node: Node, seg: Seg) -> dict[str, Any]:
    """Method parameters may come as a JSON body, except for uploads, whose body is the file."""
    if isinstance(node, Files) and seg.key in ("add", "addusingpath"):
        return {}
    ctype = (sp.req.headers.get("content-type") or "").lower()
    if sp.req.body and ("json" in ctype or sp.req.body.lstrip()[:1] == b"{"):
        return sp.body()
    return {}


def _action_result(sp: Sp, result: Result, seg: Seg) -> Resp:
    if isinstance(result, (Value, Void)):
        return _render_value(sp, result)
    if result is None:
        return _render_value(sp, Void(seg.name))
    assert isinstance(result, Node)
    return _render(sp, result)


def _value_op(sp: Sp, node: Node | Value | None, method: str) -> Resp:
    if isinstance(node, FileNode):
        if method == "GET":
            data = sp.state.content(node.item)
            return Resp(
                200,
                data,
                [("content-type", node.item.mime or "application/octet-stream"), ("etag", node.item.etag)],
            )
        if method in ("PUT", "POST"):
            node.put_content()
            return Resp(204, b"", [])
        raise sp_error(400, BAD_QUERY, "MERGE is not allowed on file content; use X-HTTP-Method: PUT.")
    if isinstance(node, VersionNode) and method == "GET":
        return Resp(200, node.content(), [("content-type", "application/octet-stream")])
    raise sp_error(400, BAD_QUERY, "$value is only available for files and file versions.")


def register(router: Router) -> None:
    site = r"(?P<site>/.*?)/_api"
    router.add(
        "POST", site + r"/contextinfo/?", contextinfo, name="sp.contextinfo", surface="sharepoint", cost=1
    )
    # One walker answers everything; the route names only split the statistics and fault targets.
    perms = r"(?P<rest>/.*(?:roleassignment|inheritance|sitegroups|siteusers|ensureuser|roledefinition).*)"
    router.add("*", site + perms, handle, name="sp.permissions", surface="sharepoint", cost=_cost)
    files = r"(?P<rest>/.*(?:getfilebyserverrelative|/files|/\$value|/versions).*)"
    router.add("*", site + files, handle, name="sp.files", surface="sharepoint", cost=_cost)
    folders = r"(?P<rest>/.*(?:folder).*)"
    router.add("*", site + folders, handle, name="sp.folders", surface="sharepoint", cost=_cost)
    lists = r"(?P<rest>/.*(?:lists|getlist|/items|getitembyid).*)"
    router.add("*", site + lists, handle, name="sp.lists", surface="sharepoint", cost=_cost)
    router.add("*", site + r"(?P<rest>(?:/.*)?)", handle, name="sp.rest", surface="sharepoint", cost=_cost)
