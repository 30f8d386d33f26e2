"""Extraction of circulated texts (bot/texts/extracting.py) from the committed fixtures.

We test these aspects: a Word-made .docx (tests/fixtures/texts/make_fixtures.py) comes out as the
articles a reader of the accepted text sees (auto-numbered "Article n" headings, "Article 4 bis",
the preamble with the title lines, an annex), with tracked changes accepted, runs split mid-word
re-joined, the table one paragraph per row and the footnote appended to its article (Word's
separator footnotes left out); the .pdf and the three .txt encodings; every kind of bad input gets
its own message naming the file and the fix; Word's list styles, restarts and Roman numbers; the
public surface of ``bot.texts`` is pinned; and, with Hypothesis, that however the runs of a paragraph
are split, inserted (w:ins) or interleaved with deletions (w:del), the accepted text comes out.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.texts
from bot.errors import BotError
from bot.texts import TextDocument, TextFormatError, extract

FIXTURES = Path(__file__).parent.parent / "fixtures" / "texts"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_the_public_surface_is_pinned() -> None:
    assert sorted(bot.texts.__all__) == sorted(["extract", "TextDocument", "Article", "TextFormatError", "analyse",
                                                "BracketReport", "compare", "Comparison", "redline_html"])
    assert issubclass(TextFormatError, BotError)


def test_word_document_is_split_into_the_articles_a_reader_sees() -> None:
    doc = extract(read("zero_draft.docx"), "zero_draft.docx")
    assert doc.format == "docx"
    assert [a.key for a in doc.articles] == ["Preamble", "Article 1", "Article 2", "Article 3", "Article 4",
                                             "Article 4 bis", "Article 5", "Annex I"]
    assert [a.kind for a in doc.articles] == ["preamble"] + ["article"] * 6 + ["annex"]
    assert doc.articles[1].heading == "Article 1 Scope"  # "Article %1" from numbering.xml + the typed title
    assert doc.articles[1].title == "Scope"
    assert doc.article("Article 4 bis") is not None
    assert doc.article("Article 4 bis").heading == "[Article 4 bis: Fees and charges"  # type: ignore[union-attr]
    assert doc.article("Annex I").title == "List of border crossing points"  # type: ignore[union-attr]
    # The title lines before the "Preamble" heading belong to the preamble.
    assert doc.articles[0].paragraphs[:2] == ("Draft CARTIF Agreement on Trade Facilitation", "CARTIF/WG-TF/W/1")


def test_tracked_changes_are_accepted_and_split_runs_rejoined() -> None:
    doc = extract(read("zero_draft.docx"), "zero_draft.docx")
    scope = doc.article("Article 1")
    assert scope is not None
    # "tran"+"sit" in two runs, paragraph numbers "1." and "2." from level 2 of the list.
    assert scope.paragraphs[0] == ("1. This Agreement applies to [all] goods in transit "
                                   "[CHN/PAK: and to the related services].")
    # w:ins kept, w:del dropped.
    assert scope.paragraphs[1] == "2. Each Party shall publish its procedures promptly."
    publication = doc.article("Article 3")
    assert publication is not None
    # w:moveTo kept, w:moveFrom dropped; the paragraph deleted with its mark is gone and not numbered;
    # a content control, a hyperlink and a cross-reference field (its result, not its instruction).
    assert publication.paragraphs == (
        "1. Each Party shall make available promptly information on import procedures.",
        "2. The information shall be published on the CAREC portal referred to in Article 1.",
    )
    assert "endeavour" not in doc.text and "without delay" not in doc.text and "_Ref" not in doc.text


def test_table_rows_and_footnotes_are_kept_in_their_article() -> None:
    doc = extract(read("zero_draft.docx"), "zero_draft.docx")
    definitions = doc.article("Article 2")
    assert definitions is not None
    assert definitions.paragraphs == (
        "1. For the purposes of this Agreement:¹",
        "Term | Meaning",
        "customs authority | [the authority][the authorities] responsible for [XX]",
        "¹ [UZB: Definitions to be aligned with the WTO Trade Facilitation Agreement.]",
    )
    # The separator and continuation-separator "footnotes" are not text; the row deleted with tracked
    # changes is gone.
    assert doc.text.count("¹") == 2
    assert "deleted row" not in doc.text


def test_title_comes_from_the_document_properties_and_json_round_trips() -> None:
    doc = extract(read("rev1.docx"), "rev1.docx")
    assert doc.title == "Draft CARTIF Agreement on Trade Facilitation, Rev.1"
    assert TextDocument.from_json(json.loads(json.dumps(doc.to_json()))) == doc
    assert extract(read("protocol.txt"), "protocol.txt").title == ""


def test_numbering_continues_after_a_manually_numbered_bis_article() -> None:
    doc = extract(read("rev1.docx"), "rev1.docx")
    assert [a.key for a in doc.articles] == ["Preamble", "Article 1", "Article 2", "Article 3", "Article 4",
                                             "Article 5", "Article 5 bis", "Article 6", "Annex I"]
    # Paragraph numbers restart under each article.
    assert doc.article("Article 6").paragraphs[1].startswith("2. ")  # type: ignore[union-attr]


def test_pdf_lines_are_rejoined_into_paragraphs_across_pages_without_page_numbers() -> None:
    doc = extract(read("protocol.pdf"), "protocol.pdf")
    assert (doc.format, doc.title) == ("pdf", "Draft CARTIF Protocol on Transit")
    assert [a.key for a in doc.articles] == ["Preamble", "Article 1", "Article 2"]
    assert doc.article("Article 1").paragraphs == (  # type: ignore[union-attr]
        "1. This Protocol applies to goods in transit [KAZ: and their carriers].",
        # Runs on from page 1 to page 2, over the "- 1 -" footer.
        "2. [Option 1: Each Party shall designate [X] crossing points for traffic in transit.]",
    )
    assert "Page 2" not in doc.text


@pytest.mark.parametrize("name", ["protocol.txt", "protocol-bom.txt", "protocol-utf16.txt"])
def test_text_files_in_each_encoding_give_the_same_articles(name: str) -> None:
    doc = extract(read(name), name)
    assert doc.format == "txt"
    assert [a.key for a in doc.articles] == ["Preamble", "Article 1", "Article 1 bis", "Article 2"]
    assert doc.article("Article 1 bis").paragraphs == ("[…]",)  # type: ignore[union-attr]
    assert doc.articles[0].paragraphs[0] == "Draft CARTIF Protocol on Sanitary Measures"


def test_a_sentence_citing_an_article_or_annex_does_not_open_one() -> None:
    text = ("Article 1 Scope\nThis applies.\nArticle 5 of the Convention on International Transport of Goods under "
            "Cover of TIR Carnets shall continue to apply between the Parties that are party to it.\n"
            "Article 3 shall not apply to Mongolia.\nAnnex I forms an integral part of this Agreement.\n"
            "ANNEX II\nList of goods\n")
    doc = extract(text.encode(), "x.txt")
    assert [a.key for a in doc.articles] == ["Article 1", "Annex II"]
    assert len(doc.articles[0].paragraphs) == 4


def _zip(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(("data", "filename", "expected"), [
    (read("protocol.pdf"), "draft.docx", "draft.docx: is a PDF, not a Word .docx document; rename it to .pdf"),
    (read("encrypted.docx"), "draft.docx", "draft.docx: is a password-protected (encrypted) Word document; "
                                           "remove the password"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old.docx", "old.docx: is an old binary Office file "
                                                                   "(Word 97-2003 .doc), not a Word .docx document; "
                                                                   "open it in Word and save it as .docx"),
    (read("zero_draft.docx")[:3000], "cut.docx", "cut.docx: is a damaged Word document"),
    (_zip({"xl/workbook.xml": b"<workbook/>"}), "book.docx", "book.docx: is a zip archive but not a Word document "
                                                             "(no word/document.xml)"),
    (_zip({"word/document.xml": b"<w:document><unclosed>"}), "bad.docx", "bad.docx: is a damaged Word document"),
    (read("zero_draft.docx"), "draft.pdf", "draft.pdf: is a zip archive (a Word or other Office file), not a PDF; "
                                           "rename it to .docx"),
    (b"%PDF-1.4\n1 0 obj garbage", "broken.pdf", "broken.pdf: is a damaged PDF"),
    (read("zero_draft.docx"), "draft.txt", "draft.txt: is a zip archive"),
    ("Article 1".encode("utf-16-le"), "nobom.txt", "nobom.txt: is a binary file or UTF-16 text without a "
                                                  "byte-order mark, not plain text; save it as UTF-8"),
    (b"caf\xe9 au lait", "latin1.txt", "latin1.txt: is not valid UTF-8 text (byte 3); save it as UTF-8"),
    (b"  \n\n\t\n", "blank.txt", "blank.txt: contains no text; check that this is the right file"),
    (b"hello", "notes.odt", "notes.odt: cannot read .odt; circulate the text as .docx, .pdf, .txt"),
])
def test_bad_input_is_refused_with_a_message_naming_the_file_and_the_fix(data: bytes, filename: str,
                                                                         expected: str) -> None:
    with pytest.raises(TextFormatError) as caught:
        extract(data, filename)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_a_document_with_no_text_is_refused() -> None:
    body = (b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            b"<w:p><w:r><w:t>   </w:t></w:r></w:p></w:body></w:document>")
    with pytest.raises(TextFormatError, match=r"^empty\.docx: contains no text"):
        extract(_zip({"word/document.xml": body}), "folder/empty.docx")


def test_a_dtd_in_a_part_is_refused_as_damage() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><w:document/>'
    with pytest.raises(TextFormatError, match="damaged Word document"):
        extract(_zip({"word/document.xml": body}), "bomb.docx")


W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _docx(paragraphs: str, numbering: str, styles: str = "") -> bytes:
    return _zip({
        "word/document.xml": f"<w:document {W_NS}><w:body>{paragraphs}</w:body></w:document>".encode(),
        "word/numbering.xml": f"<w:numbering {W_NS}>{numbering}</w:numbering>".encode(),
        "word/styles.xml": f"<w:styles {W_NS}>{styles}</w:styles>".encode(),
    })


def _numbered(text: str, num_id: int, ilvl: int = 0) -> str:
    return (f'<w:p><w:pPr><w:numPr><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr></w:pPr>'
            f"<w:r><w:t>{text}</w:t></w:r></w:p>")


def test_list_styles_restarts_and_roman_numbers_render_as_word_shows_them() -> None:
    numbering = (
        # The real list: "Article %1" in upper Roman, sub-level "%1.%2".
        '<w:abstractNum w:abstractNumId="0"><w:styleLink w:val="TreatyList"/>'
        '<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="upperRoman"/><w:lvlText w:val="Article %1"/></w:lvl>'
        '<w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2"/></w:lvl>'
        "</w:abstractNum>"
        # A second definition that only links to the list style: it continues the same counters.
        '<w:abstractNum w:abstractNumId="1"><w:numStyleLink w:val="TreatyList"/></w:abstractNum>'
        '<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>'
        '<w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num>'
        # A third list restarted at 7.
        '<w:num w:numId="3"><w:abstractNumId w:val="0"/>'
        '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="7"/></w:lvlOverride></w:num>'
    )
    styles = ('<w:style w:type="numbering" w:styleId="TreatyList"><w:name w:val="Treaty List"/>'
              '<w:pPr><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>')
    body = (_numbered("Scope", 1) + _numbered("This applies.", 1, 1) + _numbered("Definitions", 2)
            + _numbered("Terms.", 2, 1) + _numbered("Final", 3))
    doc = extract(_docx(body, numbering, styles), "list.docx")
    assert [(a.key, a.paragraphs) for a in doc.articles] == [
        ("Article I", ("I.1 This applies.",)), ("Article II", ("II.1 Terms.",)), ("Article VII", ())]


def test_malformed_numbering_is_reported_as_damage() -> None:
    numbering = ('<w:abstractNum w:abstractNumId="0"><w:lvl w:ilvl="zero"><w:start w:val="1"/></w:lvl>'
                 '</w:abstractNum><w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>')
    with pytest.raises(TextFormatError, match=r"^odd\.docx: is a damaged Word document \(ValueError"):
        extract(_docx(_numbered("Scope", 1), numbering), "odd.docx")


# --- Property: tracked changes resolved as accepted, however Word splits the runs -------------

_words = st.lists(st.text(alphabet="abcdefgh[]:;,.", min_size=1, max_size=8), min_size=1, max_size=12)


def _runs(text: str, cuts: list[int], junk: list[str], inserted: list[bool]) -> str:
    """``text`` as Word might store it: split into runs at ``cuts``, some runs inside w:ins, and
    deleted runs (w:del with w:delText) between them."""
    marks = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    out = []
    for k, (a, b) in enumerate(itertools.pairwise(marks)):
        run = f'<w:r><w:t xml:space="preserve">{escape(text[a:b])}</w:t></w:r>'
        if inserted[k % len(inserted)]:
            run = f'<w:ins w:id="{k}" w:author="A" w:date="2026-01-01T00:00:00Z">{run}</w:ins>'
        out.append(run)
        if junk:
            out.append(f'<w:del w:id="{k + 500}" w:author="B" w:date="2026-01-01T00:00:00Z"><w:r>'
                       f'<w:delText xml:space="preserve">{escape(junk[k % len(junk)])}</w:delText></w:r></w:del>')
    return "".join(out)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_words, min_size=1, max_size=4), min_size=1, max_size=4),
       st.lists(st.integers(min_value=0), max_size=6), st.lists(st.text(alphabet="xyz[] ", max_size=5), max_size=3),
       st.lists(st.booleans(), min_size=1, max_size=4))
def test_any_split_of_runs_with_tracked_changes_extracts_the_accepted_text(
        articles: list[list[list[str]]], cuts: list[int], junk: list[str], inserted: list[bool]) -> None:
    numbering = ('<w:abstractNum w:abstractNumId="0"><w:lvl w:ilvl="0"><w:start w:val="1"/>'
                 '<w:numFmt w:val="decimal"/><w:lvlText w:val="Article %1"/></w:lvl></w:abstractNum>'
                 '<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>')
    body = []
    expected = []
    for i, paragraphs in enumerate(articles):
        body.append(_numbered("Title", 1))
        texts = [" ".join(words) for words in paragraphs]
        body.extend(f"<w:p>{_runs(t, cuts, junk, inserted)}</w:p>" for t in texts)
        expected.append((f"Article {i + 1}", tuple(texts)))
    doc = extract(_docx("".join(body), numbering), "prop.docx")
    assert [(a.key, a.paragraphs) for a in doc.articles] == expected


def test_article_numbers_in_the_forms_negotiating_texts_use() -> None:
    text = ("Article 12bis Fees\nx\nArticle 12 BIS: Other\ny\nArticle 3a Scope\nz\nArticle IV\nw\n"
            "Article X.1 Scope\nv\nArticle 7.2\nu\nArticle B Transit\nq\n[KAZ: Article 9 ter – Review\nr]\n")
    doc = extract(text.encode(), "forms.txt")
    assert [(a.key, a.title) for a in doc.articles] == [
        ("Article 12 bis", "Fees"), ("Article 12 bis (2)", "Other"),  # a duplicated number stays distinguishable
        ("Article 3a", "Scope"), ("Article IV", ""), ("Article X.1", "Scope"), ("Article 7.2", ""),
        ("Article B", "Transit"), ("Article 9 ter", "Review")]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["zero_draft.docx", "protocol.pdf", "protocol-utf16.txt"]),
       st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1, max_size=8),
       st.none() | st.integers(min_value=0))
def test_a_corrupted_file_is_read_or_refused_with_a_text_format_error_never_a_crash(
        name: str, flips: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(read(name))
    for at, value in flips:
        data[at % len(data)] = value
    if cut is not None:
        data = data[:cut % len(data)]
    outcome: TextDocument | TextFormatError
    try:
        outcome = extract(bytes(data), name)
    except TextFormatError as e:
        outcome = e
    if isinstance(outcome, TextFormatError):
        assert str(outcome).startswith(f"{name}: ")
    else:
        assert outcome.articles


def test_a_hand_made_bold_heading_gives_the_article_its_title() -> None:
    def bold(text: str) -> str:
        return f"<w:p><w:r><w:rPr><w:b/></w:rPr><w:t>{text}</w:t></w:r></w:p>"

    def plain(text: str) -> str:
        return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"

    body = bold("ARTICLE 5") + bold("TRANSPARENCY") + plain("Each Party shall publish.") + bold("Note")
    doc = extract(_docx(body, ""), "bold.docx")
    (article,) = doc.articles
    assert (article.key, article.title, article.paragraphs) == (
        "Article 5", "TRANSPARENCY", ("Each Party shall publish.", "Note"))
