"""Notices about an undeclared subfolder someone restricted by hand, on the local tenant.

We test these aspects: a subfolder made inside a working group's folder (not declared by the
structure) whose permissions someone narrowed by hand with SharePoint REST (inheritance broken,
only the Secretariat group granted) is left alone by the permission cycle (``folders.undeclared:
report``) and observed with its actual grants (``routing.observed_readers``); a change inside it
is routed by those grants — to the Secretariat's channel only, never to the working group's,
which the desired model alone would have told — and the outbox source says which channels were
left out and why; the service's notices step takes the observation from the permissions step of
its cycle (``detail["observed_readers"]``) and posts to the Secretariat channel only; when that
step failed, the last observation in the run history routes instead of the desired model; a
subfolder restricted the same way two levels below the working group's folder (inside an undeclared,
inheriting folder) is found by the deep scan for one extra request, reported as undeclared drift and
routed by its grants too, at any depth inside it, and a move out of it tells the working group only
"moved in".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import requests
import sqlalchemy as sa

from bot.applying import reconcile
from bot.desired import build_desired
from bot.notices import MemoryNotifier, NoticeConfig, Router, drain, withheld_sources
from bot.notices.cards import Links
from bot.notices.routing import observed_readers
from bot.notices.step import NoticesStep
from bot.observing import observe
from bot.planning import GuardPolicy, plan, undeclared_drift
from bot.ports import MemoryAuditLog
from bot.service.history import RunHistory
from bot.service.running import Run, StepRecord
from bot.service.steps import CycleContext, StepResult
from bot.store import Store, schema
from config.settings import Settings
from config.structure import load_structure
from tests.sites import own_structure, permission_site
from tests.test_notices import settled
from tests.test_permissions import STRUCTURE, Rest, requests_since

CHANNELS = """channels:
  - {name: "WG {wg}", for_each: working_group, audience: ["wg:{wg}"]}
  - {name: Countries, audience: [all_participants]}
  - {name: Secretariat, audience: [secretariat]}
