"""Observe the actual state the plan needs, and nothing more: governed folders and the bot's groups.

Where it sits: first I/O step of a permission cycle. The reader port decides how cheaply to read
(the SharePoint connector lists each parent's subfolders once with their role assignments
expanded, so a no-op cycle costs about one request per parent folder, plus one for groups).
"""

from __future__ import annotations

from bot.model import ActualState, DesiredState
from bot.ports import PermissionReader

__all__ = ["observe"]


def observe(desired: DesiredState, reader: PermissionReader) -> ActualState:
    """The actual state of ``desired``'s folders and groups."""
    folders = reader.read_folders([f.path for f in desired.folders])
    groups = reader.read_groups([g.name for g in desired.groups])
    return ActualState(dict(folders), dict(groups), reader.self_keys())
