"""Folder permissions and site groups over SharePoint REST (and sharing links over Graph).

Where it sits: implements ``bot.ports.PermissionReader`` and ``PermissionWriter`` for the
permission cycle, translating SharePoint's JSON into ``bot.model`` values at this boundary.

Requests go through office365-rest-python-client's ``ClientContext`` request pipeline
(``pending_request().execute_request_direct``: our bearer token, the form digest on writes, our
CA), with the exact REST calls of anchors-permissions §1.1 — the typed API adds GETs we do not
need (§1.3: ``add_role_assignment`` costs two extra reads per call).

Reading is cheap by design (issue #3 benchmark): each parent of governed folders is listed ONCE
with ``Folders?$expand=ListItemAllFields/RoleAssignments/Member,…/RoleDefinitionBindings`` —
HasUniqueRoleAssignments and every role assignment of every child in one request — and all site
groups with their users in one more. Principal ids and role-definition ids seen while reading are
cached for the writes. The listing's ``$expand`` reaches one level further (each child's own
``Folders`` and ``Files`` with their role assignments), so the subfolders and files directly inside
every governed folder are scanned for unique permissions and sharing links in the same request.
Deeper items are found by a scan of the whole library (``GetList('{library}')/items?$select=Id,FileRef,
FileSystemObjectType,HasUniqueRoleAssignments&$top=5000``, following the next link: ⌈items / 5,000⌉
requests; SharePoint cannot $filter on the flag, so ``unique_below`` filters here), then one
``items({id})/RoleAssignments?$expand=Member,RoleDefinitionBindings`` per unique item below a governed
folder not already seen. ``undeclared()`` returns every such item that is not governed, at any depth.
Stale groups come from the same group listing
(``read_groups(names, patterns)``, each with its Description, where the bot's ownership marker
``bot.model.GROUP_MARKER`` lives); ``delete_group`` removes one by id, ``set_group_description``
MERGEs ``SP.Group.Description`` (``POST web/sitegroups/getbyid(n)`` with ``X-HTTP-Method: MERGE``).

Classification (anchors §1.1 "Noise in ACLs"): a member whose login starts with
``SharingLinks.`` is a sharing link, never an ordinary grant; a ``Limited Access`` binding is
SharePoint's own and kept apart. Sharing links are deleted through Graph
(``DELETE /drives/{d}/items/{i}/permissions/{id}``, which removes the link itself); without a
drive id, or when Graph does not show the link, the link group's role assignment is removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import httpx
from office365.sharepoint.client_context import ClientContext

from bot.model import LIMITED_ACCESS, ActualFolder, ActualGroup, Link, user_key
from config.settings import Settings
from connectors.auth import Authenticator
from connectors.errors import ClientError, NotFound
from connectors.graph import build_sync_graph_client
from connectors.sharepoint import NOMETADATA, build_sharepoint_context, rest_call

__all__ = ["EXPAND", "PAGE", "SCAN_SELECT", "SharePointPermissions", "UniqueItem", "build_site_permissions",
           "next_link", "principal_key", "unique_below"]

#: One listing per parent: every child's HasUniqueRoleAssignments and role assignments, and the same for
#: the child's own subfolders and files (one level below each governed folder: undeclared items there are
#: scanned for unique permissions and links without another request).
_ITEM = ("ListItemAllFields/RoleAssignments/Member,ListItemAllFields/RoleAssignments/RoleDefinitionBindings,"
         "ListItemAllFields/HasUniqueRoleAssignments")
EXPAND = ",".join([_ITEM, *(f"{below}/{part}" for below in ("Folders", "Files") for part in _ITEM.split(","))])
#: The deep scan: every list item of the library, only what tells where unique permissions are. SharePoint
#: cannot $filter on HasUniqueRoleAssignments (not a column), so the flag is read and filtered here; 5,000 is
#: the list view threshold, the largest page a list item query may return (anchors §limits).
SCAN_SELECT = "Id,FileRef,FileSystemObjectType,HasUniqueRoleAssignments"
PAGE = 5000


class UniqueItem(NamedTuple):
    """An item with permissions of its own found by the deep scan: library-relative path, list item id."""

    path: str
    item_id: int
    is_file: bool


def unique_below(rows: Iterable[Mapping[str, Any]], library_url: str, governed: Iterable[str],
                 known: Iterable[str]) -> list[UniqueItem]:
    """PURE. The scanned list items (``rows``: Id, FileRef, FileSystemObjectType, HasUniqueRoleAssignments)
    that hold unique permissions strictly below a ``governed`` folder (at any depth) and are neither governed
    nor ``known`` (already observed). ``library_url`` is the library's server-relative URL (FileRef's prefix).
    Paths compare case-insensitively like SharePoint's; the item's own spelling is returned. Sorted by path."""
    prefix = library_url.rstrip("/").lower() + "/"
    roots = {g.strip("/").lower() for g in governed}
    skip = roots | {k.strip("/").lower() for k in known}
    out: list[UniqueItem] = []
    for row in rows:
        ref = str(row.get("FileRef") or "")
        if not row.get("HasUniqueRoleAssignments") or not ref.lower().startswith(prefix):
            continue
        path = ref[len(prefix):].strip("/")
        lowered = path.lower()
        if not path or lowered in skip:
            continue
        parts = lowered.split("/")
        if any("/".join(parts[:depth]) in roots for depth in range(1, len(parts))):
            out.append(UniqueItem(path, int(row["Id"]), int(row.get("FileSystemObjectType") or 0) == 0))
    return sorted(out)


def next_link(page: Mapping[str, Any]) -> str | None:
    """The next page's absolute URL of a SharePoint collection answer (nometadata, minimal or verbose)."""
    for key in ("odata.nextLink", "@odata.nextLink", "__next"):
        if page.get(key):
            return str(page[key])
    inner = page.get("d")
    return next_link(inner) if isinstance(inner, Mapping) else None


