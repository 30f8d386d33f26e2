"""SharePoint REST of the local tenant, through the real office365-rest-python-client and raw requests.

Every test works in its own folder under "Shared Documents" (created over REST) so tests can share
the session's tenant. Shapes are checked against the published examples in
/work/shared/reference/graph-examples (sp-*.json) as key subsets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.sharing.role_type import RoleType

from tests.examples import load_example

FULL_CONTROL, CONTRIBUTE, READ = 1073741829, 1073741827, 1073741826
MARIA = "maria.santos@cartif.onmicrosoft.com"
JAMES = "james.okafor@cartif.onmicrosoft.com"
LIB = "Shared Documents"


def example_keys(name: str) -> set[str]:
    data = load_example(name)
    return set((data[0] if isinstance(data, list) else data).keys())


class Rest:
    """Raw SharePoint REST calls (verbose unless told), with the form digest handled like clients do."""

    def __init__(self, session: requests.Session, site_url: str) -> None:
        self.s, self.site = session, site_url
        self._digest: str | None = None

    def url(self, path: str) -> str:
        return f"{self.site}/_api/{path.lstrip('/')}"

    def digest(self) -> str:
        if self._digest is None:
            r = self.s.post(self.url("contextinfo"))
            r.raise_for_status()
            self._digest = r.json()["d"]["GetContextWebInformation"]["FormDigestValue"]
        return self._digest

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.s.get(self.url(path), **kw)

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        **kw: Any,
    ) -> requests.Response:
        h = {"X-RequestDigest": self.digest(), **(headers or {})}
        if body is not None:
            h.setdefault("Content-Type", "application/json;odata=verbose")
            data = json.dumps(body).encode()
        return self.s.post(self.url(path), data=data, headers=h, **kw)

    def d(self, path: str, **kw: Any) -> Any:
        r = self.get(path, **kw)
        assert r.status_code == 200, r.text
        return r.json()["d"]

    def folder(self, rel: str) -> str:
        return f"web/GetFolderByServerRelativeUrl('{rel.replace(chr(39), chr(39) * 2)}')"


@pytest.fixture(scope="module")
def rest(sp_http: requests.Session, tenant_info: dict[str, Any]) -> Rest:
    return Rest(sp_http, tenant_info["site_url"])


@pytest.fixture
def folder(rest: Rest, unique: str) -> str:
    """A fresh folder "Shared Documents/<unique>" created with folders/add."""
    r = rest.post(f"{rest.folder(LIB)}/folders/add('{unique}')")
    assert r.status_code == 200, r.text
    assert r.json()["d"]["ServerRelativeUrl"].endswith(f"/{LIB}/{unique}")
    return f"{LIB}/{unique}"


def assignments(rest: Rest, securable: str) -> dict[int, list[int]]:
    d = rest.d(f"{securable}/RoleAssignments?$expand=Member,RoleDefinitionBindings")
    return {
        ra["PrincipalId"]: sorted(b["Id"] for b in ra["RoleDefinitionBindings"]["results"])
        for ra in d["results"]
    }


def has_unique(rest: Rest, securable: str) -> bool:
    return bool(rest.d(f"{securable}?$select=HasUniqueRoleAssignments")["HasUniqueRoleAssignments"])


# ---------------------------------------------------------------------------------------------- protocol
def _tampered(digest: str) -> str:
    """The same digest with one hex digit of its signature changed."""
    first = digest[2]
    return digest[:2] + ("0" if first != "0" else "1") + digest[3:]


def test_contextinfo_digest_and_security_validation(
    rest: Rest, tenant_info: dict[str, Any], unique: str
) -> None:
    r = rest.s.post(rest.url("ConTextInfo"))
    assert r.status_code == 200
    info = r.json()["d"]["GetContextWebInformation"]
    assert info["FormDigestTimeoutSeconds"] == 1800
    assert info["WebFullUrl"] == tenant_info["site_url"]
    assert info["SupportedSchemaVersions"]["results"] == ["14.0.0.0", "15.0.0.0"]
    assert info["FormDigestValue"].startswith("0x")
    assert "," in info["FormDigestValue"]

    create = f"{rest.folder(LIB)}/folders/add('{unique}')"
    for headers in (
        {},
        {"X-RequestDigest": "0xDEADBEEF,1 Jan 2024 00:00:00 -0000"},
        {"X-RequestDigest": _tampered(info["FormDigestValue"])},
    ):
        denied = rest.s.post(rest.url(create), headers=headers)
        assert denied.status_code == 403
        error = denied.json()["error"]
        assert error["code"].startswith("-2130575251,")
        assert "security validation" in error["message"]["value"]
    ok = rest.s.post(rest.url(create), headers={"X-RequestDigest": info["FormDigestValue"]})
    assert ok.status_code == 200, ok.text


def test_formats_and_error_envelopes(rest: Rest, folder: str) -> None:
    plain = rest.get(f"{rest.folder(folder)}", headers={"Accept": "application/json;odata=nometadata"})
    assert plain.status_code == 200
    assert "odata=nometadata" in plain.headers["content-type"]
    body = plain.json()
    assert example_keys("sp-pnp-folder-get.json") <= set(body)
    assert not any(k.startswith(("odata.", "__")) for k in body)

    minimal = rest.get("web/roledefinitions", headers={"Accept": "application/json"}).json()
    assert minimal["odata.metadata"].endswith("$metadata#Collection(SP.RoleDefinition)")
    full = next(rd for rd in minimal["value"] if rd["Id"] == FULL_CONTROL)
    # The PnP CLI adds BasePermissionsValue/RoleTypeKindValue; raw REST has the rest, High/Low as strings.
    assert example_keys("sp-pnp-roledefinition-list.json") - {
        "BasePermissionsValue",
        "RoleTypeKindValue",
    } <= set(full)
    assert full["BasePermissions"] == {"High": "2147483647", "Low": "4294967295"}
    assert full["odata.type"] == "SP.RoleDefinition"

    verbose = rest.d(rest.folder(folder))
    assert verbose["__metadata"]["type"] == "SP.Folder"
    assert verbose["Files"]["__deferred"]["uri"].endswith("/Files")

    missing = rest.get(rest.folder(f"{folder}/nope"), headers={"Accept": "application/json;odata=nometadata"})
    assert missing.status_code == 404
    assert missing.json()["odata.error"]["code"] == "-2147024894, System.IO.FileNotFoundException"
    missing_v = rest.get(rest.folder(f"{folder}/nope"))
    assert missing_v.json()["error"]["message"] == {"lang": "en-US", "value": "File Not Found."}


def test_unprivileged_app_is_denied(tenant_info: dict[str, Any], tokens: Any) -> None:
    s = requests.Session()
    s.trust_env, s.verify = False, tenant_info["ca_path"]
    s.headers.update(
        {
            "Authorization": "Bearer " + tokens.sharepoint("unprivileged"),
            "Accept": "application/json;odata=verbose",
        }
    )
    r = s.get(f"{tenant_info['site_url']}/_api/web")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "-2147024891, System.UnauthorizedAccessException"


# ---------------------------------------------------------------------------------------------- folders
def test_folder_forms_list_item_and_rename(rest: Rest, folder: str, tenant_info: dict[str, Any]) -> None:
    site_path = tenant_info["site_path"]
    by_url = rest.d(rest.folder(f"{site_path}/{folder}"))
    by_path = rest.d(f"web/GetFolderByServerRelativePath(DecodedUrl='{folder}')")
    assert by_url["UniqueId"] == by_path["UniqueId"]
    assert by_url["Name"] == folder.rsplit("/", 1)[1]
    assert by_url["ItemCount"] == 0

    r = rest.post(f"{rest.folder(folder)}/Folders/AddUsingPath(decodedurl='Sub A',overwrite=false)")
    assert r.status_code == 200, r.text
    r = rest.post(
        "web/folders", {"__metadata": {"type": "SP.Folder"}, "ServerRelativeUrl": f"{folder}/Sub B"}
    )
    assert r.status_code == 201, r.text
    subs = rest.d(f"{rest.folder(folder)}/Folders")["results"]
    assert [f["Name"] for f in subs] == ["Sub A", "Sub B"]

    item = rest.d(
        f"{rest.folder(folder + '/Sub A')}/ListItemAllFields"
        "?$select=Id,ID,GUID,FileLeafRef,FileRef,FSObjType,Title,HasUniqueRoleAssignments"
    )
    assert item["__metadata"]["type"] == "SP.Data.Shared_x0020_DocumentsItem"
    assert item["FileLeafRef"] == "Sub A"
    assert item["FSObjType"] == 1
    assert item["Id"] == item["ID"]
    assert item["FileRef"] == f"{site_path}/{folder}/Sub A"
    assert item["HasUniqueRoleAssignments"] is False

    rename = rest.post(
        f"{rest.folder(folder + '/Sub A')}/ListItemAllFields",
        {
            "__metadata": {"type": "SP.Data.Shared_x0020_DocumentsItem"},
            "FileLeafRef": "Sub C",
            "Title": "Sub C",
        },
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert rename.status_code == 204, rename.text
    assert rest.d(f"web/lists/getbytitle('Documents')/items({item['Id']})?$select=FileLeafRef,Title") | {
        "__metadata": None
    } == {"__metadata": None, "FileLeafRef": "Sub C", "Title": "Sub C"}
    wrong = rest.post(
        f"{rest.folder(folder + '/Sub C')}/ListItemAllFields",
        {"NoSuchColumn": 1},
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert wrong.status_code == 400
    assert "does not exist on type" in wrong.json()["error"]["message"]["value"]


def test_library_root_folder_has_no_list_item(rest: Rest, tenant_info: dict[str, Any]) -> None:
    r = rest.get(f"{rest.folder(LIB)}/ListItemAllFields")
    assert r.status_code == 200
    assert r.json() == {"d": {"ListItemAllFields": None}}
    lib = rest.d(
        f"web/GetList('{tenant_info['site_path']}/{LIB}')?$select=Title,HasUniqueRoleAssignments,BaseTemplate"
    )
    assert lib["Title"] == "Documents"
    assert lib["BaseTemplate"] == 101
    broken = rest.post(f"{rest.folder(LIB)}/ListItemAllFields/breakroleinheritance(true)")
    assert broken.status_code == 404


def test_files_upload_download_versions(sp: ClientContext, rest: Rest, folder: str) -> None:
    target = sp.web.get_folder_by_server_relative_url(folder)
    target.files.add("draft.txt", b"one", overwrite=True)
    sp.execute_query()
    for body in (b"two", b"three"):
        r = rest.post(f"{rest.folder(folder)}/Files/add(url='draft.txt',overwrite=true)", data=body)
        assert r.status_code == 200, r.text
        assert r.json()["d"]["Name"] == "draft.txt"
    clash = rest.post(f"{rest.folder(folder)}/Files/add(url='draft.txt',overwrite=false)", data=b"x")
    assert clash.status_code == 400
    file_url = f"web/GetFileByServerRelativeUrl('/{rest.site.split('/', 3)[3]}/{folder}/draft.txt')"
    assert rest.get(f"{file_url}/$value").content == b"three"
    meta = rest.d(file_url)
    assert meta["UIVersionLabel"] == "3.0"
    assert meta["Length"] == "5"
    versions = rest.d(f"{file_url}/versions")["results"]
    assert [(v["ID"], v["VersionLabel"], v["IsCurrentVersion"]) for v in versions] == [
        (512, "1.0", False),
        (1024, "2.0", False),
    ]
    assert example_keys("sp-pnp-file-version-list.json") - {"ExpirationDate"} <= set(versions[0])
    assert versions[0]["Url"] == f"_vti_history/512/{folder}/draft.txt"
    assert rest.get(f"{file_url}/versions(1024)/$value").content == b"two"
    put = rest.post(f"{file_url}/$value", data=b"four", headers={"X-HTTP-Method": "PUT"})
    assert put.status_code == 204
    assert rest.get(f"{file_url}/$value").content == b"four"


# ---------------------------------------------------------------------------------------------- permissions
def test_break_without_copy_leaves_only_the_apps_full_control(
    sp: ClientContext, rest: Rest, folder: str, tenant_info: dict[str, Any]
) -> None:
    item = sp.web.get_folder_by_server_relative_url(folder).list_item_all_fields
    item.break_role_inheritance(False, False)
    sp.execute_query()
    ra = rest.d(
        f"{rest.folder(folder)}/ListItemAllFields/RoleAssignments?$expand=Member,RoleDefinitionBindings"
    )
    assert len(ra["results"]) == 1
    only = ra["results"][0]
    assert only["Member"]["LoginName"].startswith(f"i:0i.t|ms.sp.ext|{tenant_info['client_id']}@")
    assert [b["Name"] for b in only["RoleDefinitionBindings"]["results"]] == ["Full Control"]
    assert has_unique(rest, f"{rest.folder(folder)}/ListItemAllFields")


def test_grant_through_the_client_changes_permissions(sp: ClientContext, rest: Rest, folder: str) -> None:
    securable = f"{rest.folder(folder)}/ListItemAllFields"
    inherited = assignments(rest, securable)
    assert not has_unique(rest, securable)
    assert inherited[3] == [FULL_CONTROL]

    user = sp.web.ensure_user(f"i:0#.f|membership|{MARIA}")
    contribute = sp.web.role_definitions.get_by_type(RoleType.Contributor)
    sp.load(contribute)
    sp.execute_query()
    assert user.login_name == f"i:0#.f|membership|{MARIA}"
    assert contribute.id == CONTRIBUTE
    item = sp.web.get_folder_by_server_relative_url(folder).list_item_all_fields
    item.break_role_inheritance(True, False)
    item.role_assignments.add_role_assignment(user.id, contribute.id)
    sp.execute_query()

    assert has_unique(rest, securable)
    assert rest.d(f"{securable}/HasUniqueRoleAssignments")["HasUniqueRoleAssignments"] is True
    assert assignments(rest, securable) == inherited | {user.id: [CONTRIBUTE]}
    one = rest.d(f"{securable}/RoleAssignments/GetByPrincipalId({user.id})?$expand=Member")
    assert one["Member"]["PrincipalType"] == 1
    assert one["Member"]["Email"] == MARIA
    # The library and the web are untouched.
    assert user.id not in assignments(rest, "web/lists/getbytitle('Documents')")


def test_breakroleinheritance_url_forms_and_subscopes(rest: Rest, folder: str) -> None:
    parent = f"{rest.folder(folder)}/ListItemAllFields"
    assert rest.post(f"{rest.folder(folder)}/folders/add('child')").status_code == 200
    child = f"{rest.folder(folder + '/child')}/ListItemAllFields"

    assert rest.post(f"{child}/breakroleinheritance(true)").status_code == 200
    assert (
        rest.post(
            f"{child}/roleassignments/addroleassignment(principalid='4',roledefid='{CONTRIBUTE}')"
        ).status_code
        == 200
    )
    child_acl = assignments(rest, child)
    # clearSubscopes=false keeps the child's unique permissions …
    r = rest.post(f"{parent}/breakroleinheritance(copyRoleAssignments=false,clearSubscopes=false)")
    assert r.status_code == 200
    assert r.json() == {"d": {"BreakRoleInheritance": None}}
    assert has_unique(rest, child)
    assert assignments(rest, child) == child_acl
    # … re-breaking an object that is already unique changes nothing …
    before = assignments(rest, parent)
    assert (
        rest.post(
            f"{parent}/BreakRoleInheritance", {"copyRoleAssignments": True, "clearSubscopes": True}
        ).status_code
        == 200
    )
    assert assignments(rest, parent) == before
    assert has_unique(rest, child)
    # … and clearSubscopes=true on a fresh break resets the child.
    assert rest.post(f"{parent}/resetroleinheritance").status_code == 200
    assert not has_unique(rest, parent)
    r = rest.post(f"{parent}/breakroleinheritance", {"CopyRoleAssignments": "true", "ClearSubscopes": "true"})
    assert r.status_code == 200
    assert has_unique(rest, parent)
    assert not has_unique(rest, child)
    assert assignments(rest, child) == assignments(rest, parent)


def test_role_assignment_add_remove_forms(rest: Rest, folder: str) -> None:
    securable = f"{rest.folder(folder)}/ListItemAllFields"
    inheriting = rest.post(f"{securable}/RoleAssignments/AddRoleAssignment(principalId=4,roleDefId={READ})")
    assert inheriting.status_code == 400
    assert "inherits permissions" in inheriting.json()["error"]["message"]["value"]
    assert rest.post(f"{securable}/breakroleinheritance(false)").status_code == 200
    for call in (
        f"AddRoleAssignment(principalId=4,roleDefId={READ})",
        f"addroleassignment(principalid='4',roledefid='{CONTRIBUTE}')",
        f"addroleassignment(principalid=5,roledefid={READ})",
    ):
        assert rest.post(f"{securable}/roleassignments/{call}").status_code == 200
    assert assignments(rest, securable)[4] == [READ, CONTRIBUTE]
    assert (
        rest.post(
            f"{securable}/roleassignments/removeroleassignment(principalid=4,roledefid={READ})"
        ).status_code
        == 200
    )
    assert assignments(rest, securable)[4] == [CONTRIBUTE]
    assert rest.post(f"{securable}/roleassignments/removeroleassignment(principalid=4)").status_code == 200
    assert 4 not in assignments(rest, securable)
    gone = rest.post(
        f"{securable}/roleassignments/getbyprincipalid(5)",
        headers={"X-HTTP-Method": "DELETE", "IF-MATCH": "*"},
    )
    assert gone.status_code == 200
    assert 5 not in assignments(rest, securable)
    unknown = rest.post(f"{securable}/roleassignments/addroleassignment(principalid=99999,roledefid={READ})")
    assert unknown.status_code == 400


def test_one_request_per_folder_expand(rest: Rest, folder: str) -> None:
    for name in ("A", "B"):
        assert rest.post(f"{rest.folder(folder)}/folders/add('{name}')").status_code == 200
    assert (
        rest.post(f"{rest.folder(folder + '/B')}/ListItemAllFields/breakroleinheritance(false)").status_code
        == 200
    )
    expand = (
        "ListItemAllFields/RoleAssignments/Member,ListItemAllFields/RoleAssignments/RoleDefinitionBindings,"
        "ListItemAllFields/HasUniqueRoleAssignments"
    )
    folders = rest.d(f"{rest.folder(folder)}/Folders?$expand={expand}")["results"]
    by_name = {f["Name"]: f["ListItemAllFields"] for f in folders}
    assert by_name["A"]["HasUniqueRoleAssignments"] is False
    assert by_name["B"]["HasUniqueRoleAssignments"] is True
    b_acl = by_name["B"]["RoleAssignments"]["results"]
    assert len(b_acl) == 1
    assert b_acl[0]["RoleDefinitionBindings"]["results"][0]["Id"] == FULL_CONTROL
    assert {ra["Member"]["Title"] for ra in by_name["A"]["RoleAssignments"]["results"]} >= {"CARTIF Owners"}
    one = rest.get(
        f"{rest.folder(folder + '/B')}?$expand={expand}",
        headers={"Accept": "application/json;odata=nometadata"},
    ).json()
    assert set(one["ListItemAllFields"]["RoleAssignments"][0]) == {
        "Member",
        "RoleDefinitionBindings",
        "PrincipalId",
    }
    assert example_keys("sp-pnp-folder-roleassignments.json") <= set(one)


def test_role_definitions_lookups(sp: ClientContext, rest: Rest) -> None:
    reader = sp.web.role_definitions.get_by_type(RoleType.Reader)
    by_name = sp.web.role_definitions.get_by_name("Contribute")
    sp.load(reader)
    sp.load(by_name)
    sp.execute_query()
    assert (reader.id, by_name.id) == (READ, CONTRIBUTE)
    assert rest.d(f"web/roledefinitions({FULL_CONTROL})")["Name"] == "Full Control"
    assert rest.d("web/roledefinitions/getbyname('Contribute')/id") == {"Id": CONTRIBUTE}
    assert rest.get("web/roledefinitions/getbyname('Nope')").status_code == 404


# ---------------------------------------------------------------------------------------------- principals
def test_ensure_user_both_forms_and_unknown(rest: Rest, sp: ClientContext) -> None:
    by_url = rest.post(f"web/EnsureUser('i:0%23.f|membership|{JAMES}')")
    assert by_url.status_code == 200, by_url.text
    user = by_url.json()["d"]
    assert example_keys("sp-pnp-user-ensure.json") <= set(user)
    assert user["__metadata"]["type"] == "SP.User"
    assert user["PrincipalType"] == 1
    assert user["UserPrincipalName"] == JAMES
    by_body = rest.post("web/ensureuser", {"logonName": JAMES}).json()["d"]
    assert by_body["Id"] == user["Id"]
    assert rest.d(f"web/siteusers/getbyid({user['Id']})")["LoginName"] == user["LoginName"]
    assert rest.d(f"web/siteusers/getbyemail('{JAMES}')")["Id"] == user["Id"]
    assert rest.d(f"web/siteusers({user['Id']})?$select=Id") | {"__metadata": 0} == {
        "__metadata": 0,
        "Id": user["Id"],
    }
    unknown = rest.post("web/ensureuser('i:0%23.f|membership|nobody@nowhere.example')")
    assert unknown.status_code == 404
    assert "could not be found" in unknown.json()["error"]["message"]["value"]
    with pytest.raises(ClientRequestException):
        sp.web.ensure_user("nobody@nowhere.example").execute_query()


def test_site_groups_and_membership(sp: ClientContext, rest: Rest, unique: str) -> None:
    group = sp.web.site_groups.add(f"WG {unique}", "A working group")
    sp.execute_query()
    assert group.id is not None
    member = group.users.add_user(f"i:0#.f|membership|{MARIA}")
    sp.execute_query()
    assert member.login_name == f"i:0#.f|membership|{MARIA}"
    listed = rest.d(f"web/sitegroups/getbyname('WG {unique}')/users")["results"]
    assert [u["LoginName"] for u in listed] == [f"i:0#.f|membership|{MARIA}"]
    g = rest.d(f"web/sitegroups/getbyid({group.id})")
    assert example_keys("sp-pnp-group-list.json") <= set(g)
    assert g["PrincipalType"] == 8
    assert g["Description"] == "A working group"

    merged = rest.post(
        f"web/sitegroups/getbyid({group.id})",
        {"__metadata": {"type": "SP.Group"}, "Description": "Renamed"},
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert merged.status_code == 204
    assert rest.d(f"web/sitegroups/getbyid({group.id})/description") == {"Description": "Renamed"}
    dup = rest.post("web/sitegroups", {"__metadata": {"type": "SP.Group"}, "Title": f"WG {unique}"})
    assert dup.status_code == 400

    added = rest.post(
        f"web/sitegroups/getbyid({group.id})/users",
        {"__metadata": {"type": "SP.User"}, "LoginName": f"i:0#.f|membership|{JAMES}"},
    )
    assert added.status_code == 201
    removed = rest.post(
        f"web/sitegroups/getbyid({group.id})/users/removebyloginname(@v)?@v='i:0%23.f|membership|{MARIA}'"
    )
    assert removed.status_code == 200, removed.text
    james = added.json()["d"]["Id"]
    assert rest.post(f"web/sitegroups/getbyid({group.id})/users/removebyid({james})").status_code == 200
    assert rest.d(f"web/sitegroups/getbyid({group.id})/users")["results"] == []

    sp.web.site_groups.remove_by_id(group.id)
    sp.execute_query()
    assert rest.get(f"web/sitegroups/getbyid({group.id})").status_code == 404


# ---------------------------------------------------------------------------------------------- lists
def test_custom_list_fields_items_and_paging(rest: Rest, unique: str) -> None:
    created = rest.post(
        "web/lists",
        {
            "__metadata": {"type": "SP.List"},
            "Title": f"Tasks {unique}",
            "BaseTemplate": 100,
            "Description": "d",
        },
    )
    assert created.status_code == 201, created.text
    lst = created.json()["d"]
    entity = lst["ListItemEntityTypeFullName"]
    base = f"web/lists(guid'{lst['Id']}')"
    assert (
        rest.post(
            f"{base}/fields", {"__metadata": {"type": "SP.FieldNumber"}, "Title": "Score", "FieldTypeKind": 9}
        ).status_code
        == 201
    )
    for n in range(3):
        r = rest.post(f"{base}/items", {"__metadata": {"type": entity}, "Title": f"T{n}", "Score": n})
        assert r.status_code == 201, r.text
    page = rest.d(f"web/lists/getbytitle('Tasks {unique}')/items?$top=2&$select=Title,Score")
    assert [i["Title"] for i in page["results"]] == ["T0", "T1"]
    nxt = rest.s.get(page["__next"]).json()["d"]
    assert [i["Title"] for i in nxt["results"]] == ["T2"]
    assert "__next" not in nxt
    first = page["results"][0]["__metadata"]["uri"]
    upd = rest.s.post(
        first,
        data=json.dumps({"__metadata": {"type": entity}, "Score": 7}),
        headers={
            "X-RequestDigest": rest.digest(),
            "X-HTTP-Method": "MERGE",
            "IF-MATCH": "*",
            "Content-Type": "application/json;odata=verbose",
        },
    )
    assert upd.status_code == 204, upd.text
    assert rest.d(f"{base}/getitembyid(1)")["Score"] == 7
    filtered = rest.d(f"{base}/items?$filter=Score eq 2")["results"]
    assert [i["Title"] for i in filtered] == ["T2"]
    bad_type = rest.post(f"{base}/items", {"__metadata": {"type": "SP.Data.WrongListItem"}, "Title": "x"})
    assert bad_type.status_code == 400
    assert (
        rest.post(f"{base}/items(1)", headers={"X-HTTP-Method": "DELETE", "IF-MATCH": "*"}).status_code == 200
    )
    assert rest.get(f"{base}/items(1)").status_code == 404


def test_library_items_page_with_their_unique_permission_flag(rest: Rest, folder: str,
                                                             tenant_info: dict[str, Any]) -> None:
    # What the permission cycle reads to find unique permissions at any depth: the library's items in
    # pages ($top, then the next link verbatim), FileRef server-relative, FileSystemObjectType 1 for folders.
    deep = f"{folder}/a/b"
    for path in (f"{folder}/a", deep):
        parent, _, name = path.rpartition("/")
        assert rest.post(f"{rest.folder(parent)}/folders/add('{name}')").status_code == 200
    uploaded = rest.post(f"{rest.folder(deep)}/files/add(url='n.txt',overwrite=true)", data=b"n")
    assert uploaded.status_code == 200, uploaded.text
    assert rest.post(f"{rest.folder(deep)}/ListItemAllFields/breakroleinheritance(copyRoleAssignments=false,"
                     "clearSubscopes=true)").status_code == 200
    library = f"{tenant_info['site_path']}/{LIB}"
    query = f"web/GetList('{library}')/items?$select=Id,FileRef,FileSystemObjectType,HasUniqueRoleAssignments&$top=2"
    seen: dict[str, dict[str, Any]] = {}
    page, pages = rest.d(query), 1
    while True:
        assert len(page["results"]) <= 2
        for row in page["results"]:
            # SharePoint answers "ID" too when "Id" is selected; nothing else beyond $select.
            assert set(row) - {"__metadata", "ID"} == {"Id", "FileRef", "FileSystemObjectType",
                                                       "HasUniqueRoleAssignments"}
            seen[row["FileRef"]] = row
        if "__next" not in page:
            break
        page, pages = rest.s.get(page["__next"]).json()["d"], pages + 1
    assert pages >= 2
    ids = [row["Id"] for row in seen.values()]
    assert len(ids) == len(set(ids)), "no item on two pages"
    base = f"{library}/{folder.removeprefix(LIB + '/')}"
    mine = {ref.removeprefix(base): (row["FileSystemObjectType"], row["HasUniqueRoleAssignments"])
            for ref, row in seen.items() if ref == base or ref.startswith(base + "/")}
    assert mine == {"": (1, False), "/a": (1, False), "/a/b": (1, True), "/a/b/n.txt": (0, False)}
    # The unique item's role assignments, by its list item id.
    item_id = seen[f"{base}/a/b"]["Id"]
    assigned = rest.d(f"web/GetList('{library}')/items({item_id})/RoleAssignments"
                      "?$expand=Member,RoleDefinitionBindings")["results"]
    assert [b["Name"] for ra in assigned for b in ra["RoleDefinitionBindings"]["results"]] == ["Full Control"]
    # SharePoint cannot filter on HasUniqueRoleAssignments: callers filter client-side.
    refused = rest.get(f"web/GetList('{library}')/items?$filter=HasUniqueRoleAssignments eq true")
    assert refused.status_code == 400
