"""Circulating negotiating texts: symbol, pinned version, immutable archive copy, redline, register entry.

Where it sits: called by ``cartif-bot circulate PATH`` and, for files dropped in a series'
"To circulate" folder, by ``pickup`` (the service cycle's ``bot.registering.CirculationStep``
calls it after the permission step; ``cartif-bot circulate --pickup`` runs it once). A dropped
file's archive copy is readable by whoever reads the SERIES' folder: the drop folder itself
should be the secretariat's alone (config/cartif.yaml declares it so), or anyone able to write
there could circulate under an official symbol. The site is reached only through the ``CirculationSite``
port (``connectors.circulation`` implements it over Graph and SharePoint REST); the store through
``bot.store.register``. The text work is ``bot.texts`` (pure).

The order of a circulation is the point of this module:

1. check what costs nothing: the series exists, ``--revises`` names a registered symbol;
2. read the source: its driveItem, the version id it is at, and THAT version's bytes (pinned);
3. idempotency: the same bytes already circulated in the series → the existing entry, nothing new;
4. ``prepare`` (pure): extract and analyse the text, compare with the revised one, allocate the
   symbol, name the archive copy and the redline. Every bad input fails here — before any write;
5. write to the site: archive copy (Read for whoever could read the source, Full Control for the
   bot only), redline beside it, list-item columns on both files, the "Document register" item;
6. commit the register entry and its ``CirculationEvent`` in ONE store transaction.

A crash between 5 and 6 leaves files on the site but no entry: a rerun allocates the same symbol
and overwrites them (the archive is the bot's own), so nothing is registered twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol

from bot.errors import BotError, TemporaryError, UserError
from bot.events import CirculationEvent, CirculationKind
from bot.store import Store, utc_now
from bot.store import register as reg
from bot.symbols import Symbol, SymbolError, archive_name, next_symbol, series_stem
from bot.texts import Article, BracketReport, Comparison, TextDocument, analyse, compare, extract, redline_html
from config.structure import Series, Structure

__all__ = ["BOT_NAME", "CirculationRequest", "CirculationResult", "CirculationSite", "DropFile", "PickupOutcome",
           "Prepared", "SourceFile", "StoredFile", "archive_columns", "circulate", "document_from_json", "pickup",
           "prepare", "read_source", "register_fields", "revision_label", "source_columns"]

#: Who circulated, when nobody else is known (the CLI runs as the bot's app).
BOT_NAME = "cartif-bot"
#: Values of the Status column: the source after circulation; the archive copy.
STATUS_CIRCULATED = "Circulated"
STATUS_ARCHIVED = "Archived"


# ---------------------------------------------------------------------------------------------- values
@dataclasses.dataclass(frozen=True, slots=True)
class CirculationRequest:
    """What the secretariat asked for: circulate PATH (library-relative) in SERIES under TITLE."""

    path: str
    series: str
    title: str
    kind: CirculationKind = "original"
    revises: str | None = None       #: required unless kind == "original"
    by: str | None = None            #: who circulates (default: the source's last editor — for a dropped
                                     #: file, who dropped it — else the bot)
    #: whose readers may read the archive copy: the source file (default), or for a drop-folder file
    #: the series' folder — the drop folder itself is the secretariat's, its readers are not the audience
    readers_of: str | None = None
    #: where the user gave ``revises``, for messages: the CLI flag of the kind by default, or for a
    #: dropped file its "Revises" column
    revises_given_as: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SourceFile:
    """The file as read for circulation: the pinned version and its exact bytes."""

    path: str                        #: library-relative
    name: str
    drive_id: str
    item_id: str
    etag: str | None
    version_id: str | None           #: the driveItem version whose bytes ``content`` holds ("3.0")
    web_url: str
    content: bytes
    modified_by: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the bot wrote (archive copy, redline)."""

    item_id: str
    path: str
    web_url: str


@dataclasses.dataclass(frozen=True, slots=True)
class DropFile:
    """A file in a "To circulate" folder; ``symbol`` is its Symbol column (set once circulated),
    ``revises`` its Revises column (filled in by whoever dropped a revision: the symbol it revises)."""

    path: str
    name: str
    symbol: str | None
    revises: str | None = None


