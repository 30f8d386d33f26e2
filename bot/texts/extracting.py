"""Extraction: the bytes of a circulated file -> a ``TextDocument`` of articles and paragraphs.

First step of the text layer (extract -> analyse -> compare). The format is decided by the
extension and checked against the content's magic bytes, so a PDF renamed .docx, an encrypted
(password-protected) Word file or a corrupt zip is refused with a ``TextFormatError`` that names
the file and the fix, before anything is circulated.

.docx is read from its OOXML directly (zipfile + ElementTree, no python-docx): what Word writes
is richer than what python-docx reads. Tracked changes are resolved as if all were accepted
(``w:ins``/``w:moveTo`` kept, ``w:del``/``w:moveFrom`` dropped, a deleted paragraph mark joins
the paragraph to the next, a deleted table row goes), Word's automatic numbering is rendered from
numbering.xml as Word shows it ("Article %1" -> "Article 3", list styles, restarts, Roman and
letter formats), a table row becomes one paragraph ("cell | cell"), footnotes are appended to the
article that cites them ("¹ text"; the reference becomes a superscript digit), and field codes,
comments, headers/footers, text boxes and endnotes are left out. The title comes from
docProps/core.xml (a PDF's /Title).
.pdf goes through pypdf (lines re-joined into paragraphs); .txt is UTF-8, UTF-8 with BOM or
UTF-16 with BOM, one paragraph per non-blank line.
"""

from __future__ import annotations

import codecs
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal
from xml.etree import ElementTree as ET

from bot.texts.model import Article, ArticleKind, SourceFormat, TextDocument, TextFormatError

__all__ = ["extract"]

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
PDF_MAGIC = b"%PDF"
# Directory entries of an OLE compound file are UTF-16LE names; an encrypted OOXML package is an
# OLE file with "EncryptionInfo" and "EncryptedPackage" streams (MS-OFFCRYPTO 2.3.4).
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")

SUPPORTED = (".docx", ".pdf", ".txt")


def extract(data: bytes, filename: str) -> TextDocument:
    """Extract the articles of ``data`` (the content of ``filename``; its extension picks the format).

    Raises ``TextFormatError`` when the content is not what the extension says, is encrypted,
    corrupt, or has no text.
    """
    ext = PurePath(filename).suffix.lower()
    name = PurePath(filename).name or filename
    fmt: SourceFormat
    title = ""
    if ext == ".docx":
        fmt, (blocks, title) = "docx", _docx_blocks(data, name)
    elif ext == ".pdf":
        fmt, (blocks, title) = "pdf", _pdf_blocks(data, name)
    elif ext == ".txt":
        fmt, blocks = "txt", _txt_blocks(data, name)
    else:
        raise TextFormatError(f"{name}: cannot read {ext or 'files without an extension'}; "
                              f"circulate the text as {', '.join(SUPPORTED)}")
    if not any(b.text.strip() for b in blocks):
        hint = " (a scanned PDF has only images: circulate the Word original or an OCR'd PDF)" if fmt == "pdf" else ""
        raise TextFormatError(f"{name}: contains no text{hint}; check that this is the right file")
    return TextDocument(filename=name, format=fmt, articles=split_articles(blocks), title=title)


# --- Format sniffing -------------------------------------------------------------------------

def _sniff(data: bytes) -> Literal["zip", "pdf", "ole", "other"]:
    if data.startswith(ZIP_MAGIC) or data.startswith(b"PK\x05\x06"):
        return "zip"
    # A PDF may carry a few bytes of junk before its header; readers accept up to 1 KiB.
    if PDF_MAGIC in data[:1024]:
        return "pdf"
    if data.startswith(OLE_MAGIC):
        return "ole"
    return "other"