"""
#: SharePoint's role definition id of "Edit".
EDIT = 1073741830


async def test_a_change_in_a_subfolder_restricted_by_hand_reaches_only_channels_that_can_read_it(
        tenant_info: dict[str, Any], unique: str, sp_http: requests.Session, graph_http: httpx.AsyncClient,
        tmp_path: Path) -> None:
    structure = own_structure(STRUCTURE + CHANNELS, unique)
    desired = build_desired(structure)
    secretariat, wg_tf = structure.group_name("secretariat"), structure.group_name("working_group", "WG-TF")
    sub = f"{unique}/Working groups/WG-TF/Chairs only"
    with permission_site(tenant_info, structure) as site:
        connector = site.connector
        first = reconcile(desired, connector, connector, MemoryAuditLog(), policy=GuardPolicy())
        assert not first.failed and not first.remaining
        # By hand: an undeclared subfolder, inheritance broken, only the Secretariat granted.
        made = await graph_http.post(f"/drives/{tenant_info['drive_id']}/root:/{unique}/Working groups/WG-TF:/children",
                                     json={"name": "Chairs only", "folder": {}})
        assert made.status_code in (200, 201), made.text
        rest = Rest(sp_http, tenant_info["site_url"])
        rest.post(f"{rest.item(sub)}/breakroleinheritance(copyRoleAssignments=false,clearSubscopes=true)")
        group = sp_http.get(f"{tenant_info['site_url']}/_api/web/sitegroups/getbyname('{secretariat}')").json()["d"]
        rest.post(f"{rest.item(sub)}/roleassignments/addroleassignment(principalid={group['Id']},roledefid={EDIT})")

        actual = observe(desired, connector)
    assert not plan(desired, actual), "folders.undeclared: report leaves the subfolder alone"
    observed = observed_readers(desired, actual)
    assert list(observed) == [sub], observed
    assert secretariat in observed[sub] and wg_tf not in observed[sub]

    path = f"/{sub}/Chairs' draft.docx"
    assert "WG WG-TF" in Router(structure, desired).channels_for(path), "the model alone would tell WG-TF"
    router = Router(structure, desired, observed=observed)
    assert router.channels_for(path) == ["Secretariat"]
    assert router.channels_for(f"/{unique}/Working groups/WG-TF/Agenda.docx") == ["WG WG-TF", "Secretariat"]

    notifier = MemoryNotifier(["WG WG-TF", "Countries", "Secretariat"])
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.enqueue("changes", "change:hand-1", {"type": "change", "change_id": 1, "kind": "created",
                                                   "path": path, "old_path": None, "at": "2026-12-02T08:00:00Z"})
        config = NoticeConfig(Links(tenant_info["site_url"], structure.library), debounce_seconds=0)
        report = await drain(store, notifier, router, config)
        with store.engine.connect() as conn:
            source = conn.execute(sa.select(schema.outbox).where(
                schema.outbox.c.idempotency_key == "change:hand-1")).one()
        withheld = withheld_sources(store)  # what `cartif-bot notices list --withheld` prints
    assert report.sent == 1 and [channel for channel, _, _ in notifier.posted] == ["Secretariat"]
    assert source.status == "routed"
    assert source.last_error == (f"not routed to WG WG-TF: {sub!r} has permissions of its own "
                                 "(set by hand) they cannot read")
    assert [(r.idempotency_key, r.last_error) for r in withheld] == [("change:hand-1", source.last_error)]


async def test_a_subfolder_restricted_by_hand_two_levels_down_is_observed_and_routed_by_its_grants(
        tenant_info: dict[str, Any], unique: str, sp_http: requests.Session, graph_http: httpx.AsyncClient,
        admin: httpx.Client) -> None:
    structure = own_structure(STRUCTURE + CHANNELS, unique)
    desired = build_desired(structure)
    secretariat, wg_tf = structure.group_name("secretariat"), structure.group_name("working_group", "WG-TF")
    drafts = f"{unique}/Working groups/WG-TF/Drafts"
    sub = f"{drafts}/Chairs only"
    drive = f"/drives/{tenant_info['drive_id']}"
    with permission_site(tenant_info, structure) as site:
        connector = site.connector
        first = reconcile(desired, connector, connector, MemoryAuditLog(), policy=GuardPolicy())
        assert not first.failed and not first.remaining
        before = admin.get("/stats").json()
        observe(desired, connector)
        baseline = requests_since(admin, before)
        # By hand: an undeclared folder (inheriting) with a subfolder restricted to the Secretariat.
        for parent, name in ((f"{unique}/Working groups/WG-TF", "Drafts"), (drafts, "Chairs only")):
            made = await graph_http.post(f"{drive}/root:/{parent}:/children", json={"name": name, "folder": {}})
            assert made.status_code in (200, 201), made.text
        (await graph_http.put(f"{drive}/root:/{sub}/agenda.txt:/content", content=b"a")).raise_for_status()
        rest = Rest(sp_http, tenant_info["site_url"])
        rest.post(f"{rest.item(sub)}/breakroleinheritance(copyRoleAssignments=false,clearSubscopes=true)")
        group = sp_http.get(f"{tenant_info['site_url']}/_api/web/sitegroups/getbyname('{secretariat}')").json()["d"]
        rest.post(f"{rest.item(sub)}/roleassignments/addroleassignment(principalid={group['Id']},roledefid={EDIT})")

        before = admin.get("/stats").json()
        actual = observe(desired, connector)
        # The deep item costs one request (its role assignments); the scan itself is in the baseline.
        assert requests_since(admin, before) == baseline + 1
    assert not plan(desired, actual), "folders.undeclared: report leaves the subfolder alone"
    drift = undeclared_drift(actual)
    assert list(drift) == [sub], "two levels down, and only the item with permissions of its own"
    assert (secretariat, "Edit") in drift[sub].grants and not [g for g in drift[sub].grants if g[0] == wg_tf]
    observed = observed_readers(desired, actual)
    assert list(observed) == [sub] and secretariat in observed[sub] and wg_tf not in observed[sub]

    router = Router(structure, desired, observed=observed)
    assert "WG WG-TF" in Router(structure, desired).channels_for(f"/{sub}/agenda.txt")
    assert router.channels_for(f"/{sub}/agenda.txt") == ["Secretariat"]
    assert router.channels_for(f"/{sub}/Minutes/2026.docx") == ["Secretariat"], "deeper still: same grants"
    assert router.channels_for(f"/{drafts}/outline.docx") == ["WG WG-TF", "Secretariat"]
    moved = router.route_change("moved", f"/{drafts}/agenda.txt", f"/{sub}/agenda.txt")
    assert [(r.channel, r.old_path, r.note) for r in moved] == [
        ("WG WG-TF", None, "moved in"), ("Secretariat", f"/{sub}/agenda.txt", None)]


async def test_the_notices_step_routes_by_what_the_permissions_step_observed(
        tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    structure = load_structure()  # what the service step loads: the shipped structure and channels
    settings = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json",
                             store={"data_dir": str(tmp_path)}, teams={"debounce_seconds": 0})
    tag = f"hand-{tmp_path.name}"
    observed = {"Working groups/WG-TF/Chairs only": [structure.group_name("secretariat")]}
    with Store.open(settings.store.url) as store:
        store.enqueue("changes", f"change:{tag}", {"type": "change", "change_id": 1, "kind": "created",
                                                   "path": f"/Working groups/WG-TF/Chairs only/{tag}.docx",
                                                   "old_path": None, "at": "2026-12-02T08:00:00Z"})
        context = CycleContext("run-1", "manual", settings, store,
                               results={"permissions": StepResult({}, {"observed_readers": observed})})
        result = await NoticesStep().run(context)
    assert result.counts["sent"] == 1, result
    found = await settled(admin, tag, expected=1)
    assert {k: len(v) for k, v in found.items()} == {"Secretariat": 1}, json.dumps(found)[:500]


async def test_when_the_permissions_step_failed_the_last_recorded_observation_routes(
        tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    structure = load_structure()
    settings = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json",
                             store={"data_dir": str(tmp_path)}, teams={"debounce_seconds": 0})
    tag = f"hand-{tmp_path.name}"
    observed = {"Working groups/WG-TF/Chairs only": [structure.group_name("secretariat")]}
    with Store.open(settings.store.url) as store:
        # An earlier cycle's permissions step saw the hand-made restriction; this cycle's failed.
        earlier = Run("run-0", "schedule", "2026-12-02T07:00:00.000000Z",
                      [StepRecord("permissions", "succeeded", detail={"observed_readers": observed})],
                      status="succeeded", started_at="2026-12-02T07:00:00.000000Z")
        RunHistory(store).finished(earlier)
        store.enqueue("changes", f"change:{tag}", {"type": "change", "change_id": 1, "kind": "created",
                                                   "path": f"/Working groups/WG-TF/Chairs only/{tag}.docx",
                                                   "old_path": None, "at": "2026-12-02T08:00:00Z"})
        context = CycleContext("run-1", "manual", settings, store, results={})
        result = await NoticesStep().run(context)
    assert result.counts["sent"] == 1, result
    found = await settled(admin, tag, expected=1)
    assert {k: len(v) for k, v in found.items()} == {"Secretariat": 1}, json.dumps(found)[:500]
