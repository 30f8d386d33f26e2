"""PURE: ``plan(desired, actual) -> Plan``, the small typed actions that make the site as declared.

Where it sits: between observing and applying in the permission cycle (observe → plan → guard
→ apply → verify). No I/O, no SDK types, no clock: the same inputs always give the same plan, and
a site that already matches gives an empty one.

What it decides, per governed folder (parents first):

* missing → ``CreateFolder`` (then as below, from an inheriting folder);
* declared unique but inheriting → ``BreakInheritance`` (copyRoleAssignments=false leaves only the
  bot's own Full Control) and a ``Grant`` for every declared grant;
* declared unique and unique → ``Grant`` what is missing, ``Revoke`` what is not declared (one
  role binding at a time: re-breaking a unique folder does nothing), ``RemoveSharingLink`` for
  every sharing link; the bot's own app and ``keep`` principals are never revoked, Limited Access
  is SharePoint's own and never planned;
* declared inheriting but unique → ``RemoveSharingLink`` for its links, then ``ResetInheritance``.

Groups: ``CreateGroup`` when missing (its description ends with the ownership marker,
``bot.model.GROUP_MARKER`` = "[managed by cartif-bot]"), ``AddMember`` / ``RemoveMember`` to match
the roster, and ``MarkGroup`` when a declared group's description on the site lacks the marker the
desired description carries (a group made by an older version of the bot, or by hand under a declared
name and adopted): one description update, the marker appended to what is there.
A group the structure no longer declares is deleted (``DeleteGroup``, last) only when its name
matches the bot's own naming patterns (``DesiredState.managed_groups``) AND its description carries
the marker: the bot deletes only what it provably made, never the site's Owners/Members/Visitors or
groups made by hand — even one whose name happens to match a pattern ("CARTIF HR" matches
"CARTIF {code}"). Such a group is left alone and shown in ``Plan.notes`` so an admin sees it. A
deleted group's grants on governed folders are revoked first like any undeclared grant.

Undeclared items (subfolders and files at any depth inside governed folders, not in the layout)
with unique permissions are drift: reported by ``undeclared_drift`` always, and planned like an
inheriting folder (links removed, inheritance reset) only when the structure says
``folders.undeclared: inherit`` — by default people may share a single document on purpose.

The guard (``check_guard``) refuses an empty desired state, and a plan removing more than
``max_removal_share`` of the existing grants, members (a deleted group's members count as
removed) or groups (once at least ``min_guarded_removals`` are removed), unless forced:
``UnsafePlanError``. Groups left alone for want of the marker count for none of these shares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from bot.errors import UserError
from bot.model import GROUP_MARKER, ActualFolder, ActualGroup, ActualState, DesiredState, FolderSpec, is_marked, marked

__all__ = [
    "Action",
    "AddMember",
    "BreakInheritance",
    "CreateFolder",
    "CreateGroup",
    "DeleteGroup",
    "Grant",
    "GuardPolicy",
    "MarkGroup",
    "Plan",
    "RemoveMember",
    "RemoveSharingLink",
    "ResetInheritance",
    "Revoke",
    "UnsafePlanError",
    "check_guard",
    "deletable_groups",
    "plan",
    "undeclared_drift",
]


class UnsafePlanError(UserError):
    """The plan is refused by the guard; the message says why and how to override (--force)."""


# ---------------------------------------------------------------------------------------------- actions
@dataclasses.dataclass(frozen=True)
class Action:
    """One change. ``target`` is a folder path or a group name; ``before``/``after`` are for people."""

    kind: ClassVar[str] = "action"
    #: Order of execution: groups, folders, access granted before access removed.
    phase: ClassVar[int] = 0

    @property
    def target(self) -> str:
        raise NotImplementedError

    @property
    def principal(self) -> str:
        return ""

    @property
    def before(self) -> str | None:
        return None

    @property
    def after(self) -> str | None:
        return None

    @property
    def rule(self) -> str:
        return str(getattr(self, "why", ""))

    def as_json(self) -> dict[str, Any]:
        return {"action": self.kind, "target": self.target, "principal": self.principal or None,
                "before": self.before, "after": self.after, "rule": self.rule}


@dataclasses.dataclass(frozen=True)
class CreateGroup(Action):
    kind: ClassVar[str] = "create_group"
    phase: ClassVar[int] = 0
    group: str
    description: str
    why: str

    @property
    def target(self) -> str:
        return self.group

    @property
    def after(self) -> str | None:
        return "group"


@dataclasses.dataclass(frozen=True)
class MarkGroup(Action):
    """Add the ownership marker to a declared group's description (``previous`` → ``description``)."""

    kind: ClassVar[str] = "mark_group"
    phase: ClassVar[int] = 0
    group: str
    description: str
    previous: str
    why: str

    @property
    def target(self) -> str:
        return self.group

    @property
    def before(self) -> str | None:
        return f"description {self.previous!r}"

    @property
    def after(self) -> str | None:
        return f"description {self.description!r}"


