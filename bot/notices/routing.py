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

Known limit: the model is the DESIRED one. A subfolder someone gave narrower permissions by hand
(drift the reconcile does not govern) is treated as inheriting from its governed parent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from bot.desired import build_desired
from bot.model import DesiredState, FolderSpec
from config.structure import ALL_PARTICIPANTS, ChannelSpec, Structure, group_ref_kind

__all__ = ["Channel", "Routed", "Router", "expand_channels", "normalise_path"]


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
    """Routes paths to channels (see the module docstring). Pure; build once per drain."""

    def __init__(self, structure: Structure, desired: DesiredState | None = None) -> None:
        self.structure = structure
        self.desired = desired if desired is not None else build_desired(structure)
        self.channels: tuple[Channel, ...] = tuple(expand_channels(structure))
        # SharePoint paths are case-insensitive.
        self._folders: dict[str, FolderSpec] = {f.path.lower(): f for f in self.desired.folders}

    def governing_folder(self, path: str) -> FolderSpec | None:
        """The governed folder with unique permissions that ``path`` gets its permissions from."""
        parts = normalise_path(path).lower().split("/") if normalise_path(path) else []
        for depth in range(len(parts), 0, -1):
            spec = self._folders.get("/".join(parts[:depth]))
            if spec is not None and spec.unique:
                return spec
            # A governed folder that inherits: keep walking up to its parent. An ungoverned one: the
            # same (it inherits too, as far as the model knows).
        return None

    def is_governed_unique(self, path: str) -> bool:
        """True when ``path`` IS a governed folder with unique permissions (they travel with it)."""
        spec = self._folders.get(normalise_path(path).lower())
        return spec is not None and spec.unique

    def readers(self, path: str) -> frozenset[str] | None:
        """Principal keys (group names) that may read ``path``; None when no governed folder says."""
        spec = self.governing_folder(path)
        return None if spec is None else frozenset(g.principal for g in spec.grants)

    def channels_for(self, path: str) -> list[str]:
        """Channels whose WHOLE audience may read ``path``, in declaration order."""
        readers = self.readers(path)
        if readers is None:
            return []
        return [c.name for c in self.channels if c.audience and c.audience <= readers]

    def route_change(self, kind: str, path: str, old_path: str | None = None) -> list[Routed]:
        """Notices for one change: per channel, what it may be told."""
        new_side = self.channels_for(path)
        if kind not in ("moved", "renamed") or not old_path:
            return [Routed(c, kind, path) for c in new_side]
        old_side = self.channels_for(old_path)
        if self.is_governed_unique(old_path):
            # A folder with its own permissions keeps them when it is renamed or moved: its readers
            # are still the old ones, whatever the model says about the new place.
            new_side = [c for c in new_side if c in old_side]
        out = [Routed(c, kind, path, old_path) if c in old_side else Routed(c, kind, path, None, "moved in")
               for c in new_side]
        out += [Routed(c, kind, old_path, None, "moved out") for c in old_side if c not in new_side]
        return out
