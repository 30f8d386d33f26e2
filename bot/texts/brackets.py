"""Bracket analysis: how far a negotiating text is from clean, per article and in total.

Second step of the text layer (extract -> analyse -> compare); pure, never raises on odd text.
What is counted, precisely:

* The unit is the article (``Article.lines()``: heading = paragraph 0, then paragraphs 1..n,
  footnotes included). Its lines are read as one stream, so a bracket may open in one paragraph
  and close in a later one (whole-paragraph and whole-article brackets are common); it may not
  span articles: brackets still open at the end of an article are reported there.
* **Bracketed segment**: each ``[`` that is closed by a later ``]`` in the same article, matched
  innermost first. Nested segments count too: ``[a [b] [c]]`` is 3 segments, ``[[x]]`` is 2.
  A segment's **depth** is 1 when no other segment encloses it, 2 inside one, and so on; an
  article's depth is the largest among its segments (0 with none).
* **Unbalanced**: a ``]`` with no open ``[`` before it ("unopened"), or a ``[`` left open at the
  end of the article ("unclosed"); each reported at that bracket as (article, paragraph, char
  offset in the paragraph). An unopened ``]`` is skipped and does not close anything.
* **Placeholder**: a segment whose whole content is a gap to fill: empty, ``…``/``...``, ``X``/``XX``,
  ``_``, ``date``, ``number``, ``insert …``, ``TBD`` and the like (``[…]``, ``[XX]``, ``[date]``);
  also counted as a segment. A ``{…}`` (UNFCCC style) counts as a placeholder, not as a segment.
* **Attribution**: a segment whose content starts with participant codes and a colon,
  ``[KAZ: …]``, ``[CHN/PAK: …]``, or ``[US/AU propose: …]``/``[NZ/CA oppose]``; only codes in the
  participant set given to ``analyse`` count. A joint attribution counts once for each code.
* **Alternative**: a marker ``Alt 1``, ``Alt. 2``, ``Alternative A``, ``Option 2``, ``Option (a)`` at
  the start of a paragraph or just after ``[``, followed by ``:``, ``.``, ``)``, ``]``, a dash or the
  paragraph's end; each marker is one alternative. **Inline choices** are runs of two or more
  segments of the same depth separated only by spaces, ``/`` or "or" (``[shall][may]``): one per run.
* **Clean** article: not a single ``[`` or ``]`` left (placeholders are brackets too).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bot.texts.model import Article, TextDocument

__all__ = ["CAREC_CODES", "ArticleBrackets", "BracketReport", "Location", "Segment", "Unbalanced", "analyse",
           "analyse_article"]

#: Alpha-3 codes of the CAREC members (domain.md §1.3): the default participant set for attributions.
#: The live set comes from the CARTIF structure (participants and observers) and is passed in.
CAREC_CODES = frozenset({"AFG", "AZE", "CHN", "GEO", "KAZ", "KGZ", "MNG", "PAK", "TJK", "TKM", "UZB"})

_BRACKET = re.compile(r"[\[\]]")
_PLACEHOLDER = re.compile(
    r"^(?:|…+|\.{2,}|_+|-+|•+|\*+|\?+|x+|\d*\s*x+|n|date|day|month|year|number|no\.|name|amount|percentage|"
    r"x+\s*(?:days|months|years|per\s*cent|%)|(?:insert|placeholder|to be|reserved)\b.*|tb[dc])$", re.I)
_CURLY = re.compile(r"\{[^{}\[\]]{0,200}\}")
_CODES = re.compile(r"^\s*(?P<codes>[A-Z]{2,3}(?:\s*[/,]\s*[A-Z]{2,3})*)\s*(?:(?P<verb>propos\w*|oppos\w*)\s*)?"
                    r"(?::|(?(verb)$|(?!)))")
_ALTERNATIVE = re.compile(r"(?:^|(?<=\[))\s*(?:Alt(?:ernative)?\.?|Option)\s*"
                          r"(?:\d+[a-z]?|\([a-z0-9]{1,4}\)|[IVX]{1,4}\b|[A-Z]\b)\s*(?=[:.)\]–—-]|$)", re.I)
_BETWEEN_CHOICES = re.compile(r"^\s*(?:/|or|,)?\s*$", re.I)


@dataclass(frozen=True)
class Location:
    """Where a bracket is: article key, paragraph (0 = heading line), character offset in that paragraph."""

    article: str
    paragraph: int
    offset: int

    def __str__(self) -> str:
        where = "heading" if self.paragraph == 0 else f"paragraph {self.paragraph}"
        return f"{self.article}, {where}, character {self.offset + 1}"

    def to_json(self) -> dict[str, Any]:
        return {"article": self.article, "paragraph": self.paragraph, "offset": self.offset}


SegmentKind = Literal["text", "placeholder", "attribution"]


@dataclass(frozen=True)
class Segment:
    """One closed bracket pair: where it opens and closes, its depth, what kind, and who it is attributed to."""

    start: Location
    end: Location
    depth: int
    kind: SegmentKind
    codes: tuple[str, ...] = ()
    excerpt: str = ""
    """The first 80 characters of the content (for display)."""

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.to_json(), "end": self.end.to_json(), "depth": self.depth, "kind": self.kind,
                "codes": list(self.codes), "excerpt": self.excerpt}


@dataclass(frozen=True)
class Unbalanced:
    """A bracket without its partner: an ``]`` never opened or an ``[`` never closed."""

    location: Location
    kind: Literal["unopened", "unclosed"]

    def __str__(self) -> str:
        what = "']' with no matching '['" if self.kind == "unopened" else "'[' never closed"
        return f"{what} at {self.location}"

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location.to_json(), "kind": self.kind, "message": str(self)}


@dataclass(frozen=True)
class ArticleBrackets:
    """The bracket counts of one article (see the module docstring for what each counts)."""

    key: str
    segments: tuple[Segment, ...]
    unbalanced: tuple[Unbalanced, ...]
    alternatives: int
    inline_choices: int
    curly_placeholders: int

    @property
    def count(self) -> int:
        return len(self.segments)

    @property
    def depth(self) -> int:
        return max((s.depth for s in self.segments), default=0)

    @property
    def placeholders(self) -> int:
        return sum(s.kind == "placeholder" for s in self.segments) + self.curly_placeholders

    @property
    def attributions(self) -> dict[str, int]:
        """Segments attributed to each participant code, codes sorted."""
        c = Counter(code for s in self.segments for code in s.codes)
        return dict(sorted(c.items()))

    @property
    def clean(self) -> bool:
        return not self.segments and not self.unbalanced

    def to_json(self, *, segments: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key, "segments": self.count, "depth": self.depth, "alternatives": self.alternatives,
            "inline_choices": self.inline_choices, "placeholders": self.placeholders,
            "attributions": self.attributions, "clean": self.clean,
            "unbalanced": [u.to_json() for u in self.unbalanced]}
        if segments:
            out["segment_list"] = [s.to_json() for s in self.segments]
        return out


@dataclass(frozen=True)
class BracketReport:
    """Per-article bracket counts of one text, in document order, with totals."""

    filename: str
    articles: tuple[ArticleBrackets, ...]

    def article(self, key: str) -> ArticleBrackets | None:
        return next((a for a in self.articles if a.key == key), None)

    @property
    def segments(self) -> int:
        return sum(a.count for a in self.articles)

    @property
    def depth(self) -> int:
        return max((a.depth for a in self.articles), default=0)

    @property
    def alternatives(self) -> int:
        return sum(a.alternatives for a in self.articles)

    @property
    def inline_choices(self) -> int:
        return sum(a.inline_choices for a in self.articles)

    @property
    def placeholders(self) -> int:
        return sum(a.placeholders for a in self.articles)

    @property
    def attributions(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for a in self.articles:
            c.update(a.attributions)
        return dict(sorted(c.items()))

    @property
    def unbalanced(self) -> tuple[Unbalanced, ...]:
        return tuple(u for a in self.articles for u in a.unbalanced)

    @property
    def clean(self) -> tuple[str, ...]:
        """Keys of the articles with no bracket left (the early-harvest candidates)."""
        return tuple(a.key for a in self.articles if a.clean)

    def to_json(self, *, segments: bool = False) -> dict[str, Any]:
        return {"filename": self.filename,
                "total": {"segments": self.segments, "depth": self.depth, "alternatives": self.alternatives,
                          "inline_choices": self.inline_choices, "placeholders": self.placeholders,
                          "attributions": self.attributions, "unbalanced": len(self.unbalanced),
                          "articles": len(self.articles), "clean_articles": len(self.clean)},
                "clean": list(self.clean),
                "articles": [a.to_json(segments=segments) for a in self.articles]}


def analyse(doc: TextDocument, *, codes: Collection[str] | None = CAREC_CODES) -> BracketReport:
    """Count the brackets of every article of ``doc``; ``codes`` is the participant set (None: any 2–3 capitals)."""
    wanted = frozenset(c.upper() for c in codes) if codes is not None else None
    return BracketReport(doc.filename, tuple(analyse_article(a, codes=wanted) for a in doc.articles))


def analyse_article(article: Article, *, codes: Collection[str] | None = CAREC_CODES) -> ArticleBrackets:
    return analyse_lines(article.key, article.lines(), codes=codes)


def analyse_lines(key: str, lines: Iterable[str], *, codes: Collection[str] | None = CAREC_CODES) -> ArticleBrackets:
    """The parser proper, on the lines of one article (exposed for property tests)."""
    text_lines = list(lines)
    # Open brackets: (paragraph, offset, slot in reading order, continues an inline-choice run).
    stack: list[tuple[int, int, int, bool]] = []
    closed: dict[int, Segment] = {}
    slots = 0
    unbalanced: list[Unbalanced] = []
    alternatives = curly = choices = 0
    # Inline choices: per depth, the last closed segment (paragraph, end offset, part of a counted run).
    last_close: dict[int, tuple[int, int, bool]] = {}
    for p, line in enumerate(text_lines):
        alternatives += len(_ALTERNATIVE.findall(line))
        curly += len(_CURLY.findall(line)) if "{" in line else 0
        if "[" not in line and "]" not in line:
            continue
        for m in _BRACKET.finditer(line):
            off = m.start()
            if m.group() == "[":
                depth = len(stack) + 1
                prev = last_close.get(depth)
                in_run = bool(prev and prev[0] == p and _BETWEEN_CHOICES.match(line[prev[1] + 1:off]))
                if in_run and prev is not None and not prev[2]:
                    choices += 1
                stack.append((p, off, slots, in_run))
                slots += 1
                continue
            if not stack:
                unbalanced.append(Unbalanced(Location(key, p, off), "unopened"))
                continue
            sp, so, slot, in_run = stack.pop()
            depth = len(stack) + 1
            kind, found_codes, excerpt = _classify(text_lines, (sp, so), (p, off), codes)
            closed[slot] = Segment(Location(key, sp, so), Location(key, p, off), depth, kind, found_codes, excerpt)
            last_close[depth] = (p, off, in_run)
            # Runs inside this segment end with it.
            for d in [d for d in last_close if d > depth]:
                del last_close[d]
    unbalanced.extend(Unbalanced(Location(key, sp, so), "unclosed") for sp, so, _, _ in stack)
    unbalanced.sort(key=lambda u: (u.location.paragraph, u.location.offset))
    segments = tuple(closed[i] for i in sorted(closed))
    return ArticleBrackets(key, segments, tuple(unbalanced), alternatives, choices, curly)


def _classify(lines: list[str], start: tuple[int, int], end: tuple[int, int],
              codes: Collection[str] | None) -> tuple[SegmentKind, tuple[str, ...], str]:
    (sp, so), (ep, eo) = start, end
    if sp == ep:
        head = lines[sp][so + 1:eo]
    else:
        # A segment spanning paragraphs: its start may be on the next line ("[" alone, then "KAZ: …").
        parts = [lines[sp][so + 1:]]
        for k in range(sp + 1, ep + 1):
            if sum(map(len, parts)) >= 200:
                break
            parts.append(lines[k][:eo] if k == ep else lines[k])
        head = "".join(parts)
    excerpt = head[:80]
    if sp == ep and "[" not in head and _PLACEHOLDER.match(head.strip()):
        return "placeholder", (), excerpt
    m = _CODES.match(head)
    if m:
        found = tuple(dict.fromkeys(c.strip() for c in re.split(r"[/,]", m.group("codes"))))
        if codes is None or all(c in codes for c in found):
            return "attribution", found, excerpt
    return "text", (), excerpt