def _wrong_kind(name: str, expected: str, data: bytes) -> TextFormatError:
    kind = _sniff(data)
    if kind == "pdf":
        return TextFormatError(f"{name}: is a PDF, not {expected}; rename it to .pdf or circulate the right file")
    if kind == "ole":
        if _ENCRYPTION_INFO in data:
            return TextFormatError(f"{name}: is a password-protected (encrypted) Word document; remove the password "
                                   "in Word (File > Info > Protect Document > Encrypt with Password, clear it), "
                                   "save, and circulate again")
        return TextFormatError(f"{name}: is an old binary Office file (Word 97-2003 .doc), not {expected}; "
                               "open it in Word and save it as .docx")
    if kind == "zip":
        return TextFormatError(f"{name}: is a zip archive (a Word or other Office file), not {expected}; "
                               "rename it to .docx if it is a Word document, or circulate the right file")
    return TextFormatError(f"{name}: is not {expected}; save the text in that format or circulate the right file")


# --- Blocks: the format-neutral stream the article splitter reads ----------------------------

@dataclass
class Block:
    """One paragraph of the source, in order; ``heading`` when its style is a heading/title."""

    text: str
    heading: bool = False
    footnotes: list[str] = field(default_factory=list)


# --- .docx -----------------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _docx_blocks(data: bytes, name: str) -> tuple[list[Block], str]:
    if _sniff(data) != "zip":
        raise _wrong_kind(name, "a Word .docx document", data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        if "word/document.xml" not in names:
            raise TextFormatError(f"{name}: is a zip archive but not a Word document (no word/document.xml); "
                                  "open it in Word and save it as .docx")

        def part(path: str) -> ET.Element | None:
            if path not in names:
                return None
            raw = archive.read(path)
            # Word never writes a DTD; refusing one rules out entity-expansion bombs, and
            # ElementTree resolves no external entities.
            if b"<!DOCTYPE" in raw[:4096] or b"<!ENTITY" in raw[:4096]:
                raise ET.ParseError(f"{path} declares a DTD")
            return ET.fromstring(raw)  # noqa: S314 - no DTD (checked above), no external entities

        document = part("word/document.xml")
        styles = part("word/styles.xml")
        numbering = part("word/numbering.xml")
        footnotes = part("word/footnotes.xml")
        core = part("docProps/core.xml")
    except TextFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, KeyError, ET.ParseError, OSError,
            NotImplementedError, RuntimeError, ValueError) as e:
        raise TextFormatError(f"{name}: is a damaged Word document ({type(e).__name__}: {e}); open it in Word, "
                              "let Word repair it, save it again as .docx and circulate that copy") from e
    assert document is not None
    try:
        style_table = _Styles(styles)
        reader = _DocxReader(style_table, _Numbering(numbering, style_table), _footnote_texts(footnotes))
        body = document.find(f"{W}body")
        blocks = reader.read(body) if body is not None else []
    except (ValueError, KeyError, RecursionError) as e:
        # Malformed values (w:val="x" where a number belongs), which Word itself would repair.
        raise TextFormatError(f"{name}: is a damaged Word document ({type(e).__name__}: {e}); open it in Word, "
                              "let Word repair it, save it again as .docx and circulate that copy") from e
    title_el = core.find("{http://purl.org/dc/elements/1.1/}title") if core is not None else None
    title = _squash(title_el.text or "") if title_el is not None else ""
    return blocks, title


