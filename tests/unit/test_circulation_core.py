"""The circulation cycle on plain values: a fake site, a real store on a temporary SQLite file.

We test these aspects: the pure ``prepare`` (symbols, archive and redline names, columns); bad input
makes no write call on the site at all; a crash after the site writes and before the store commit
is repaired by running again (same symbol, one entry, one event); a symbol whose archive slot holds
other bytes (a concurrent circulation) is refused as temporary and changes nothing in the store;
the register entry and its event are written together; derestriction is recorded once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.circulation import (
    CirculationRequest,
    DropFile,
    SourceFile,
    StoredFile,
    circulate,
    pickup,
    prepare,
    register_fields,
    revision_label,
)
from bot.errors import TemporaryError, UserError
from bot.registering import derestrict, diff, format_diff, format_list, format_show, list_csv, list_rows, show
from bot.store import Store
from bot.store import register as reg
from bot.symbols import Symbol
from config.structure import load_structure
from connectors.errors import Conflict, NotFound

DRAFT = b"Draft\n[Preamble text]\n\nArticle 1: Scope\n1. It applies to [goods].\n\nArticle 2: Fees\n1. None.\n"
REVISION = b"Draft\n[Preamble text]\n\nArticle 1: Scope\n1. It applies to goods.\n\nArticle 2: Fees\n1. None.\n"
STRUCTURE = load_structure()
WG = "Working groups/WG-TF"


class FakeSite:
    """A ``CirculationSite`` in memory: files by path, columns, register items, and every write logged."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.columns: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.fail_on: str | None = None

    def _write(self, what: str) -> None:
        self.writes.append(what)
        if self.fail_on and what.startswith(self.fail_on):
            raise ConnectionError(f"crash during {what}")

    def read_source(self, path: str) -> SourceFile:
        if path not in self.files:
            raise NotFound(404, "itemNotFound", "not found", surface="graph")
        name = path.rsplit("/", 1)[-1]
        return SourceFile(path, name, "drive", f"id:{path}", '"etag"', "1.0", f"https://x/{path}", self.files[path])

    def list_drop_folder(self, folder: str) -> list[DropFile]:
        return [DropFile(p, p.rsplit("/", 1)[-1], self.columns.get(p, {}).get("Symbol"),
                         self.columns.get(p, {}).get("Revises"))
                for p in sorted(self.files) if p.rsplit("/", 1)[0] == folder]

    def write_protected_copy(self, path: str, content: bytes, *, readers_of: str) -> StoredFile:
        self._write(f"copy {path}")
        if path in self.files and self.files[path] != content:
            raise Conflict(409, "nameAlreadyExists", "exists", surface="graph")
        self.files[path] = content
        return StoredFile(f"id:{path}", path, f"https://x/{path}")

    def set_columns(self, path: str, fields: Mapping[str, Any]) -> None:
        self._write(f"columns {path}")
        self.columns.setdefault(path, {}).update(fields)

    def add_register_item(self, fields: Mapping[str, Any]) -> str:
        self._write("register item")
        item_id = str(len(self.items) + 1)
        self.items[item_id] = dict(fields)
        return item_id

    def update_register_item(self, item_id: str, fields: Mapping[str, Any]) -> None:
        self._write("register update")
        self.items[item_id].update(fields)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


def _circulate(site: FakeSite, store: Store, path: str, title: str = "T", **kw: Any) -> Any:
    request = CirculationRequest(path, kw.pop("series", "WG-TF"), title, **kw)
    return circulate(request, structure=STRUCTURE, site=site, store=store, now="2026-12-01T10:00:00.000000Z")


def test_prepare_names_the_symbol_the_archive_copy_and_the_redline() -> None:
    series = STRUCTURE.find_series("WG-TF")
    assert series is not None and series.folder == WG and series.to_circulate == f"{WG}/To circulate"
    source = SourceFile(f"{WG}/a.txt", "a.txt", "d", "i", None, "2.0", "u", DRAFT)
    p = prepare(CirculationRequest(source.path, "WG-TF", "Draft"), series, source,
                archive_folder="Negotiating texts/Archive", known_symbols=["CARTIF/WG-TF/W/1"], previous=None,
                now="2026-12-01T10:00:00Z")
    assert str(p.symbol) == "CARTIF/WG-TF/W/2" and p.redline is None
    assert p.archive_path == "Negotiating texts/Archive/CARTIF_WG-TF_W_2.txt"
    assert p.content_sha256 == hashlib.sha256(DRAFT).hexdigest()
    assert p.report.segments == 2 and p.report.clean == ("Article 2",)
    fields = register_fields(p, StoredFile("i", p.archive_path, "https://x/a"))
    assert fields["Symbol"] == "CARTIF/WG-TF/W/2" and fields["Revision"] == "Original" and fields["Brackets"] == 2
    assert revision_label(Symbol.parse("CARTIF/WG-TF/W/3/Add.1/Rev.2")) == "Add.1/Rev.2"


