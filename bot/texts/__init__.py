"""The text layer of circulation (issue #5): pure functions over the bytes of a circulated file.

``extract`` turns a .docx/.pdf/.txt into a ``TextDocument`` of articles; ``analyse`` counts its
square brackets per article; ``compare`` matches the articles of two revisions and ``redline_html``
renders the word-level redline stored beside the archive copy. No I/O, no network: circulation
(bot/circulation.py) reads the file, calls these, and writes the results.
"""

from __future__ import annotations

from bot.texts.brackets import BracketReport, analyse
from bot.texts.comparing import Comparison, compare, redline_html
from bot.texts.extracting import extract
from bot.texts.model import Article, TextDocument, TextFormatError

__all__ = ["Article", "BracketReport", "Comparison", "TextDocument", "TextFormatError", "analyse", "compare",
           "extract", "redline_html"]
