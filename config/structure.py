"""The negotiation structure: who takes part, in which working groups, and which folder each group sees.

Where it sits: ``config/cartif.yaml`` (or another file) is read by ``load_structure`` into the
pydantic models below; ``bot.desired`` expands its folder templates into the desired state that
the permission reconcile enforces. Nothing here talks to Microsoft 365.

Validation happens in two passes, and every problem is reported as ``FILE:LINE: where: what —
fix: how``:

1. shape (pydantic): types, enums, unknown keys, ISO alpha-3 codes;
2. meaning (``_check``): cross references — a working group naming an unknown country, a chair
   outside its group, a person with neither country nor secretariat, an undefined role, two
   templates giving the same folder, a folder with unique permissions and no owner.

Line numbers come from PyYAML's composed node tree (``yaml.compose``), which keeps each node's
position; a location like ``("roster", 3, "roles", 0)`` is walked down that tree.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = [
    "DEFAULT_STRUCTURE",
    "ChannelSpec",
    "FolderTemplate",
    "GroupNames",
    "Participant",
    "Person",
    "Problem",
    "RoleSpec",
    "Series",
    "SeriesLayout",
    "SeriesSpec",
    "Structure",
    "StructureError",
    "WorkingGroup",
    "group_ref_kind",
    "load_structure",
    "parse_structure",
]

#: The default structure file, shipped with the package (it models CARTIF).
DEFAULT_STRUCTURE = Path(__file__).with_name("cartif.yaml")
#: What ``{code}`` stands for in group names: an ISO alpha-3 code, or a working-group code (as validated).
_COUNTRY_CODE_RE = "[A-Z]{3}"
_WG_CODE_RE = "[A-Z][A-Z0-9-]{1,15}"

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
#: SharePoint forbids these in folder names (anchors-permissions §5, "Invalid characters").
_BAD_FOLDER_CHARS = set('"*:<>?\\|')
#: Named principal groups a role can put its holders into and a folder rule can grant to.
NAMED_GROUPS = ("chief_negotiators", "focal_points", "secretariat", "observers")
#: Expands to every enabled participant's delegation group.
ALL_PARTICIPANTS = "all_participants"
#: for_each → the placeholders a folder template may use.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "participant": frozenset({"country", "country_name"}),
    "observer": frozenset({"country", "country_name"}),
    "working_group": frozenset({"wg", "wg_name", "chair"}),
    "working_group_member": frozenset({"wg", "wg_name", "chair", "country", "country_name"}),
}


class PermissionLevel(enum.StrEnum):
    """SharePoint's default permission levels the structure may grant (role definition names)."""

    READ = "Read"
    CONTRIBUTE = "Contribute"
    EDIT = "Edit"
    FULL_CONTROL = "Full Control"


class _Model(BaseModel):
    # A misspelt key is an error with a line number, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Participant(_Model):
    """A party to the negotiation (or an observer), by ISO 3166-1 alpha-3 code."""

    code: CountryCode = Field(description="ISO 3166-1 alpha-3 code, e.g. KGZ.")
    name: str = Field(min_length=1, description="Display name in ADB style: \"Kyrgyz Republic\", \"People's "
                                                "Republic of China\".")
    status: Literal["participant", "observer"] = "participant"
    enabled: bool = Field(default=True, description="A disabled party gets no group, folder or grant.")


class WorkingGroup(_Model):
    """A working group (one per likely protocol, domain.md §1.4)."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9-]{1,15}$", description="Short code, e.g. WG-TF.")
    name: str = Field(min_length=1)
    members: list[CountryCode] | Literal["all"] = Field(
        description="Member countries, or \"all\" for every participant (not observers).")
    chair: CountryCode | None = None


class RoleSpec(_Model):
    """A role a person can hold and the named groups (NAMED_GROUPS) it puts them in."""

    name: str = Field(min_length=1)
    groups: list[Literal["chief_negotiators", "focal_points", "secretariat", "observers"]] = Field(
        default_factory=list)


class Person(_Model):
    """One roster entry. ``person`` is the mail address (or UPN) SharePoint's EnsureUser resolves."""

    person: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    country: CountryCode | None = None
    secretariat: bool = False
    roles: list[str] = Field(default_factory=list)
    working_groups: list[str] = Field(default_factory=list)


