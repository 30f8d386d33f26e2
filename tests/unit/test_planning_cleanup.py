"""Stale groups and undeclared items, on plain values.

We test these aspects: the group-name patterns match every name the structure's naming can make and
nothing else (not the site's Owners/Members/Visitors, not another prefix); a stale group is deleted
last, after the revokes of its grants, and its members count for the guard — but only when its
description carries the bot's ownership marker: a group merely named like the bot's (a hand-made
"CARTIF HR") gets no action, only a plan note, and does not dilute the guard's shares; the bot writes
the marker into the groups it creates and adds it to a declared group lacking it; undeclared items with
their own permissions are reported (and planned nothing) by default, and reset to inherit — links
first — when the structure says ``folders.undeclared: inherit``; the access report lists them as drift;
the circulation archive's own restricted copies are not drift; the permission settings override the
structure's guard.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.access import report
from bot.desired import build_desired
from bot.model import (
    GROUP_MARKER,
    ActualFolder,
    ActualGroup,
    ActualState,
    DesiredGroup,
    DesiredState,
    FolderSpec,
    Link,
    is_marked,
    marked,
)
from bot.observing import observe
from bot.permissions import format_cycle, format_plan, guard_policy
from bot.planning import (
    CreateGroup,
    DeleteGroup,
    GuardPolicy,
    MarkGroup,
    Plan,
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
from tests.unit.fakes import UndeclaredOnlyReader

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


def _members(n: int) -> dict[str, str]:
    return {f"p{j}@x.org": f"i:0#.f|membership|p{j}@x.org" for j in range(n)}


def _state(*, stale: dict[str, int], folders: tuple[ActualFolder, ...] = (),
           undeclared: tuple[ActualFolder, ...] = (), hand_made: dict[str, int] | None = None) -> ActualState:
    """``stale`` groups were made by the bot (marker in the description); ``hand_made`` ones only share its naming."""
    groups = {name: ActualGroup(name, i, _members(n), f"Working group {name} {GROUP_MARKER}")
              for i, (name, n) in enumerate(stale.items())}
    groups |= {name: ActualGroup(name, 100 + i, _members(n), "Human resources")
               for i, (name, n) in enumerate((hand_made or {}).items())}
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


def test_a_group_named_like_the_bots_without_the_marker_is_left_alone_with_a_note() -> None:
    # "CARTIF HR" matches "CARTIF {code}"; someone made it by hand: a name is no proof of ownership.
    state = _state(stale={}, hand_made={"CARTIF HR": 4, "CARTIF WG-OLD": 0},
                   folders=(ActualFolder("A", True, frozenset({("CARTIF HR", "Read"), (APP, "Full Control")})),))
    the_plan = plan(DESIRED, state)
    assert [(a.kind, a.target) for a in the_plan] == [("revoke", "A")]  # its grant is drift like any other
    assert not the_plan.of(DeleteGroup)
    assert the_plan.notes == (
        f"group 'CARTIF HR' matches the bot's naming pattern but was not created by the bot (no {GROUP_MARKER!r} "
        "in its description); left alone",
        f"group 'CARTIF WG-OLD' matches the bot's naming pattern but was not created by the bot (no "
        f"{GROUP_MARKER!r} in its description); left alone")
    only_notes = plan(DESIRED, _state(stale={}, hand_made={"CARTIF HR": 4},
                                      folders=(ActualFolder("A", True, frozenset({(APP, "Full Control")})),)))
    assert not only_notes and len(only_notes) == 0 and len(only_notes.notes) == 1  # notes are not actions
    text = format_plan(only_notes)
    assert text.startswith("nothing to do") and "note: group 'CARTIF HR' matches" in text
    assert "note: group 'CARTIF HR'" in format_plan(the_plan)


def test_the_marker_decides_between_two_groups_of_the_same_naming() -> None:
    state = _state(stale={"CARTIF WG-OLD": 1}, hand_made={"CARTIF HR": 1},
                   folders=(ActualFolder("A", True, frozenset({(APP, "Full Control")})),))
    the_plan = plan(DESIRED, state)
    assert [(a.kind, a.target) for a in the_plan] == [("delete_group", "CARTIF WG-OLD")]
    assert len(the_plan.notes) == 1 and "'CARTIF HR'" in the_plan.notes[0]


def test_hand_made_groups_do_not_dilute_the_guards_shares() -> None:
    # 12 of the bot's members removed: refused; 200 members of hand-made look-alikes must not make it 12 of 212.
    state = _state(stale={"CARTIF WG-OLD": 12}, hand_made={"CARTIF HR": 200},
                   folders=(ActualFolder("A", True, frozenset({(APP, "Full Control")})),))
    the_plan = plan(DESIRED, state)
    with pytest.raises(UnsafePlanError, match="removes 12 of 12 group members"):
        check_guard(the_plan, DESIRED, state, GuardPolicy())
    check_guard(the_plan, DESIRED, state, GuardPolicy(), force=True)


def test_the_marker_is_appended_once_and_recognised() -> None:
    assert marked("The delegation of Kazakhstan") == f"The delegation of Kazakhstan {GROUP_MARKER}"
    assert marked(marked("x")) == marked("x") == f"x {GROUP_MARKER}"
    assert marked("") == marked("  ") == GROUP_MARKER
    long = marked("x" * 600)  # SharePoint keeps at most 512 characters: the marker must survive
    assert len(long) == 512 and long.endswith(f"… {GROUP_MARKER}")
    assert is_marked(f"edited by an admin {GROUP_MARKER} and more") and not is_marked("") and not is_marked(None)
    assert GROUP_MARKER == "[managed by cartif-bot]"  # admins read it on the group's settings page


def test_the_bot_creates_groups_with_the_marker_and_marks_declared_groups_lacking_it() -> None:
    desired = build_desired(load_structure())
    assert desired.groups and all(is_marked(g.description) for g in desired.groups)
    fresh = plan(desired, ActualState({}, {}))
    created = [a for a in fresh if isinstance(a, CreateGroup)]
    assert len(created) == len(desired.groups) and all(a.description.endswith(GROUP_MARKER) for a in created)

    cn, sec, wg = (DesiredGroup(n, marked(d), {}, f"rule {n}")
                   for n, d in (("CN", "Chief Negotiators"), ("SEC", "The Secretariat"), ("WG", "Working group")))
    seen = {"CN": ActualGroup("CN", 1, {}, "Edited by the site admin"),  # made before the marker existed
            "SEC": ActualGroup("SEC", 2, {}),  # no description at all
            "WG": ActualGroup("WG", 3, {}, f"Working group {GROUP_MARKER}")}  # already the bot's
    the_plan = plan(DesiredState((), (cn, sec, wg)), ActualState({}, seen))
    assert list(the_plan) == [
        MarkGroup("CN", f"Edited by the site admin {GROUP_MARKER}", "Edited by the site admin",
                  "rule CN: declared; its description lacks the bot's marker"),
        MarkGroup("SEC", f"The Secretariat {GROUP_MARKER}", "",
                  "rule SEC: declared; its description lacks the bot's marker")]
    assert the_plan.actions[0].as_json()["after"] == f"description 'Edited by the site admin {GROUP_MARKER}'"
    # Once marked, the next plan is empty (level-based: nothing is marked twice).
    after = {a.group: ActualGroup(a.group, 9, {}, a.description) for a in the_plan.actions if isinstance(a, MarkGroup)}
    assert not plan(DesiredState((), (cn, sec, wg)), ActualState({}, {**seen, **after}))
    # A desired state without the marker (built by hand, not from a structure) asks for none.
    assert not plan(DesiredState((), (DesiredGroup("CN", "d", {}, "r"),)), ActualState({}, seen))


def test_the_cycle_summary_carries_the_notes() -> None:
    from bot.applying import CycleResult

    notes = ("group 'CARTIF HR' matches the bot's naming pattern but was not created by the bot; left alone",)
    result = CycleResult("c1", Plan((), notes), (), Plan(), ActualState({}, {}), 0.0)
    assert format_cycle(result)["notes"] == list(notes)


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



def test_the_circulation_archives_own_restricted_copies_are_not_drift() -> None:
    desired = build_desired(load_structure())
    assert desired.item_managed == frozenset({"Negotiating texts/Archive"})
    copy = ActualFolder("Negotiating texts/Archive/CARTIF-WG-TF-W-1.txt", True, frozenset({("CARTIF WG-TF", "Read")}))
    shared = ActualFolder("Plenary/notes.txt", True, frozenset({("user:x@y.org", "Read")}))
    actual = observe(desired, UndeclaredOnlyReader({copy.path: copy, shared.path: shared}))
    assert list(actual.undeclared) == ["Plenary/notes.txt"]
