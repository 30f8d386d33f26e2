"""Document symbols on plain values.

We test these aspects: parsing and formatting round-trip for every shape (Hypothesis); bad
symbols and patterns are refused with a message; allocation of originals, revisions of
revisions, revisions of addenda, addenda, corrigenda; archive names.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.symbols import Suffix, Symbol, SymbolError, archive_name, next_symbol, series_stem

STEM = "CARTIF/WG-TF/W"

stems = st.from_regex(r"[A-Z][A-Z0-9()-]{0,8}(/[A-Z][A-Z0-9()-]{0,8}){0,3}", fullmatch=True)
suffix_stacks = st.lists(st.builds(Suffix, st.sampled_from(["Rev", "Add", "Corr"]), st.integers(1, 999)),
                         max_size=4).map(tuple)


@given(stems, st.integers(1, 10**6), suffix_stacks)
def test_formatting_then_parsing_gives_the_same_symbol(stem: str, number: int, suffixes: tuple[Suffix, ...]) -> None:
    symbol = Symbol(stem, number, suffixes)
    assert Symbol.parse(str(symbol)) == symbol
    assert str(Symbol.parse(str(symbol))) == str(symbol)


@pytest.mark.parametrize(("text", "stem", "number", "suffixes"), [
    ("CARTIF/WG-TF/W/3", STEM, 3, ()),
    ("CARTIF/WG-TF/W/3/Rev.2", STEM, 3, (Suffix("Rev", 2),)),
    ("CARTIF/WG-TF/W/3/Add.1/Rev.1", STEM, 3, (Suffix("Add", 1), Suffix("Rev", 1))),
    ("WT/MIN(24)/W/10", "WT/MIN(24)/W", 10, ()),
    ("X/2024/W/5/Corr.1", "X/2024/W", 5, (Suffix("Corr", 1),)),
])
def test_parsing_known_symbols(text: str, stem: str, number: int, suffixes: tuple[Suffix, ...]) -> None:
    assert Symbol.parse(text) == Symbol(stem, number, suffixes)


@pytest.mark.parametrize("text", ["", "CARTIF", "CARTIF/WG-TF/W", "CARTIF/WG-TF/W/0", "CARTIF/WG-TF/W/3/Rev.0",
                                  "CARTIF/WG-TF/W/3/Rev", "CARTIF/WG-TF/W/3/Foo.1", "/3", "CARTIF /W/1"])
def test_non_symbols_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(SymbolError, match="expected like"):
        Symbol.parse(text)


def test_the_kind_is_the_outermost_suffix() -> None:
    assert Symbol.parse("CARTIF/WG-TF/W/3").kind == "original"
    assert Symbol.parse("CARTIF/WG-TF/W/3/Add.1/Rev.1").kind == "revision"
    assert Symbol.parse("CARTIF/WG-TF/W/3/Rev.1/Add.1").kind == "addendum"
    assert Symbol.parse("CARTIF/WG-TF/W/3/Rev.1/Add.1").document == Symbol(STEM, 3)


def test_series_stem_comes_from_the_pattern() -> None:
    assert series_stem("CARTIF/{series}/W/{n}", "WG-TF") == STEM
    assert series_stem("CARTIF/INF/{n}", "INF") == "CARTIF/INF"
    for bad in ("CARTIF/{series}/W", "CARTIF/{n}/W/{n}", "CARTIF/{other}/{n}", "{n}"):
        with pytest.raises(SymbolError):
            series_stem(bad, "WG-TF")


@pytest.mark.parametrize(("existing", "kind", "revises", "expected"), [
    ([], "original", None, "CARTIF/WG-TF/W/1"),
    (["CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/2/Rev.1", "CARTIF/PLEN/W/9"], "original", None, "CARTIF/WG-TF/W/3"),
    (["CARTIF/WG-TF/W/1"], "revision", "CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1"),
    (["CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1"], "revision", "CARTIF/WG-TF/W/1/Rev.1", "CARTIF/WG-TF/W/1/Rev.2"),
    # Revising the original again after Rev.2 exists still gives the next revision.
    (["CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1", "CARTIF/WG-TF/W/1/Rev.2"], "revision", "CARTIF/WG-TF/W/1",
     "CARTIF/WG-TF/W/1/Rev.3"),
    (["CARTIF/WG-TF/W/3", "CARTIF/WG-TF/W/3/Add.1"], "revision", "CARTIF/WG-TF/W/3/Add.1",
     "CARTIF/WG-TF/W/3/Add.1/Rev.1"),
    (["CARTIF/WG-TF/W/3", "CARTIF/WG-TF/W/3/Add.1"], "addendum", "CARTIF/WG-TF/W/3", "CARTIF/WG-TF/W/3/Add.2"),
    (["CARTIF/WG-TF/W/3", "CARTIF/WG-TF/W/3/Rev.1"], "addendum", "CARTIF/WG-TF/W/3/Rev.1",
     "CARTIF/WG-TF/W/3/Rev.1/Add.1"),
    (["CARTIF/WG-TF/W/3", "CARTIF/WG-TF/W/3/Corr.1"], "corrigendum", "CARTIF/WG-TF/W/3/Corr.1",
     "CARTIF/WG-TF/W/3/Corr.2"),
    (["CARTIF/WG-TF/W/3", "CARTIF/WG-TF/W/3/Add.2"], "corrigendum", "CARTIF/WG-TF/W/3/Add.2",
     "CARTIF/WG-TF/W/3/Add.2/Corr.1"),
])
def test_next_symbol(existing: list[str], kind: str, revises: str | None, expected: str) -> None:
    assert str(next_symbol(STEM, kind, existing, revises)) == expected  # type: ignore[arg-type]


def test_next_symbol_needs_a_target_exactly_when_not_an_original() -> None:
    with pytest.raises(SymbolError):
        next_symbol(STEM, "revision", [], None)
    with pytest.raises(SymbolError):
        next_symbol(STEM, "original", [], "CARTIF/WG-TF/W/1")


@given(st.lists(st.sampled_from(["original", "revision", "addendum", "corrigendum"]), max_size=30), st.data())
def test_allocated_symbols_are_never_reused(kinds: list[str], data: st.DataObject) -> None:
    registered: list[str] = []
    for kind in kinds:
        if kind != "original" and not registered:
            continue
        target = data.draw(st.sampled_from(registered)) if kind != "original" else None
        symbol = str(next_symbol(STEM, kind, registered, target))  # type: ignore[arg-type]
        assert symbol not in registered
        assert Symbol.parse(symbol).kind == kind
        registered.append(symbol)


def test_archive_names_replace_slashes() -> None:
    assert archive_name("CARTIF/WG-TF/W/1/Rev.1", ".DOCX") == "CARTIF_WG-TF_W_1_Rev.1.docx"
    assert archive_name(Symbol(STEM, 1), "txt") == "CARTIF_WG-TF_W_1.txt"
