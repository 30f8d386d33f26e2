"""A Hypothesis state machine: the declared structure changes and people drift the site by hand.

We test these aspects, on the local tenant through the real connector:

* rules mutate the declared structure — a participant enabled or disabled, a country added to or
  removed from a working group, a person added to or removed from the roster — and inject the four
  kinds of hand-made drift: a user granted directly on a governed folder, a sharing link made with
  Graph ``createLink``, an inheritance reset, a member added to one of the bot's groups;
* the ``cycle`` rule (and the end of every run) reconciles, and then: actual == desired (the access
  report shows no drift, every group has exactly the roster's members, no stale group is left), a
  second plan is empty, and the guard is never bypassed: when the plan removes more than the share
  of grants, members or groups the unforced apply raises ``UnsafePlanError`` and the tenant counts
  no write at all; an apply that went through without force removed at most that share.

Each example lives under its own root folder with its own group-name prefix, so it never meets
another test (or another example) on the shared tenant. The structure sets
``folders.undeclared: inherit``, so folders dropped from the layout (a disabled country's private
folder) are reset to inherit and the site converges completely.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from bot.access import report
from bot.applying import reconcile
from bot.desired import build_desired
from bot.model import ActualState, DesiredState
from bot.observing import observe
from bot.planning import (
    DeleteGroup,
    GuardPolicy,
    Plan,
    RemoveMember,
    ResetInheritance,
    Revoke,
    UnsafePlanError,
    plan,
)
from bot.ports import MemoryAuditLog
from config.settings import Settings
from config.structure import Structure, parse_structure
from connectors.auth import Authenticator
from connectors.sharepoint_permissions import SharePointPermissions, build_site_permissions
from tests import sdk

LIB = "Shared Documents"
COUNTRIES = ("KAZ", "KGZ", "UZB")
NAMES = {"KAZ": "Kazakhstan", "KGZ": "Kyrgyz Republic", "UZB": "Uzbekistan"}
#: person → (country or None for the secretariat, role, in WG-TF)
PEOPLE = {
    "aigerim.nurlanova@mti.gov.kz": ("KAZ", "chief_negotiator", True),
    "madina.abenova@mti.gov.kz": ("KAZ", "delegate", False),
    "aibek.sydykov@mineconom.gov.kg": ("KGZ", "chief_negotiator", True),
    "nodira.alimova@mift.uz": ("UZB", "delegate", True),
    "maria.santos@cartif.onmicrosoft.com": (None, "secretariat", False),
}
OUTSIDER = "james.okafor@cartif.onmicrosoft.com"
POLICY = GuardPolicy(max_removal_share=0.1, min_guarded_removals=3)
CONTRIBUTE = 1073741827


def structure_yaml(enabled: set[str], wg_members: set[str], roster: set[str]) -> str:
    members = [c for c in COUNTRIES if c in wg_members]
    people = []
    for person in sorted(roster):
        country, role, in_wg = PEOPLE[person]
        entry: dict[str, Any] = {"person": person, "roles": [role]}
        if country is None:
            entry["secretariat"] = True
        else:
            entry["country"] = country
        if in_wg and (country is None or country in wg_members):
            entry["working_groups"] = ["WG-TF"]
        people.append(entry)
    data = {
        "version": 1,
        "roles": {"chief_negotiator": {"name": "Chief Negotiator", "groups": ["chief_negotiators"]},
                  "delegate": {"name": "Delegate"},
                  "secretariat": {"name": "Secretariat", "groups": ["secretariat"]}},
        "participants": [{"code": c, "name": NAMES[c], "enabled": c in enabled} for c in COUNTRIES],
        "working_groups": [{"code": "WG-TF", "name": "Trade facilitation", "members": members,
                            **({"chair": members[0]} if members else {})}],
        "roster": people,
        "folders": {"owner": "secretariat", "undeclared": "inherit", "templates": [
            {"path": "Plenary", "grants": {"all_participants": "Read", "chief_negotiators": "Edit"}},
            {"path": "Working groups", "grants": {"all_participants": "Read"}},
            {"path": "Working groups/{wg}", "for_each": "working_group",
             "grants": {"wg:{wg}": "Contribute", "country:{chair}": "Edit"}},
            {"path": "Working groups/{wg}/Submissions", "for_each": "working_group", "inherit": True},
            {"path": "Working groups/{wg}/Submissions/{country}", "for_each": "working_group_member",
             "grants": {"country:{country}": "Contribute"}},
            {"path": "Countries", "grants": {"all_participants": "Read"}},
            {"path": "Countries/{country}", "for_each": "participant", "grants": {"country:{country}": "Edit"}},
        ]},
    }
    return yaml.safe_dump(data, sort_keys=False)


def removal_share_exceeded(the_plan: Plan, actual: ActualState, desired: DesiredState) -> bool:
    """The guard's rule, restated independently from the plan and the observed site."""
    ignored = desired.keep | actual.self_keys
    grants = sum(len([g for g in f.grants if g[0] not in ignored]) for f in actual.folders.values() if f.unique)
    removed_grants = sum(1 for a in the_plan if isinstance(a, Revoke)) + sum(
        len(a.removed) for a in the_plan if isinstance(a, ResetInheritance))
    groups = [*actual.groups.values(), *actual.stale_groups.values()]
    members = sum(len(g.members) for g in groups)
    removed_members = sum(1 for a in the_plan if isinstance(a, RemoveMember)) + sum(
        len(a.members) for a in the_plan if isinstance(a, DeleteGroup))
    removed_groups = sum(1 for a in the_plan if isinstance(a, DeleteGroup))
    return any(removed >= POLICY.min_guarded_removals and total and removed / total > POLICY.max_removal_share
               for removed, total in ((removed_grants, grants), (removed_members, members),
                                      (removed_groups, len(groups))))


