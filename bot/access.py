"""Access reports: per governed folder, desired and actual grants with drift; who can reach a path and why.

Undeclared items (subfolders and files at any depth inside governed folders) with their own
permissions appear in the report as extra rows (``declared: false``), always as drift.

Where it sits: read-only views for ``cartif-bot access report`` and ``cartif-bot access who``,
built from the same desired and actual state the planner compares. Pure.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.model import ActualState, DesiredState, FolderSpec
from bot.planning import undeclared_drift

__all__ = ["FolderAccess", "WhoEntry", "report", "who"]


@dataclasses.dataclass(frozen=True)
class FolderAccess:
    """One governed folder: desired vs actual grants (principal, level) and what differs."""

    path: str
    desired_unique: bool
    actual_unique: bool | None
    desired: tuple[tuple[str, str], ...]
    actual: tuple[tuple[str, str], ...]
    missing: tuple[tuple[str, str], ...]
    extra: tuple[tuple[str, str], ...]
    links: tuple[str, ...]
    #: False for an undeclared item inside a governed folder, listed because it has its own permissions
    declared: bool = True

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.extra or self.links or self.actual_unique is None
                    or self.desired_unique != self.actual_unique)

    def as_json(self) -> dict[str, Any]:
        def grants(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
            return [{"principal": p, "role": level} for p, level in pairs]

        return {"path": self.path, "desired_unique": self.desired_unique, "actual_unique": self.actual_unique,
                "exists": self.actual_unique is not None, "desired": grants(self.desired),
                "actual": grants(self.actual), "missing": grants(self.missing), "extra": grants(self.extra),
                "sharing_links": list(self.links), "declared": self.declared, "drift": self.drift}


def _effective_desired(desired: DesiredState, spec: FolderSpec) -> FolderSpec:
    """An inheriting folder's grants are its nearest unique declared ancestor's."""
    current: FolderSpec | None = spec
    path = spec.path
    while current is not None and not current.unique and "/" in path:
        path = path.rsplit("/", 1)[0]
        current = desired.folder(path)
    return current if current is not None and current.unique else spec


def report(desired: DesiredState, actual: ActualState) -> list[FolderAccess]:
    ignored = desired.keep | actual.self_keys
    rows: list[FolderAccess] = []
    for spec in desired.folders:
        seen = actual.folders.get(spec.path)
        effective = _effective_desired(desired, spec)
        want = {(g.principal, g.level) for g in effective.grants}
        have = {g for g in seen.grants if g[0] not in ignored} if seen is not None else set()
        # An inheriting folder without a declared unique ancestor (the root) has no grants of ours to compare.
        compare = seen is not None and effective.unique and (spec.unique or not seen.unique)
        rows.append(FolderAccess(
            spec.path, spec.unique, seen.unique if seen is not None else None, tuple(sorted(want)),
            tuple(sorted(have)), tuple(sorted(want - have)) if compare or seen is None else (),
            tuple(sorted(have - want)) if compare else (),
            tuple(sorted(link.group_login for link in seen.links)) if seen is not None else ()))
    # Undeclared items inside governed folders should inherit: their own grants and links are drift.
    for path, item in sorted(undeclared_drift(actual).items()):
        have = {g for g in item.grants if g[0] not in ignored}
        rows.append(FolderAccess(path, False, True, (), tuple(sorted(have)), (), tuple(sorted(have)),
                                 tuple(sorted(link.group_login for link in item.links)), declared=False))
    return rows


@dataclasses.dataclass(frozen=True)
class WhoEntry:
    """A principal with access to a path: its level, the rule behind it, and (for groups) the people."""

    principal: str
    level: str
    rule: str
    members: tuple[tuple[str, str], ...]

    def as_json(self) -> dict[str, Any]:
        return {"principal": self.principal, "role": self.level, "rule": self.rule,
                "members": [{"person": p, "rule": r} for p, r in self.members]}


def who(desired: DesiredState, actual: ActualState, path: str) -> list[WhoEntry]:
    """Who can reach ``path`` (a governed folder) as the site stands, and by which rule."""
    spec = desired.folder(path.strip("/"))
    seen = actual.folders.get(path.strip("/"))
    if spec is None:
        raise KeyError(path)
    rules = {(g.principal, g.level): g.rule for g in _effective_desired(desired, spec).grants}
    groups = {g.name: g for g in desired.groups}
    pairs = sorted(seen.grants) if seen is not None else sorted(rules)
    entries = []
    for principal, level in pairs:
        rule = rules.get((principal, level))
        if rule is None:
            rule = ("the bot's own app" if principal in actual.self_keys
                    else "NOT DECLARED (drift; the next apply revokes it)")
        group = groups.get(principal)
        members = tuple(sorted(group.members.items())) if group else ()
        entries.append(WhoEntry(principal, level, rule, members))
    for link in sorted(seen.links) if seen is not None else []:
        entries.append(WhoEntry(link.group_login, link.level, "sharing link (not declared; the next apply removes it)",
                                ()))
    return entries
