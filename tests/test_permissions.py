"""Folder permissions on the local tenant through the real SDKs: build, no-op, drift correction.

We test these aspects: one apply builds a small negotiation structure (groups, members, folders,
unique permissions) and verifies it; the next plan is empty and costs at most one request per
governed folder; drift of each kind made by hand — a user granted directly, a sharing link made
with Graph createLink, an inheritance reset, a member added to a group — is planned, corrected by
one apply, audited, and the plan after that is empty; `access who` explains each grant.

The tenant is shared with other tests: everything lives under the test's own root folder and its
groups carry the test's unique prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from bot.access import report, who
from bot.applying import reconcile
from bot.desired import build_desired
from bot.planning import GuardPolicy, plan
from bot.ports import MemoryAuditLog
from connectors.sharepoint_permissions import SharePointPermissions
from tests.sites import DELEGATIONS, own_structure, permission_site

STRUCTURE = DELEGATIONS + """  - {code: AZE, name: Azerbaijan, status: observer, enabled: false}
working_groups:
  - {code: WG-TF, name: Trade facilitation, members: all, chair: KAZ}
roster:
  - {person: aigerim.nurlanova@mti.gov.kz, country: KAZ, roles: [chief_negotiator], working_groups: [WG-TF]}
  - {person: madina.abenova@mti.gov.kz, country: KAZ, roles: [delegate]}
  - {person: aibek.sydykov@mineconom.gov.kg, country: KGZ, roles: [chief_negotiator], working_groups: [WG-TF]}
  - {person: maria.santos@cartif.onmicrosoft.com, secretariat: true, roles: [secretariat]}
folders:
  owner: secretariat
  templates:
    - path: Plenary
      grants: {all_participants: Read, chief_negotiators: Edit}
    - path: Working groups
      grants: {all_participants: Read}
    - path: "Working groups/{wg}"
      for_each: working_group
      grants: {"wg:{wg}": Contribute, "country:{chair}": Edit}
    - path: "Working groups/{wg}/Submissions"
      for_each: working_group
      inherit: true
    - path: "Working groups/{wg}/Submissions/{country}"
      for_each: working_group_member
      grants: {"country:{country}": Contribute}
    - path: Countries
      grants: {all_participants: Read}
    - path: "Countries/{country}"
      for_each: participant
      grants: {"country:{country}": Edit}
    - path: Secretariat
      grants: {}