class CirculationSite(Protocol):
    """What circulation needs from the site. Each method raises ``connectors.errors`` on failure."""

    def read_source(self, path: str) -> SourceFile:
        """The file at ``path`` with its current version id and THAT version's bytes; ``NotFound`` if absent."""

    def list_drop_folder(self, folder: str) -> list[DropFile]:
        """Files (not folders) directly in ``folder``; [] when the folder does not exist."""

    def write_protected_copy(self, path: str, content: bytes, *, readers_of: str) -> StoredFile:
        """Write ``content`` at ``path`` (parents created) with unique permissions: Read for every
        principal that can read ``readers_of`` (a file or a folder), Full Control for the bot only."""

    def set_columns(self, path: str, fields: Mapping[str, Any]) -> None:
        """Set list-item columns of the file at ``path`` (the columns are created on first use)."""

    def add_register_item(self, fields: Mapping[str, Any]) -> str:
        """Add an item to the "Document register" list (created if missing); returns its id."""

    def update_register_item(self, item_id: str, fields: Mapping[str, Any]) -> None: ...


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything decided before the first write (``prepare``)."""

    request: CirculationRequest
    series: Series
    source: SourceFile
    symbol: Symbol
    content_sha256: str
    document: TextDocument
    report: BracketReport
    previous: reg.RegisterEntry | None      #: the entry ``revises`` names
    comparison: Comparison | None           #: against ``previous`` (revisions only)
    archive_path: str
    redline_path: str | None
    redline: str | None                     #: the HTML redline
    circulated_at: str
    circulated_by: str


@dataclasses.dataclass(frozen=True)
class CirculationResult:
    """The register entry; ``created`` is False when the same content was already circulated."""

    entry: reg.RegisterEntry
    created: bool
    event: CirculationEvent | None = None


@dataclasses.dataclass(frozen=True)
class PickupOutcome:
    """One file found in a "To circulate" folder: circulated, or why not."""

    path: str
    series: str
    result: CirculationResult | None = None
    error: str | None = None


# ---------------------------------------------------------------------------------------------- pure core
def revision_label(symbol: Symbol) -> str:
    """The Revision column: the suffix stack ("Rev.1", "Add.1/Rev.1"), "Original" without one."""
    return "/".join(str(s) for s in symbol.suffixes) or "Original"


def document_from_json(data: Mapping[str, Any]) -> TextDocument:
    """A ``TextDocument`` back from its ``to_json()`` (the register keeps it as JSON)."""
    articles = tuple(Article(str(a["key"]), a["kind"], str(a["heading"]), str(a["title"]),
                             tuple(str(p) for p in a["paragraphs"])) for a in data["articles"])
    return TextDocument(str(data["filename"]), data["format"], articles)


def prepare(request: CirculationRequest, series: Series, source: SourceFile, *, archive_folder: str,
            known_symbols: Sequence[str], previous: reg.RegisterEntry | None, now: str) -> Prepared:
    """Extract, analyse, compare and name — no I/O. Raises ``UserError`` (``TextFormatError``) for bad content."""
    document = extract(source.content, source.name)
    report = analyse(document)
    try:
        symbol = next_symbol(series_stem(series.symbol, series.code), request.kind, known_symbols,
                             previous.symbol if previous is not None else None)
    except SymbolError as exc:
        raise UserError(f"series {series.code}: {exc}") from exc
    extension = PurePosixPath(source.name).suffix
    archive_path = f"{archive_folder}/{archive_name(symbol, extension)}"
    comparison = redline = redline_path = None
    if previous is not None and request.kind == "revision":
        comparison = compare(document_from_json(json.loads(previous.text_json)), document)
        redline = redline_html(comparison, title_old=previous.symbol, title_new=str(symbol))
        redline_path = f"{archive_folder}/{archive_name(symbol, '')}.redline.html"
    return Prepared(request, series, source, symbol, hashlib.sha256(source.content).hexdigest(), document, report,
                    previous, comparison, archive_path, redline_path, redline, now,
                    request.by or source.modified_by or BOT_NAME)


def source_columns(p: Prepared) -> dict[str, Any]:
    """Columns set on the source file once circulated."""
    return {"Symbol": str(p.symbol), "Revision": revision_label(p.symbol), "CirculatedOn": p.circulated_at,
            "Status": STATUS_CIRCULATED}


def archive_columns(p: Prepared) -> dict[str, Any]:
    """Columns of the archive copy (and of the redline)."""
    return {**source_columns(p), "Status": STATUS_ARCHIVED}


def register_fields(p: Prepared, archive: StoredFile) -> dict[str, Any]:
    """The "Document register" list item of a circulation."""
    return {"Title": p.request.title, "Symbol": str(p.symbol), "Series": p.series.code, "Kind": p.request.kind,
            "Revises": p.previous.symbol if p.previous is not None else "", "Revision": revision_label(p.symbol),
            "CirculatedOn": p.circulated_at, "Status": "Restricted", "ArchiveUrl": archive.web_url,
            "SourceVersion": p.source.version_id or "", "Brackets": p.report.segments,
            "CleanArticles": len(p.report.clean)}


def _entry_and_event(p: Prepared, archive: StoredFile, redline: StoredFile | None,
                     register_item_id: str | None) -> tuple[reg.RegisterEntry, CirculationEvent]:
    entry = reg.RegisterEntry(
        symbol=str(p.symbol), series=p.series.code, number=p.symbol.number, kind=p.request.kind,
        revises=p.previous.symbol if p.previous is not None else None, title=p.request.title,
        file_name=p.source.name, content_sha256=p.content_sha256, source_drive_id=p.source.drive_id,
        source_item_id=p.source.item_id, source_path=p.source.path, source_version_id=p.source.version_id,
        source_etag=p.source.etag, archive_item_id=archive.item_id, archive_path=archive.path,
        archive_url=archive.web_url, redline_path=redline.path if redline else None,
        redline_url=redline.web_url if redline else None, register_item_id=register_item_id, status="circulated",
        restricted=True, derestricted_at=None, derestricted_by=None, circulated_at=p.circulated_at,
        circulated_by=p.circulated_by, text_json=json.dumps(p.document.to_json(), ensure_ascii=False),
        brackets_json=json.dumps(p.report.to_json(), ensure_ascii=False),
        comparison_json=json.dumps(p.comparison.to_json(), ensure_ascii=False) if p.comparison else None)
    previous_total = None
    if p.previous is not None:
        previous_total = int(json.loads(p.previous.brackets_json)["total"]["segments"])
    event = CirculationEvent(
        symbol=entry.symbol, series=entry.series, title=entry.title, kind=p.request.kind, revises=entry.revises,
        folder=p.series.folder, archive_path=archive.path, archive_url=archive.web_url,
        redline_url=entry.redline_url, brackets_total=p.report.segments, brackets_previous=previous_total,
        clean_articles=tuple(p.report.clean), circulated_at=p.circulated_at, circulated_by=p.circulated_by)
    return entry, event


# ---------------------------------------------------------------------------------------------- the cycle
def _check_request(request: CirculationRequest, structure: Structure, store: Store
                   ) -> tuple[Series, reg.RegisterEntry | None]:
    series = structure.find_series(request.series)
    if series is None:
        known = ", ".join(s.code for s in structure.all_series())
        raise UserError(f"--series: unknown series {request.series!r}; use one of {known} (structure: series)")
    if not request.title.strip():
        raise UserError("--title: a circulated text needs a title")
    if request.kind == "original":
        if request.revises is not None:
            raise UserError("an original revises nothing: drop the symbol or choose --revises, --addendum-to or "
                            "--corrigendum-to")
        return series, None
    flag = request.revises_given_as or {"revision": "--revises", "addendum": "--addendum-to",
                                         "corrigendum": "--corrigendum-to"}[request.kind]
    if not request.revises:
        raise UserError(f"{flag}: give the symbol of the circulated text")
    try:
        symbol = str(Symbol.parse(request.revises))
    except SymbolError as exc:
        raise UserError(f"{flag}: {exc}") from None
    previous = reg.find(store, symbol)
    if previous is None:
        raise UserError(f"{flag}: no text was circulated as {symbol}; see `cartif-bot register list`")
    if previous.series != series.code:
        home = structure.find_series(previous.series)
        fix = (f"drop the file in {home.to_circulate!r} instead" if request.revises_given_as and home is not None
               else f"use --series {previous.series}")
        raise UserError(f"{flag}: {symbol} is in series {previous.series}, not {series.code}; {fix}")
    return series, previous


def read_source(site: CirculationSite, path: str) -> SourceFile:
    """The source, with a missing file turned into a message naming PATH."""
    from connectors.errors import NotFound

    clean = path.strip().strip("/")
    if not clean:
        raise UserError("PATH: give the library-relative path of the file to circulate")
    try:
        return site.read_source(clean)
    except NotFound:
        raise UserError(f"PATH: no file {clean!r} in the library (the path is library-relative, like "
                        "\"Working groups/WG-TF/Draft.docx\")") from None


def circulate(request: CirculationRequest, *, structure: Structure, site: CirculationSite, store: Store,
              now: str | None = None) -> CirculationResult:
    """Circulate one file (module docstring: the order of the steps)."""
    series, previous = _check_request(request, structure, store)
    source = read_source(site, request.path)
    sha = hashlib.sha256(source.content).hexdigest()
    existing = reg.find_by_content(store, series.code, sha)
    if existing is not None:
        return CirculationResult(existing, created=False)
    known = [e.symbol for e in reg.entries(store)]  # all series: two series may share a stem
    prepared = prepare(request, series, source, archive_folder=structure.layout_path(structure.series.archive),
                       known_symbols=known, previous=previous, now=now or utc_now())
    # ---- first write: everything above may fail and leaves the site and the store untouched.
    from connectors.errors import Conflict

    readers_of = request.readers_of or source.path
    try:
        archive = site.write_protected_copy(prepared.archive_path, source.content, readers_of=readers_of)
        redline = None
        if prepared.redline is not None and prepared.redline_path is not None:
            redline = site.write_protected_copy(prepared.redline_path, prepared.redline.encode(),
                                                readers_of=readers_of)
    except Conflict:
        raise TemporaryError(f"{prepared.symbol}: another circulation took this symbol meanwhile (its archive "
                             "copy holds other bytes); run the circulation again for the next symbol") from None
    site.set_columns(archive.path, archive_columns(prepared))
    if redline is not None:
        site.set_columns(redline.path, archive_columns(prepared))
    site.set_columns(source.path, source_columns(prepared))
    item_id = site.add_register_item(register_fields(prepared, archive))
    entry, event = _entry_and_event(prepared, archive, redline, item_id)
    if not reg.record_circulation(store, entry, event):
        # Another run registered the same content meanwhile: its entry stands. A different text under
        # this symbol cannot get here (its archive copy would have clashed above) unless the store
        # and the site disagree; then retrying allocates the next symbol.
        found = reg.find_by_content(store, series.code, sha)
        if found is None:
            raise TemporaryError(f"{entry.symbol}: registered meanwhile for another text; run the circulation "
                                 "again for the next symbol")
        return CirculationResult(found, created=False)
    return CirculationResult(entry, created=True, event=event)


def pickup(*, structure: Structure, site: CirculationSite, store: Store, now: str | None = None
           ) -> list[PickupOutcome]:
    """Circulate every not-yet-circulated file in each series' "To circulate" folder, titled by its file
    name: as the next revision of the symbol in its Revises column when one is filled in (the
    secretariat drops "Rev.1" of a text by typing the text's symbol there), else as an original.
    Addenda and corrigenda go through ``cartif-bot circulate``. One bad file (or a Revises naming
    no registered text) is reported and skipped; the others go on."""
    from connectors.errors import ConnectorError

    outcomes: list[PickupOutcome] = []
    for series in structure.all_series():
        for drop in site.list_drop_folder(series.to_circulate):
            if drop.symbol:
                continue  # circulated already (the bot set its Symbol column)
            revises = (drop.revises or "").strip() or None
            request = CirculationRequest(drop.path, series.code, PurePosixPath(drop.name).stem,
                                         kind="revision" if revises else "original", revises=revises,
                                         readers_of=series.folder,
                                         revises_given_as=f"the Revises column of {drop.name}")
            try:
                result = circulate(request, structure=structure, site=site, store=store, now=now)
            except (BotError, ConnectorError) as exc:
                outcomes.append(PickupOutcome(drop.path, series.code, error=" ".join(str(exc).split())))
                continue
            if not result.created:
                # The same bytes were circulated before (under another name): mark this copy so that
                # the next pickup does not download it again.
                site.set_columns(drop.path, {"Symbol": result.entry.symbol, "Status": STATUS_CIRCULATED})
            outcomes.append(PickupOutcome(drop.path, series.code, result=result))
    return outcomes