class _Styles:
    """Paragraph styles: which are headings, and which carry numbering (Word's numbered headings)."""

    def __init__(self, root: ET.Element | None) -> None:
        self.heading: set[str] = set()
        self.numpr: dict[str, tuple[str, int]] = {}
        self.based_on: dict[str, str] = {}
        self.list_styles: dict[str, str] = {}  # numbering style id -> its w:numId (list styles)
        if root is None:
            return
        for style in root.iter(f"{W}style"):
            if style.get(f"{W}type") == "numbering":
                num_id = _val(style.find(f"{W}pPr/{W}numPr/{W}numId"))
                if num_id is not None:
                    self.list_styles[style.get(f"{W}styleId", "")] = num_id
            if style.get(f"{W}type") != "paragraph":
                continue
            sid = style.get(f"{W}styleId", "")
            name_el = style.find(f"{W}name")
            name = (name_el.get(f"{W}val", "") if name_el is not None else sid).lower()
            ppr = style.find(f"{W}pPr")
            outline = ppr.find(f"{W}outlineLvl") if ppr is not None else None
            if name.startswith(("heading", "title")) or outline is not None:
                self.heading.add(sid)
            num = ppr.find(f"{W}numPr") if ppr is not None else None
            if num is not None:
                num_id = _val(num.find(f"{W}numId"))
                if num_id is not None:
                    self.numpr[sid] = (num_id, int(_val(num.find(f"{W}ilvl")) or 0))
            based = style.find(f"{W}basedOn")
            if based is not None:
                self.based_on[sid] = based.get(f"{W}val", "")

    def numbering_of(self, sid: str) -> tuple[str, int] | None:
        seen: set[str] = set()
        while sid and sid not in seen:
            if sid in self.numpr:
                return self.numpr[sid]
            seen.add(sid)
            sid = self.based_on.get(sid, "")
        return None


def _val(el: ET.Element | None) -> str | None:
    return el.get(f"{W}val") if el is not None else None


@dataclass
class _Level:
    fmt: str = "decimal"
    text: str = ""
    start: int = 1
    restart: int | None = None  # w:lvlRestart: restart after this (1-based) level; default: any higher level


class _Numbering:
    """Word's automatic numbering (numbering.xml), rendered the way Word displays it.

    Counters live per abstract numbering definition, as in Word: two w:num sharing one
    w:abstractNum continue each other unless a w:lvlOverride/w:startOverride restarts them.
    """

    def __init__(self, root: ET.Element | None, styles: _Styles) -> None:
        self.abstract: dict[str, dict[int, _Level]] = {}
        self.nums: dict[str, tuple[str, dict[int, int]]] = {}
        # An abstractNum that only says w:numStyleLink="ListStyle" takes its levels (and counters)
        # from the list the numbering style points to: Word's list styles.
        self.alias: dict[str, str] = {}
        links: dict[str, str] = {}
        self.counters: dict[str, dict[int, int]] = {}
        self.started: set[str] = set()
        if root is None:
            return
        for ab in root.iter(f"{W}abstractNum"):
            levels: dict[int, _Level] = {}
            for lvl in ab.iter(f"{W}lvl"):
                restart = _val(lvl.find(f"{W}lvlRestart"))
                levels[int(lvl.get(f"{W}ilvl", "0"))] = _Level(
                    fmt=_val(lvl.find(f"{W}numFmt")) or "decimal",
                    text=_val(lvl.find(f"{W}lvlText")) or "",
                    start=int(_val(lvl.find(f"{W}start")) or 1),
                    restart=int(restart) if restart is not None else None)
            ab_id = ab.get(f"{W}abstractNumId", "")
            self.abstract[ab_id] = levels
            link = _val(ab.find(f"{W}numStyleLink"))
            if link is not None and not levels:
                links[ab_id] = link
        for num in root.iter(f"{W}num"):
            overrides: dict[int, int] = {}
            for ov in num.iter(f"{W}lvlOverride"):
                start = _val(ov.find(f"{W}startOverride"))
                if start is not None:
                    overrides[int(ov.get(f"{W}ilvl", "0"))] = int(start)
            self.nums[num.get(f"{W}numId", "")] = (_val(num.find(f"{W}abstractNumId")) or "", overrides)
        for ab_id, link in links.items():
            target = self.nums.get(styles.list_styles.get(link, ""))
            if target is not None and target[0] != ab_id:
                self.alias[ab_id] = target[0]

    def label(self, num_id: str, ilvl: int) -> str:
        """Advance the list's counter for this paragraph and return its rendered label ("" if none)."""
        if num_id == "0" or num_id not in self.nums:
            return ""
        abstract_id, overrides = self.nums[num_id]
        abstract_id = self.alias.get(abstract_id, abstract_id)
        levels = self.abstract.get(abstract_id, {})
        counters = self.counters.setdefault(abstract_id, {})
        if num_id not in self.started:
            self.started.add(num_id)
            for lvl_no, start in overrides.items():
                counters[lvl_no] = start - 1
        level = levels.get(ilvl, _Level())
        counters[ilvl] = counters.get(ilvl, level.start - 1) + 1
        for deeper in [k for k in counters if k > ilvl]:
            lvl = levels.get(deeper, _Level())
            if lvl.restart is None or (lvl.restart != 0 and lvl.restart - 1 >= ilvl):
                del counters[deeper]
        if level.fmt in ("bullet", "none"):
            return ""

        def render(m: re.Match[str]) -> str:
            k = int(m.group(1)) - 1
            lvl = levels.get(k, _Level())
            return _format_number(counters.get(k, lvl.start), lvl.fmt)

        return re.sub(r"%([1-9])", render, level.text).strip()