class GroupNames(_Model):
    """Names of the SharePoint site groups the bot keeps; ``{code}`` is a country or WG code."""

    prefix: str = Field(default="", description="Prepended to every name (tests use a unique prefix).")
    country: str = "CARTIF Delegation {code}"
    working_group: str = "CARTIF {code}"
    chief_negotiators: str = "CARTIF Chief Negotiators"
    focal_points: str = "CARTIF National Focal Points"
    secretariat: str = "CARTIF Secretariat"
    observers: str = "CARTIF Observers"


class FolderTemplate(_Model):
    """One folder rule: a path template, what it repeats over, and its grants (group ref → level)."""

    path: str = Field(min_length=1)
    for_each: Literal["none", "participant", "observer", "working_group", "working_group_member"] = "none"
    inherit: bool = Field(default=False, description="Inherit the parent's permissions instead of unique ones.")
    grants: dict[str, PermissionLevel] = Field(default_factory=dict)


class FolderLayout(_Model):
    owner: str | None = Field(default="secretariat", description=(
        "A group ref given Full Control on every folder with unique permissions; none: each rule names "
        "its own owner."))
    keep: list[str] = Field(default_factory=list, description=(
        "Principal titles never revoked from governed folders (the bot's own app is always kept)."))
    undeclared: Literal["report", "inherit"] = Field(default="report", description=(
        "What to do with a subfolder or file directly inside a governed folder that the layout does not "
        "declare but that has its own permissions or a sharing link: \"report\" (default) shows it as drift "
        "in `access report` and the apply log and changes nothing — people may share single documents on "
        "purpose —; \"inherit\" removes its links and resets it to inherit from the governed folder."))
    templates: list[FolderTemplate]


class Guard(_Model):
    max_removal_share: float = Field(default=0.2, ge=0, le=1, description=(
        "The largest share of existing grants or group members one apply may remove without --force."))
    min_guarded_removals: int = Field(default=10, ge=0, description=(
        "Below this many removals the share is not checked: a few revocations are ordinary drift."))


class ChannelSpec(_Model):
    """A Teams channel notices go to, and its audience: the groups whose members are in it.

    A notice about a folder reaches the channel only if EVERY audience group may read that
    folder (bot.notices.routing). ``name`` is the channel's key in CARTIF_TEAMS__WEBHOOKS and may
    use the for_each placeholders, like folder paths.
    """

    name: str = Field(min_length=1, description="The channel name (key of its webhook), e.g. \"{wg}\".")
    for_each: Literal["none", "participant", "working_group"] = "none"
    audience: list[str] = Field(min_length=1, description="Group refs, as in folder grants.")


