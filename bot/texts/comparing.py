"""Comparison of two revisions: which articles were added, removed, changed or renumbered, the
bracket counts before and after, and a word-level HTML redline.

Last step of the text layer (extract -> analyse -> compare). Articles are matched in this order,
each step only among those still unmatched:

1. same key and same body (unchanged);
2. same body under another key (renumbered), aligned in document order so that inserting an
   article before others, which shifts their numbers, pairs each with its old self;
3. similar body (changed, renumbered or not), best pairs first, the same key breaking ties;
   similarity = overlap of the bodies' word trigrams (Dice) ≥
   ``SIMILAR``: unrelated articles of one agreement share most of their words, but few runs of three;
4. same key whatever the body (rewritten in place);
the rest are removed (old) or added (new).

The redline diffs paragraphs first (difflib on whole paragraphs, cheap) and words only inside the
paragraphs that changed, so a 300-page text costs little more than its changed paragraphs.
"""

from __future__ import annotations

import difflib
import html
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.texts.brackets import CAREC_CODES, ArticleBrackets, BracketReport, analyse_article
from bot.texts.model import Article, TextDocument

__all__ = ["SIMILAR", "ArticleChange", "Comparison", "compare", "redline_html"]

#: Similarity from which two articles (trigram overlap) or two paragraphs of a changed block (word
#: overlap) are taken for the same one, 0..1. An amended article keeps most of its word trigrams (a
#: changed word breaks three); unrelated articles share few beyond boilerplate.
SIMILAR = 0.5
#: Candidate old articles examined per new article in step 3 (those sharing most rare trigrams).
CANDIDATES = 5
#: Added to the similarity of a same-key pair so that, among equally similar candidates, the
#: article keeps its number.
TIE_BONUS = 0.01
#: Word-level diffs over more tokens than this let difflib's autojunk skip very common tokens
#: (spaces, "the"): the diff is a little less minimal but stays near-linear on long paragraphs.
AUTOJUNK_FROM = 4000

Status = Literal["unchanged", "changed", "added", "removed"]


@dataclass(frozen=True)
class ArticleChange:
    """One article across the two revisions: its status, keys and bracket counts before/after."""

    status: Status
    old_key: str | None
    new_key: str | None
    brackets_before: int | None
    brackets_after: int | None
    clean_before: bool | None
    clean_after: bool | None
    similarity: float
    """Word overlap between the two bodies (1.0 identical; 0.0 for added/removed)."""
    old: Article | None = field(default=None, repr=False, compare=False)
    new: Article | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return self.new_key or self.old_key or ""

    @property
    def renumbered(self) -> bool:
        return self.old_key is not None and self.new_key is not None and self.old_key != self.new_key

    @property
    def bracket_change(self) -> int:
        return (self.brackets_after or 0) - (self.brackets_before or 0)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "old_key": self.old_key, "new_key": self.new_key,
                "renumbered": self.renumbered, "brackets_before": self.brackets_before,
                "brackets_after": self.brackets_after, "bracket_change": self.bracket_change,
                "clean_before": self.clean_before, "clean_after": self.clean_after,
                "similarity": round(self.similarity, 3)}


@dataclass(frozen=True)
class Comparison:
    """The article-by-article comparison of an old and a new revision, in the new text's order."""

    old_filename: str
    new_filename: str
    changes: tuple[ArticleChange, ...]

    def _keys(self, status: Status) -> tuple[str, ...]:
        return tuple(c.key for c in self.changes if c.status == status)

    @property
    def added(self) -> tuple[str, ...]:
        return self._keys("added")

    @property
    def removed(self) -> tuple[str, ...]:
        return self._keys("removed")

    @property
    def changed(self) -> tuple[str, ...]:
        return self._keys("changed")

    @property
    def renumbered(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.old_key or "", c.new_key or "") for c in self.changes if c.renumbered)

    @property
    def brackets_before(self) -> int:
        return sum(c.brackets_before or 0 for c in self.changes)

    @property
    def brackets_after(self) -> int:
        return sum(c.brackets_after or 0 for c in self.changes)

    @property
    def newly_clean(self) -> tuple[str, ...]:
        """Articles that had brackets (or did not exist) before and have none now."""
        return tuple(c.key for c in self.changes if c.clean_after and not c.clean_before)

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old_filename, "new": self.new_filename,
                "added": list(self.added), "removed": list(self.removed), "changed": list(self.changed),
                "renumbered": [list(p) for p in self.renumbered],
                "brackets": {"before": self.brackets_before, "after": self.brackets_after,
                             "change": self.brackets_after - self.brackets_before},
                "newly_clean": list(self.newly_clean),
                "articles": [c.to_json() for c in self.changes]}


