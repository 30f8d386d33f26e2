"""Stale groups and undeclared items, on plain values.

We test these aspects: the group-name patterns match every name the structure's naming can make and
nothing else (not the site's Owners/Members/Visitors, not another prefix); a stale group is deleted
last, after the revokes of its grants, and its members count for the guard; undeclared items with
their own permissions are reported (and planned nothing) by default, and reset to inherit — links
first — when the structure says ``folders.undeclared: inherit``; the access report lists them as drift;
the circulation archive's own restricted copies are not drift; the permission settings override the
structure's guard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from bot.access import report
from bot.desired import build_desired
from bot.model import ActualFolder, ActualGroup, ActualState, DesiredState, FolderSpec, Link
from bot.observing import observe
from bot.permissions import guard_policy
from bot.planning import (
    DeleteGroup,
    GuardPolicy,
    RemoveSharingLink,
    ResetInheritance,
    Revoke,
    UnsafePlanError,
    check_guard,
    plan,
    undeclared_drift,
)
from config.settings import Settings
from config.structure import load_structure

APP = "app:i:0i.t|ms.sp.ext|bot@tenant"


def test_group_patterns_match_exactly_the_names_the_bot_makes() -> None:
    structure = load_structure()
    patterns = [re.compile(p) for p in structure.managed_group_patterns()]

    def managed(name: str) -> bool:
        return any(p.match(name) for p in patterns)

    for name in ("CARTIF Delegation AZE", "CARTIF Delegation KAZ", "CARTIF WG-TF", "CARTIF WG-OLD",
                 "CARTIF Chief Negotiators", "CARTIF National Focal Points", "CARTIF Secretariat", "CARTIF Observers"):
        assert managed(name), name
    for name in ("CARTIF Owners", "CARTIF Members", "CARTIF Visitors", "CARTIF Delegation Kazakhstan",
                 "t-1 CARTIF Delegation KAZ", "CARTIF Secretariat (old)", "SharingLinks.x.OrganizationView.y"):
        assert not managed(name), name
    prefixed = [re.compile(p) for p in structure.with_overrides(prefix="t-1 ").managed_group_patterns()]
    assert any(p.match("t-1 CARTIF Delegation KAZ") for p in prefixed)
    assert not any(p.match("CARTIF Delegation KAZ") for p in prefixed)


def _state(*, stale: dict[str, int], folders: tuple[ActualFolder, ...] = (),
           undeclared: tuple[ActualFolder, ...] = ()) -> ActualState:
    groups = {name: ActualGroup(name, i, {f"p{j}@x.org": f"i:0#.f|membership|p{j}@x.org" for j in range(n)})
              for i, (name, n) in enumerate(stale.items())}
    return ActualState({f.path: f for f in folders}, {}, frozenset({APP}), stale_groups=groups,
                       undeclared={f.path: f for f in undeclared})


DESIRED = DesiredState((FolderSpec("A", True, frozenset(), "rule A"),), ())


def test_a_stale_group_is_deleted_last_after_its_grants_are_revoked() -> None:
    a = ActualFolder("A", True, frozenset({("CARTIF Delegation AZE", "Read"), (APP, "Full Control")}))
    actions = list(plan(DESIRED, _state(stale={"CARTIF Delegation AZE": 2}, folders=(a,))))
    assert [type(x) for x in actions] == [Revoke, DeleteGroup]
    deleted = actions[-1]
    assert isinstance(deleted, DeleteGroup)
    assert deleted.group == "CARTIF Delegation AZE" and deleted.members == ("p0@x.org", "p1@x.org")
    assert deleted.as_json()["before"] == "group (2 member(s))"


def test_deleting_groups_counts_their_members_for_the_guard() -> None:
    state = _state(stale={"CARTIF WG-OLD": 30},
                   folders=(ActualFolder("A", True, frozenset({(APP, "Full Control")})),))
    the_plan = plan(DESIRED, state)
    with pytest.raises(UnsafePlanError, match="removes 30 of 30 group members"):
        check_guard(the_plan, DESIRED, state, GuardPolicy())
    check_guard(the_plan, DESIRED, state, GuardPolicy(), force=True)
    check_guard(the_plan, DESIRED, state, GuardPolicy(max_removal_share=1.0))


def test_undeclared_items_are_reported_by_default_and_reset_when_declared_so() -> None:
    link = Link("SharingLinks.1.OrganizationView.2", "Read")
    shared = ActualFolder("A/private", True, frozenset({("user:x@y.org", "Edit"), (APP, "Full Control")}),
                          frozenset({link}))
    ok = ActualFolder("A/A", True, frozenset({(APP, "Full Control")}))
    state = _state(stale={}, folders=(ActualFolder("A", True, frozenset({(APP, "Full Control")})),),
                   undeclared=(shared, ok))
    assert sorted(undeclared_drift(state)) == ["A/A", "A/private"]
    assert not plan(DESIRED, state)  # report-only: nothing planned, so a second plan stays empty
    rows = {r.path: r for r in report(DESIRED, state)}
    assert rows["A/private"].drift and not rows["A/private"].declared
    assert rows["A/private"].extra == (("user:x@y.org", "Edit"),)
    assert rows["A/private"].as_json()["sharing_links"] == [link.group_login]
    assert not rows["A"].drift

    inherit = DesiredState(DESIRED.folders, (), undeclared="inherit")
    actions = list(plan(inherit, state))
    assert [(type(x), x.target) for x in actions] == [
        (RemoveSharingLink, "A/private"), (ResetInheritance, "A/A"), (ResetInheritance, "A/private")]
    reset = actions[-1]
    assert isinstance(reset, ResetInheritance) and reset.removed == (("user:x@y.org", "Edit"),)


def test_the_default_structure_reports_undeclared_items_and_knows_its_group_patterns() -> None:
    desired = build_desired(load_structure())
    assert desired.undeclared == "report"
    assert len(desired.managed_groups) == 6


def test_permission_settings_override_the_structures_guard(tmp_path: Path) -> None:
    base = {"tenant": {"id": "contoso.onmicrosoft.com"},
            "auth": {"client_id": "00000000-0000-0000-0000-000000000001", "client_secret": "s"},
            "endpoints": {"site_url": "https://contoso.sharepoint.com/sites/CARTIF"}}
    structure = load_structure()
    default = Settings.load(env_file=None, **base)
    assert default.permissions.structure_path.name == "cartif.yaml"
    assert guard_policy(default, structure) == GuardPolicy(0.2, 10)
    tight = Settings.load(env_file=None, permissions={"max_removal_share": 0.05, "min_guarded_removals": 3},
                          **base)
    assert guard_policy(tight, structure) == GuardPolicy(0.05, 3)


class _Reader:
    """A reader returning fixed values (observe is the only code under test here)."""

    def __init__(self, undeclared: dict[str, ActualFolder]) -> None:
        self._undeclared = undeclared

    def read_folders(self, paths: Sequence[str]) -> Mapping[str, ActualFolder]:
        return {}

    def read_groups(self, names: Sequence[str], patterns: Sequence[str] = ()) -> Mapping[str, ActualGroup]:
        return {}

    def self_keys(self) -> frozenset[str]:
        return frozenset()

    def undeclared(self) -> Mapping[str, ActualFolder]:
        return self._undeclared


def test_the_circulation_archives_own_restricted_copies_are_not_drift() -> None:
    desired = build_desired(load_structure())
    assert desired.item_managed == frozenset({"Negotiating texts/Archive"})
    copy = ActualFolder("Negotiating texts/Archive/CARTIF-WG-TF-W-1.txt", True, frozenset({("CARTIF WG-TF", "Read")}))
    shared = ActualFolder("Plenary/notes.txt", True, frozenset({("user:x@y.org", "Read")}))
    actual = observe(desired, _Reader({copy.path: copy, shared.path: shared}))
    assert list(actual.undeclared) == ["Plenary/notes.txt"]