class SeriesSpec(_Model):
    """A document series declared by hand (the working groups' series are implied, see SeriesLayout)."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9-]{1,15}$", description="Series code in symbols, e.g. PLEN.")
    name: str = Field(min_length=1, description="What the series holds, e.g. \"Plenary\".")
    folder: str = Field(min_length=1, description=(
        "The series' folder in the layout (relative to root): whoever may read it may read its texts."))
    symbol: str | None = Field(default=None, description="Symbol pattern; default: series.symbol.")
    to_circulate: str | None = Field(default=None, description=(
        "Drop folder name under the series' folder; default: series.to_circulate."))


def _default_series() -> list[SeriesSpec]:
    return [SeriesSpec(code="PLEN", name="Plenary", folder="Plenary"),
            SeriesSpec(code="INF", name="Informal papers", folder="Negotiating texts")]


class SeriesLayout(_Model):
    """Document series and circulation (issue #5): symbols, drop folders, archive, register list."""

    symbol: str = Field(default="CARTIF/{series}/W/{n}", description=(
        "Default symbol pattern: {series} is the series code, {n} the sequence number (last)."))
    to_circulate: str = Field(default="To circulate", description=(
        "Name of the drop folder inside each series' folder: files put there are circulated by the bot."))
    archive: str = Field(default="Negotiating texts/Archive", description=(
        "Folder (relative to root) of the immutable archive copies, named by symbol."))
    register_list: str = Field(default="Document register", description=(
        "Title of the SharePoint list mirroring the register (created if missing)."))
    register_readers: list[str] = Field(default_factory=lambda: ["all_participants"], description=(
        "Group refs given Read on the register list (the owner gets Full Control)."))
    per_working_group: bool = Field(default=True, description=(
        "One series per working group: code = the WG code, folder working_group_folder."))
    working_group_folder: str = Field(default="Working groups/{wg}", description=(
        "The layout folder of a working group's series; {wg} is its code."))
    declared: list[SeriesSpec] = Field(default_factory=_default_series, description=(
        "Further series (default: PLEN in Plenary, INF in Negotiating texts)."))


@dataclass(frozen=True)
class Series:
    """A series with every default resolved; folders are library-relative (root prepended)."""

    code: str
    name: str
    folder: str
    symbol: str
    to_circulate: str


class Structure(_Model):
    """The whole declared structure (see config/cartif.yaml for a commented example)."""

    version: Literal[1] = 1
    library: str = Field(default="Shared Documents", description="The library's URL name under the site.")
    root: str = Field(default="", description="Folder in the library the layout lives under (\"\" = the root).")
    group_names: GroupNames = Field(default_factory=GroupNames)
    guard: Guard = Field(default_factory=Guard)
    roles: dict[str, RoleSpec]
    participants: list[Participant]
    working_groups: list[WorkingGroup]
    roster: list[Person]
    folders: FolderLayout
    series: SeriesLayout = Field(default_factory=SeriesLayout)
    channels: list[ChannelSpec] = Field(default_factory=list, description=(
        "Teams channels for change notices and their audiences (bot.notices.routing)."))

    # ------------------------------------------------------------------------------------------ helpers
    def participant(self, code: str) -> Participant | None:
        return next((p for p in self.participants if p.code == code), None)

    def wg_members(self, wg: WorkingGroup) -> list[str]:
        if wg.members == "all":
            return [p.code for p in self.participants if p.status == "participant"]
        return list(wg.members)

    def enabled(self, status: str) -> list[Participant]:
        return [p for p in self.participants if p.enabled and p.status == status]

    def group_name(self, kind: str, code: str = "") -> str:
        template = getattr(self.group_names, kind)
        return self.group_names.prefix + str(template).format(code=code)

    def layout_path(self, relative: str) -> str:
        """A layout path made library-relative (the root folder prepended)."""
        root = self.root.strip("/")
        return f"{root}/{relative}" if root else relative

    def all_series(self) -> list[Series]:
        """Every document series: one per working group (if enabled), then the declared ones."""
        layout = self.series
        specs = [SeriesSpec(code=wg.code, name=wg.name, folder=layout.working_group_folder.format(wg=wg.code))
                 for wg in self.working_groups] if layout.per_working_group else []
        specs += layout.declared
        return [Series(s.code, s.name, self.layout_path(s.folder), s.symbol or layout.symbol,
                       self.layout_path(f"{s.folder}/{s.to_circulate or layout.to_circulate}")) for s in specs]

    def find_series(self, code: str) -> Series | None:
        return next((s for s in self.all_series() if s.code == code), None)

    def managed_group_patterns(self) -> tuple[str, ...]:
        """Regexes matching the names of every group this structure's naming could create.

        A site group whose name matches one and that the structure no longer declares (a disabled
        country, a working group taken out) is deleted if its Description also carries the bot's
        ownership marker (``bot.model.GROUP_MARKER``): a name alone is no proof, since a hand-made
        group may match ("CARTIF HR" matches "CARTIF {code}"). The site's Owners/Members/Visitors
        never match.
        """
        names = self.group_names
        patterns = []
        for kind in ("country", "working_group", "chief_negotiators", "focal_points", "secretariat", "observers"):
            template = str(getattr(names, kind))
            code = _COUNTRY_CODE_RE if kind == "country" else _WG_CODE_RE
            head, sep, tail = template.partition("{code}")
            body = re.escape(head) + (code + re.escape(tail) if sep else "")
            patterns.append(f"^{re.escape(names.prefix)}{body}$")
        return tuple(patterns)

    def with_overrides(self, *, root: str | None = None, prefix: str | None = None) -> Structure:
        """A copy with another root folder and/or group-name prefix (tests, staging sites)."""
        update: dict[str, Any] = {}
        if root is not None:
            update["root"] = root
        if prefix is not None:
            update["group_names"] = self.group_names.model_copy(update={"prefix": prefix})
        return self.model_copy(update=update)


def group_ref_kind(ref: str) -> tuple[str, str]:
    """A grant's group ref → (kind, argument): ``wg:WG-TF`` → ("wg", "WG-TF"), ``secretariat`` → ("secretariat", "")."""
    kind, _, arg = ref.partition(":")
    return kind.strip(), arg.strip()


# ---------------------------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a structure file, at a location in it."""

    loc: tuple[str | int, ...]
    message: str
    fix: str
    line: int | None = None

    def render(self, file: str) -> str:
        where = _dotted(self.loc) or "(top level)"
        at = f"{file}:{self.line}" if self.line else file
        return f"{at}: {where}: {self.message} — fix: {self.fix}"


class StructureError(ValueError):
    """The structure file is unreadable or invalid; ``problems`` each carry a line and a fix."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file, self.problems = file, list(problems)
        super().__init__("\n".join(p.render(file) for p in self.problems))


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---------------------------------------------------------------------------------------------- loading
def load_structure(path: Path | str | None = None) -> Structure:
    """Read and validate a structure file (default: the shipped config/cartif.yaml)."""
    file = Path(path) if path is not None else DEFAULT_STRUCTURE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise StructureError(str(file), [Problem((), f"cannot read the file ({exc.strerror})",
                                                 "check the path (CLI --structure)")]) from exc
    return parse_structure(text, str(file))


def parse_structure(text: str, file: str = "<structure>") -> Structure:
    """Validate YAML text; raises ``StructureError`` listing every problem with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise StructureError(file, [Problem((), f"not valid YAML ({getattr(exc, 'problem', exc)})",
                                            "fix the syntax at that line", line)]) from exc
    if not isinstance(data, dict):
        raise StructureError(file, [Problem((), "the file must be a mapping (version, participants, …)",
                                            "start from config/cartif.yaml", 1)])
    try:
        structure = Structure.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(tuple(e["loc"]), e["msg"], _fix_for(e), _line_of(node, tuple(e["loc"])))
                    for e in exc.errors()]
        raise StructureError(file, problems) from None
    problems = [Problem(p.loc, p.message, p.fix, _line_of(node, p.loc)) for p in _check(structure)]
    if problems:
        raise StructureError(file, problems)
    return structure


