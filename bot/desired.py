"""Expand the declared structure (config.structure) into the desired state (bot.model).

Where it sits: first step of a permission cycle, pure. Folder templates repeat over
participants, observers, working groups or (working group, member country) pairs; group refs in
grants become site group names; the roster becomes group memberships. Disabled parties drop out
everywhere: no group, no folder, no grant, no membership. Every group's description ends with the
ownership marker (``bot.model.GROUP_MARKER``), so the group the bot creates carries the proof that
the bot made it (required before it may ever delete it).
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.model import DesiredGrant, DesiredGroup, DesiredState, FolderSpec, group_key, marked
from config.structure import ALL_PARTICIPANTS, FolderTemplate, PermissionLevel, Structure, group_ref_kind

__all__ = ["build_desired", "folder_path"]


def folder_path(structure: Structure, relative: str) -> str:
    """The library-relative path of a layout path (the root folder prepended)."""
    root = structure.root.strip("/")
    return f"{root}/{relative}" if root else relative


def build_desired(structure: Structure) -> DesiredState:
    """The folders and groups the structure declares, with the rule behind each element."""
    groups = _groups(structure)
    folders: list[FolderSpec] = []
    root = structure.root.strip("/")
    if root:
        # The root is a plain container: created if missing, permissions inherited from the library.
        for depth in range(1, root.count("/") + 2):
            part = "/".join(root.split("/")[:depth])
            folders.append(FolderSpec(part, False, frozenset(), "root (structure.root)"))
    names = {g.name for g in groups}
    for index, template in enumerate(structure.folders.templates):
        for binding in _bindings(structure, template):
            folders.append(_folder(structure, index, template, binding, names))
    keep = frozenset(group_key(k) for k in structure.folders.keep)
    # Circulation gives each archive copy its own (restricted) permissions: not drift.
    archive = frozenset({folder_path(structure, structure.series.archive.strip("/"))})
    return DesiredState(tuple(folders), tuple(groups), keep, structure.managed_group_patterns(),
                        structure.folders.undeclared, archive)


def _bindings(s: Structure, t: FolderTemplate) -> Iterator[dict[str, str]]:
    if t.for_each == "none":
        yield {}
    elif t.for_each in ("participant", "observer"):
        for p in s.enabled(t.for_each):
            yield {"country": p.code, "country_name": p.name}
    else:
        for wg in s.working_groups:
            chairing = s.participant(wg.chair) if wg.chair else None
            chair = chairing.code if chairing is not None and chairing.enabled else ""
            base = {"wg": wg.code, "wg_name": wg.name, "chair": chair}
            if t.for_each == "working_group":
                yield base
                continue
            for code in s.wg_members(wg):
                member = s.participant(code)
                if member is not None and member.enabled:
                    yield {**base, "country": code, "country_name": member.name}


def _folder(s: Structure, index: int, t: FolderTemplate, binding: dict[str, str], groups: set[str]) -> FolderSpec:
    path = folder_path(s, t.path.format(**binding))
    where = f"folders.templates[{index}] {t.path!r}"
    if t.inherit:
        return FolderSpec(path, False, frozenset(), f"{where}: inherits")
    grants: set[DesiredGrant] = set()
    entries = list(t.grants.items())
    if s.folders.owner is not None:
        entries.append((s.folders.owner, PermissionLevel.FULL_CONTROL))
    for ref, level in entries:
        origin = "folders.owner" if (ref, level) not in t.grants.items() else where
        for name in _resolve(s, ref, binding):
            if name in groups:  # a grant to a disabled party's group silently drops out
                grants.add(DesiredGrant(group_key(name), str(level), f"{origin}: {ref} → {level}"))
    # One level per principal: the strongest wins (SharePoint would show both, the UI the strongest).
    strongest: dict[str, DesiredGrant] = {}
    order = [str(level) for level in PermissionLevel]
    for grant in sorted(grants):
        old = strongest.get(grant.principal)
        if old is None or order.index(grant.level) > order.index(old.level):
            strongest[grant.principal] = grant
    return FolderSpec(path, True, frozenset(strongest.values()), where)


def _resolve(s: Structure, ref: str, binding: dict[str, str]) -> list[str]:
    kind, arg = group_ref_kind(ref)
    arg = arg.format(**binding) if arg else arg
    if kind == ALL_PARTICIPANTS:
        return [s.group_name("country", p.code) for p in s.enabled("participant")]
    if kind == "country":
        return [s.group_name("country", arg)] if arg else []
    if kind == "wg":
        return [s.group_name("working_group", arg)]
    return [s.group_name(kind)]


def _groups(s: Structure) -> list[DesiredGroup]:
    members: dict[str, dict[str, str]] = {}
    descriptions: dict[str, tuple[str, str]] = {}

    def declare(name: str, description: str, rule: str) -> None:
        members.setdefault(name, {})
        descriptions.setdefault(name, (description, rule))

    for p in s.enabled("participant"):
        declare(s.group_name("country", p.code), f"The delegation of {p.name}", f"participants: {p.code}")
    for wg in s.working_groups:
        declare(s.group_name("working_group", wg.code), f"Working group {wg.code}: {wg.name}",
                f"working_groups: {wg.code}")
    for role_id, role in s.roles.items():
        for named in role.groups:
            declare(s.group_name(named), role.name if named != "secretariat" else "The CAREC Secretariat",
                    f"roles.{role_id}")
    for person in s.roster:
        country = s.participant(person.country) if person.country else None
        if country is not None and not country.enabled:
            continue
        key = person.person.lower()
        if country is not None and country.status == "participant":
            members[s.group_name("country", country.code)][key] = f"roster: {person.person} of {country.code}"
        for wg_code in person.working_groups:
            members[s.group_name("working_group", wg_code)][key] = f"roster: {person.person} in {wg_code}"
        for role_id in person.roles:
            for named in s.roles[role_id].groups:
                members[s.group_name(named)][key] = f"roster: {person.person} is {role_id}"
    return [DesiredGroup(name, marked(descriptions[name][0]), dict(sorted(m.items())), descriptions[name][1])
            for name, m in members.items()]
