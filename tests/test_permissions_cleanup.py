"""Stale groups and undeclared items on the local tenant, through the real connector.

We test these aspects: the bot writes its ownership marker into the Description of every group it
creates, and a delegation disabled in the structure loses its group (deleted on the site); a group made
by hand with the SDK is never touched, even when its name matches the bot's naming ("CARTIF HR" matches
"CARTIF {code}": the plan only notes it), nor one with another name; a declared group whose marker was
removed gets it back with one description update (and nothing else changes), and once dropped goes
like any group of the bot's; a subfolder and a file inside a governed folder, shared by hand with
Graph ``createLink``, are reported as drift and left alone by default (the plan stays empty), and with
``folders.undeclared: inherit`` one apply removes their links and resets them to inherit — two and
three levels down too (a folder with a link inside an undeclared folder, and a file with its own link
inside that one, which also holds the folder's link copied when its inheritance broke), after which
the plan is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
import requests
from office365.sharepoint.client_context import ClientContext

from bot.access import report
from bot.applying import reconcile
from bot.desired import build_desired
from bot.model import GROUP_MARKER
from bot.observing import observe
from bot.permissions import format_cycle
from bot.planning import DeleteGroup, GuardPolicy, MarkGroup, plan
from bot.ports import MemoryAuditLog
from config.structure import Structure
from connectors.sharepoint_permissions import PAGE, SharePointPermissions
from tests.sites import own_structure, permission_site
from tests.test_permissions import STRUCTURE

POLICY = GuardPolicy()


@pytest.fixture
def site(tenant_info: dict[str, Any], unique: str) -> Iterator[tuple[Structure, SharePointPermissions]]:
    structure = own_structure(STRUCTURE, unique)
    with permission_site(tenant_info, structure) as built:
        connector = built.connector
        first = reconcile(build_desired(structure), connector, connector, MemoryAuditLog(), policy=POLICY)
        assert not first.failed and not first.remaining
        yield structure, connector


def _group_exists(sp_http: requests.Session, site_url: str, name: str) -> bool:
    return sp_http.get(f"{site_url}/_api/web/sitegroups/getbyname('{name}')").status_code == 200


def _description(sp: ClientContext, name: str) -> str | None:
    group = sp.web.site_groups.get_by_name(name).get().execute_query()
    return cast("str | None", group.description)


def test_only_groups_the_bot_made_are_deleted_when_the_structure_drops_them(
        site: tuple[Structure, SharePointPermissions], unique: str, sp: ClientContext, sp_http: requests.Session,
        tenant_info: dict[str, Any]) -> None:
    structure, connector = site
    site_url = tenant_info["site_url"]
    hr, owners = f"{unique} CARTIF HR", f"{unique} CARTIF Owners"
    kaz, kgz = f"{unique} CARTIF Delegation KAZ", f"{unique} CARTIF Delegation KGZ"
    assert _description(sp, kgz) == f"The delegation of Kyrgyz Republic {GROUP_MARKER}"
    # Made by hand with the real SDK: "CARTIF HR" matches the working-group naming "CARTIF {code}".
    sp.web.site_groups.add(hr, "Human resources").execute_query()
    sp.web.site_groups.add(owners, "Site owners").execute_query()
    assert any(re.match(p, hr) for p in structure.managed_group_patterns())
    # A declared group from before the marker (or whose marker an admin removed).
    sp.web.site_groups.get_by_name(kaz).set_property("Description", "Kazakhstan's team").update().execute_query()

    participants = [p.model_copy(update={"enabled": False}) if p.code == "KGZ" else p
                    for p in structure.participants]
    roster = [p for p in structure.roster if p.country != "KGZ"]
    changed = structure.model_copy(update={"participants": participants, "roster": roster})
    desired = build_desired(changed)

    the_plan = plan(desired, observe(desired, connector))
    assert [a.target for a in the_plan if isinstance(a, DeleteGroup)] == [kgz]
    assert list(the_plan)[-1] == next(a for a in the_plan if isinstance(a, DeleteGroup))
    assert [(a.target, a.description) for a in the_plan if isinstance(a, MarkGroup)] == [
        (kaz, f"Kazakhstan's team {GROUP_MARKER}")]
    assert the_plan.notes == (f"group {hr!r} matches the bot's naming pattern but was not created by the bot "
                              f"(no {GROUP_MARKER!r} in its description); left alone",)

    result = reconcile(desired, connector, connector, MemoryAuditLog(), policy=POLICY, force=True)
    assert not result.failed and not result.remaining
    assert format_cycle(result)["notes"] == list(the_plan.notes)
    assert not _group_exists(sp_http, site_url, kgz)
    assert _description(sp, hr) == "Human resources"  # untouched, not even marked
    assert _description(sp, owners) == "Site owners"
    assert _description(sp, kaz) == f"Kazakhstan's team {GROUP_MARKER}"
    again = plan(desired, observe(desired, connector))
    assert not again and again.notes == the_plan.notes  # still shown every cycle, still no action

    # Dropped from the structure, the re-marked group is the bot's again and goes like KGZ's did.
    without_kaz = changed.model_copy(update={
        "participants": [p.model_copy(update={"enabled": False}) if p.code == "KAZ" else p for p in participants],
        "roster": [p for p in roster if p.country != "KAZ"]})
    gone = reconcile(build_desired(without_kaz), connector, connector, MemoryAuditLog(), policy=POLICY, force=True)
    assert kaz in {a.target for a in gone.plan if isinstance(a, DeleteGroup)}
    assert not gone.failed and not _group_exists(sp_http, site_url, kaz)
    assert _group_exists(sp_http, site_url, hr) and _group_exists(sp_http, site_url, owners)


async def test_undeclared_items_with_links_are_reported_then_reset_when_the_structure_says_so(
        site: tuple[Structure, SharePointPermissions], unique: str, graph_http: httpx.AsyncClient,
        tenant_info: dict[str, Any]) -> None:
    structure, connector = site
    drive = f"/drives/{tenant_info['drive_id']}"
    private = f"{unique}/Countries/KAZ/drafts"
    memo = f"{unique}/Countries/KAZ/memo.txt"
    (await graph_http.post(f"{drive}/root:/{unique}/Countries/KAZ:/children",
                           json={"name": "drafts", "folder": {}})).raise_for_status()
    (await graph_http.put(f"{drive}/root:/{memo}:/content", content=b"memo")).raise_for_status()
    for path in (private, memo):
        made = await graph_http.post(f"{drive}/root:/{path}:/createLink",
                                     json={"type": "view", "scope": "organization"})
        assert made.status_code in (200, 201), made.text

    desired = build_desired(structure)
    actual = observe(desired, connector)
    assert not plan(desired, actual), "report-only: undeclared items are not planned"
    rows = {r.path: r for r in report(desired, actual) if not r.declared}
    assert set(rows) == {private, memo}
    assert all(r.drift and r.links for r in rows.values())
    reported = reconcile(desired, connector, connector, MemoryAuditLog(), policy=POLICY)
    assert format_cycle(reported)["undeclared_drift"] == sorted([private, memo])

    folders = structure.folders.model_copy(update={"undeclared": "inherit"})
    inherit = build_desired(structure.model_copy(update={"folders": folders}))
    fixed = reconcile(inherit, connector, connector, MemoryAuditLog(), policy=POLICY)
    assert not fixed.failed and not fixed.remaining
    assert {(a.kind, a.target) for a in fixed.plan} == {
        ("remove_sharing_link", private), ("reset_inheritance", private),
        ("remove_sharing_link", memo), ("reset_inheritance", memo)}
    after = observe(inherit, connector)
    assert not after.undeclared and not plan(inherit, after)
    for path in (private, memo):
        perms = (await graph_http.get(f"{drive}/root:/{path}:/permissions")).json()["value"]
        assert not [p for p in perms if p.get("link")], perms


async def test_undeclared_items_deep_down_are_reported_then_reset_level_by_level(
        site: tuple[Structure, SharePointPermissions], unique: str, graph_http: httpx.AsyncClient,
        tenant_info: dict[str, Any]) -> None:
    # Unique permissions two and three levels below a governed folder: a folder shared by hand with a
    # sharing link inside an inheriting undeclared folder, and a file with a link inside that one.
    structure, connector = site
    drive = f"/drives/{tenant_info['drive_id']}"
    notes = f"{unique}/Countries/KAZ/notes"
    deep = f"{notes}/2026"
    memo = f"{deep}/memo.txt"
    for parent, name in ((f"{unique}/Countries/KAZ", "notes"), (notes, "2026")):
        made = await graph_http.post(f"{drive}/root:/{parent}:/children", json={"name": name, "folder": {}})
        made.raise_for_status()
    (await graph_http.put(f"{drive}/root:/{memo}:/content", content=b"memo")).raise_for_status()
    for path in (deep, memo):
        made = await graph_http.post(f"{drive}/root:/{path}:/createLink",
                                     json={"type": "view", "scope": "organization"})
        assert made.status_code in (200, 201), made.text

    desired = build_desired(structure)
    actual = observe(desired, connector)
    assert not plan(desired, actual), "report-only: undeclared items are not planned, at any depth"
    rows = {r.path: r for r in report(desired, actual) if not r.declared}
    assert set(rows) == {deep, memo} and all(r.drift and r.links for r in rows.values())
    connector.scan_page = 3  # the deep scan follows SharePoint's next links: the same items, in many pages
    try:
        assert observe(desired, connector).undeclared == actual.undeclared
    finally:
        connector.scan_page = PAGE

    folders = structure.folders.model_copy(update={"undeclared": "inherit"})
    inherit = build_desired(structure.model_copy(update={"folders": folders}))
    fixed = reconcile(inherit, connector, connector, MemoryAuditLog(), policy=POLICY)
    assert not fixed.failed and not fixed.remaining
    assert {(a.kind, a.target) for a in fixed.plan} == {
        ("remove_sharing_link", deep), ("reset_inheritance", deep),
        ("remove_sharing_link", memo), ("reset_inheritance", memo)}
    after = observe(inherit, connector)
    assert not after.undeclared and not plan(inherit, after)
    for path in (deep, memo):
        perms = (await graph_http.get(f"{drive}/root:/{path}:/permissions")).json()["value"]
        assert not [p for p in perms if p.get("link")], perms
