"""Ports of the permission cycle: what the core needs from the site and from the audit trail.

Where it sits: ``bot.observing`` and ``bot.applying`` speak only to these Protocols, in domain
values (``bot.model``); ``connectors.sharepoint_permissions`` implements the site ports over
SharePoint REST (and Graph for sharing links), ``bot.store.Store`` the audit port, and
``MemoryAuditLog`` below serves tests and dry runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bot.model import ActualFolder, ActualGroup
from bot.store.rows import AuditEntry

__all__ = ["AuditEntry", "AuditLog", "MemoryAuditLog", "PermissionReader", "PermissionWriter"]


class PermissionReader(Protocol):
    """Reads the actual state of governed folders and of the bot's groups."""

    def read_folders(self, paths: Sequence[str]) -> Mapping[str, ActualFolder]:
        """The folders among ``paths`` that exist (library-relative); missing ones are absent."""

    def read_groups(self, names: Sequence[str], patterns: Sequence[str] = ()) -> Mapping[str, ActualGroup]:
        """The site groups among ``names``, or whose name matches one of the ``patterns`` (regexes), that
        exist, with their members."""

    def undeclared(self) -> Mapping[str, ActualFolder]:
        """Items directly inside the folders of the last ``read_folders`` that were not asked for and
        have unique permissions (library-relative path → folder value; files too)."""

    def self_keys(self) -> frozenset[str]:
        """Principal keys of the bot's own app (never revoked)."""


class PermissionWriter(Protocol):
    """Applies one action at a time; each method raises on failure and changes nothing else."""

    def create_group(self, name: str, description: str) -> None: ...
    def delete_group(self, name: str) -> None: ...
    def set_group_description(self, name: str, description: str) -> None:
        """Replace a site group's Description (how ``MarkGroup`` adds the ownership marker)."""

    def add_member(self, group: str, person: str) -> None: ...
    def remove_member(self, group: str, login: str) -> None: ...
    def create_folder(self, path: str) -> None: ...
    def break_inheritance(self, path: str) -> None:
        """Break with copyRoleAssignments=false, clearSubscopes=false (children keep their own)."""

    def reset_inheritance(self, path: str) -> None: ...
    def grant(self, path: str, principal: str, level: str) -> None: ...
    def revoke(self, path: str, principal: str, level: str) -> None: ...
    def remove_sharing_link(self, path: str, group_login: str, level: str) -> None: ...


class AuditLog(Protocol):
    """Where applied changes are recorded (``bot.store.Store`` has this shape)."""

    def record_audit(self, entries: Sequence[AuditEntry]) -> None: ...
    def audit(self, since: str | None = None, limit: int | None = None) -> list[AuditEntry]: ...


class MemoryAuditLog:
    """An in-memory ``AuditLog`` (tests, and runs without a store)."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        self.entries.extend(entries)

    def audit(self, since: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        found = [e for e in self.entries if since is None or e.at >= since]
        return found[:limit] if limit is not None else found