@dataclasses.dataclass(frozen=True)
class AddMember(Action):
    kind: ClassVar[str] = "add_member"
    phase: ClassVar[int] = 1
    group: str
    person: str
    why: str

    @property
    def target(self) -> str:
        return self.group

    @property
    def principal(self) -> str:
        return self.person

    @property
    def after(self) -> str | None:
        return "member"


@dataclasses.dataclass(frozen=True)
class RemoveMember(Action):
    kind: ClassVar[str] = "remove_member"
    phase: ClassVar[int] = 7
    group: str
    person: str
    login: str
    why: str

    @property
    def target(self) -> str:
        return self.group

    @property
    def principal(self) -> str:
        return self.person

    @property
    def before(self) -> str | None:
        return "member"


@dataclasses.dataclass(frozen=True)
class CreateFolder(Action):
    kind: ClassVar[str] = "create_folder"
    phase: ClassVar[int] = 2
    path: str
    why: str

    @property
    def target(self) -> str:
        return self.path

    @property
    def after(self) -> str | None:
        return "folder"


@dataclasses.dataclass(frozen=True)
class BreakInheritance(Action):
    kind: ClassVar[str] = "break_inheritance"
    phase: ClassVar[int] = 3
    path: str
    why: str

    @property
    def target(self) -> str:
        return self.path

    @property
    def before(self) -> str | None:
        return "inherits"

    @property
    def after(self) -> str | None:
        return "unique"


@dataclasses.dataclass(frozen=True)
class Grant(Action):
    kind: ClassVar[str] = "grant"
    phase: ClassVar[int] = 4
    path: str
    to: str
    level: str
    why: str

    @property
    def target(self) -> str:
        return self.path

    @property
    def principal(self) -> str:
        return self.to

    @property
    def after(self) -> str | None:
        return self.level


@dataclasses.dataclass(frozen=True)
class RemoveSharingLink(Action):
    kind: ClassVar[str] = "remove_sharing_link"
    phase: ClassVar[int] = 5
    path: str
    group_login: str
    level: str
    why: str

    @property
    def target(self) -> str:
        return self.path

    @property
    def principal(self) -> str:
        return self.group_login

    @property
    def before(self) -> str | None:
        return f"link ({self.level})"


@dataclasses.dataclass(frozen=True)
class Revoke(Action):
    kind: ClassVar[str] = "revoke"
    phase: ClassVar[int] = 6
    path: str
    of: str
    level: str
    why: str

    @property
    def target(self) -> str:
        return self.path

    @property
    def principal(self) -> str:
        return self.of

    @property
    def before(self) -> str | None:
        return self.level