# --- Matching --------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def _fingerprint(article: Article, vocabulary: dict[str, int]) -> frozenset[int]:
    """The article's word trigrams as integers. Words are numbered in order of first sight (not by
    ``hash``, which varies between runs), so the same two texts always give the same matching."""
    ids = [vocabulary.setdefault(w, len(vocabulary)) for w in _WORD.findall(" ".join(article.paragraphs).lower())]
    if len(ids) < 3:
        return frozenset(ids)
    return frozenset((a << 42) | (b << 21) | c for a, b, c in zip(ids, ids[1:], ids[2:], strict=False))


def _sample(fingerprint: frozenset[int]) -> Iterable[int]:
    # Candidates are found from about one trigram in eight (chosen by a multiplicative hash of the
    # trigram, the same rule on both sides); each candidate's similarity then uses all of them.
    if len(fingerprint) <= 64:
        return fingerprint
    return [h for h in fingerprint if ((h * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 61 == 0]


def _similarity(a: Counter[str], b: Counter[str]) -> float:
    total = sum(a.values()) + sum(b.values())
    if not total:
        return 1.0
    return 2 * sum((a & b).values()) / total


def compare(old: TextDocument, new: TextDocument, *, codes: Collection[str] | None = CAREC_CODES,
            reports: tuple[BracketReport, BracketReport] | None = None) -> Comparison:
    """Match the articles of ``old`` and ``new`` and count their brackets before and after.

    ``reports``: the ``analyse`` results of old and new when the caller has them already (saves a pass).
    """
    olds, news = old.articles, new.articles
    pairs: dict[int, int] = {}  # new index -> old index
    free_old = set(range(len(olds)))
    free_new = set(range(len(news)))

    def pair(n: int, o: int) -> None:
        pairs[n] = o
        free_new.discard(n)
        free_old.discard(o)

    old_by_key = {a.key: i for i, a in enumerate(olds)}
    # 1. Same key, same body.
    for n, a in enumerate(news):
        o = old_by_key.get(a.key)
        if o is not None and olds[o].paragraphs == a.paragraphs:
            pair(n, o)
    # 2. Same body, another key: align the remaining bodies in order.
    rest_old = sorted(free_old)
    rest_new = sorted(free_new)
    matcher = difflib.SequenceMatcher(None, [olds[o].paragraphs for o in rest_old],
                                      [news[n].paragraphs for n in rest_new], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            o, n = rest_old[block.a + k], rest_new[block.b + k]
            if olds[o].paragraphs:  # two empty bodies say nothing about identity
                pair(n, o)
    prints: dict[tuple[str, int], frozenset[int]] = {}
    vocabulary: dict[str, int] = {}

    def fingerprint(side: str, i: int) -> frozenset[int]:
        k = (side, i)
        if k not in prints:
            prints[k] = _fingerprint((olds if side == "o" else news)[i], vocabulary)
        return prints[k]

    def similarity(o: int, n: int) -> float:
        a, b = fingerprint("o", o), fingerprint("n", n)
        return 2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0

    sims: dict[int, float] = {}
    # 3. Similar bodies, best pairs first over all candidates: checking the same key first would pair
    # a shifted article with its unrelated successor whenever boilerplate makes them look alike.
    # Candidates come from an index of the old articles' rarer trigrams, plus the same key.
    index: dict[int, list[int]] = {}
    for o in sorted(free_old):
        for sh in _sample(fingerprint("o", o)):
            index.setdefault(sh, []).append(o)
    common = max(8, len(free_old) // 10)  # a shingle in more articles than this is boilerplate
    candidates: list[tuple[float, int, int]] = []
    for n in sorted(free_new):
        shared: dict[int, int] = {}
        for sh in _sample(fingerprint("n", n)):
            olds_with = index.get(sh)
            if olds_with is not None and len(olds_with) <= common:
                for o in olds_with:
                    shared[o] = shared.get(o, 0) + 1
        tried = set(sorted(shared, key=lambda k: -shared[k])[:CANDIDATES])
        same_key = old_by_key.get(news[n].key)
        if same_key is not None and same_key in free_old:
            tried.add(same_key)
        for o in tried:
            s = similarity(o, n)
            if s >= SIMILAR:
                candidates.append((s + (TIE_BONUS if o == same_key else 0.0), n, o))
    for s, n, o in sorted(candidates, key=lambda t: (-t[0], t[1], t[2])):
        if n in free_new and o in free_old:
            pair(n, o)
            sims[n] = min(s, 1.0)
    # 4. Same key whatever the body: an article rewritten in place.
    for n in sorted(free_new):
        o = old_by_key.get(news[n].key)
        if o is not None and o in free_old:
            pair(n, o)
            sims[n] = similarity(o, n)

    known: dict[int, ArticleBrackets] = {}
    if reports is not None:
        for doc, report in zip((old, new), reports, strict=True):
            if len(report.articles) == len(doc.articles):
                known.update((id(a), r) for a, r in zip(doc.articles, report.articles, strict=True))

    def counts(a: Article | None) -> ArticleBrackets | None:
        if a is None:
            return None
        return known.get(id(a)) or analyse_article(a, codes=codes)

    ordered: list[tuple[float, int, ArticleChange]] = []
    new_pos_of_old = {o: n for n, o in pairs.items()}
    for n, a in enumerate(news):
        o = pairs.get(n)
        before = counts(olds[o]) if o is not None else None
        after = counts(a)
        assert after is not None
        if o is None:
            change = ArticleChange("added", None, a.key, None, after.count, None, after.clean, 0.0, None, a)
        else:
            same = olds[o].paragraphs == a.paragraphs and _title_key(olds[o]) == _title_key(a)
            assert before is not None
            change = ArticleChange("unchanged" if same else "changed", olds[o].key, a.key, before.count, after.count,
                                   before.clean, after.clean, 1.0 if same else sims.get(n, 1.0), olds[o], a)
        ordered.append((float(n), 0, change))
    for o in sorted(free_old):
        # A removed article is listed after the new position of the old article that preceded it.
        prev = max((new_pos_of_old[p] for p in range(o) if p in new_pos_of_old), default=-1)
        before = counts(olds[o])
        assert before is not None
        ordered.append((prev + 0.5, o, ArticleChange("removed", olds[o].key, None, before.count, None,
                                                     before.clean, None, 0.0, olds[o], None)))
    ordered.sort(key=lambda t: (t[0], t[1]))
    return Comparison(old.filename, new.filename, tuple(c for _, _, c in ordered))


def _title_key(a: Article) -> str:
    """The heading without the article's own number: renumbering alone is not a change, but a
    bracket or a word added to the heading is."""
    return re.sub(re.escape(a.key), "", a.heading, count=1, flags=re.I).strip()


# --- Redline ---------------------------------------------------------------------------------

# Words and punctuation carry their trailing spaces: half the tokens, and no "space" token that
# would match everywhere and make difflib's longest-match search crawl.
_TOKEN = re.compile(r"\w+\s*|[^\w\s]\s*|\s+", re.UNICODE)

_CSS = """
body{font:15px/1.5 Georgia,'Times New Roman',serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font:13px/1.4 system-ui,sans-serif}td,th{border:1px solid #ccc;padding:2px 8px}
td.n{text-align:right}ins{background:#d4f7d4;color:#064d06;text-decoration:underline}
del{background:#fbd8d8;color:#7a0b0b;text-decoration:line-through}.st{font:12px system-ui,sans-serif;color:#555}
p.h{font-weight:bold}.added{color:#064d06}.removed{color:#7a0b0b}
"""


def redline_html(comparison: Comparison, *, title_old: str, title_new: str) -> str:
    """A self-contained HTML page: summary table, then every changed, added or removed article with
    word-level insertions (``<ins>``) and deletions (``<del>``). All text is escaped."""
    e = html.escape
    c = comparison
    out: list[str] = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Redline: {e(title_new)} against {e(title_old)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title_new)}<br><span class=\"st\">compared with {e(title_old)}</span></h1>",
        f"<p class=\"st\">{len(c.added)} added, {len(c.removed)} removed, {len(c.changed)} changed, "
        f"{len(c.renumbered)} renumbered; brackets {c.brackets_before} → {c.brackets_after} "
        f"({c.brackets_after - c.brackets_before:+d}); newly clean: {e(', '.join(c.newly_clean) or 'none')}.</p>",
        "<table><thead><tr><th>Article</th><th>Status</th><th>Brackets before</th><th>after</th>"
        "<th>change</th></tr></thead><tbody>",
    ]
    for i, ch in enumerate(c.changes):
        label = e(ch.key) + (f" <span class=\"st\">(was {e(ch.old_key or '')})</span>" if ch.renumbered else "")
        link = f"<a href=\"#a{i}\">{label}</a>" if ch.status != "unchanged" else label
        out.append(f"<tr><td>{link}</td><td class=\"{ch.status}\">{ch.status}</td>"
                   f"<td class=\"n\">{_n(ch.brackets_before)}</td><td class=\"n\">{_n(ch.brackets_after)}</td>"
                   f"<td class=\"n\">{ch.bracket_change:+d}</td></tr>")
    out.append("</tbody></table>")
    for i, ch in enumerate(c.changes):
        if ch.status == "unchanged":
            continue
        was = f" (was {e(ch.old_key or '')})" if ch.renumbered else ""
        out.append(f"<section id=\"a{i}\"><h2>{e(ch.key)}{was} <span class=\"st\">{ch.status}</span></h2>")
        old_lines = ch.old.lines() if ch.old else ()
        new_lines = ch.new.lines() if ch.new else ()
        out.extend(_redline_lines(old_lines, new_lines))
        out.append("</section>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _n(v: int | None) -> str:
    return "–" if v is None else str(v)


def _para(i: int, body: str) -> str:
    return f"<p class=\"h\">{body}</p>" if i == 0 else f"<p>{body}</p>"


def _redline_lines(a: Sequence[str], b: Sequence[str]) -> Iterator[str]:
    e = html.escape
    # Paragraph level first: equal paragraphs cost nothing, only replaced ones are diffed by word.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                if a[i1 + k]:
                    yield _para(j1 + k, e(a[i1 + k]))
        elif tag == "delete":
            for k in range(i1, i2):
                if a[k]:
                    yield _para(k, f"<del>{e(a[k])}</del>")
        elif tag == "insert":
            for k in range(j1, j2):
                if b[k]:
                    yield _para(k, f"<ins>{e(b[k])}</ins>")
        else:
            # Replaced paragraphs: pair each old one with its amended self, in order; the rest were
            # deleted or inserted. Diffing the whole block by word instead would be quadratic in it.
            for old_i, new_j in _pair(a, b, (i1, i2, j1, j2)):
                if old_i is not None and new_j is not None:
                    yield _para(new_j, _word_diff(a[old_i], b[new_j]))
                elif old_i is not None and a[old_i]:
                    yield _para(old_i, f"<del>{e(a[old_i])}</del>")
                elif new_j is not None and b[new_j]:
                    yield _para(new_j, f"<ins>{e(b[new_j])}</ins>")


#: How many new paragraphs ahead to look for an old paragraph's amended self.
PAIR_LOOKAHEAD = 6


def _pair(a: Sequence[str], b: Sequence[str], block: tuple[int, int, int, int]
          ) -> Iterator[tuple[int | None, int | None]]:
    i1, i2, j1, j2 = block
    if i2 - i1 == j2 - j1 == 1:
        yield i1, j1
        return
    bags = {j: Counter(_WORD.findall(b[j].lower())) for j in range(j1, j2)}
    j = j1
    for i in range(i1, i2):
        mine = Counter(_WORD.findall(a[i].lower()))
        scored = [(_similarity(mine, bags[k]), -k) for k in range(j, min(j2, j + PAIR_LOOKAHEAD))]
        best = max(scored, default=(0.0, 0))
        # The most similar within reach, not the first similar enough: boilerplate makes neighbours alike.
        found = -best[1] if best[0] >= SIMILAR else None
        if found is None:
            yield i, None
            continue
        for k in range(j, found):
            yield None, k
        yield i, found
        j = found + 1
    for k in range(j, j2):
        yield None, k


def _word_diff(old: str, new: str) -> str:
    e = html.escape
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=len(a) + len(b) > AUTOJUNK_FROM)
    parts: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            parts.append(e("".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(_wrap("del", "".join(a[i1:i2])))
        if j2 > j1:
            parts.append(_wrap("ins", "".join(b[j1:j2])))
    return "".join(parts)


def _wrap(tag: str, text: str) -> str:
    # A change spanning paragraphs is closed and reopened at each break so every <p> stays well formed.
    return "\n".join(f"<{tag}>{html.escape(piece)}</{tag}>" if piece else "" for piece in text.split("\n"))