def _format_number(n: int, fmt: str) -> str:
    if fmt in ("lowerLetter", "upperLetter"):
        s = ""
        # Word repeats the letter past z: aa, bb, …
        s = chr(ord("a") + (n - 1) % 26) * ((n - 1) // 26 + 1) if n > 0 else ""
        return s.upper() if fmt == "upperLetter" else s
    if fmt in ("lowerRoman", "upperRoman"):
        r = _roman(n)
        return r.lower() if fmt == "lowerRoman" else r
    if fmt == "ordinal":
        return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
    if fmt == "decimalZero":
        return f"{n:02d}"
    return str(n)


def _roman(n: int) -> str:
    out = ""
    for value, sym in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"),
                       (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= value:
            out, n = out + sym, n - value
    return out


def _footnote_texts(root: ET.Element | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if root is None:
        return out
    for fn in root.iter(f"{W}footnote"):
        # Separator and continuation-separator "footnotes" are Word's rules, not notes.
        if fn.get(f"{W}type") in ("separator", "continuationSeparator", "continuationNotice"):
            continue
        paras = [_squash("".join(_run_text(p, []))) for p in fn.iter(f"{W}p")]
        out[fn.get(f"{W}id", "")] = " ".join(p for p in paras if p)
    return out


# Elements whose text is not part of the accepted text: deletions, moved-away text, field codes,
# and drawings/text boxes (their paragraphs are not in reading order).
_SKIP = {f"{W}{t}" for t in ("del", "moveFrom", "instrText", "delText", "delInstrText", "drawing", "pict",
                             "pPr", "rPr", "sectPr", "footnoteRef", "endnoteRef", "commentReference",
                             "annotationRef", "object")} | {f"{MC}Fallback"}


def _run_text(el: ET.Element, refs: list[str]) -> Iterator[str]:
    """The accepted text under ``el`` (a paragraph or part of one); footnote ids cited go to ``refs``."""
    for child in el:
        tag = child.tag
        if tag in _SKIP:
            continue
        if tag == f"{W}t":
            yield child.text or ""
        elif tag in (f"{W}tab", f"{W}ptab"):
            yield "\t"
        elif tag in (f"{W}br", f"{W}cr"):
            yield " "
        elif tag == f"{W}noBreakHyphen":
            yield "-"
        elif tag == f"{W}footnoteReference":
            refs.append(child.get(f"{W}id", ""))
            yield "\x00FN\x00"
        elif tag == f"{W}p":
            # A paragraph nested inside a run-level container (rare: content controls); keep its text.
            yield " "
            yield from _run_text(child, refs)
        else:
            yield from _run_text(child, refs)


def _all_bold(p: ET.Element) -> bool:
    """Whether every run with visible text is bold: how many drafters mark a heading by hand."""
    seen = False
    stack = [p]
    while stack:
        el = stack.pop()
        for child in el:
            if child.tag in _SKIP:
                continue
            if child.tag != f"{W}r":
                stack.append(child)
                continue
            if not any((t.text or "").strip() for t in child.findall(f"{W}t")):
                continue
            bold = child.find(f"{W}rPr/{W}b")
            if bold is None or bold.get(f"{W}val") in ("0", "false", "off"):
                return False
            seen = True
    return seen


def _squash(text: str) -> str:
    return re.sub(r"[ \t\u00a0]+", " ", text).strip()


class _DocxReader:
    def __init__(self, styles: _Styles, numbering: _Numbering, footnotes: dict[str, str]) -> None:
        self.styles = styles
        self.numbering = numbering
        self.footnotes = footnotes
        self.footnote_no = 0

    def read(self, body: ET.Element) -> list[Block]:
        blocks: list[Block] = []
        pending: Block | None = None  # a paragraph whose mark was deleted: it joins the next one
        for read, mark_deleted in self._walk(body):
            block = read
            if pending is not None:
                block = Block(_squash(f"{pending.text} {read.text}"), pending.heading or read.heading,
                              pending.footnotes + read.footnotes)
                pending = None
            if mark_deleted:
                pending = block
            else:
                blocks.append(block)
        if pending is not None:
            blocks.append(pending)
        return blocks

    def _walk(self, parent: ET.Element) -> Iterator[tuple[Block, bool]]:
        for child in parent:
            if child.tag == f"{W}p":
                yield self._paragraph(child)
            elif child.tag == f"{W}tbl":
                for row in child.findall(f"{W}tr"):  # nested tables are read inside their cell
                    trpr = row.find(f"{W}trPr")
                    if trpr is not None and trpr.find(f"{W}del") is not None:
                        continue  # a row deleted with tracked changes
                    yield self._row(row), False
            elif child.tag in (f"{W}sdt", f"{W}sdtContent", f"{W}customXml", f"{W}ins", f"{W}moveTo"):
                # Block-level content controls and whole inserted/moved-in paragraphs.
                yield from self._walk(child)
            # w:del / w:moveFrom at block level, w:sectPr, bookmarks: nothing to read.

    def _paragraph(self, p: ET.Element) -> tuple[Block, bool]:
        ppr = p.find(f"{W}pPr")
        style = _val(ppr.find(f"{W}pStyle")) if ppr is not None else None
        heading = bool(style and style in self.styles.heading) or (
            ppr is not None and ppr.find(f"{W}outlineLvl") is not None) or _all_bold(p)
        mark = ppr.find(f"{W}rPr") if ppr is not None else None
        mark_deleted = mark is not None and (mark.find(f"{W}del") is not None or mark.find(f"{W}moveFrom") is not None)
        numpr = ppr.find(f"{W}numPr") if ppr is not None else None
        num: tuple[str, int] | None = None
        if numpr is not None:
            num_id = _val(numpr.find(f"{W}numId"))
            if num_id is not None:
                num = (num_id, int(_val(numpr.find(f"{W}ilvl")) or 0))
        if num is None and style:
            num = self.styles.numbering_of(style)
        refs: list[str] = []
        raw = "".join(_run_text(p, refs))
        notes: list[str] = []
        for ref in refs:
            self.footnote_no += 1
            marker = str(self.footnote_no).translate(_SUPERSCRIPT)
            raw = raw.replace("\x00FN\x00", marker, 1)
            notes.append(f"{marker} {self.footnotes.get(ref, '')}".rstrip())
        text = _squash(raw)
        # A paragraph entirely deleted (all runs in w:del) has no label: Word drops it from the list.
        label = self.numbering.label(*num) if num is not None and (text or not mark_deleted) else ""
        if label:
            text = f"{label} {text}".strip()
        return Block(text, heading, notes), mark_deleted

    def _row(self, row: ET.Element) -> Block:
        cells = []
        notes: list[str] = []
        for tc in row.findall(f"{W}tc"):
            paras = []
            for p in tc.iter(f"{W}p"):
                block, _ = self._paragraph(p)
                paras.append(block.text)
                notes.extend(block.footnotes)
            cells.append(" ".join(t for t in paras if t))
        return Block(" | ".join(cells), False, notes)


# --- .pdf ------------------------------------------------------------------------------------

_PAGE_NUMBER = re.compile(r"^\s*(?:[-–—]\s*\d+\s*[-–—]|(?:page\s+)?\d+(?:\s*(?:of|/)\s*\d+)?)\s*$", re.I)
_STARTS_ITEM = re.compile(r"^\s*(?:\[?\s*(?:Article|Art\.|Annex|Preamble|Chapter|Section|Option|Alt(?:ernative)?)\b"
                          r"|\(?[0-9]{1,3}[.)]\s|\([a-z]{1,4}\)\s|[•▪–-]\s)", re.I)


def _pdf_blocks(data: bytes, name: str) -> tuple[list[Block], str]:
    if _sniff(data) != "pdf":
        raise _wrong_kind(name, "a PDF", data)
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    # pypdf logs and warns about the recoverable oddities of real PDFs; the text is what matters
    # here, so both are silenced for the duration of this read only.
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise TextFormatError(f"{name}: is a password-protected PDF; circulate an unprotected copy")
            pages = [page.extract_text() or "" for page in reader.pages]
            meta = reader.metadata
            title = _squash(str(meta.title or "")) if meta is not None else ""
    except TextFormatError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError, NotImplementedError, zlib.error) as e:
        raise TextFormatError(f"{name}: is a damaged PDF ({type(e).__name__}: {e}); export it again from the "
                              "original and circulate that copy") from e
    finally:
        log.setLevel(level)
    # A page break is not a paragraph break: a paragraph often runs on to the next page.
    return _blocks_from_lines([line for page in pages for line in page.splitlines()], pdf=True), title


def _blocks_from_lines(lines: Iterable[str], *, pdf: bool) -> list[Block]:
    """Paragraphs from text lines: a blank line ends one; in a PDF, lines wrapped by layout are re-joined."""
    blocks: list[Block] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            text = _squash(" ".join(current))
            text = re.sub(r"(\w)- (\w)", r"\1\2", text) if pdf else text
            blocks.append(Block(text))
            current.clear()

    for raw in lines:
        line = raw.strip()
        if not line:
            flush()
            continue
        if not pdf:
            current.append(line)
            flush()
            continue
        if _PAGE_NUMBER.match(line):
            continue
        # A new numbered item, an article heading, or a previous line that ended a sentence
        # well short of the margin starts a new paragraph.
        if current and (_STARTS_ITEM.match(line) or _is_heading_line(current[-1])
                        or (current[-1].endswith((".", ":", ";", "]")) and len(current[-1]) < 60)):
            flush()
        current.append(line)
    flush()
    return blocks


def _is_heading_line(line: str) -> bool:
    return bool(_ARTICLE.match(line) or _ANNEX.match(line) or _PREAMBLE.match(line))


# --- .txt ------------------------------------------------------------------------------------

def _txt_blocks(data: bytes, name: str) -> list[Block]:
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[3:]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data
    else:
        if _sniff(data) != "other":
            raise _wrong_kind(name, "a plain-text file", data)
        if b"\x00" in data[:4096]:
            raise TextFormatError(f"{name}: is a binary file or UTF-16 text without a byte-order mark, not plain "
                                  "text; save it as UTF-8 and circulate again")
        encoding, body = "utf-8", data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as e:
        raise TextFormatError(f"{name}: is not valid {encoding.upper()} text (byte {e.start}); save it as "
                              "UTF-8 (in Notepad: Save as > Encoding: UTF-8) and circulate again") from e
    return _blocks_from_lines(text.splitlines(), pdf=False)


# --- Articles --------------------------------------------------------------------------------

_ORDINAL = r"bis|ter|quater|quinquies|sexies|septies|octies|novies|nonies|decies"
# Optional opening brackets and a proponent ("[KAZ: Article 7"), then the article number.
_LEAD = r"^\s*(?P<lead>(?:\[\s*(?:[A-Z]{2,3}(?:\s*/\s*[A-Z]{2,3})*\s*:\s*)?)*)"
_ARTICLE = re.compile(_LEAD + r"(?:Article|ARTICLE|Art\.)\s+"
                      r"(?P<num>\d+(?:\.\d+)*(?:[A-Za-z](?![A-Za-z]))?|[A-Z](?:\.\d+)+\b|[IVXLC]+\b|[A-Z]\b)"
                      r"(?:\s*(?P<ord>" + _ORDINAL + r")\b)?(?P<rest>.*)$", re.I)
_ANNEX = re.compile(_LEAD + r"(?:Annex|ANNEX|Appendix|APPENDIX)\b\s*(?P<num>[IVXLC]+|\d+|[A-Z](?![a-z]))?"
                    r"(?P<rest>.*)$", re.I)
_PREAMBLE = re.compile(_LEAD + r"(?:Preamble|PREAMBLE)\b(?P<rest>.*)$")


def _title(rest: str) -> str:
    return rest.strip().lstrip(".:–—-").strip().strip("[]").strip()


def _reads_as_sentence(rest: str, block: Block) -> bool:
    """Whether the words after "Article 5"/"Annex I" continue a sentence rather than give a title.

    "Article 5 shall not apply", "Annex I forms an integral part …": lower-case right after the
    number, or a long run without a separator. A heading-styled paragraph is always a heading.
    """
    if block.heading or not rest.strip() or re.match(r"^\s*(?:[.:–—-]|\])", rest):
        return False
    return rest.strip()[0].islower() or len(rest) > 80


def _heading(block: Block) -> tuple[ArticleKind, str, str] | None:
    """(kind, key, title) if this paragraph opens an article, annex or the preamble."""
    text = block.text
    if len(text) > 200:  # a long paragraph that mentions "Article 3" is body text, not a heading
        return None
    m = _ARTICLE.match(text)
    if m:
        if _reads_as_sentence(m.group("rest"), block):
            return None
        num = m.group("num").upper() if re.fullmatch(r"[ivxlc]+", m.group("num"), re.I) else m.group("num")
        ordinal = f" {m.group('ord').lower()}" if m.group("ord") else ""
        return "article", f"Article {num}{ordinal}", _title(m.group("rest"))
    m = _ANNEX.match(text)
    if m and (block.heading or len(text) < 100) and not _reads_as_sentence(m.group("rest"), block):
        num = m.group("num")
        return "annex", f"Annex {num.upper()}" if num else "Annex", _title(m.group("rest"))
    m = _PREAMBLE.match(text)
    if m and (block.heading or len(text) < 60) and not _reads_as_sentence(m.group("rest"), block):
        return "preamble", "Preamble", _title(m.group("rest"))
    return None


def split_articles(blocks: list[Block]) -> tuple[Article, ...]:
    """Cut the paragraph stream at article/annex headings; what precedes the first is the preamble."""
    articles: list[Article] = []
    key, heading, title = "Preamble", "", ""
    kind: ArticleKind = "preamble"
    paragraphs: list[str] = []
    notes: list[str] = []
    seen: dict[str, int] = {}

    def close() -> None:
        if heading or paragraphs or notes:
            # The same key twice (a duplicated number in a draft) stays distinguishable.
            n = seen.get(key, 0) + 1
            seen[key] = n
            articles.append(Article(key if n == 1 else f"{key} ({n})", kind, heading, title,
                                    (*paragraphs, *notes)))

    await_title = False
    for block in blocks:
        if not block.text:
            continue
        found = _heading(block)
        if found is not None and found[0] == "preamble" and (articles or heading):
            found = None  # only a "Preamble" heading before any article opens the preamble
        if found is not None:
            if found[0] != "preamble":
                close()
                paragraphs, notes = [], []
            # else: the document's title lines before the "Preamble" heading stay in the preamble
            kind, key, title = found
            heading = block.text
            notes.extend(block.footnotes)
            await_title = not title
            continue
        if await_title and block.heading and len(block.text) < 150:
            # "Article 3" then a heading-styled "Scope" on its own line: the title.
            heading, title = f"{heading}\n{block.text}", _title(block.text)
            await_title = False
            notes.extend(block.footnotes)
            continue
        await_title = False
        paragraphs.append(block.text)
        notes.extend(block.footnotes)
    close()
    return tuple(articles)
