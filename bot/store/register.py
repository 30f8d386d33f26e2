"""The document register in the store: one row per circulated text (table ``document_register``, migration 0002).

Where it sits: ``bot.circulation`` records an entry and its ``CirculationEvent`` outbox message
in ONE transaction (``record_circulation``): either both are there or neither, so the notices
step never announces a text the register does not hold, and a text is never registered without
its announcement. The register commands (``bot.registering``) read entries back.

``(series, content_sha256)`` is unique: circulating the same bytes twice in a series finds the
first entry (``find_by_content``) instead of allocating a new symbol.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import sqlalchemy as sa

from bot.events import CirculationEvent
from bot.store import Store, schema, utc_now

__all__ = ["EVENTS_CHANNEL", "RegisterEntry", "derestrict", "entries", "event_key", "find", "find_by_content",
           "record_circulation", "set_register_item"]

#: The outbox channel of domain events (the notices step reads it).
EVENTS_CHANNEL = "events"


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterEntry:
    """One circulated text: its symbol, the exact source version, the archive copy and the analysis."""

    symbol: str
    series: str
    number: int
    kind: str                        #: original | revision | addendum | corrigendum
    revises: str | None
    title: str
    file_name: str
    content_sha256: str
    source_drive_id: str
    source_item_id: str
    source_path: str
    source_version_id: str | None    #: the driveItem version circulated ("3.0")
    source_etag: str | None
    archive_item_id: str
    archive_path: str
    archive_url: str
    redline_path: str | None
    redline_url: str | None
    register_item_id: str | None     #: id of the item in the SharePoint "Document register" list
    status: str                      #: "circulated"
    restricted: bool
    derestricted_at: str | None
    derestricted_by: str | None
    circulated_at: str
    circulated_by: str
    text_json: str                   #: bot.texts.TextDocument.to_json()
    brackets_json: str               #: bot.texts.BracketReport.to_json()
    comparison_json: str | None      #: bot.texts.Comparison.to_json() against ``revises``

    def to_json(self) -> dict[str, Any]:
        """Metadata for output (without the stored text)."""
        data = dataclasses.asdict(self)
        for key in ("text_json", "brackets_json", "comparison_json"):
            data.pop(key)
        return data

    @property
    def text(self) -> dict[str, Any]:
        return dict(json.loads(self.text_json))


def event_key(symbol: str) -> str:
    """The outbox idempotency key of a circulation's event."""
    return f"circulation:{symbol}"


def _entry(row: Any) -> RegisterEntry:
    values = dict(row._mapping)
    values["restricted"] = bool(values["restricted"])
    return RegisterEntry(**values)


def entries(store: Store, *, series: str | None = None) -> list[RegisterEntry]:
    """Every entry, by series, then number, then circulation time."""
    t = schema.register
    query = sa.select(t).order_by(t.c.series, t.c.number, t.c.circulated_at)
    if series is not None:
        query = query.where(t.c.series == series)
    with store.engine.connect() as conn:
        return [_entry(r) for r in conn.execute(query)]


def find(store: Store, symbol: str) -> RegisterEntry | None:
    t = schema.register
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.symbol == symbol)).first()
    return _entry(row) if row is not None else None


def find_by_content(store: Store, series: str, content_sha256: str) -> RegisterEntry | None:
    t = schema.register
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.series == series, t.c.content_sha256 == content_sha256)).first()
    return _entry(row) if row is not None else None


def record_circulation(store: Store, entry: RegisterEntry, event: CirculationEvent) -> bool:
    """Insert the entry and enqueue its event in one transaction; False (nothing written) if the
    symbol or the (series, content) pair is already registered."""
    t = schema.register
    with store.engine.begin() as conn:
        clash = conn.execute(sa.select(t.c.symbol).where(sa.or_(
            t.c.symbol == entry.symbol,
            sa.and_(t.c.series == entry.series, t.c.content_sha256 == entry.content_sha256)))).first()
        if clash is not None:
            return False
        conn.execute(t.insert().values(**dataclasses.asdict(entry)))
        store.enqueue(EVENTS_CHANNEL, event_key(entry.symbol), event.to_json(), conn=conn)
    return True


def set_register_item(store: Store, symbol: str, item_id: str) -> None:
    t = schema.register
    with store.engine.begin() as conn:
        conn.execute(t.update().where(t.c.symbol == symbol).values(register_item_id=item_id))


def derestrict(store: Store, symbol: str, *, by: str, at: str | None = None) -> RegisterEntry | None:
    """Record a derestriction (once: a second call keeps the first date); None if no such symbol."""
    t = schema.register
    with store.engine.begin() as conn:
        conn.execute(t.update().where(t.c.symbol == symbol, t.c.restricted.is_(True)).values(
            restricted=False, derestricted_at=at or utc_now(), derestricted_by=by))
    return find(store, symbol)