class Context:
    """What every example shares: the tenant, one connector, raw clients for the hand-made drift."""

    def __init__(self, tenant_info: dict[str, Any], tokens: sdk.Tokens, admin: httpx.Client) -> None:
        self.info, self.admin = tenant_info, admin
        settings_ = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json")
        self.authenticator = Authenticator(settings_)
        self.settings = settings_
        self.sp = sdk.sp_http(tenant_info, tokens)
        self.graph = httpx.Client(base_url=tenant_info["graph_url"], verify=tenant_info["ca_path"], trust_env=False,
                                  headers={"Authorization": "Bearer " + tokens.graph()}, timeout=30)
        digest = self.sp.post(f"{tenant_info['site_url']}/_api/contextinfo").json()
        self.digest = digest["d"]["GetContextWebInformation"]["FormDigestValue"]

    def connector(self, structure: Structure) -> SharePointPermissions:
        return build_site_permissions(self.settings, self.authenticator, library=structure.library)

    def rest(self, path: str, body: Any = None) -> Any:
        r = self.sp.post(f"{self.info['site_url']}/_api/{path}", json=body, headers={"X-RequestDigest": self.digest})
        assert r.status_code in (200, 201), r.text
        return r.json()["d"] if r.content else None

    def writes(self) -> int:
        stats = self.admin.get("/stats").json()
        return sum(int(n) for method, n in stats["by_method"].items() if method != "GET")


