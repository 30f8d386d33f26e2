"""Wiring and output of the circulation commands: circulate, register list/show/diff, derestrict.

Where it sits: called by ``bot.cli``; the work is ``bot.circulation`` (the cycle) and
``bot.store.register`` (the entries). This module opens the connector and the store, and turns
entries into tables, CSV, XLSX and JSON. ``show`` and ``diff`` read only the store: the text and
its analysis were kept at circulation, so they work without the site.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.circulation import CirculationSite, PickupOutcome, document_from_json, pickup
from bot.errors import UserError
from bot.store import Store, utc_now
from bot.store import register as reg
from bot.symbols import Symbol, SymbolError
from bot.texts import analyse, compare, redline_html
from config.settings import Settings
from config.structure import Structure, load_structure

__all__ = ["COLUMNS", "Circulation", "CirculationStep", "derestrict", "diff", "entry_or_error", "format_diff",
           "format_list", "format_show", "list_csv", "list_rows", "open_circulation", "pickup_once", "show",
           "write_xlsx"]

#: Columns of `register list` (table, CSV and XLSX), in order.
COLUMNS = ("symbol", "series", "kind", "revises", "title", "circulated_at", "circulated_by", "brackets",
           "clean_articles", "restricted", "source_version_id", "archive_url")


@dataclasses.dataclass
class Circulation:
    """What the circulation commands need, built once."""

    structure: Structure
    site: CirculationSite
    store: Store


@contextmanager
def open_circulation(settings: Settings, structure_path: Path | None, *,
                     store: Store | None = None) -> Iterator[Circulation]:
    """The structure, the site connector and the store (``store`` if given, else opened), closed afterwards."""
    from connectors.auth import Authenticator
    from connectors.circulation import build_site_circulation

    structure = load_structure(structure_path or settings.permissions.structure_path)
    authenticator = Authenticator(settings)
    try:
        site = build_site_circulation(settings, authenticator, structure)
        try:
            if store is not None:
                yield Circulation(structure, site, store)
            else:
                with Store.open(settings.store.url) as opened:
                    yield Circulation(structure, site, opened)
        finally:
            site.close()
    finally:
        authenticator.close()


def pickup_once(settings: Settings, store: Store, structure_path: Path | None = None) -> list[PickupOutcome]:
    """One pick-up pass over every series' "To circulate" folder (synchronous: run it in a thread)."""
    with open_circulation(settings, structure_path, store=store) as c:
        return pickup(structure=c.structure, site=c.site, store=c.store)


class CirculationStep:
    """The service cycle's circulation step (``bot.service.steps``): pick up dropped texts, after the
    permission step and before the notices drain (the events it writes are what notices send)."""

    name = "circulation"

    async def run(self, context: Any) -> Any:
        import asyncio

        from bot.service.steps import StepResult

        outcomes = await asyncio.to_thread(pickup_once, context.settings, context.store)
        created = [o for o in outcomes if o.result is not None and o.result.created]
        failed = [o for o in outcomes if o.error]
        return StepResult({"circulated": len(created), "failed": len(failed), "seen": len(outcomes)},
                          {"circulated": [o.result.entry.symbol for o in created if o.result is not None]},
                          tuple(f"{o.path}: {o.error}" for o in failed)[:50])


def entry_or_error(store: Store, symbol: str, what: str = "SYMBOL") -> reg.RegisterEntry:
    """The entry for ``symbol``; a ``UserError`` naming the argument when there is none."""
    try:
        text = str(Symbol.parse(symbol))
    except SymbolError as exc:
        raise UserError(f"{what}: {exc}") from None
    entry = reg.find(store, text)
    if entry is None:
        raise UserError(f"{what}: no text was circulated as {text}; see `cartif-bot register list`")
    return entry


