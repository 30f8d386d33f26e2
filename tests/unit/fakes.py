"""Test doubles on plain values for the ports the core owns (bot.ports)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.model import ActualFolder, ActualGroup


class UndeclaredOnlyReader:
    """A ``PermissionReader`` that sees no governed folder and no group, only the given undeclared
    items: for tests of what ``observe`` keeps of them."""

    def __init__(self, undeclared: Mapping[str, ActualFolder]) -> None:
        self._undeclared = dict(undeclared)

    def read_folders(self, paths: Sequence[str]) -> Mapping[str, ActualFolder]:
        return {}

    def read_groups(self, names: Sequence[str], patterns: Sequence[str] = ()) -> Mapping[str, ActualGroup]:
        return {}

    def self_keys(self) -> frozenset[str]:
        return frozenset()

    def undeclared(self) -> Mapping[str, ActualFolder]:
        return self._undeclared
