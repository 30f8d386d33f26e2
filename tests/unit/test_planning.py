"""The pure planner and its guard, on plain values.

We test these aspects: each kind of difference between desired and actual gives exactly the
expected actions (table); the bot's own app, kept principals and Limited Access are never
revoked; actions come in a safe order; a matching site plans nothing; the guard refuses an empty
structure and mass removals unless forced; the CARTIF structure expands to the expected scale.
"""

from __future__ import annotations

import pytest

from bot.desired import build_desired
from bot.model import ActualFolder, ActualGroup, ActualState, DesiredGrant, DesiredGroup, DesiredState, FolderSpec, Link
from bot.planning import GuardPolicy, UnsafePlanError, check_guard, plan
from config.structure import load_structure

APP = "app:i:0i.t|ms.sp.ext|bot@tenant"
G = DesiredGrant


def desired(*folders: FolderSpec, groups: tuple[DesiredGroup, ...] = (), keep: frozenset[str] = frozenset()
            ) -> DesiredState:
    return DesiredState(tuple(folders), groups, keep)


def unique(path: str, *grants: tuple[str, str]) -> FolderSpec:
    return FolderSpec(path, True, frozenset(G(p, level, f"rule {p}") for p, level in grants), f"rule {path}")


def seen(path: str, *grants: tuple[str, str], is_unique: bool = True, links: frozenset[Link] = frozenset(),
         limited: frozenset[str] = frozenset()) -> ActualFolder:
    return ActualFolder(path, is_unique, frozenset(grants), links, limited)


def actual(*folders: ActualFolder, groups: tuple[ActualGroup, ...] = ()) -> ActualState:
    return ActualState({f.path: f for f in folders}, {g.name: g for g in groups}, frozenset({APP}))


def steps(d: DesiredState, a: ActualState) -> list[tuple[str, str, str, str | None, str | None]]:
    return [(x.kind, x.target, x.principal, x.before, x.after) for x in plan(d, a)]


LINK = Link("SharingLinks.abc.OrganizationView.123", "Read")
CASES = {
    "missing unique folder is created, broken and granted": (
        desired(unique("A", ("CN", "Edit"))), actual(),
        [("create_folder", "A", "", None, "folder"), ("break_inheritance", "A", "", "inherits", "unique"),
         ("grant", "A", "CN", None, "Edit")]),
    "inheriting folder declared unique is broken, then granted": (
        desired(unique("A", ("CN", "Edit"))), actual(seen("A", ("Owners", "Full Control"), is_unique=False)),
        [("break_inheritance", "A", "", "inherits", "unique"), ("grant", "A", "CN", None, "Edit")]),
    "a user added directly is revoked, the app kept": (
        desired(unique("A", ("CN", "Edit"))),
        actual(seen("A", ("CN", "Edit"), (APP, "Full Control"), ("user:x@y.org", "Contribute"))),
        [("revoke", "A", "user:x@y.org", "Contribute", None)]),
    "a changed level is granted first, then the old one revoked": (
        desired(unique("A", ("CN", "Edit"))), actual(seen("A", ("CN", "Read"))),
        [("grant", "A", "CN", None, "Edit"), ("revoke", "A", "CN", "Read", None)]),
    "a sharing link is removed, Limited Access ignored": (
        desired(unique("A", ("CN", "Edit"))),
        actual(seen("A", ("CN", "Edit"), links=frozenset({LINK}), limited=frozenset({"user:z@y.org"}))),
        [("remove_sharing_link", "A", LINK.group_login, "link (Read)", None)]),
    "a reset inheritance is broken again and every grant re-added": (
        desired(unique("A", ("CN", "Edit"), ("SEC", "Full Control"))),
        actual(seen("A", ("CN", "Edit"), ("Visitors", "Read"), is_unique=False)),
        [("break_inheritance", "A", "", "inherits", "unique"), ("grant", "A", "CN", None, "Edit"),
         ("grant", "A", "SEC", None, "Full Control")]),
    "a folder declared inheriting but unique is reset, links first": (
        desired(FolderSpec("A", False, frozenset(), "inherits")),
        actual(seen("A", ("CN", "Edit"), links=frozenset({LINK}))),
        [("remove_sharing_link", "A", LINK.group_login, "link (Read)", None),
         ("reset_inheritance", "A", "", "unique", "inherits")]),
    "a missing inheriting folder is only created": (
        desired(FolderSpec("A", False, frozenset(), "inherits")), actual(),
        [("create_folder", "A", "", None, "folder")]),
    "groups: created with members; extra member removed": (
        desired(groups=(DesiredGroup("CN", "d", {"a@x.org": "r"}, "r"),
                        DesiredGroup("WG", "d", {"b@x.org": "r"}, "r"))),
        actual(groups=(ActualGroup("WG", 7, {"b@x.org": "i:b", "c@x.org": "i:c"}),)),
        [("create_group", "CN", "", None, "group"), ("add_member", "CN", "a@x.org", None, "member"),
         ("remove_member", "WG", "c@x.org", "member", None)]),
    "kept principals are never revoked": (
        desired(unique("A", ("CN", "Edit")), keep=frozenset({"Owners"})),
        actual(seen("A", ("CN", "Edit"), ("Owners", "Full Control"))), []),
    "a matching site plans nothing": (
        desired(unique("A", ("CN", "Edit")), FolderSpec("A/B", False, frozenset(), "inherits"),
                groups=(DesiredGroup("CN", "d", {"a@x.org": "r"}, "r"),)),
        actual(seen("A", ("CN", "Edit"), (APP, "Full Control")), seen("A/B", ("CN", "Edit"), is_unique=False),
               groups=(ActualGroup("CN", 3, {"a@x.org": "i:a"}),)), []),
}