@dataclasses.dataclass(frozen=True)
class ResetInheritance(Action):
    kind: ClassVar[str] = "reset_inheritance"
    phase: ClassVar[int] = 8
    path: str
    removed: tuple[tuple[str, str], ...]
    why: str

    @property
    def target(self) -> str:
        return self.path

    @property
    def before(self) -> str | None:
        return "unique"

    @property
    def after(self) -> str | None:
        return "inherits"


@dataclasses.dataclass(frozen=True)
class DeleteGroup(Action):
    """Delete a site group the bot made and the structure no longer declares (its members go with it)."""

    kind: ClassVar[str] = "delete_group"
    phase: ClassVar[int] = 9
    group: str
    members: tuple[str, ...]
    why: str

    @property
    def target(self) -> str:
        return self.group

    @property
    def before(self) -> str | None:
        return f"group ({len(self.members)} member(s))"


@dataclasses.dataclass(frozen=True)
class Plan:
    """An ordered, immutable sequence of actions; empty when the site matches the structure.

    ``notes`` are things an admin should see that the bot will not act on (a group named like the
    bot's but not made by it); they do not make a plan non-empty."""

    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)

    def __bool__(self) -> bool:
        return bool(self.actions)

    def of(self, kind: type[Action]) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out

    def as_json(self) -> list[dict[str, Any]]:
        return [a.as_json() for a in self.actions]


# ---------------------------------------------------------------------------------------------- plan
def plan(desired: DesiredState, actual: ActualState) -> Plan:
    """The actions that turn ``actual`` into ``desired`` (see the module docstring)."""
    actions: list[tuple[int, int, Action]] = []
    notes: list[str] = []
    for index, group in enumerate(desired.groups):
        seen = actual.groups.get(group.name)
        if seen is None:
            actions.append((0, index, CreateGroup(group.name, group.description, group.rule)))
        elif is_marked(group.description) and not seen.bot_made:
            # Adopt it: the marker makes the group deletable once the structure drops it.
            actions.append((0, index, MarkGroup(group.name, marked(seen.description or group.description),
                                                seen.description,
                                                f"{group.rule}: declared; its description lacks the bot's marker")))
        have = dict(seen.members) if seen is not None else {}
        for person, why in group.members.items():
            if person not in have:
                actions.append((0, index, AddMember(group.name, person, why)))
        for person, login in sorted(have.items()):
            if person not in group.members:
                actions.append((0, index, RemoveMember(group.name, person, login,
                                                       f"{group.rule}: {person} is not on the roster for it")))
    for index, (name, stale) in enumerate(sorted(actual.stale_groups.items())):
        if not stale.bot_made:  # a name match is no proof: never delete what the bot did not make
            notes.append(f"group {name!r} matches the bot's naming pattern but was not created by the bot "
                         f"(no {GROUP_MARKER!r} in its description); left alone")
            continue
        actions.append((0, index, DeleteGroup(name, tuple(sorted(stale.members)),
                                              "group_names: made by the bot, no longer in the structure")))
    ignored = desired.keep | actual.self_keys
    for index, spec in enumerate(desired.folders):
        actions.extend((1, index, a) for a in _folder_actions(spec, actual.folders.get(spec.path), ignored))
    if desired.undeclared == "inherit":
        for index, (path, item) in enumerate(sorted(undeclared_drift(actual).items())):
            inherit = FolderSpec(path, False, frozenset(), "folders.undeclared: inherit")
            actions.extend((2, index, a) for a in _folder_actions(inherit, item, ignored))
    actions.sort(key=lambda t: (t[2].phase, t[0], t[1]))
    return Plan(tuple(a for _, _, a in actions), tuple(notes))


def deletable_groups(actual: ActualState) -> list[ActualGroup]:
    """The stale groups the bot may delete: named like its groups and carrying the ownership marker."""
    return [g for g in actual.stale_groups.values() if g.bot_made]