# ---------------------------------------------------------------------------------------------- list
def list_rows(entries: list[reg.RegisterEntry]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        total = json.loads(e.brackets_json)["total"]
        rows.append({"symbol": e.symbol, "series": e.series, "kind": e.kind, "revises": e.revises or "",
                     "title": e.title, "circulated_at": e.circulated_at, "circulated_by": e.circulated_by,
                     "brackets": int(total["segments"]), "clean_articles": int(total["clean_articles"]),
                     "restricted": e.restricted, "source_version_id": e.source_version_id or "",
                     "archive_url": e.archive_url})
    return rows


def format_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "the register is empty: nothing has been circulated\n"
    shown = ("symbol", "kind", "title", "circulated_at", "brackets", "clean_articles", "restricted")
    head = ("SYMBOL", "KIND", "TITLE", "CIRCULATED", "BRACKETS", "CLEAN", "RESTRICTED")
    cells = [[_cell(r[c]) for c in shown] for r in rows]
    widths = [min(max(len(x[i]) for x in [*cells, list(head)]), 48) for i in range(len(shown))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(_fit(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([*lines, "", f"{len(rows)} text(s)"]) + "\n"


def _fit(text: str, width: int) -> str:
    """``text`` in a column ``width`` wide; a longer one cut with "…" so the cut shows."""
    return (text if len(text) <= width else text[:width - 1] + "…").ljust(width)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text[:19].replace("T", " ") if len(text) >= 20 and text[4:5] == "-" and text.endswith("Z") else text


def list_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_xlsx(rows: list[dict[str, Any]], path: Path) -> None:
    """An Excel workbook with one sheet "Register": a header row, then one row per text."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Register"
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([row[c] for c in COLUMNS])
    sheet.freeze_panes = "A2"
    try:
        book.save(path)
    except OSError as exc:
        raise UserError(f"--xlsx: cannot write {path} ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------------------------------- show
def show(store: Store, symbol: str) -> dict[str, Any]:
    """Metadata, pinned version, archive link, brackets per article and what changed vs the revised text."""
    entry = entry_or_error(store, symbol)
    report = json.loads(entry.brackets_json)
    return {**entry.to_json(), "brackets": report,
            "changes": json.loads(entry.comparison_json) if entry.comparison_json else None,
            "revised_by": [e.symbol for e in reg.entries(store, series=entry.series) if e.revises == entry.symbol]}


def format_show(data: dict[str, Any]) -> str:
    lines = [f"{data['symbol']}  {data['title']}",
             f"  series {data['series']}, {data['kind']}" + (f" of {data['revises']}" if data["revises"] else ""),
             f"  circulated {data['circulated_at']} by {data['circulated_by']}; "
             + ("restricted" if data["restricted"] else f"derestricted {data['derestricted_at']}"),
             f"  source    {data['source_path']} (version {data['source_version_id'] or '?'}, "
             f"eTag {data['source_etag'] or '?'}, sha256 {data['content_sha256'][:12]}…)",
             f"  archive   {data['archive_path']}", f"            {data['archive_url']}"]
    if data["redline_url"]:
        lines.append(f"  redline   {data['redline_url']}")
    if data["revised_by"]:
        lines.append(f"  revised by {', '.join(data['revised_by'])}")
    total = data["brackets"]["total"]
    lines += ["", f"Brackets: {total['segments']} segment(s), depth {total['depth']}, {total['alternatives']} "
                  f"alternative(s), {total['placeholders']} placeholder(s), {total['unbalanced']} unbalanced; "
                  f"{total['clean_articles']} of {total['articles']} article(s) clean"]
    for a in data["brackets"]["articles"]:
        mark = "clean" if a.get("clean") else f"{a['segments']} bracket(s)"
        lines.append(f"  {a['key']:<16} {mark}")
    changes = data["changes"]
    if changes:
        lines += ["", f"Changes since {data['revises']}: brackets {changes['brackets']['before']} → "
                      f"{changes['brackets']['after']} ({changes['brackets']['change']:+d})"]
        for label in ("added", "removed", "changed", "newly_clean"):
            if changes[label]:
                lines.append(f"  {label.replace('_', ' ')}: {', '.join(changes[label])}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- diff
def diff(store: Store, symbol_a: str, symbol_b: str) -> tuple[dict[str, Any], str]:
    """Articles added/removed/changed and bracket deltas from A to B, and the HTML redline."""
    a = entry_or_error(store, symbol_a, "SYMBOL_A")
    b = entry_or_error(store, symbol_b, "SYMBOL_B")
    old, new = document_from_json(json.loads(a.text_json)), document_from_json(json.loads(b.text_json))
    comparison = compare(old, new)
    summary = {"from": a.symbol, "to": b.symbol, **comparison.to_json(),
               "brackets_total": {"from": analyse(old).segments, "to": analyse(new).segments}}
    return summary, redline_html(comparison, title_old=a.symbol, title_new=b.symbol)


def format_diff(data: dict[str, Any]) -> str:
    lines = [f"{data['from']} → {data['to']}: brackets {data['brackets']['before']} → {data['brackets']['after']} "
             f"({data['brackets']['change']:+d})"]
    for label in ("added", "removed", "changed", "newly_clean"):
        lines.append(f"  {label.replace('_', ' '):<12} {', '.join(data[label]) or '-'}")
    for old_key, new_key in data["renumbered"]:
        lines.append(f"  renumbered   {old_key} → {new_key}")
    lines.append("")
    for art in data["articles"]:
        if art["status"] != "unchanged" or art["bracket_change"]:
            key = art["new_key"] or art["old_key"]
            lines.append(f"  {art['status']:<9} {key:<16} brackets {_n(art['brackets_before'])} → "
                         f"{_n(art['brackets_after'])}")
    return "\n".join(lines) + "\n"


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


# ---------------------------------------------------------------------------------------------- derestrict
def derestrict(store: Store, site: CirculationSite | None, symbol: str, *, by: str) -> reg.RegisterEntry:
    """Record the derestriction of a circulated text (store, and the register list's Status)."""
    entry = entry_or_error(store, symbol)
    if not entry.restricted:
        return entry
    at = utc_now()
    if site is not None and entry.register_item_id:
        site.update_register_item(entry.register_item_id, {"Status": "Derestricted"})
    updated = reg.derestrict(store, entry.symbol, by=by, at=at)
    assert updated is not None
    return updated
