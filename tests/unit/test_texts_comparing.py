"""Comparison of two revisions and the HTML redline (bot/texts/comparing.py).

We test these aspects: the committed Zero Draft against its Rev.1 (an article inserted, so every
later number shifts) gives the added article, each renumbered article paired with its old self,
bracket counts before/after per article and the newly clean articles; articles removed, rewritten
in place or identical; the redline marks word-level insertions and deletions, escapes everything,
keeps paragraphs well formed and leaves unchanged articles out of the body; ``to_json`` is plain JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.texts import Article, TextDocument, compare, extract, redline_html

FIXTURES = Path(__file__).parent.parent / "fixtures" / "texts"


def fixture(name: str) -> TextDocument:
    return extract((FIXTURES / name).read_bytes(), name)


def doc(*articles: tuple[str, tuple[str, ...]]) -> TextDocument:
    return TextDocument("t.txt", "txt", tuple(Article(k, "article", k, "", ps) for k, ps in articles))


def test_rev1_against_the_zero_draft() -> None:
    c = compare(fixture("zero_draft.docx"), fixture("rev1.docx"))
    assert c.added == ("Article 2",)
    assert c.removed == ()
    assert c.renumbered == (("Article 2", "Article 3"), ("Article 3", "Article 4"), ("Article 4", "Article 5"),
                            ("Article 4 bis", "Article 5 bis"), ("Article 5", "Article 6"))
    rows = [(ch.old_key, ch.new_key, ch.status, ch.brackets_before, ch.brackets_after) for ch in c.changes]
    assert rows == [
        ("Preamble", "Preamble", "changed", 4, 2),
        ("Article 1", "Article 1", "changed", 2, 1),
        (None, "Article 2", "added", None, 1),
        ("Article 2", "Article 3", "changed", 4, 2),
        ("Article 3", "Article 4", "unchanged", 0, 0),
        ("Article 4", "Article 5", "changed", 4, 3),
        ("Article 4 bis", "Article 5 bis", "unchanged", 2, 2),
        ("Article 5", "Article 6", "changed", 2, 0),
        ("Annex I", "Annex I", "changed", 2, 0),
    ]
    assert (c.brackets_before, c.brackets_after) == (20, 11)
    assert c.newly_clean == ("Article 6", "Annex I")
    assert json.loads(json.dumps(c.to_json()))["brackets"] == {"before": 20, "after": 11, "change": -9}


def test_removed_rewritten_and_identical_articles() -> None:
    old = doc(("Article 1", ("Each Party shall [publish] its laws.",)),
              ("Article 2", ("The Parties shall establish a committee on trade facilitation.",)),
              ("Article 3", ("Nothing in this Agreement shall prevent a Party from adopting measures.",)),
              ("Article 4", ("Done at Almaty.",)))
    new = doc(("Article 1", ("Each Party shall [publish] its laws.",)),
              ("Article 2", ("A committee is hereby established.",)),
              ("Article 3", ("Done at Almaty.",)))
    c = compare(old, new)
    assert [(ch.old_key, ch.new_key, ch.status) for ch in c.changes] == [
        ("Article 1", "Article 1", "unchanged"),
        ("Article 2", "Article 2", "changed"),      # rewritten in place: paired by its number
        ("Article 3", None, "removed"),             # listed where it stood
        ("Article 4", "Article 3", "unchanged"),    # same body, renumbered
    ]
    assert c.changes[1].similarity < 0.5


def test_renumbered_and_amended_articles_are_paired_by_similarity() -> None:
    body = ("Each Party shall accord freedom of transit through its territory to goods in transit "
            "by the routes most convenient for international transit")
    old = doc(("Article 7", (body + ".",)), ("Article 8", ("Customs cooperation shall be [enhanced].",)))
    new = doc(("Article 6", ("Customs cooperation shall be enhanced.",)),
              ("Article 7", ("[Ports] shall be open to all vessels.",)),
              ("Article 9", (body + " [, subject to national law].",)))
    c = compare(old, new)
    pairs = {(ch.old_key, ch.new_key) for ch in c.changes}
    assert ("Article 7", "Article 9") in pairs
    assert ("Article 8", "Article 6") in pairs
    assert (None, "Article 7") in pairs


def test_redline_marks_words_escapes_text_and_skips_unchanged_articles() -> None:
    old = doc(("Article 1", ("Goods <in> transit & [all] others.", "Unchanged paragraph.")),
              ("Article 2", ("Same text.",)))
    new = doc(("Article 1", ("Goods <in> transit & [some] others.", "Unchanged paragraph.", "A new one.")),
              ("Article 2", ("Same text.",)))
    page = redline_html(compare(old, new), title_old="W/1 <old>", title_new="W/1/Rev.1")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Redline: W/1/Rev.1 against W/1 &lt;old&gt;</title>" in page
    assert "<p>Goods &lt;in&gt; transit &amp; [<del>all</del><ins>some</ins>] others.</p>" in page
    assert "<p><ins>A new one.</ins></p>" in page
    assert "Same text." not in page  # unchanged articles appear in the summary table only
    assert "<script" not in page and "http" not in page.split("</style>", 1)[1]  # self-contained
    assert page.count("<p") == page.count("</p>")


def test_a_change_across_paragraphs_keeps_every_paragraph_well_formed() -> None:
    old = doc(("Article 1", ("one two", "three four", "five")))
    new = doc(("Article 1", ("one changed", "five", "six", "seven")))
    page = redline_html(compare(old, new), title_old="a", title_new="b")
    body = page.split("<section", 1)[1]
    for para in re.findall(r"<p[^>]*>(.*?)</p>", body):
        assert para.count("<ins>") == para.count("</ins>") and para.count("<del>") == para.count("</del>")
    assert "seven" in body and "three four" in body


def test_an_inserted_article_shifts_numbers_without_mispairing_amended_articles() -> None:
    # Six articles sharing the agreement's boilerplate words but not its sentences; Rev.1 inserts a
    # new Article 1 (all numbers shift by one) and amends every article a little.
    subjects = ["customs brokers", "advance rulings", "perishable goods", "border agency cooperation",
                "transit guarantees", "enquiry points"]
    old = doc(*((f"Article {i + 1}", (f"Each Party shall, in accordance with its national law, ensure that {s} "
                                      f"are dealt with promptly and that the {s} rules are published.",
                                      f"The Parties shall review the provisions on {s} [every two years]."))
                for i, s in enumerate(subjects)))
    new = doc(("Article 1", ("The Parties shall cooperate on all matters covered by this Agreement.",)),
              *((f"Article {i + 2}", (f"Each Party shall, in accordance with its national law, ensure that {s} "
                                      f"are dealt with without delay and that the {s} rules are published.",
                                      f"The Parties shall review the provisions on {s} every two years."))
                for i, s in enumerate(subjects)))
    c = compare(old, new)
    assert c.added == ("Article 1",)
    assert c.removed == ()
    assert c.renumbered == tuple((f"Article {i + 1}", f"Article {i + 2}") for i in range(6))
    assert [ch.bracket_change for ch in c.changes[1:]] == [-1] * 6
    assert c.newly_clean == ("Article 1", *(f"Article {i + 2}" for i in range(6)))


def test_a_bracket_added_to_a_heading_is_a_change_but_renumbering_alone_is_not() -> None:
    def art(key: str, heading: str) -> Article:
        return Article(key, "article", heading, "Fees", ("Fees shall be limited.",))

    old = TextDocument("a.docx", "docx", (art("Article 4 bis", "Article 4 bis: Fees"),
                                          art("Article 7", "Article 7 Fees")))
    new = TextDocument("b.docx", "docx", (art("Article 5 bis", "Article 5 bis: Fees"),
                                          art("Article 7", "[Article 7 Fees")))
    c = compare(old, new)
    assert [(ch.old_key, ch.new_key, ch.status) for ch in c.changes] == [
        ("Article 4 bis", "Article 5 bis", "unchanged"), ("Article 7", "Article 7", "changed")]
    assert c.changes[1].clean_after is False  # the heading's "[" is never closed
