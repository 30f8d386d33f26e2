"""Bracket analysis (bot/texts/brackets.py): hand counts and properties of the parser.

We test these aspects: the bracket counts of the two committed Word revisions, per article, counted
by hand (the counts are worked out in comments beside each assertion); each kind (placeholder,
attribution, alternative, inline choice, unbalanced with location) on small texts; and, with
Hypothesis, that any balanced nesting rendered as text parses back to the same count, depth and
attributions however it is cut into paragraphs, that deleting any one bracket gives exactly one
unbalanced bracket of the right kind, and that arbitrary text never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.texts import BracketReport, analyse, extract
from bot.texts.brackets import Location, analyse_lines

FIXTURES = Path(__file__).parent.parent / "fixtures" / "texts"


def report(name: str) -> BracketReport:
    return analyse(extract((FIXTURES / name).read_bytes(), name))


def test_zero_draft_brackets_match_a_hand_count() -> None:
    r = report("zero_draft.docx")
    per_article = {a.key: (a.count, a.depth) for a in r.articles}
    assert per_article == {
        # "[importance][urgency]" = 2; "[KAZ: Desiring … [and transport]]" = 2, the inner one at depth 2.
        "Preamble": (4, 2),
        # "[all]" and "[CHN/PAK: and to the related services]".
        "Article 1": (2, 1),
        # Table: "[the authority][the authorities]" = 2 and "[XX]"; footnote "[UZB: …]" = 1.
        "Article 2": (4, 1),
        # No bracket left: the only bracketed paragraph was deleted with tracked changes.
        "Article 3": (0, 0),
        # Option 1: "[Each Party … [within [X] days].]" = 3 (depth 3); Option 2: "[TKM: …]" = 1.
        "Article 4": (4, 3),
        # The whole article, from "[Article 4 bis" to "rendered [date].]", and "[date]" inside it.
        "Article 4 bis": (2, 2),
        # "[on the date of [signature]" … "permitted.]]": 2 closed, the last "]" has no "[".
        "Article 5": (2, 2),
        # "[Alt 1: …]" and "[Alt 2: …]".
        "Annex I": (2, 1),
    }
    assert r.segments == 20
    assert r.clean == ("Article 3",)
    assert r.attributions == {"CHN": 1, "KAZ": 1, "PAK": 1, "TKM": 1, "UZB": 1}
    # "[XX]", "[X]", "[date]".
    assert r.placeholders == 3
    # "Option 1", "Option 2" in Article 4; "Alt 1", "Alt 2" in the annex.
    assert (r.article("Article 4").alternatives, r.article("Annex I").alternatives) == (2, 2)  # type: ignore[union-attr]
    # "[importance][urgency]" and "[the authority][the authorities]".
    assert r.inline_choices == 2
    (stray,) = r.unbalanced
    # "2. Reservations shall not be permitted.]]": the second "]" is at index 40.
    assert (stray.kind, stray.location) == ("unopened", Location("Article 5", 2, 40))
    assert str(stray) == "']' with no matching '[' at Article 5, paragraph 2, character 41"


def test_rev1_brackets_match_a_hand_count() -> None:
    r = report("rev1.docx")
    assert {a.key: a.count for a in r.articles} == {
        "Preamble": 2,        # the KAZ paragraph only; "[importance][urgency]" resolved
        "Article 1": 1,       # "[all]"; the CHN/PAK bracket dropped
        "Article 2": 1,       # new: "[through their customs authorities]"
        "Article 3": 2,       # "[XX]" and the UZB footnote; the choice resolved
        "Article 4": 0,
        "Article 5": 3,       # Option 1 only
        "Article 5 bis": 2,
        "Article 6": 0,       # both brackets resolved, the stray "]" gone
        "Annex I": 0,         # Alt 1 kept, without brackets
    }
    assert r.segments == 11
    assert r.clean == ("Article 4", "Article 6", "Annex I")
    assert r.unbalanced == ()


def test_placeholders_attributions_and_alternatives() -> None:
    a = analyse_lines("Article 9", [
        "Article 9",
        "Within [X] days, on [date], [insert name] and [ ] and […] and [...] and [70] per cent.",
        "[US/AU propose: a] [NZ/CA oppose] [KAZ, UZB: b] [ABC: not a participant] [Note: no]",
        "Alternative A: x. [Option (a): y] and Option 3 of the Convention (mid-sentence: not a marker).",
        "Alt. 2 - z.",
    ], codes=None)
    kinds = [s.kind for s in a.segments]
    # Placeholders: [X] [date] [insert name] [ ] […] [...]; "[70]" is a bracketed value, not a gap.
    assert kinds[:7] == ["placeholder"] * 6 + ["text"]
    # codes=None accepts any two- or three-capital code, so ABC counts; "Note" is not a code.
    assert [s.codes for s in a.segments[7:12]] == [("US", "AU"), ("NZ", "CA"), ("KAZ", "UZB"), ("ABC",), ()]
    assert a.alternatives == 3  # "Alternative A:", "Option (a):" after "[", "Alt. 2 -"; not "Option 3 of"

    only_participants = analyse_lines("x", ["[KAZ: a] [ABC: b] [KAZ/ABC: c]"])
    assert only_participants.attributions == {"KAZ": 1}


def test_inline_choices_are_runs_of_adjacent_segments() -> None:
    line = "Parties [shall][agree to] act [below 2 °C] [below 1.5 °C] / [well below 2 °C] now [a] b [c]"
    a = analyse_lines("x", [line])
    assert (a.count, a.inline_choices) == (7, 2)


def test_brackets_may_span_paragraphs_but_not_articles() -> None:
    a = analyse_lines("Article 2", ["[Article 2", "text", "more]"])
    assert (a.count, a.unbalanced) == (1, ())
    assert (a.segments[0].start, a.segments[0].end) == (Location("Article 2", 0, 0), Location("Article 2", 2, 4))
    open_ended = analyse_lines("Article 3", ["x [y", "z"])
    assert [(u.kind, u.location.paragraph, u.location.offset) for u in open_ended.unbalanced] == [("unclosed", 0, 2)]


# --- Properties ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    """A bracketed segment: optional proponent, then text and nested segments."""

    code: str | None
    children: tuple[Node | str, ...]


words = st.text(alphabet="abcdefgh .,;", min_size=0, max_size=6)
codes = st.sampled_from(["KAZ", "CHN", "PAK", "UZB", "CHN/PAK"])
trees = st.recursive(
    words,
    lambda inner: st.builds(Node, st.none() | codes, st.lists(inner, max_size=4).map(tuple)),
    max_leaves=40,
)
documents = st.lists(trees, min_size=1, max_size=6)


def render(item: Node | str) -> str:
    if isinstance(item, str):
        return item
    prefix = f"{item.code}: " if item.code else ""
    return "[" + prefix + "".join(render(c) for c in item.children) + "]"


def measure(item: Node | str, depth: int = 0) -> tuple[int, int, int]:
    """(segments, max depth, attributed segments) of a tree."""
    if isinstance(item, str):
        return 0, depth, 0
    parts = [measure(c, depth + 1) for c in item.children]
    return (1 + sum(p[0] for p in parts), max([depth + 1, *(p[1] for p in parts)]),
            (item.code is not None) + sum(p[2] for p in parts))


def cut(text: str, points: list[int]) -> list[str]:
    marks = sorted({p % (len(text) + 1) for p in points})
    return [text[a:b] for a, b in zip([0, *marks], [*marks, len(text)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(documents, st.lists(st.integers(min_value=0), max_size=5))
def test_a_rendered_balanced_tree_parses_back_to_its_count_and_depth(doc: list[Node | str], points: list[int]) -> None:
    text = " ".join(render(t) for t in doc)
    expected = [measure(t) for t in doc]
    a = analyse_lines("Article 1", cut(text, points))
    assert a.unbalanced == ()
    assert a.count == sum(e[0] for e in expected)
    assert a.depth == max(e[1] for e in expected)
    assert sum(s.kind == "attribution" for s in a.segments) == sum(e[2] for e in expected)


@settings(max_examples=300, deadline=None)
@given(documents, st.integers(min_value=0), st.lists(st.integers(min_value=0), max_size=3))
def test_deleting_one_bracket_reports_exactly_one_unbalanced(doc: list[Node | str], pick: int,
                                                             points: list[int]) -> None:
    text = " ".join(render(t) for t in doc)
    positions = [i for i, ch in enumerate(text) if ch in "[]"]
    if not positions:
        return
    at = positions[pick % len(positions)]
    deleted = text[at]
    a = analyse_lines("Article 1", cut(text[:at] + text[at + 1:], points))
    assert len(a.unbalanced) == 1
    assert a.unbalanced[0].kind == ("unopened" if deleted == "[" else "unclosed")
    assert a.count == len(positions) // 2 - 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("[]{}ab :/KAZXOption1…"), max_size=40), max_size=5))
def test_any_text_is_analysed_without_error_and_every_bracket_is_accounted_for(lines: list[str]) -> None:
    a = analyse_lines("Article 1", lines)
    brackets = sum(line.count("[") + line.count("]") for line in lines)
    assert 2 * a.count + len(a.unbalanced) == brackets
    assert a.clean == (brackets == 0)
