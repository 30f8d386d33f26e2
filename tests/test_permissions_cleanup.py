"""Stale groups and undeclared items on the local tenant, through the real connector.

We test these aspects: a delegation disabled in the structure loses its group (deleted on the site),
as does any group named like the bot's that the structure does not declare, while a group with
another name is never touched; a subfolder and a file inside a governed folder, shared by hand with
Graph ``createLink``, are reported as drift and left alone by default (the plan stays empty), and with
``folders.undeclared: inherit`` one apply removes their links and resets them to inherit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from bot.access import report
from bot.applying import reconcile
from bot.desired import build_desired
from bot.observing import observe
from bot.permissions import format_cycle
from bot.planning import DeleteGroup, GuardPolicy, plan
from bot.ports import MemoryAuditLog
from config.settings import Settings
from config.structure import Structure, parse_structure
from connectors.auth import Authenticator
from connectors.sharepoint_permissions import SharePointPermissions, build_site_permissions
from tests.test_permissions import STRUCTURE, Rest

POLICY = GuardPolicy()


@pytest.fixture
def site(tenant_info: dict[str, Any], unique: str) -> Iterator[tuple[Structure, SharePointPermissions]]:
    structure = parse_structure(STRUCTURE).with_overrides(root=unique, prefix=f"{unique} ")
    settings = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json")
    authenticator = Authenticator(settings)
    connector = build_site_permissions(settings, authenticator, library=structure.library)
    first = reconcile(build_desired(structure), connector, connector, MemoryAuditLog(), policy=POLICY)
    assert not first.failed and not first.remaining
    yield structure, connector
    authenticator.close()


def _group_exists(sp_http: requests.Session, site_url: str, name: str) -> bool:
    return sp_http.get(f"{site_url}/_api/web/sitegroups/getbyname('{name}')").status_code == 200


def test_groups_dropped_from_the_structure_are_deleted_and_only_those(
        site: tuple[Structure, SharePointPermissions], unique: str, sp_http: requests.Session,
        tenant_info: dict[str, Any]) -> None:
    structure, connector = site
    rest = Rest(sp_http, tenant_info["site_url"])
    for name in (f"{unique} CARTIF WG-OLD", f"{unique} CARTIF Owners"):  # bot-like name; someone else's
        rest.post("web/sitegroups", {"__metadata": {"type": "SP.Group"}, "Title": name})
    participants = [p.model_copy(update={"enabled": False}) if p.code == "KGZ" else p
                    for p in structure.participants]
    roster = [p for p in structure.roster if p.country != "KGZ"]
    changed = structure.model_copy(update={"participants": participants, "roster": roster})
    desired = build_desired(changed)

    the_plan = plan(desired, observe(desired, connector))
    deleted = {a.target for a in the_plan if isinstance(a, DeleteGroup)}
    assert deleted == {f"{unique} CARTIF Delegation KGZ", f"{unique} CARTIF WG-OLD"}
    assert list(the_plan)[-len(deleted):] == [a for a in the_plan if isinstance(a, DeleteGroup)]

    result = reconcile(desired, connector, connector, MemoryAuditLog(), policy=POLICY, force=True)
    assert not result.failed and not result.remaining
    site_url = tenant_info["site_url"]
    assert not _group_exists(sp_http, site_url, f"{unique} CARTIF Delegation KGZ")
    assert not _group_exists(sp_http, site_url, f"{unique} CARTIF WG-OLD")
    assert _group_exists(sp_http, site_url, f"{unique} CARTIF Owners")
    assert _group_exists(sp_http, site_url, f"{unique} CARTIF Delegation KAZ")
    assert not plan(desired, observe(desired, connector))


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