"""
LIB = "Shared Documents"
OUTSIDER = "james.okafor@cartif.onmicrosoft.com"


@pytest.fixture
def setup(tenant_info: dict[str, Any], unique: str) -> Iterator[tuple[Any, SharePointPermissions]]:
    structure = own_structure(STRUCTURE, unique)
    with permission_site(tenant_info, structure) as site:
        yield build_desired(structure), site.connector


def requests_since(admin: httpx.Client, before: dict[str, Any]) -> int:
    after = admin.get("/stats").json()
    return int(after["total_requests"]) - int(before["total_requests"]) - 1  # minus the /stats call itself


class Rest:
    def __init__(self, session: requests.Session, site_url: str) -> None:
        self.s, self.site = session, site_url
        digest = session.post(f"{site_url}/_api/contextinfo").json()
        self.digest = digest["d"]["GetContextWebInformation"]["FormDigestValue"]

    def post(self, path: str, body: Any = None) -> Any:
        r = self.s.post(f"{self.site}/_api/{path}", json=body, headers={"X-RequestDigest": self.digest})
        assert r.status_code in (200, 201), r.text
        return r.json()["d"] if r.content else None

    def item(self, path: str) -> str:
        return f"web/GetFolderByServerRelativeUrl('{LIB}/{path}')/ListItemAllFields"


async def test_apply_builds_the_structure_and_corrects_every_kind_of_drift(  # noqa: PLR0917
        setup: tuple[Any, SharePointPermissions], unique: str, admin: httpx.Client, sp_http: requests.Session,
        graph_http: httpx.AsyncClient, tenant_info: dict[str, Any]) -> None:
    desired, connector = setup
    audit = MemoryAuditLog()
    policy = GuardPolicy()

    first = reconcile(desired, connector, connector, audit, policy=policy)
    assert not first.failed and not first.remaining
    counts = first.plan.counts()
    assert counts["create_group"] == 5  # KAZ, KGZ, WG-TF, Chief Negotiators, Secretariat
    assert counts["create_folder"] == len(desired.folders)
    assert len(audit.entries) == len(first.plan)
    assert {e.cycle_id for e in audit.entries} == {first.cycle_id}

    # A no-op cycle: empty plan, at most one request per governed folder.
    before = admin.get("/stats").json()
    again = reconcile(desired, connector, connector, audit, policy=policy)
    assert not again.plan
    assert requests_since(admin, before) <= len(desired.folders)

    sub_kaz = f"{unique}/Working groups/WG-TF/Submissions/KAZ"
    country_kgz = f"{unique}/Countries/KGZ"
    plenary = f"{unique}/Plenary"
    rest = Rest(sp_http, tenant_info["site_url"])
    # Drift 1: a user granted directly on KGZ's private folder.
    user = rest.post("web/ensureuser", {"logonName": OUTSIDER})
    rest.post(f"{rest.item(country_kgz)}/roleassignments/addroleassignment(principalid={user['Id']},"
              "roledefid=1073741827)")
    # Drift 2: an organization sharing link on KAZ's submissions, made through Graph.
    link = await graph_http.post(f"/drives/{tenant_info['drive_id']}/root:/{sub_kaz}:/createLink",
                                 json={"type": "view", "scope": "organization"})
    assert link.status_code in (200, 201), link.text
    # Drift 3: Plenary's unique permissions reset.
    rest.post(f"{rest.item(plenary)}/resetroleinheritance")
    # Drift 4: someone added to the KAZ delegation.
    group = sp_http.get(f"{tenant_info['site_url']}/_api/web/sitegroups/getbyname('{unique} CARTIF Delegation KAZ')"
                        ).json()["d"]
    rest.post(f"web/sitegroups/getbyid({group['Id']})/users",
              {"__metadata": {"type": "SP.User"}, "LoginName": user["LoginName"]})

    drift = plan(desired, connector_observe(desired, connector))
    kinds = {(a.kind, a.target) for a in drift}
    assert ("revoke", country_kgz) in kinds
    assert ("remove_sharing_link", sub_kaz) in kinds
    assert ("break_inheritance", plenary) in kinds
    assert ("remove_member", f"{unique} CARTIF Delegation KAZ") in kinds
    drifted = report(desired, connector_observe(desired, connector))
    assert {r.path for r in drifted if r.drift} == {country_kgz, sub_kaz, plenary}

    fixed = reconcile(desired, connector, connector, audit, policy=policy)
    assert not fixed.failed and not fixed.remaining
    assert {(a.kind, a.target) for a in fixed.plan} == kinds
    assert not plan(desired, connector_observe(desired, connector))
    # The link is gone for Graph too, not only its role assignment.
    perms = await graph_http.get(f"/drives/{tenant_info['drive_id']}/root:/{sub_kaz}:/permissions")
    assert not [p for p in perms.json()["value"] if p.get("link")]
    audited = {(e.action, e.target.split(" / ")[0]) for e in audit.entries if e.cycle_id == fixed.cycle_id}
    assert audited == kinds

    entries = who(desired, connector_observe(desired, connector), f"{unique}/Working groups/WG-TF")
    by_principal = {e.principal: e for e in entries}
    assert by_principal[f"{unique} CARTIF Delegation KAZ"].level == "Edit"
    assert "country:{chair}" in by_principal[f"{unique} CARTIF Delegation KAZ"].rule
    assert by_principal[f"{unique} CARTIF WG-TF"].members == (
        ("aibek.sydykov@mineconom.gov.kg", "roster: aibek.sydykov@mineconom.gov.kg in WG-TF"),
        ("aigerim.nurlanova@mti.gov.kz", "roster: aigerim.nurlanova@mti.gov.kz in WG-TF"))


def connector_observe(desired: Any, connector: SharePointPermissions) -> Any:
    from bot.observing import observe

    return observe(desired, connector)