@pytest.mark.parametrize(("files", "path", "kw", "message"), [
    ({}, f"{WG}/missing.txt", {}, "PATH: no file"),
    ({f"{WG}/a.txt": DRAFT}, f"{WG}/a.txt", {"series": "NOPE"}, "--series: unknown series"),
    ({f"{WG}/a.docx": DRAFT}, f"{WG}/a.docx", {}, "a.docx"),
    ({f"{WG}/a.txt": DRAFT}, f"{WG}/a.txt", {"kind": "corrigendum", "revises": "CARTIF/WG-TF/W/4"},
     "--corrigendum-to: no text was circulated as CARTIF/WG-TF/W/4"),
    ({f"{WG}/a.txt": DRAFT}, f"{WG}/a.txt", {"revises": "CARTIF/WG-TF/W/1"}, "an original revises nothing"),
    ({f"{WG}/a.txt": b""}, f"{WG}/a.txt", {}, "a.txt"),
])
def test_bad_input_makes_no_write_at_all(store: Store, files: dict[str, bytes], path: str, kw: dict[str, Any],
                                         message: str) -> None:
    site = FakeSite()
    site.files.update(files)
    with pytest.raises(UserError, match=message):
        _circulate(site, store, path, **kw)
    assert site.writes == [] and reg.entries(store) == [] and store.outbox(status=None) == []


