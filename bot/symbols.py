"""Document symbols: parse, format and allocate WTO-style symbols with a stack of suffixes.

Where it sits: pure values used by ``bot.circulation`` (which symbol a circulation gets) and by
the register commands (``register show/diff SYMBOL``). No I/O, no clock.

A symbol is a series' stem, a sequence number and a suffix stack (domain.md §2.1)::

    CARTIF/WG-TF/W/3              the 3rd working document of series WG-TF
    CARTIF/WG-TF/W/3/Rev.2        its 2nd revision (replaces the whole document)
    CARTIF/WG-TF/W/3/Add.1/Rev.1  the 1st revision of its 1st addendum
    CARTIF/WG-TF/W/3/Corr.1       a corrigendum to it

The stem comes from the series' pattern (``CARTIF/{series}/W/{n}`` by default, ``{n}`` last).
Allocation: an original takes the series' next number; a revision, addendum or corrigendum of X
appends ``/Rev.k``, ``/Add.k`` or ``/Corr.k`` to X — except that revising a revision (or
correcting a corrigendum) replaces X's last suffix, so Rev.1 is followed by Rev.2, never by
``Rev.1/Rev.1``. ``k`` is one more than the highest such symbol already registered.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Literal

from bot.events import CirculationKind

__all__ = ["SUFFIX_KINDS", "Suffix", "SuffixKind", "Symbol", "SymbolError", "archive_name", "next_symbol",
           "series_stem"]

SuffixKind = Literal["Rev", "Add", "Corr"]
#: Circulation kind → the suffix it appends (an original appends none).
SUFFIX_KINDS: dict[CirculationKind, SuffixKind] = {"revision": "Rev", "addendum": "Add", "corrigendum": "Corr"}

_SYMBOL = re.compile(r"(?P<stem>[^\s/][^\s]*?)/(?P<n>[1-9]\d*)(?P<suffixes>(?:/(?:Rev|Add|Corr)\.[1-9]\d*)*)")
_SUFFIX = re.compile(r"/(Rev|Add|Corr)\.([1-9]\d*)")


class SymbolError(ValueError):
    """A text that is not a document symbol, or a pattern that cannot make one."""


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class Suffix:
    """One element of the suffix stack: ``Rev.2`` is ``Suffix("Rev", 2)``."""

    kind: SuffixKind
    n: int

    def __str__(self) -> str:
        return f"{self.kind}.{self.n}"


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class Symbol:
    """A parsed symbol; ``str(symbol)`` gives it back exactly."""

    stem: str                             #: "CARTIF/WG-TF/W"
    number: int                           #: 3
    suffixes: tuple[Suffix, ...] = ()     #: (Rev.2,) — outermost last

    def __post_init__(self) -> None:
        if self.number < 1 or not self.stem or any(s.n < 1 for s in self.suffixes):
            raise SymbolError(f"not a valid symbol: stem {self.stem!r}, number {self.number}")

    def __str__(self) -> str:
        return f"{self.stem}/{self.number}" + "".join(f"/{s}" for s in self.suffixes)

    @classmethod
    def parse(cls, text: str) -> Symbol:
        """``CARTIF/WG-TF/W/3/Add.1/Rev.1`` → Symbol; ``SymbolError`` names what is wrong."""
        value = text.strip()
        match = _SYMBOL.fullmatch(value)
        if match is None:
            raise SymbolError(f"{text!r} is not a document symbol (expected like CARTIF/WG-TF/W/3 or "
                              "CARTIF/WG-TF/W/3/Rev.1)")
        suffixes = tuple(Suffix(k, int(n)) for k, n in _SUFFIX.findall(match.group("suffixes")))  # type: ignore[arg-type]
        return cls(match.group("stem"), int(match.group("n")), suffixes)

    @property
    def document(self) -> Symbol:
        """The original this one belongs to (no suffixes): ``…/W/3/Rev.2`` → ``…/W/3``."""
        return Symbol(self.stem, self.number)

    def push(self, kind: SuffixKind, n: int) -> Symbol:
        return Symbol(self.stem, self.number, (*self.suffixes, Suffix(kind, n)))

    @property
    def kind(self) -> CirculationKind:
        """What the outermost suffix makes of it: original, revision, addendum or corrigendum."""
        if not self.suffixes:
            return "original"
        return {"Rev": "revision", "Add": "addendum", "Corr": "corrigendum"}[self.suffixes[-1].kind]  # type: ignore[return-value]


def series_stem(pattern: str, series: str) -> str:
    """The stem of a series' symbols from its pattern: ``CARTIF/{series}/W/{n}`` + WG-TF → ``CARTIF/WG-TF/W``."""
    if not pattern.endswith("/{n}") or pattern.count("{n}") != 1:
        raise SymbolError(f"symbol pattern {pattern!r} must end with /{{n}}, e.g. CARTIF/{{series}}/W/{{n}}")
    stem = pattern[: -len("/{n}")].replace("{series}", series)
    if "{" in stem or "}" in stem or not stem or any(c.isspace() for c in stem):
        raise SymbolError(f"symbol pattern {pattern!r} may use only {{series}} and {{n}} and no spaces")
    return stem


def next_symbol(stem: str, kind: CirculationKind, existing: Iterable[str | Symbol],
                revises: str | Symbol | None = None) -> Symbol:
    """The symbol a new circulation gets, given every symbol already registered.

    ``stem`` is the series' stem (``series_stem``); ``revises`` is required for a revision,
    addendum or corrigendum (the symbol it revises, adds to or corrects) and forbidden for an
    original.
    """
    known = [s if isinstance(s, Symbol) else Symbol.parse(s) for s in existing]
    if kind == "original":
        if revises is not None:
            raise SymbolError("an original revises nothing")
        used = [s.number for s in known if s.stem == stem]
        return Symbol(stem, max(used, default=0) + 1)
    if revises is None:
        raise SymbolError(f"a {kind} needs the symbol it applies to")
    target = revises if isinstance(revises, Symbol) else Symbol.parse(revises)
    suffix = SUFFIX_KINDS[kind]
    base = target
    # Rev.1 is followed by Rev.2 (a revision replaces the whole document), Corr.1 by Corr.2.
    if suffix in ("Rev", "Corr") and target.suffixes and target.suffixes[-1].kind == suffix:
        base = Symbol(target.stem, target.number, target.suffixes[:-1])
    taken = [s.suffixes[-1].n for s in known
             if s.suffixes and s.suffixes[-1].kind == suffix
             and (s.stem, s.number, s.suffixes[:-1]) == (base.stem, base.number, base.suffixes)]
    return base.push(suffix, max(taken, default=0) + 1)


def archive_name(symbol: str | Symbol, extension: str) -> str:
    """The archive copy's file name: ``CARTIF/WG-TF/W/1/Rev.1`` + ``.docx`` → ``CARTIF_WG-TF_W_1_Rev.1.docx``."""
    ext = extension if not extension or extension.startswith(".") else "." + extension
    return str(symbol).replace("/", "_") + ext.lower()