def _fix_for(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return "remove this key or correct its spelling"
    if kind == "missing":
        return "add this key"
    if kind.startswith("string_pattern") and error["loc"] and error["loc"][-1] in ("code", "country", "chair"):
        return "use an ISO 3166-1 alpha-3 code in capitals, e.g. KGZ"
    if kind in ("literal_error", "enum"):
        return f"use one of the allowed values ({error.get('ctx', {}).get('expected', '')})"
    return "correct the value"


def _line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of the node at ``loc`` (the deepest one that exists)."""
    if node is None:
        return None
    current = node
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if str(key.value) == str(part):
                    child = value
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(current.value):
            child = current.value[part]
        if child is None:
            break
        current = child
    return current.start_mark.line + 1


# ---------------------------------------------------------------------------------------------- meaning
def _check(s: Structure) -> Iterator[Problem]:
    """Cross references a schema cannot express."""
    codes = [p.code for p in s.participants]
    for i, code in enumerate(codes):
        if code in codes[:i]:
            yield Problem(("participants", i, "code"), f"country {code} is listed twice",
                          "keep one entry per country")
    known = set(codes)
    wg_codes: set[str] = set()
    for i, wg in enumerate(s.working_groups):
        if wg.code in wg_codes:
            yield Problem(("working_groups", i, "code"), f"working group {wg.code} is listed twice",
                          "keep one entry per working group")
        wg_codes.add(wg.code)
        if wg.members != "all":
            for j, member in enumerate(wg.members):
                if member not in known:
                    yield Problem(("working_groups", i, "members", j),
                                  f"unknown country {member} in working group {wg.code}",
                                  f"add {member} under participants, or remove it from {wg.code}'s members")
        if wg.chair is not None and wg.chair not in s.wg_members(wg):
            yield Problem(("working_groups", i, "chair"), f"chair {wg.chair} is not a member of {wg.code}",
                          f"add {wg.chair} to {wg.code}'s members or choose a member as chair")
    for name in s.roles:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            yield Problem(("roles", name), f"role id {name!r} is not a lower-case identifier",
                          "use letters, digits and underscores, e.g. chief_negotiator")
    seen_people: dict[str, int] = {}
    for i, person in enumerate(s.roster):
        key = person.person.lower()
        if key in seen_people:
            yield Problem(("roster", i, "person"), f"{person.person} is listed twice (also roster[{seen_people[key]}])",
                          "merge the two entries")
        seen_people.setdefault(key, i)
        if person.country is None and not person.secretariat:
            yield Problem(("roster", i), f"{person.person} has no country",
                          "add `country: XXX` (an ISO alpha-3 code under participants) or `secretariat: true`")
        if person.country is not None and person.secretariat:
            yield Problem(("roster", i, "secretariat"), f"{person.person} has both a country and secretariat",
                          "keep only one: a delegate belongs to a country, staff to the secretariat")
        if person.country is not None and person.country not in known:
            yield Problem(("roster", i, "country"), f"unknown country {person.country} for {person.person}",
                          f"add {person.country} under participants or correct the code")
        for j, role_id in enumerate(person.roles):
            if role_id not in s.roles:
                yield Problem(("roster", i, "roles", j), f"undefined role {role_id!r} for {person.person}",
                              f"define it under roles or use one of: {', '.join(sorted(s.roles))}")
        for j, wg_code in enumerate(person.working_groups):
            group = next((w for w in s.working_groups if w.code == wg_code), None)
            if group is None:
                yield Problem(("roster", i, "working_groups", j), f"unknown working group {wg_code!r}",
                              f"use one of: {', '.join(w.code for w in s.working_groups)}")
            elif person.country is not None and person.country not in s.wg_members(group):
                yield Problem(("roster", i, "working_groups", j),
                              f"{person.person} ({person.country}) is in {wg_code}, which {person.country} is not a "
                              "member of", f"add {person.country} to {wg_code}'s members or remove {wg_code} here")
    yield from _check_folders(s, known, wg_codes)
    for i, channel in enumerate(s.channels):
        fields = {n for _, n, _, _ in string.Formatter().parse(channel.name) if n is not None}
        allowed = PLACEHOLDERS[channel.for_each]
        for name in sorted(fields - allowed):
            yield Problem(("channels", i, "name"), f"placeholder {{{name}}} is not available with for_each: "
                          f"{channel.for_each}", "use a placeholder of that for_each or change for_each")
        for j, ref in enumerate(channel.audience):
            problem = _check_ref(ref, allowed, known, wg_codes)
            if problem:
                yield Problem(("channels", i, "audience", j), problem[0], problem[1])
    yield from _check_series(s, known, wg_codes)


def _check_series(s: Structure, countries: set[str], wgs: set[str]) -> Iterator[Problem]:
    layout = s.series
    patterns: list[tuple[tuple[str | int, ...], str]] = [(("series", "symbol"), layout.symbol)]
    patterns += [(("series", "declared", i, "symbol"), d.symbol) for i, d in enumerate(layout.declared) if d.symbol]
    for loc, pattern in patterns:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
        if not pattern.endswith("/{n}") or fields.count("n") != 1 or set(fields) - {"n", "series"} or " " in pattern:
            yield Problem(loc, f"symbol pattern {pattern!r} must end with /{{n}} and use only {{series}} and {{n}}",
                          "write it like CARTIF/{series}/W/{n}")
    seen: set[str] = set(wgs) if layout.per_working_group else set()
    for i, d in enumerate(layout.declared):
        if d.code in seen:
            yield Problem(("series", "declared", i, "code"), f"series {d.code} is declared twice (or is a working "
                          "group's series)", "give each series its own code")
        seen.add(d.code)
        if any(not seg.strip() or _BAD_FOLDER_CHARS & set(seg) for seg in d.folder.split("/")):
            yield Problem(("series", "declared", i, "folder"), f"folder {d.folder!r} is not a valid folder path",
                          "use the layout path of a declared folder, e.g. Plenary")
    wg_fields = {n for _, n, _, _ in string.Formatter().parse(layout.working_group_folder) if n is not None}
    if wg_fields - {"wg"}:
        yield Problem(("series", "working_group_folder"), f"{layout.working_group_folder!r} may use only {{wg}}",
                      "write it like Working groups/{wg}")
    names = [("series", "to_circulate"), ("series", "archive")]
    for loc in names:
        value = str(getattr(layout, str(loc[1])))
        if any(not seg.strip() or _BAD_FOLDER_CHARS & set(seg) for seg in value.split("/")):
            yield Problem(loc, f"{value!r} is not a valid folder name", "rename it")
    for i, ref in enumerate(layout.register_readers):
        problem = _check_ref(ref, set(), countries, wgs)
        if problem:
            yield Problem(("series", "register_readers", i), problem[0], problem[1])

def _check_folders(s: Structure, countries: set[str], wgs: set[str]) -> Iterator[Problem]:
    layout = s.folders
    if layout.owner is not None:
        problem = _check_ref(layout.owner, set(), countries, wgs)
        if problem:
            yield Problem(("folders", "owner"), problem[0], problem[1])
    if not layout.templates:
        yield Problem(("folders", "templates"), "no folders are declared",
                      "declare at least one folder; an empty layout would revoke everything")
    declared: dict[str, int] = {}
    templates = layout.templates
    for i, t in enumerate(templates):
        loc: tuple[str | int, ...] = ("folders", "templates", i)
        fields = {name for _, name, _, _ in string.Formatter().parse(t.path) if name is not None}
        allowed = PLACEHOLDERS[t.for_each]
        for name in sorted(fields - allowed):
            yield Problem((*loc, "path"), f"placeholder {{{name}}} is not available with for_each: {t.for_each}",
                          f"use {', '.join('{' + a + '}' for a in sorted(allowed)) or 'no placeholder'} or change "
                          "for_each")
        segments = t.path.split("/")
        if any(not seg.strip() or seg != seg.strip() or _BAD_FOLDER_CHARS & set(seg) for seg in segments):
            yield Problem((*loc, "path"), f"folder path {t.path!r} has an empty segment, surrounding spaces or a "
                          "character SharePoint forbids (\" * : < > ? \\ |)", "rename the folder")
        if t.path in declared:
            yield Problem((*loc, "path"), f"duplicate folder {t.path!r} (also folders.templates[{declared[t.path]}])",
                          "declare each folder once; merge their grants")
        declared.setdefault(t.path, i)
        parent = t.path.rsplit("/", 1)[0] if "/" in t.path else None
        if parent is not None and parent not in declared:
            yield Problem((*loc, "path"), f"the parent folder {parent!r} is not declared before {t.path!r}",
                          f"declare {parent!r} above it (inherit: true if it needs no grants of its own)")
        for ref in t.grants:
            problem = _check_ref(ref, allowed, countries, wgs)
            if problem:
                yield Problem((*loc, "grants", ref), problem[0], problem[1])
        if t.inherit and t.grants:
            yield Problem((*loc, "grants"), f"folder {t.path!r} inherits but also declares grants",
                          "remove inherit: true, or remove the grants")
        has_owner = layout.owner is not None or any(v is PermissionLevel.FULL_CONTROL for v in t.grants.values())
        if not t.inherit and not has_owner:
            yield Problem(loc, f"folder {t.path!r} would have no owner (no Full Control grant)",
                          "give a group Full Control in its grants, or set folders.owner (e.g. secretariat)")


def _check_ref(ref: str, placeholders: set[str] | frozenset[str], countries: set[str],
               wgs: set[str]) -> tuple[str, str] | None:
    kind, arg = group_ref_kind(ref)
    if kind in (*NAMED_GROUPS, ALL_PARTICIPANTS) and not arg:
        return None
    if kind in ("country", "wg") and arg:
        if arg.startswith("{") and arg.endswith("}"):
            if arg[1:-1] in placeholders and (kind, arg[1:-1]) in (("country", "country"), ("country", "chair"),
                                                                   ("wg", "wg")):
                return None
            return (f"group ref {ref!r} uses a placeholder this rule does not provide",
                    "use {country} or {chair} for country:, {wg} for wg:, with the matching for_each")
        if kind == "country" and arg in countries:
            return None
        if kind == "wg" and arg in wgs:
            return None
        return (f"group ref {ref!r} names an unknown {'country' if kind == 'country' else 'working group'}",
                "declare it first or correct the code")
    return (f"unknown group ref {ref!r}",
            f"use one of {', '.join(NAMED_GROUPS)}, {ALL_PARTICIPANTS}, country:XXX, wg:CODE")
