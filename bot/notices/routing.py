"""Which Teams channels may hear about a change: pure, computed from the desired permission model.

Where it sits: the notices step (``bot.notices.outbox``) routes every change reference and
circulation event through a ``Router`` built from the declared structure (``config.structure``,
its ``channels:`` section) and the desired state ``bot.desired.build_desired`` expands from it —
at drain time, so a permission narrowed between the change and the notice is honoured
(SharePoint's old alerts kept mailing people after their access was removed; anchors §4).

The rule: a notice about PATH goes to channel C only if EVERY group of C's audience holds a grant
(any level: all of them include reading) on the folder whose permissions PATH gets — the nearest
governed folder at or above PATH, following ``inherit: true`` folders up to the next folder with
unique permissions. A path under no governed folder with unique permissions (the library root,
or a folder outside the declared layout) has no known audience and reaches no channel: silence
is the safe side. Group-level, not person-level: a person in an audience group who could read the
folder through another group still does not make the group a reader, because group membership
changes between cycles and SharePoint enforces grants to groups.

A move between folders with different readers is split per channel: channels that read both
sides hear "moved from A to B"; channels that read only the new side hear "moved in" with no old
path; channels that read only the old side hear "moved out" with no new path. So a delegation's
private folder name never reaches a channel that cannot read it, not even as a "moved from". A
governed folder with unique permissions that is itself renamed or moved keeps its permissions
(SharePoint moves role assignments with the item), so only channels that could read it before hear.

Permissions made by hand. The model is the DESIRED one, but the site may differ: with
``folders.undeclared: report`` an undeclared subfolder (or file) inside a governed folder keeps the
unique, possibly narrower, permissions someone gave it, and a governed folder may drift until the
next apply fixes it. Assuming inheritance there would post the item's name to channels whose
members cannot open it. So the router also takes what the permission cycle OBSERVED
(``observed_readers``: path → principals holding a grant, for every undeclared item with unique
permissions, at any depth, and every governed folder whose actual unique grants differ from the
desired ones), and routes by the actual grants — conservatively: the readers of PATH are the desired readers
INTERSECTED with the actual grants of the nearest observed item at or above PATH (below its
governing folder or the folder itself). A channel is thus only told what both the model and the
site let its whole audience read. Routing by the actual grants rather than routing nothing keeps
notices flowing to the channels that can read the item (the Secretariat, typically); the channels
left out and why are written on the outbox source row (``Router.narrowed``). A hand-made unique
item that is renamed or moved keeps its permissions, like a governed one: channels on either side
hear of it only if they can read it on the other side too.

The service's notices step gets the observation from the permissions step of the same cycle
(``StepResult.detail["observed_readers"]``). Known limits: without it (``cartif-bot notices
send``, or a cycle whose permissions step failed) routing falls back to the desired model. The
permission cycle observes unique permissions at any depth below governed folders (a sub-subfolder of
an undeclared folder too), as of its last run: one restricted since then is treated as inherited
until the next cycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping

from bot.desired import build_desired
from bot.model import ActualState, DesiredState, FolderSpec
from config.structure import ALL_PARTICIPANTS, ChannelSpec, Structure, group_ref_kind

__all__ = ["Channel", "Routed", "Router", "expand_channels", "normalise_path", "observed_readers"]


@dataclasses.dataclass(frozen=True, slots=True)
class Channel:
    """A declared channel with its audience resolved to site group names."""

    name: str
    audience: frozenset[str]
    rule: str


@dataclasses.dataclass(frozen=True, slots=True)
class Routed:
    """One notice for one channel: what it may say (``old_path`` only where the channel may read it)."""

    channel: str
    kind: str
    path: str
    old_path: str | None = None
    #: None, "moved in" (from a folder this channel cannot read) or "moved out" (to one)
    note: str | None = None


def normalise_path(path: str) -> str:
    """A drive-relative ("/A/b.txt") or library-relative path as the model writes folders ("A/b.txt")."""
    return "/".join(part for part in path.replace("\\", "/").split("/") if part)


def _parts(path: str) -> list[str]:
    normal = normalise_path(path).lower()
    return normal.split("/") if normal else []


def _governing(folders: Mapping[str, FolderSpec], parts: list[str]) -> tuple[int, FolderSpec] | None:
    """(depth, spec) of the nearest desired folder with unique permissions at or above ``parts``."""
    for depth in range(len(parts), 0, -1):
        spec = folders.get("/".join(parts[:depth]))
        if spec is not None and spec.unique:
            return depth, spec
        # A governed folder that inherits: keep walking up to its parent. An ungoverned one: the
        # same (it inherits too, as far as the model knows).
    return None


def _groups(principals: Iterable[str]) -> set[str]:
    # Channel audiences are site groups: people ("user:…") and apps ("app:…", the bot itself) with
    # a grant of their own never make a channel a reader, so they are left out of the comparison.
    return {p for p in principals if not p.startswith(("user:", "app:"))}


def observed_readers(desired: DesiredState, actual: ActualState) -> dict[str, list[str]]:
    """What routing must know of the site's actual permissions (module docstring): path → sorted
    site groups holding a grant, for undeclared items with unique permissions and for governed
    folders with unique permissions whose groups differ from the desired ones. JSON-friendly (it
    travels in the permissions step's detail); usually empty."""
    folders = {f.path.lower(): f for f in desired.folders}
    out: dict[str, list[str]] = {}
    for path, item in actual.undeclared.items():
        if item.unique:
            out[path] = sorted(_groups(principal for principal, _ in item.grants))
    for path, item in actual.folders.items():
        if not item.unique:
            continue
        governing = _governing(folders, _parts(path))
        wanted = None if governing is None else _groups(g.principal for g in governing[1].grants)
        have = _groups(principal for principal, _ in item.grants)
        if have != wanted:
            out[path] = sorted(have)
    return out


def _bindings(structure: Structure, spec: ChannelSpec) -> Iterator[dict[str, str]]:
    if spec.for_each == "none":
        yield {}
    elif spec.for_each == "participant":
        for p in structure.enabled("participant"):
            yield {"country": p.code, "country_name": p.name}
    else:
        for wg in structure.working_groups:
            chairing = structure.participant(wg.chair) if wg.chair else None
            chair = chairing.code if chairing is not None and chairing.enabled else ""
            yield {"wg": wg.code, "wg_name": wg.name, "chair": chair}


def _resolve(structure: Structure, ref: str, binding: Mapping[str, str]) -> list[str]:
    # The same resolution folder grants get (bot.desired), so the two sides name groups alike.
    kind, arg = group_ref_kind(ref)
    arg = arg.format(**binding) if arg else arg
    if kind == ALL_PARTICIPANTS:
        return [structure.group_name("country", p.code) for p in structure.enabled("participant")]
    if kind == "country":
        return [structure.group_name("country", arg)] if arg else []
    if kind == "wg":
        return [structure.group_name("working_group", arg)]
    return [structure.group_name(kind)]


def expand_channels(structure: Structure) -> list[Channel]:
    """The declared channels, for_each expanded, audiences as group names."""
    out: list[Channel] = []
    for index, spec in enumerate(structure.channels):
        for binding in _bindings(structure, spec):
            groups = frozenset(g for ref in spec.audience for g in _resolve(structure, ref, binding))
            out.append(Channel(spec.name.format(**binding), groups,
                               f"channels[{index}] {spec.name!r}: audience {', '.join(spec.audience)}"))
    return out


class Router:
    """Routes paths to channels (see the module docstring). Pure; build once per drain.

    ``observed``: ``observed_readers`` of the last permission observation (None: not known).
    """

    def __init__(self, structure: Structure, desired: DesiredState | None = None,
                 observed: Mapping[str, Iterable[str]] | None = None) -> None:
        self.structure = structure
        self.desired = desired if desired is not None else build_desired(structure)
        self.channels: tuple[Channel, ...] = tuple(expand_channels(structure))
        # SharePoint paths are case-insensitive.
        self._folders: dict[str, FolderSpec] = {f.path.lower(): f for f in self.desired.folders}
        self._observed: dict[str, frozenset[str]] = {
            normalise_path(p).lower(): frozenset(readers) for p, readers in (observed or {}).items()}
        self._observed_names = {normalise_path(p).lower(): normalise_path(p) for p in observed or {}}

    def governing_folder(self, path: str) -> FolderSpec | None:
        """The governed folder with unique permissions that ``path`` gets its permissions from (desired)."""
        found = _governing(self._folders, _parts(path))
        return None if found is None else found[1]

    def is_governed_unique(self, path: str) -> bool:
        """True when ``path`` IS a governed folder with unique permissions (they travel with it)."""
        spec = self._folders.get(normalise_path(path).lower())
        return spec is not None and spec.unique

    def is_observed_unique(self, path: str) -> bool:
        """True when ``path`` IS an item observed with permissions of its own (made by hand)."""
        return normalise_path(path).lower() in self._observed

    def _observed_at(self, parts: list[str], floor: int) -> tuple[str, frozenset[str]] | None:
        # The nearest observed item at or above the path, not above its governing folder (depth
        # ``floor``): below that folder, an item with unique permissions decides who reads.
        for depth in range(len(parts), floor - 1, -1):
            key = "/".join(parts[:depth])
            if key in self._observed:
                return key, self._observed[key]
        return None

    def readers(self, path: str) -> frozenset[str] | None:
        """Principal keys (group names) that may read ``path``: the desired readers, narrowed by the
        actual grants of a nearest observed item (module docstring); None when no governed folder says."""
        parts = _parts(path)
        found = _governing(self._folders, parts)
        if found is None:
            return None
        depth, spec = found
        desired = frozenset(g.principal for g in spec.grants)
        observed = self._observed_at(parts, depth)
        return desired if observed is None else desired & observed[1]

    def channels_for(self, path: str) -> list[str]:
        """Channels whose WHOLE audience may read ``path``, in declaration order."""
        readers = self.readers(path)
        if readers is None:
            return []
        return [c.name for c in self.channels if c.audience and c.audience <= readers]

    def narrowed(self, path: str) -> tuple[str, list[str]] | None:
        """(observed item, channels left out) when permissions made by hand keep channels the model
        would tell about ``path`` from hearing of it; None otherwise. For the outbox's record."""
        parts = _parts(path)
        found = _governing(self._folders, parts)
        observed = None if found is None else self._observed_at(parts, found[0])
        if found is None or observed is None:
            return None
        desired = frozenset(g.principal for g in found[1].grants)
        left_out = [c.name for c in self.channels
                    if c.audience and c.audience <= desired and not c.audience <= observed[1]]
        return (self._observed_names[observed[0]], left_out) if left_out else None

    def route_change(self, kind: str, path: str, old_path: str | None = None) -> list[Routed]:
        """Notices for one change: per channel, what it may be told."""
        new_side = self.channels_for(path)
        if kind not in ("moved", "renamed") or not old_path:
            return [Routed(c, kind, path) for c in new_side]
        old_side = self.channels_for(old_path)
        if self.is_governed_unique(old_path) or self.is_observed_unique(old_path):
            # A folder with its own permissions keeps them when it is renamed or moved: its readers
            # are still the old ones, whatever the model says about the new place.
            new_side = [c for c in new_side if c in old_side]
        if self.is_observed_unique(path):
            # Observed after the move with permissions of its own: they were its permissions at the
            # old place too, so channels the model lets read the old place may not read it.
            old_side = [c for c in old_side if c in new_side]
        out = [Routed(c, kind, path, old_path) if c in old_side else Routed(c, kind, path, None, "moved in")
               for c in new_side]
        out += [Routed(c, kind, old_path, None, "moved out") for c in old_side if c not in new_side]
        return out