def _folder_actions(spec: FolderSpec, seen: ActualFolder | None, ignored: frozenset[str]) -> Iterator[Action]:
    if seen is None:
        yield CreateFolder(spec.path, spec.rule)
    if not spec.unique:
        if seen is not None and seen.unique:
            for link in sorted(seen.links):
                yield RemoveSharingLink(spec.path, link.group_login, link.level, f"{spec.rule}: no sharing links")
            removed = tuple(sorted(g for g in seen.grants if g[0] not in ignored))
            yield ResetInheritance(spec.path, removed, spec.rule)
        return
    if seen is None or not seen.unique:
        yield BreakInheritance(spec.path, spec.rule)
        have: frozenset[tuple[str, str]] = frozenset()
    else:
        have = seen.grants
        for link in sorted(seen.links):
            yield RemoveSharingLink(spec.path, link.group_login, link.level,
                                    f"{spec.rule}: sharing links are not declared on governed folders")
    for grant in sorted(spec.grants):
        if (grant.principal, grant.level) not in have:
            yield Grant(spec.path, grant.principal, grant.level, grant.rule)
    wanted = spec.grant_pairs()
    for principal, level in sorted(have - wanted):
        if principal not in ignored:
            yield Revoke(spec.path, principal, level, f"{spec.rule}: {principal} → {level} is not declared")


def undeclared_drift(actual: ActualState) -> dict[str, ActualFolder]:
    """Undeclared items inside governed folders holding their own permissions or sharing links: drift
    whatever the policy ("report" shows it, "inherit" plans their reset)."""
    return {path: item for path, item in actual.undeclared.items() if item.unique}


# ---------------------------------------------------------------------------------------------- guard
@dataclasses.dataclass(frozen=True)
class GuardPolicy:
    """How much one apply may take away without --force (structure ``guard:`` section)."""

    max_removal_share: float = 0.2
    min_guarded_removals: int = 10


def check_guard(the_plan: Plan, desired: DesiredState, actual: ActualState, policy: GuardPolicy,
                *, force: bool = False) -> None:
    """Raise ``UnsafePlanError`` when the plan must not run unattended (module docstring)."""
    if force:
        return
    if desired.empty:
        raise UnsafePlanError("the declared structure has no folders: applying it would strip every governed "
                              "folder; fix the structure file or pass --force")
    ignored = desired.keep | actual.self_keys
    existing_grants = sum(len([g for g in f.grants if g[0] not in ignored])
                          for f in actual.folders.values() if f.unique)
    removed_grants = len(the_plan.of(Revoke)) + sum(len(a.removed) for a in the_plan.of(ResetInheritance)
                                                    if isinstance(a, ResetInheritance))
    # Deleting a group takes its members' access away too: it counts like removing each member.
    deleted = [a for a in the_plan.of(DeleteGroup) if isinstance(a, DeleteGroup)]
    # Groups the bot leaves alone (no marker) are not "existing" for it: they must not dilute the shares.
    kept = [*actual.groups.values(), *deletable_groups(actual)]
    existing_members = sum(len(g.members) for g in kept)
    removed_members = len(the_plan.of(RemoveMember)) + sum(len(a.members) for a in deleted)
    existing_groups = len(kept)
    for what, removed, existing in (("grants", removed_grants, existing_grants),
                                    ("group members", removed_members, existing_members),
                                    ("groups", len(deleted), existing_groups)):
        if removed >= max(policy.min_guarded_removals, 1) and existing and \
                removed / existing > policy.max_removal_share:
            raise UnsafePlanError(
                f"the plan removes {removed} of {existing} {what} ({removed / existing:.0%}), more than "
                f"guard.max_removal_share ({policy.max_removal_share:.0%}); check `cartif-bot plan`, then apply "
                "with --force if it is intended")


def removals(the_plan: Plan) -> Sequence[Action]:
    """Actions that take access away (for reports)."""
    return [a for a in the_plan
            if isinstance(a, Revoke | RemoveMember | RemoveSharingLink | ResetInheritance | DeleteGroup)]
