"""Values of the text layer: an extracted negotiating text split into articles.

Terminology:
  TextDocument  what ``extract`` makes of one circulated file: its articles in order.
  Article       one unit of the text as negotiators cite it: the preamble (everything before the
                first article), "Article 12 bis", "Annex I". ``key`` identifies it across
                revisions; ``heading`` is its heading line as written (brackets included, since a
                whole article can be bracketed); ``paragraphs`` its body, footnotes last.
  paragraph     numbered 1.. within an article; 0 is the heading line. Bracket locations use it.

Everything here is a plain frozen value with ``to_json()``; nothing does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from bot.errors import UserError

__all__ = ["Article", "ArticleKind", "SourceFormat", "TextDocument", "TextFormatError"]

ArticleKind = Literal["preamble", "article", "annex"]
SourceFormat = Literal["docx", "pdf", "txt"]


class TextFormatError(UserError):
    """A file that cannot be read as the negotiating text it claims to be; the message names the file and the fix."""


@dataclass(frozen=True)
class Article:
    """One article (or the preamble, or an annex) with its paragraphs."""

    key: str
    """How the article is cited and matched across revisions: "Preamble", "Article 12 bis", "Annex I"."""
    kind: ArticleKind
    heading: str
    """The heading line as written ("[Article 7: Transparency"), "" for an implicit preamble."""
    title: str
    """The heading without its number and brackets ("Transparency"), "" if none."""
    paragraphs: tuple[str, ...]

    def lines(self) -> tuple[str, ...]:
        """Heading then paragraphs: index = paragraph number used in locations (0 = heading)."""
        return (self.heading, *self.paragraphs)

    @property
    def text(self) -> str:
        return "\n".join(line for line in self.lines() if line)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "heading": self.heading, "title": self.title,
                "paragraphs": list(self.paragraphs)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Article:
        kind = str(data["kind"])
        if kind not in ("preamble", "article", "annex"):
            raise ValueError(f"unknown article kind {kind!r}")
        return cls(str(data["key"]), cast(ArticleKind, kind), str(data["heading"]), str(data["title"]),
                   tuple(str(p) for p in data["paragraphs"]))


@dataclass(frozen=True)
class TextDocument:
    """A circulated text as extracted: file name, source format and articles in document order."""

    filename: str
    format: SourceFormat
    articles: tuple[Article, ...]
    title: str = ""
    """The document's own title where the file records one (Word's or the PDF's title property), else ""."""

    def article(self, key: str) -> Article | None:
        return next((a for a in self.articles if a.key == key), None)

    @property
    def paragraph_count(self) -> int:
        return sum(len(a.paragraphs) for a in self.articles)

    @property
    def text(self) -> str:
        return "\n".join(a.text for a in self.articles)

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "format": self.format, "title": self.title,
                "articles": [a.to_json() for a in self.articles]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TextDocument:
        """The inverse of ``to_json`` (the register stores documents as JSON)."""
        fmt = str(data["format"])
        if fmt not in ("docx", "pdf", "txt"):
            raise ValueError(f"unknown source format {fmt!r}")
        return cls(str(data["filename"]), cast(SourceFormat, fmt),
                   tuple(Article.from_json(a) for a in data["articles"]), str(data.get("title", "")))
