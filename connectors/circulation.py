"""The site side of circulation: pinned reads, protected archive copies, columns, the register list.

Where it sits: implements ``bot.circulation.CirculationSite`` over Microsoft Graph (files,
versions, listItem fields, lists) and SharePoint REST (role assignments, library columns), in the
same way as ``connectors.sharepoint_permissions``: office365's request pipeline for REST (our
token, the form digest, our CA) and a small httpx client for Graph.

The calls, each as Microsoft documents it (graph-api.md):

* pinned read — ``GET /drives/{d}/root:/{path}`` (id, eTag), ``GET …/items/{id}/versions``
  (newest first: the current version's id, §2.9) and ``GET …/versions/{id}/content`` (a 302 to
  the bytes of exactly that version);
* archive copy — ``PUT …/root:/{path}:/content`` with ``conflictBehavior=fail`` (an upload session
  above 4 MiB, §2.5/§2.6; an existing file is accepted only if it holds the same bytes),
  then on its list item ``breakroleinheritance(copyRoleAssignments=false,clearSubscopes=true)``,
  which leaves Full Control for the calling app only (§3.4), and ``addroleassignment`` Read for
  every principal that holds a role on the source (its effective assignments: an inheriting
  item shows its parent's). Limited Access and sharing-link groups are not readers of the text;
* drop folders — ``children`` pages, then the files' ``listItem/fields`` in ``$batch`` posts of 20;
* columns — the library's fields through REST ``GetList(…)/fields`` (created if missing),
  values through ``PATCH …/listItem/fields`` (§2.15);
* register list — ``POST /sites/{id}/lists`` with ``columns`` (created once), then REST
  ``breakroleinheritance`` + Read for the reader groups and Full Control for the owner group, and
  ``POST /sites/{id}/lists/{list}/items``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from office365.sharepoint.client_context import ClientContext

from bot.circulation import DropFile, SourceFile, StoredFile
from config.settings import Settings
from config.structure import ALL_PARTICIPANTS, Structure, group_ref_kind
from connectors.auth import Authenticator, ssl_verify
from connectors.errors import Conflict, NotFound, ServiceError
from connectors.graph import SyncGraphClient, build_sync_graph_client
from connectors.sharepoint import build_sharepoint_context, rest_call

__all__ = ["LIBRARY_COLUMNS", "REGISTER_COLUMNS", "SiteCirculation", "build_site_circulation"]

#: Graph's simple upload is documented for files up to 4 MiB; above, an upload session.
SIMPLE_UPLOAD_LIMIT = 4 * 1024 * 1024
#: Upload-session fragments must be multiples of 320 KiB; 16 × 320 KiB = 5 MiB per request.
FRAGMENT = 16 * 320 * 1024
READ = "Read"
FULL_CONTROL = "Full Control"
LIMITED_ACCESS = "Limited Access"
#: Columns the bot sets on circulated files and archive copies (SharePoint FieldTypeKind: 2 text, 4 date).
#: "Revises" is the one the secretariat fills in: on a file dropped to circulate, the symbol it revises.
LIBRARY_COLUMNS: dict[str, int] = {"Symbol": 2, "Revision": 2, "CirculatedOn": 4, "Status": 2, "Revises": 2}
#: Columns of the "Document register" list (Graph columnDefinition type facets).
REGISTER_COLUMNS: dict[str, str] = {
    "Symbol": "text", "Series": "text", "Kind": "text", "Revises": "text", "Revision": "text",
    "CirculatedOn": "dateTime", "Status": "text", "ArchiveUrl": "text", "SourceVersion": "text",
    "Brackets": "number", "CleanArticles": "number"}


def _results(value: Any) -> list[Any]:
    if isinstance(value, dict):
        if "value" in value:
            return list(value["value"] or [])
        return list(value.get("results") or [])
    return list(value or [])


def _q(text: str) -> str:
    """A value inside an OData string literal in a URL: quotes doubled, the rest percent-encoded."""
    return quote(text.replace("'", "''"), safe="/")


class SiteCirculation:
    """``CirculationSite`` on one site and library."""

    def __init__(self, ctx: ClientContext, graph: SyncGraphClient, *, site_url: str, library: str, client_id: str,
                 site_id: str | None = None, drive_id: str | None = None, register_list: str = "Document register",
                 register_readers: Sequence[str] = (), owner_group: str | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        self.ctx, self.graph = ctx, graph
        self.verify = verify  # for the upload session's pre-authenticated URL (its own client)
        self.site_path = urlsplit(site_url).path.rstrip("/")
        self.site_host = urlsplit(site_url).hostname or ""
        self.library = library.strip("/")
        self.client_id = client_id.lower()
        self._site_id, self._drive_id = site_id, drive_id
        self.register_list = register_list
        self.register_readers = tuple(register_readers)
        self.owner_group = owner_group
        self._roles: dict[str, int] | None = None
        self._columns_ready = False
        self._list_id: str | None = None

    # ------------------------------------------------------------------------------------------ plumbing
    def _sp(self, method: str, path: str, body: Any = None) -> Any:
        return rest_call(self.ctx, method, path, body)

    def _g(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.graph.request(method, url, **kwargs)
        if response.status_code >= 400:
            code, message = "", response.text[:300]
            try:
                error = response.json().get("error") or {}
                code, message = str(error.get("code") or ""), str(error.get("message") or message)
            except ValueError:
                pass
            raise ServiceError.from_status(response.status_code, code, message, surface="graph",
                                           request_id=response.headers.get("request-id", ""))
        return response

    def site_id(self) -> str:
        if self._site_id is None:
            self._site_id = str(self._g("GET", f"/sites/{self.site_host}:{self.site_path or '/'}").json()["id"])
        return self._site_id

    def drive_id(self) -> str:
        if self._drive_id is None:
            self._drive_id = str(self._g("GET", f"/sites/{self.site_id()}/drive").json()["id"])
        return self._drive_id

    def _by_path(self, path: str) -> str:
        return f"/drives/{self.drive_id()}/root:/{quote(path.strip('/'))}:"

    def _server_url(self, path: str) -> str:
        return f"{self.site_path}/{self.library}/{path.strip('/')}"

    def _file_item(self, path: str) -> str:
        return f"web/GetFileByServerRelativeUrl('{_q(self._server_url(path))}')/ListItemAllFields"

    def _role_id(self, level: str) -> int:
        if self._roles is None:
            found = self._sp("GET", "web/roledefinitions?$select=Id,Name")
            self._roles = {str(r["Name"]): int(r["Id"]) for r in _results(found)}
        return self._roles[level]

    # ------------------------------------------------------------------------------------------ reading
    def read_source(self, path: str) -> SourceFile:
        item = self._g("GET", self._by_path(path)).json()
        if "folder" in item or "file" not in item:
            raise NotFound(404, "notAFile", f"{path} is a folder, not a file", surface="graph")
        base = f"/drives/{self.drive_id()}/items/{item['id']}"
        versions = _results(self._g("GET", f"{base}/versions").json())
        version_id = str(versions[0]["id"]) if versions else None
        # The bytes of exactly the version recorded (a 302 to a pre-authenticated download URL).
        url = f"{base}/versions/{quote(version_id)}/content" if version_id else f"{base}/content"
        content = self._g("GET", url, follow_redirects=True).content
        editor = (item.get("lastModifiedBy") or {}).get("user") or {}
        return SourceFile(path=path.strip("/"), name=str(item["name"]), drive_id=self.drive_id(),
                          item_id=str(item["id"]), etag=item.get("eTag"), version_id=version_id,
                          web_url=str(item.get("webUrl") or ""), content=content,
                          modified_by=editor.get("email") or editor.get("displayName"))

    def list_drop_folder(self, folder: str) -> list[DropFile]:
        # The columns exist before anything is circulated, so the secretariat can fill in "Revises".
        self._ensure_library_columns()
        children: list[dict[str, Any]] = []
        url: str | None = f"{self._by_path(folder)}/children?$top=200"
        while url:
            try:
                page = self._g("GET", url).json()
            except NotFound:
                return []
            children.extend(_results(page))
            url = page.get("@odata.nextLink")
        files = [child for child in children if "file" in child]
        # One $batch per 20 files for their Symbol column, not one request each.
        all_fields = self.graph.batch_get([f"/drives/{self.drive_id()}/items/{child['id']}/listItem/fields"
                                           for child in files])
        return [DropFile(f"{folder.strip('/')}/{child['name']}", str(child["name"]),
                         (fields or {}).get("Symbol") or None, (fields or {}).get("Revises") or None)
                for child, fields in zip(files, all_fields, strict=True)]

    def readers(self, path: str) -> dict[int, str]:
        """Principal id → login of everyone holding a role (other than Limited Access) on the file or folder."""
        expand = "RoleAssignments?$expand=Member,RoleDefinitionBindings"
        try:
            found = self._sp("GET", f"{self._file_item(path)}/{expand}")
        except NotFound:
            folder = f"web/GetFolderByServerRelativeUrl('{_q(self._server_url(path))}')/ListItemAllFields"
            found = self._sp("GET", f"{folder}/{expand}")
        readers: dict[int, str] = {}
        for ra in _results(found):
            member = ra.get("Member") or {}
            login = str(member.get("LoginName") or "")
            levels = {str(b.get("Name")) for b in _results(ra.get("RoleDefinitionBindings"))} - {LIMITED_ACCESS}
            if levels and not login.startswith("SharingLinks."):
                readers[int(ra.get("PrincipalId") or member.get("Id") or 0)] = login
        return readers

    def role_assignments(self, path: str) -> dict[str, set[str]]:
        """Login → permission levels on the file (tests and `register show` use it)."""
        found = self._sp("GET", f"{self._file_item(path)}/RoleAssignments?$expand=Member,RoleDefinitionBindings")
        return {str((ra.get("Member") or {}).get("LoginName") or ""):
                {str(b.get("Name")) for b in _results(ra.get("RoleDefinitionBindings"))} for ra in _results(found)}

    # ------------------------------------------------------------------------------------------ writing
    def _ensure_folder(self, path: str) -> None:
        parts = [p for p in path.strip("/").split("/") if p]
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            try:
                self._g("GET", self._by_path(sub))
                continue
            except NotFound:
                pass
            parent = "/".join(parts[:depth - 1])
            target = self._by_path(parent) if parent else f"/drives/{self.drive_id()}/root"
            self._g("POST", f"{target}/children", json={"name": parts[depth - 1], "folder": {},
                                                        "@microsoft.graph.conflictBehavior": "replace"})

    def _upload(self, path: str, content: bytes) -> dict[str, Any]:
        """Upload a NEW file; if one is there already it must hold the same bytes (a rerun after a crash),
        else ``Conflict``: another circulation took this name meanwhile and its copy must stay."""
        try:
            return self._upload_new(path, content)
        except Conflict:
            existing = self._g("GET", self._by_path(path)).json()
            old = self._g("GET", f"/drives/{self.drive_id()}/items/{existing['id']}/content",
                          follow_redirects=True).content
            if old != content:
                raise
            return dict(existing)

    def _upload_new(self, path: str, content: bytes) -> dict[str, Any]:
        if len(content) <= SIMPLE_UPLOAD_LIMIT:
            return dict(self._g("PUT", f"{self._by_path(path)}/content", content=content,
                                params={"@microsoft.graph.conflictBehavior": "fail"},
                                headers={"Content-Type": "application/octet-stream"}).json())
        session = self._g("POST", f"{self._by_path(path)}/createUploadSession",
                          json={"item": {"@microsoft.graph.conflictBehavior": "fail"}}).json()
        upload_url = str(session["uploadUrl"])
        result: dict[str, Any] = {}
        for start in range(0, len(content), FRAGMENT):
            chunk = content[start:start + FRAGMENT]
            end = start + len(chunk) - 1
            # The upload URL is pre-authenticated: no bearer token goes with it (graph-api.md §2.6).
            response = httpx.put(upload_url, content=chunk, verify=self.verify, trust_env=False, timeout=120,
                                 headers={"Content-Range": f"bytes {start}-{end}/{len(content)}"})
            if response.status_code >= 400:
                raise ServiceError.from_status(response.status_code, "", response.text[:300], surface="graph")
            if response.status_code in (200, 201):
                result = dict(response.json())
        return result

    def write_protected_copy(self, path: str, content: bytes, *, readers_of: str) -> StoredFile:
        readers = self.readers(readers_of)   # read first: nothing is written if the source is unreadable
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            self._ensure_folder(parent)
        item = self._upload(path, content)
        target = self._file_item(path)
        self._sp("POST", f"{target}/breakroleinheritance(copyRoleAssignments=false,clearSubscopes=true)")
        # Already unique (a rerun after a crash): make the assignments exactly the wanted ones.
        current = self._sp("GET", f"{target}/RoleAssignments?$expand=Member,RoleDefinitionBindings")
        read_id = self._role_id(READ)
        have: set[int] = set()
        for ra in _results(current):
            pid = int(ra.get("PrincipalId") or (ra.get("Member") or {}).get("Id") or 0)
            login = str((ra.get("Member") or {}).get("LoginName") or "")
            levels = {str(b.get("Name")) for b in _results(ra.get("RoleDefinitionBindings"))}
            if self._is_self(login):
                continue
            if pid in readers and levels == {READ}:
                have.add(pid)
                continue
            self._sp("POST", f"{target}/roleassignments/removeroleassignment(principalid={pid})")
        for pid, login in sorted(readers.items()):
            if pid not in have and not self._is_self(login):
                self._sp("POST", f"{target}/roleassignments/addroleassignment(principalid={pid},roledefid={read_id})")
        return StoredFile(str(item["id"]), path.strip("/"), str(item.get("webUrl") or ""))

    def _is_self(self, login: str) -> bool:
        return bool(self.client_id) and self.client_id in login.lower()

    def _ensure_library_columns(self) -> None:
        if self._columns_ready:
            return
        fields_url = f"web/GetList('{_q(f'{self.site_path}/{self.library}')}')/fields"
        have = {str(f.get("InternalName")) for f in _results(self._sp("GET", f"{fields_url}?$select=InternalName"))}
        for name, kind in LIBRARY_COLUMNS.items():
            if name not in have:
                self._sp("POST", fields_url, {"__metadata": {"type": "SP.Field"}, "Title": name,
                                              "FieldTypeKind": kind})
        self._columns_ready = True

    def set_columns(self, path: str, fields: Mapping[str, Any]) -> None:
        self._ensure_library_columns()
        self._g("PATCH", f"{self._by_path(path)}/listItem/fields", json=dict(fields))

    # ------------------------------------------------------------------------------------------ register list
    def register_list_id(self) -> str:
        """The id of the register list, created (with its columns and permissions) if missing."""
        if self._list_id is not None:
            return self._list_id
        lists = _results(self._g("GET", f"/sites/{self.site_id()}/lists?$select=id,displayName").json())
        found = next((lst for lst in lists if lst.get("displayName") == self.register_list), None)
        if found is not None:
            self._list_id = str(found["id"])
            return self._list_id
        created = self._g("POST", f"/sites/{self.site_id()}/lists", json={
            "displayName": self.register_list, "list": {"template": "genericList"},
            "columns": [{"name": name, kind: {}} for name, kind in REGISTER_COLUMNS.items()]}).json()
        self._list_id = str(created["id"])
        self._protect_list(self._list_id)
        return self._list_id

    def _protect_list(self, list_id: str) -> None:
        target = f"web/lists(guid'{list_id}')"
        self._sp("POST", f"{target}/breakroleinheritance(copyRoleAssignments=false,clearSubscopes=true)")
        wanted = [(name, READ) for name in self.register_readers]
        if self.owner_group:
            wanted.append((self.owner_group, FULL_CONTROL))
        for name, level in wanted:
            try:
                group = self._sp("GET", f"web/sitegroups/getbyname('{_q(name)}')?$select=Id")
            except NotFound:
                continue  # the permission cycle has not created this group yet; it keeps the list bot-only
            self._sp("POST", f"{target}/roleassignments/addroleassignment(principalid={int(group['Id'])},"
                             f"roledefid={self._role_id(level)})")

    def add_register_item(self, fields: Mapping[str, Any]) -> str:
        """Add the item, or update the one already holding this Symbol (a rerun after a crash between this
        call and the store commit must not list the text twice). Graph's $filter on list items needs an
        indexed column, so the list is paged through (a few hundred texts: a few requests)."""
        list_id = self.register_list_id()
        symbol = fields.get("Symbol")
        existing = next((i for i in self.register_items() if (i.get("fields") or {}).get("Symbol") == symbol), None)
        if existing is not None:
            self.update_register_item(str(existing["id"]), fields)
            return str(existing["id"])
        item = self._g("POST", f"/sites/{self.site_id()}/lists/{list_id}/items", json={"fields": dict(fields)}).json()
        return str(item["id"])

    def update_register_item(self, item_id: str, fields: Mapping[str, Any]) -> None:
        list_id = self.register_list_id()
        self._g("PATCH", f"/sites/{self.site_id()}/lists/{list_id}/items/{item_id}/fields", json=dict(fields))

    def register_items(self) -> list[dict[str, Any]]:
        """Every item of the register list with its fields (paged)."""
        list_id = self.register_list_id()
        url: str | None = f"/sites/{self.site_id()}/lists/{list_id}/items?$expand=fields&$top=200"
        items: list[dict[str, Any]] = []
        while url:
            page = self._g("GET", url).json()
            items.extend(_results(page))
            url = page.get("@odata.nextLink")
        return items

    def close(self) -> None:
        self.graph.close()


def register_groups(structure: Structure) -> tuple[list[str], str | None]:
    """The site groups that read the register list, and the owner group (Full Control)."""
    names: list[str] = []
    for ref in structure.series.register_readers:
        kind, arg = group_ref_kind(ref)
        if kind == ALL_PARTICIPANTS:
            names += [structure.group_name("country", p.code) for p in structure.enabled("participant")]
        elif kind == "country":
            names.append(structure.group_name("country", arg))
        elif kind == "wg":
            names.append(structure.group_name("working_group", arg))
        else:
            names.append(structure.group_name(kind))
    owner = structure.folders.owner
    owner_group = structure.group_name(group_ref_kind(owner)[0]) if owner and ":" not in owner else None
    return names, owner_group


def build_site_circulation(settings: Settings, authenticator: Authenticator, structure: Structure) -> SiteCirculation:
    """The circulation connector for ``structure.library`` of ``settings.endpoints.site_url``."""
    endpoints = settings.endpoints
    verify = ssl_verify(endpoints.ca_path)
    graph = build_sync_graph_client(settings, authenticator)
    readers, owner = register_groups(structure)
    return SiteCirculation(build_sharepoint_context(settings, authenticator), graph,
                           site_url=str(endpoints.site_url), library=structure.library,
                           client_id=settings.auth.client_id, site_id=endpoints.site_id, drive_id=endpoints.drive_id,
                           register_list=structure.series.register_list, register_readers=readers,
                           owner_group=owner, verify=verify)