def test_a_revision_in_another_series_is_refused(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/a.txt"] = DRAFT
    _circulate(site, store, f"{WG}/a.txt")
    site.files["Plenary/b.txt"] = REVISION
    with pytest.raises(UserError, match="is in series WG-TF, not PLEN"):
        _circulate(site, store, "Plenary/b.txt", series="PLEN", kind="revision", revises="CARTIF/WG-TF/W/1")


def test_a_crash_before_the_store_commit_is_repaired_by_running_again(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/a.txt"] = DRAFT
    site.fail_on = "register item"
    with pytest.raises(ConnectionError):
        _circulate(site, store, f"{WG}/a.txt")
    assert reg.entries(store) == [] and store.outbox(status=None) == []
    assert "Negotiating texts/Archive/CARTIF_WG-TF_W_1.txt" in site.files  # written before the crash
    site.fail_on = None
    result = _circulate(site, store, f"{WG}/a.txt")
    assert result.created and result.entry.symbol == "CARTIF/WG-TF/W/1"
    assert [m.idempotency_key for m in store.outbox()] == [reg.event_key("CARTIF/WG-TF/W/1")]


def test_an_archive_slot_holding_other_bytes_is_a_temporary_refusal(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/a.txt"] = DRAFT
    site.files["Negotiating texts/Archive/CARTIF_WG-TF_W_1.txt"] = b"another text circulated meanwhile"
    with pytest.raises(TemporaryError, match="another circulation took this symbol"):
        _circulate(site, store, f"{WG}/a.txt")
    assert reg.entries(store) == [] and store.outbox(status=None) == []


def test_the_entry_and_its_event_are_recorded_together_once(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/a.txt"] = DRAFT
    entry = _circulate(site, store, f"{WG}/a.txt").entry
    event = json.loads(json.dumps(store.outbox()[0].payload))
    assert event["symbol"] == entry.symbol and event["type"] == "circulation"
    # Recording again (same symbol, or same content under another symbol) writes nothing.
    other = dataclasses.replace(entry, symbol="CARTIF/WG-TF/W/9")
    from bot.events import CirculationEvent
    assert not reg.record_circulation(store, other, CirculationEvent.from_json(event))
    assert [e.symbol for e in reg.entries(store)] == [entry.symbol] and len(store.outbox(status=None)) == 1


def test_pickup_circulates_new_drops_once_and_reports_bad_ones(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/To circulate/Non-paper.txt"] = DRAFT
    site.files[f"{WG}/To circulate/Bad.pdf"] = b"%PDF-broken"
    site.files["Plenary/To circulate/Same bytes.txt"] = DRAFT
    outcomes = {o.path: o for o in pickup(structure=STRUCTURE, site=site, store=store)}
    assert outcomes[f"{WG}/To circulate/Non-paper.txt"].result.entry.symbol == "CARTIF/WG-TF/W/1"  # type: ignore[union-attr]
    assert outcomes["Plenary/To circulate/Same bytes.txt"].result.entry.symbol == "CARTIF/PLEN/W/1"  # type: ignore[union-attr]
    assert "Bad.pdf" in (outcomes[f"{WG}/To circulate/Bad.pdf"].error or "")
    again = pickup(structure=STRUCTURE, site=site, store=store)
    assert [o.path for o in again] == [f"{WG}/To circulate/Bad.pdf"]


def test_a_drop_with_a_revises_column_is_circulated_as_the_next_revision(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/To circulate/Zero draft.txt"] = DRAFT
    assert [o.result.entry.symbol for o in pickup(structure=STRUCTURE, site=site, store=store)  # type: ignore[union-attr]
            ] == ["CARTIF/WG-TF/W/1"]
    site.files[f"{WG}/To circulate/Zero draft, revised.txt"] = REVISION
    site.columns[f"{WG}/To circulate/Zero draft, revised.txt"] = {"Revises": " CARTIF/WG-TF/W/1 "}
    site.files[f"{WG}/To circulate/Typo.txt"] = REVISION + b"x"
    site.columns[f"{WG}/To circulate/Typo.txt"] = {"Revises": "CARTIF/WG-TF/W/9"}
    site.files["Plenary/To circulate/Wrong series.txt"] = REVISION + b"y"
    site.columns["Plenary/To circulate/Wrong series.txt"] = {"Revises": "CARTIF/WG-TF/W/1"}
    outcomes = {o.path: o for o in pickup(structure=STRUCTURE, site=site, store=store)}
    revised = outcomes[f"{WG}/To circulate/Zero draft, revised.txt"].result
    assert revised is not None and revised.entry.symbol == "CARTIF/WG-TF/W/1/Rev.1"
    assert revised.entry.revises == "CARTIF/WG-TF/W/1" and revised.entry.redline_path
    assert outcomes[f"{WG}/To circulate/Typo.txt"].error == (
        "the Revises column of Typo.txt: no text was circulated as CARTIF/WG-TF/W/9; see `cartif-bot register list`")
    assert outcomes["Plenary/To circulate/Wrong series.txt"].error == (
        "the Revises column of Wrong series.txt: CARTIF/WG-TF/W/1 is in series WG-TF, not PLEN; drop the file in "
        f"'{WG}/To circulate' instead")
    assert [e.symbol for e in reg.entries(store)] == ["CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1"]


def test_register_output_and_derestriction(store: Store) -> None:
    site = FakeSite()
    site.files[f"{WG}/a.txt"] = DRAFT
    site.files[f"{WG}/b.txt"] = REVISION
    first = _circulate(site, store, f"{WG}/a.txt", "Zero draft").entry
    second = _circulate(site, store, f"{WG}/b.txt", "Zero draft, Rev.1", kind="revision", revises=first.symbol).entry
    rows = list_rows(reg.entries(store))
    assert [(r["symbol"], r["brackets"], r["clean_articles"]) for r in rows] == [
        ("CARTIF/WG-TF/W/1", 2, 1), ("CARTIF/WG-TF/W/1/Rev.1", 1, 2)]
    assert "Zero draft, Rev.1" in format_list(rows) and list_csv(rows).count("\n") == 3
    long_title = [{**rows[0], "title": "Draft CARTIF Protocol on Trade Facilitation, Rev.1 (consolidated)"}]
    assert "Draft CARTIF Protocol on Trade Facilitation, Re…" in format_list(long_title)  # a cut shows
    text = format_show(show(store, second.symbol))
    assert "brackets 2 → 1 (-1)" in text and "changed: Article 1" in text
    summary, html = diff(store, first.symbol, second.symbol)
    assert summary["changed"] == ["Article 1"] and "Article 1" in format_diff(summary) and "<" in html
    with pytest.raises(UserError, match="SYMBOL_B: no text was circulated"):
        diff(store, first.symbol, "CARTIF/WG-TF/W/5")
    done = derestrict(store, site, first.symbol, by="HoD")
    assert not done.restricted and done.derestricted_by == "HoD"
    assert site.items[str(first.register_item_id)]["Status"] == "Derestricted"
    again = derestrict(store, site, first.symbol, by="someone else")
    assert again.derestricted_by == "HoD" and again.derestricted_at == done.derestricted_at


def test_the_migrations_create_exactly_the_schema(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.store import schema

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
        assert "document_register" in conn.dialect.get_table_names(conn)