class PermissionsMachine(RuleBasedStateMachine):
    ctx: Context

    def __init__(self) -> None:
        super().__init__()
        tag = f"t-{uuid.uuid4().hex[:8]}"
        self.root, self.prefix = tag, f"{tag} "
        self.enabled = set(COUNTRIES)
        self.wg_members = set(COUNTRIES)
        self.roster = set(PEOPLE)
        self.audit = MemoryAuditLog()
        self.structure = self._structure()
        self.connector = self.ctx.connector(self.structure)

    def _structure(self) -> Structure:
        text = structure_yaml(self.enabled, self.wg_members, self.roster)
        return parse_structure(text).with_overrides(root=self.root, prefix=self.prefix)

    @property
    def desired(self) -> DesiredState:
        return build_desired(self.structure)

    def _unique_folders(self) -> list[str]:
        return sorted(f.path for f in self.desired.folders if f.unique)

    # ------------------------------------------------------------------------------------------ cycle
    def _cycle(self) -> None:
        desired = self.desired
        actual = observe(desired, self.connector)
        the_plan = plan(desired, actual)
        exceeded = removal_share_exceeded(the_plan, actual, desired)
        writes = self.ctx.writes()
        try:
            result = reconcile(desired, self.connector, self.connector, self.audit, policy=POLICY)
        except UnsafePlanError:
            assert exceeded, f"the guard refused a plan within the share: {the_plan.counts()}"
            assert self.ctx.writes() == writes, "the guard refused, yet something was written"
            # The operator looked at the plan and confirms it.
            result = reconcile(desired, self.connector, self.connector, self.audit, policy=POLICY, force=True)
        else:
            assert not exceeded, f"the guard let through a plan above the share: {result.plan.counts()}"
        assert not result.failed, [(o.action.as_json(), o.error) for o in result.failed]
        assert not result.remaining, result.remaining.as_json()
        # actual == desired, seen afresh
        after = observe(desired, self.connector)
        assert not plan(desired, after), "a second plan is not empty"
        drifted = [r.as_json() for r in report(desired, after) if r.drift]
        assert not drifted, drifted
        assert not after.stale_groups, sorted(after.stale_groups)
        for group in desired.groups:
            assert set(after.groups[group.name].members) == set(group.members), group.name

    @initialize()
    def build(self) -> None:
        self._cycle()

    @rule()
    def cycle(self) -> None:
        self._cycle()

    def teardown(self) -> None:
        try:
            self._cycle()
        finally:
            if self.connector.graph is not None:
                self.connector.graph.close()

    # ------------------------------------------------------------------------------------------ structure
    @rule(code=st.sampled_from(COUNTRIES))
    def toggle_participant(self, code: str) -> None:
        if code in self.enabled and len(self.enabled) == 1:
            return  # keep one delegation: an empty structure is the guard's other case, tested apart
        self.enabled ^= {code}
        self.structure = self._structure()

    @rule(code=st.sampled_from(COUNTRIES))
    def toggle_working_group_member(self, code: str) -> None:
        if code in self.wg_members and len(self.wg_members) == 1:
            return
        self.wg_members ^= {code}
        self.structure = self._structure()

    @rule(person=st.sampled_from(sorted(PEOPLE)))
    def toggle_roster_person(self, person: str) -> None:
        if PEOPLE[person][1] == "secretariat":
            return  # the secretariat owns every folder: removing its only member is a different story
        self.roster ^= {person}
        self.structure = self._structure()

    # ------------------------------------------------------------------------------------------ drift
    def _item(self, path: str) -> str:
        return f"web/GetFolderByServerRelativeUrl('{LIB}/{path}')/ListItemAllFields"

    @precondition(lambda self: bool(self._unique_folders()))
    @rule(data=st.data())
    def drift_user_granted_directly(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self._unique_folders()))
        user = self.ctx.rest("web/ensureuser", {"logonName": OUTSIDER})
        self.ctx.rest(f"{self._item(path)}/roleassignments/addroleassignment(principalid={user['Id']},"
                      f"roledefid={CONTRIBUTE})")

    @precondition(lambda self: bool(self._unique_folders()))
    @rule(data=st.data(), kind=st.sampled_from(["view", "edit"]))
    def drift_sharing_link(self, data: st.DataObject, kind: str) -> None:
        path = data.draw(st.sampled_from(self._unique_folders()))
        made = self.ctx.graph.post(f"/drives/{self.ctx.info['drive_id']}/root:/{path}:/createLink",
                                   json={"type": kind, "scope": "organization"})
        assert made.status_code in (200, 201), made.text

    @precondition(lambda self: bool(self._unique_folders()))
    @rule(data=st.data())
    def drift_inheritance_reset(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self._unique_folders()))
        self.ctx.rest(f"{self._item(path)}/resetroleinheritance")

    @rule(data=st.data())
    def drift_member_added(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(g.name for g in self.desired.groups)))
        found = self.ctx.sp.get(f"{self.ctx.info['site_url']}/_api/web/sitegroups/getbyname('{name}')")
        if found.status_code == 404:
            return  # declared since the last cycle, not made yet
        user = self.ctx.rest("web/ensureuser", {"logonName": OUTSIDER})
        self.ctx.rest(f"web/sitegroups/getbyid({found.json()['d']['Id']})/users",
                      {"__metadata": {"type": "SP.User"}, "LoginName": user["LoginName"]})


def test_structure_changes_and_hand_made_drift_always_converge_under_the_guard(
        tenant_info: dict[str, Any], tokens: sdk.Tokens, admin: httpx.Client) -> None:
    # About 40 s on this machine (4 examples of 10 steps, each example building its own site part).
    ctx = Context(tenant_info, tokens, admin)
    PermissionsMachine.ctx = ctx
    try:
        run_state_machine_as_test(PermissionsMachine, settings=settings(
            max_examples=4, stateful_step_count=10, deadline=None, derandomize=False,
            suppress_health_check=list(HealthCheck)))
    finally:
        ctx.graph.close()
        ctx.authenticator.close()


def test_the_generated_structures_are_valid() -> None:
    # Every state the machine can reach parses: the rules only skip what the structure forbids.
    for enabled in ({"KAZ"}, {"KGZ", "UZB"}, set(COUNTRIES)):
        for members in ({"UZB"}, {"KAZ", "KGZ"}, set(COUNTRIES)):
            for roster in (set(PEOPLE), {"maria.santos@cartif.onmicrosoft.com"}):
                parse_structure(structure_yaml(enabled, members, roster))