@pytest.mark.parametrize("case", list(CASES))
def test_planner(case: str) -> None:
    d, a, expected = CASES[case]
    assert steps(d, a) == expected


def test_groups_come_before_folders_and_parents_before_children() -> None:
    d = desired(unique("A", ("CN", "Read")), unique("A/B", ("CN", "Edit")),
                groups=(DesiredGroup("CN", "d", {}, "r"),))
    kinds = [(x.kind, x.target) for x in plan(d, actual())]
    assert kinds[0] == ("create_group", "CN")
    assert kinds.index(("create_folder", "A")) < kinds.index(("create_folder", "A/B"))
    assert max(i for i, k in enumerate(kinds) if k[0] == "create_folder") < kinds.index(("break_inheritance", "A"))


def test_every_action_carries_its_rule() -> None:
    the_plan = plan(desired(unique("A", ("CN", "Edit"))), actual(seen("A", ("X", "Read"))))
    assert [a.rule for a in the_plan] == ["rule CN", "rule A: X → Read is not declared"]


def test_guard_refuses_an_empty_structure_unless_forced() -> None:
    d = desired()
    with pytest.raises(UnsafePlanError, match="no folders"):
        check_guard(plan(d, actual()), d, actual(), GuardPolicy())
    check_guard(plan(d, actual()), d, actual(), GuardPolicy(), force=True)


def test_guard_refuses_mass_revocation_but_not_small_drift() -> None:
    many = [(f"user:u{i}@x.org", "Read") for i in range(20)]
    a = actual(seen("A", ("CN", "Edit"), *many))
    d = desired(unique("A", ("CN", "Edit")))
    with pytest.raises(UnsafePlanError, match=r"removes 20 of 21 grants .* --force"):
        check_guard(plan(d, a), d, a, GuardPolicy(max_removal_share=0.2, min_guarded_removals=10))
    check_guard(plan(d, a), d, a, GuardPolicy(max_removal_share=0.2, min_guarded_removals=10), force=True)
    small = actual(seen("A", ("CN", "Edit"), *many[:3]))
    check_guard(plan(d, small), d, small, GuardPolicy(max_removal_share=0.2, min_guarded_removals=10))


def test_guard_counts_member_removals() -> None:
    members = {f"p{i}@x.org": f"i:{i}" for i in range(12)}
    d = desired(unique("A"), groups=(DesiredGroup("G", "d", {}, "r"),))
    a = actual(seen("A"), groups=(ActualGroup("G", 1, members),))
    with pytest.raises(UnsafePlanError, match="12 of 12 group members"):
        check_guard(plan(d, a), d, a, GuardPolicy())


def test_the_cartif_structure_expands_to_about_a_hundred_governed_folders() -> None:
    d = build_desired(load_structure())
    assert 100 <= len(d.folders) <= 130
    assert len(d.groups) == 22  # 9 delegations, 9 working groups, CN, NFP, Secretariat, Observers
    tf = d.folder("Working groups/WG-TF")
    assert tf is not None and {(g.principal, g.level) for g in tf.grants} == {
        ("CARTIF WG-TF", "Contribute"), ("CARTIF Delegation KAZ", "Edit"), ("CARTIF Chief Negotiators", "Read"),
        ("CARTIF Secretariat", "Full Control")}
    assert d.folder("Countries/AZE") is None  # disabled observer: nothing
    observers = next(g for g in d.groups if g.name == "CARTIF Observers")
    assert observers.members == {}
    second = plan(d, ActualState({}, {}))
    assert len(second.of(type(second.actions[0]))) == 22
