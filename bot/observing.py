"""Observe the actual state the plan needs, and nothing more: governed folders and the bot's groups.

Where it sits: first I/O step of a permission cycle. The reader port decides how cheaply to read
(the SharePoint connector lists each parent's subfolders once with their role assignments
expanded, so a no-op cycle costs about one request per parent folder, plus one for groups, plus
⌈library items / 5,000⌉ for the deep scan). The same listings reach one level below every governed
folder, so undeclared subfolders and files with unique permissions there come at no extra request;
the deep scan (every list item's unique-permission flag, in pages) finds those at any depth below,
each costing one more request for its role assignments. The group listing also returns stale groups
(named by the bot's patterns, no longer declared) with their Description: whether one carries the
bot's ownership marker (``bot.model.GROUP_MARKER``), and so may be deleted, is the planner's decision.
Everything inside folders whose items the bot itself protects (the circulation archive,
``DesiredState.item_managed``), at any depth, is left out of the undeclared items.
"""

from __future__ import annotations

from bot.model import ActualState, DesiredState
from bot.ports import PermissionReader

__all__ = ["observe"]


def observe(desired: DesiredState, reader: PermissionReader) -> ActualState:
    """The actual state of ``desired``'s folders and groups."""
    folders = reader.read_folders([f.path for f in desired.folders])
    names = {g.name for g in desired.groups}
    groups = reader.read_groups(sorted(names), desired.managed_groups)
    return ActualState(dict(folders), {n: g for n, g in groups.items() if n in names}, reader.self_keys(),
                       stale_groups={n: g for n, g in groups.items() if n not in names},
                       undeclared={p: f for p, f in reader.undeclared().items()
                                   if not _inside(p, desired.item_managed)})


def _inside(path: str, folders: frozenset[str]) -> bool:
    """True when one of ``path``'s ancestors is in ``folders``."""
    parts = path.split("/")
    return any("/".join(parts[:depth]) in folders for depth in range(1, len(parts)))