def principal_key(member: Mapping[str, Any]) -> str:
    """The domain's principal key for a role assignment's Member (bot.model "PRINCIPAL KEY")."""
    login = str(member.get("LoginName") or "")
    kind = int(member.get("PrincipalType") or 0)
    if kind == 8:  # SharePoint group
        return str(member.get("Title") or login)
    if "|ms.sp.ext|" in login or login.startswith("i:0i.t|"):
        return f"app:{login}"
    if kind == 1:
        return user_key(str(member.get("Email") or member.get("UserPrincipalName") or login.rsplit("|", 1)[-1]))
    return f"principal:{login}"  # security groups, Everyone…: shown, and revoked if not declared


def _results(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.get("results") or [])
    return list(value or [])


def _q(text: str) -> str:
    """A value inside an OData string literal in a URL: quotes doubled, the rest percent-encoded."""
    return quote(text.replace("'", "''"), safe="/")


class SharePointPermissions:
    """``PermissionReader`` and ``PermissionWriter`` on one site and library."""

    def __init__(self, ctx: ClientContext, *, library: str, client_id: str, graph: httpx.Client | None = None,
                 drive_id: str | None = None, scan_page: int = PAGE) -> None:
        self.ctx, self.library, self.client_id = ctx, library.strip("/"), client_id.lower()
        #: Items per page of the deep scan (SharePoint's maximum; smaller only to exercise paging).
        self.scan_page = scan_page
        self.graph, self.drive_id = graph, drive_id
        self._principals: dict[str, int] = {}
        self._groups: dict[str, int] = {}
        self._logins: dict[str, str] = {}
        self._roles: dict[str, int] | None = None
        self._self: set[str] = set()
        self._undeclared: dict[str, ActualFolder] = {}
        self._files: set[str] = set()

    # ------------------------------------------------------------------------------------------ http
    def _send(self, method: str, path: str, body: Any = None, *, accept: str = NOMETADATA) -> Any:
        return rest_call(self.ctx, method, path, body, accept=accept)

    def _folder(self, path: str) -> str:
        full = f"{self.library}/{path}" if path else self.library
        return f"web/GetFolderByServerRelativeUrl('{_q(full)}')"

    def _item(self, path: str) -> str:
        if path in self._files:  # an undeclared file seen by the last read_folders
            return f"web/GetFileByServerRelativeUrl('{_q(f'{self.library}/{path}')}')/ListItemAllFields"
        return self._folder(path) + "/ListItemAllFields"

    def _role_id(self, level: str) -> int:
        if self._roles is None:
            found = self._send("GET", "web/roledefinitions?$select=Id,Name")
            self._roles = {str(r["Name"]): int(r["Id"]) for r in _results(found.get("value", found))}
        return self._roles[level]

    # ------------------------------------------------------------------------------------------ reader
    def read_folders(self, paths: Sequence[str]) -> Mapping[str, ActualFolder]:
        wanted = set(paths)
        parents = sorted({p.rsplit("/", 1)[0] if "/" in p else "" for p in wanted}, key=lambda p: p.count("/"))
        found: dict[str, ActualFolder] = {}
        undeclared: dict[str, ActualFolder] = {}
        files: set[str] = set()
        for parent in parents:
            if parent and parent not in found and parent in wanted:
                continue  # the parent is governed and missing: so are its children
            try:
                listing = self._send("GET", f"{self._folder(parent)}/Folders?$expand={EXPAND}")
            except NotFound:
                continue
            for child in _results(listing.get("value", listing)):
                path = f"{parent}/{child['Name']}" if parent else str(child["Name"])
                if path not in wanted:
                    continue
                found[path] = self._parse_folder(path, child.get("ListItemAllFields") or {})
                for kind in ("Folders", "Files"):
                    for below in _results(child.get(kind)):
                        sub = f"{path}/{below['Name']}"
                        item = below.get("ListItemAllFields") or {}
                        if sub in wanted or not item.get("HasUniqueRoleAssignments"):
                            continue
                        undeclared[sub] = self._parse_folder(sub, item)
                        if kind == "Files":
                            files.add(sub)
        if found:
            # Deeper down (a sub-subfolder restricted by hand): the deep scan finds the unique items, and
            # their role assignments are read one request each — usually none.
            for deep in unique_below(self._scan(), self._library_url(), found, undeclared):
                assigned = self._send("GET", f"{self._list()}/items({deep.item_id})/RoleAssignments"
                                             "?$expand=Member,RoleDefinitionBindings")
                roles = _results(assigned.get("value", assigned))
                undeclared[deep.path] = self._parse_folder(deep.path, {"HasUniqueRoleAssignments": True,
                                                                       "RoleAssignments": roles})
                if deep.is_file:
                    files.add(deep.path)
        self._undeclared, self._files = undeclared, files
        return found

    def _library_url(self) -> str:
        site = urlsplit(str(self.ctx.base_url)).path.rstrip("/")
        return f"{site}/{self.library}"

    def _list(self) -> str:
        return f"web/GetList('{_q(self._library_url())}')"

    def _scan(self) -> list[Mapping[str, Any]]:
        """Every list item of the library (id, path, kind, unique flag), ⌈items / 5,000⌉ requests: SharePoint
        pages by item id, and the next link is followed as given."""
        rows: list[Mapping[str, Any]] = []
        root = str(self.ctx.service_root_url).rstrip("/") + "/"
        page = self._send("GET", f"{self._list()}/items?$select={SCAN_SELECT}&$top={self.scan_page}")
        while True:
            rows.extend(_results(page.get("value", page)) if isinstance(page, dict) else [])
            link = next_link(page) if isinstance(page, dict) else None
            if not link:
                return rows
            # rest_call takes a path below _api/: the next link is absolute on the same service root.
            page = self._send("GET", link[len(root):] if link.startswith(root) else link.split("/_api/", 1)[1])

    def undeclared(self) -> Mapping[str, ActualFolder]:
        return dict(self._undeclared)

    def _parse_folder(self, path: str, item: Mapping[str, Any]) -> ActualFolder:
        grants: set[tuple[str, str]] = set()
        links: set[Link] = set()
        limited: set[str] = set()
        for ra in _results(item.get("RoleAssignments")):
            member = ra.get("Member") or {}
            key = principal_key(member)
            pid = int(ra.get("PrincipalId") or member.get("Id") or 0)
            login = str(member.get("LoginName") or "")
            self._principals[key] = pid
            if key.startswith("app:") and self.client_id and self.client_id in key.lower():
                self._self.add(key)
            for binding in _results(ra.get("RoleDefinitionBindings")):
                level = str(binding.get("Name"))
                if level == LIMITED_ACCESS:
                    limited.add(key)
                elif login.startswith("SharingLinks."):
                    self._principals[login] = pid
                    links.add(Link(login, level))
                else:
                    grants.add((key, level))
        return ActualFolder(path, bool(item.get("HasUniqueRoleAssignments")), frozenset(grants),
                            frozenset(links), frozenset(limited))

    def read_groups(self, names: Sequence[str], patterns: Sequence[str] = ()) -> Mapping[str, ActualGroup]:
        wanted = set(names)
        managed = [re.compile(p) for p in patterns]
        listing = self._send("GET", "web/sitegroups?$expand=Users")
        found: dict[str, ActualGroup] = {}
        for g in _results(listing.get("value", listing)):
            title = str(g["Title"])
            self._groups[title] = int(g["Id"])
            self._principals[title] = int(g["Id"])
            if title not in wanted and not any(m.match(title) for m in managed):
                continue
            members: dict[str, str] = {}
            for u in _results(g.get("Users")):
                person = str(u.get("Email") or u.get("UserPrincipalName") or u["LoginName"]).lower()
                members[person] = str(u["LoginName"])
                self._logins[person] = str(u["LoginName"])
            found[title] = ActualGroup(title, int(g["Id"]), members, str(g.get("Description") or ""))
        return found

    def self_keys(self) -> frozenset[str]:
        return frozenset(self._self)

    # ------------------------------------------------------------------------------------------ writer
    def create_group(self, name: str, description: str) -> None:
        created = self._send("POST", "web/sitegroups",
                             {"__metadata": {"type": "SP.Group"}, "Title": name, "Description": description})
        self._groups[name] = self._principals[name] = int(created["Id"])

    def set_group_description(self, name: str, description: str) -> None:
        self._send("MERGE", f"web/sitegroups/getbyid({self._groups[name]})",
                   {"__metadata": {"type": "SP.Group"}, "Description": description})

    def delete_group(self, name: str) -> None:
        group_id = self._groups[name]
        self._send("POST", f"web/sitegroups/removebyid({group_id})")
        del self._groups[name]
        self._principals.pop(name, None)

    def _ensure_user(self, person: str) -> str:
        login = self._logins.get(person)
        if login is None:
            user = self._send("POST", "web/ensureuser", {"logonName": person})
            login = self._logins[person] = str(user["LoginName"])
            self._principals[user_key(person)] = int(user["Id"])
        return login

    def add_member(self, group: str, person: str) -> None:
        login = self._ensure_user(person)  # guests too: EnsureUser adds them to the site first
        self._send("POST", f"web/sitegroups/getbyid({self._groups[group]})/users",
                   {"__metadata": {"type": "SP.User"}, "LoginName": login})

    def remove_member(self, group: str, login: str) -> None:
        self._send("POST", f"web/sitegroups/getbyid({self._groups[group]})/users/removebyloginname(@v)"
                           f"?@v='{quote(login.replace(chr(39), chr(39) * 2), safe='')}'")

    def create_folder(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        self._send("POST", f"{self._folder(parent)}/folders/add('{_q(name)}')")

    def break_inheritance(self, path: str) -> None:
        # clearSubscopes=false: children with their own permissions keep them (anchors §1.1).
        self._send("POST", f"{self._item(path)}/breakroleinheritance(copyRoleAssignments=false,clearSubscopes=false)")

    def reset_inheritance(self, path: str) -> None:
        self._send("POST", f"{self._item(path)}/resetroleinheritance")

    def _principal_id(self, key: str) -> int:
        if key not in self._principals:
            if key.startswith("user:"):
                self._ensure_user(key.removeprefix("user:"))
            else:
                found = self._send("GET", f"web/sitegroups/getbyname('{_q(key)}')?$select=Id")
                self._principals[key] = int(found["Id"])
        return self._principals[key]

    def grant(self, path: str, principal: str, level: str) -> None:
        self._send("POST", f"{self._item(path)}/roleassignments/addroleassignment("
                           f"principalid={self._principal_id(principal)},roledefid={self._role_id(level)})")

    def revoke(self, path: str, principal: str, level: str) -> None:
        self._send("POST", f"{self._item(path)}/roleassignments/removeroleassignment("
                           f"principalid={self._principal_id(principal)},roledefid={self._role_id(level)})")

    def remove_sharing_link(self, path: str, group_login: str, level: str) -> None:
        if self.graph is not None and self.drive_id and self._delete_link_in_graph(path, group_login, level):
            return
        pid = self._principals[group_login]
        try:
            self._send("POST", f"{self._item(path)}/roleassignments/removeroleassignment(principalid={pid})")
        except ClientError:
            # Deleting a link deletes its SharingLinks group with it. A parent's link copied onto an item
            # (breaking inheritance copies the parent's assignments) is gone once the parent's link is
            # removed earlier in the same plan: nothing left to remove. Anything else is a real failure.
            try:
                self._send("GET", f"web/sitegroups/getbyid({pid})?$select=Id")
            except NotFound:
                return
            raise

    def _delete_link_in_graph(self, path: str, group_login: str, level: str) -> bool:
        assert self.graph is not None
        item = f"/drives/{self.drive_id}/root:/{quote(path)}:"
        response = self.graph.get(f"{item}/permissions")
        if response.status_code != 200:
            return False
        links = [p for p in response.json().get("value", []) if p.get("link") and not p.get("inheritedFrom")]
        # SharePoint names the link's group SharingLinks.<item>.<kind>.<shareId>; Graph's permission id for
        # the link is that share id in the local tenant, but not necessarily on Microsoft's service, so fall
        # back to the role (Read ↔ read, Contribute/Edit ↔ write).
        share_id = group_login.rsplit(".", 1)[-1]
        match = next((p for p in links if p.get("id") == share_id), None)
        if match is None:
            role = "read" if level == "Read" else "write"
            match = next((p for p in links if role in (p.get("roles") or [])), None)
        if match is None:
            return False
        deleted = self.graph.delete(f"{item}/permissions/{match['id']}")
        return deleted.status_code == 204


def build_site_permissions(settings: Settings, authenticator: Authenticator, *, library: str) -> SharePointPermissions:
    """The SharePoint connector for ``library`` of ``settings.endpoints.site_url``, with a small Graph
    client (our CA, no environment overrides) for deleting sharing links."""
    endpoints = settings.endpoints
    graph = build_sync_graph_client(settings, authenticator)
    ctx = build_sharepoint_context(settings, authenticator)
    return SharePointPermissions(ctx, library=library, client_id=settings.auth.client_id, graph=graph,
                                 drive_id=endpoints.drive_id)
