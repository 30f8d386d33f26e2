"""The bot's durable state: SQLAlchemy 2 Core over SQLite (WAL) by default, PostgreSQL by URL.

Where it sits: the sync engine (``bot.syncing``) keeps tracked items, delta cursors and the
change log here; later steps add audit entries, subscriptions and outbox messages. ``Store.open``
upgrades the schema to the newest Alembic revision shipped in ``bot/store/migrations`` before
anything else runs, so an old database file is migrated on the first start of a new release.

Transactions are the point of it: ``commit_sync`` writes a cycle's item updates, its change
events and the new deltaLink in ONE transaction, and only if the cursor is still the one the
cycle started from — a crash at any point loses nothing and records nothing twice, and two
concurrent syncs of a drive cannot both commit.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (durable across a process crash, which is
what kill -9 tests; a power cut may lose the last commit, which the next delta run re-reads) and a
busy timeout so that a reader never fails on a writer. Rows leave as ``bot.store.rows``
dataclasses; timestamps are ISO-8601 UTC strings.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from bot.store import schema
from bot.store.rows import (
    AuditEntry,
    ChangeKind,
    ChangeRecord,
    DeltaCursor,
    OutboxMessage,
    Subscription,
    TrackedItem,
)

__all__ = [
    "AuditEntry",
    "ChangeKind",
    "ChangeRecord",
    "CursorMoved",
    "DeltaCursor",
    "OutboxMessage",
    "Store",
    "Subscription",
    "TrackedItem",
    "utc_now",
]

MIGRATIONS = Path(__file__).parent / "migrations"
#: SQLite's limit on bound parameters is 32,766 (3.32+); chunk IN lists well below it.
CHUNK = 500


def utc_now() -> str:
    """Now as Graph writes times: ISO-8601 UTC with a Z (sortable as text)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CursorMoved(Exception):
    """Another sync committed for this drive since this one started; its results are dropped."""


class Store:
    """The database; open with ``Store.open(url)`` and close (or use as a context manager)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://…``) and migrate to head."""
        engine = _engine(url)
        store = cls(engine)
        store.migrate()
        return store

    def migrate(self, revision: str = "head") -> None:
        """Run the shipped Alembic migrations up to ``revision`` on this store's engine."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    @staticmethod
    def head_revision() -> str:
        """The newest shipped migration (the chain must have exactly one head)."""
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        heads = ScriptDirectory.from_config(config).get_heads()
        if len(heads) != 1:
            raise RuntimeError(f"store migrations must form one chain; heads: {sorted(heads)}")
        return str(heads[0])

    def revision(self) -> str | None:
        """The schema revision the database is at (Alembic's ``alembic_version``)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ items
    def cursor(self, drive_id: str) -> DeltaCursor | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schema.cursors).where(schema.cursors.c.drive_id == drive_id)).first()
        return DeltaCursor(row.drive_id, row.delta_link, row.updated_at) if row else None

    def items_by_id(self, drive_id: str, ids: Iterable[str]) -> dict[str, TrackedItem]:
        """The tracked items (deleted ones too) among ``ids``."""
        t = schema.items
        wanted = list(dict.fromkeys(ids))
        found: dict[str, TrackedItem] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start:start + CHUNK]
                rows = conn.execute(sa.select(t).where(t.c.drive_id == drive_id, t.c.id.in_(chunk)))
                found.update((r.id, _item(r)) for r in rows)
        return found

    def items(self, drive_id: str, *, include_deleted: bool = False) -> Iterator[TrackedItem]:
        t = schema.items
        query = sa.select(t).where(t.c.drive_id == drive_id)
        if not include_deleted:
            query = query.where(t.c.deleted.is_(False))
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(t.c.path)):
                yield _item(row)

    def descendants(self, drive_id: str, path: str) -> list[TrackedItem]:
        """Live tracked items strictly under the folder at ``path``."""
        t = schema.items
        # LIKE with escaped wildcards: "_" and "%" are common in file names.
        query = sa.select(t).where(t.c.drive_id == drive_id, t.c.deleted.is_(False),
                                   t.c.path.startswith(path + "/", autoescape=True))
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query)]

    def count_live(self, drive_id: str) -> int:
        t = schema.items
        with self.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t).where(
                t.c.drive_id == drive_id, t.c.deleted.is_(False), t.c.parent_id.is_not(None))).scalar()
        return int(count or 0)

    def commit_sync(self, drive_id: str, *, items: Sequence[TrackedItem], changes: Sequence[ChangeRecord],
                    delta_link: str, expected_link: str | None,
                    outbox: Callable[[Sequence[ChangeRecord]], Iterable[tuple[str, str, Any]]] | None = None,
                    ) -> list[ChangeRecord]:
        """Write a cycle's results atomically: items, change events and the new cursor.

        ``outbox``, when given, maps the stored records (with ids) to outbox messages
        (channel, idempotency key, payload) written in the SAME transaction (bot.notices: change
        references for Teams notices); a key already present is skipped.

        ``expected_link`` is the cursor the cycle started from (None: none); if the stored one
        differs, another sync got there first and ``CursorMoved`` is raised with nothing written.
        Returns the change records with their ids.
        """
        now = utc_now()
        with self.engine.begin() as conn:
            current = conn.execute(sa.select(schema.cursors.c.delta_link).where(
                schema.cursors.c.drive_id == drive_id)).scalar()
            if current != expected_link:
                raise CursorMoved(f"the delta cursor of drive {drive_id} moved during this sync")
            if items:
                _upsert(conn, schema.items, [dataclass_row(i) for i in items], ("drive_id", "id"))
            stored: list[ChangeRecord] = []
            for record in changes:  # one by one: the ids are needed (a few per cycle, not thousands)
                new_id = conn.execute(schema.changes.insert().values(
                    cycle_id=record.cycle_id, at=record.at, drive_id=record.drive_id, item_id=record.item_id,
                    kind=record.kind, path=record.path, old_path=record.old_path,
                    classification=json.dumps(record.classification, sort_keys=True),
                    by_self=record.by_self)).inserted_primary_key
                stored.append(_replace_id(record, int(new_id[0]) if new_id else None))
            for channel, key, payload in (outbox(stored) if outbox is not None else ()):
                if not conn.execute(sa.select(schema.outbox.c.id).where(
                        schema.outbox.c.idempotency_key == key)).first():
                    conn.execute(schema.outbox.insert().values(
                        created_at=now, channel=channel, idempotency_key=key,
                        payload=json.dumps(payload, sort_keys=True), attempts=0, status="pending"))
            _upsert(conn, schema.cursors, [{"drive_id": drive_id, "delta_link": delta_link, "updated_at": now}],
                    ("drive_id",))
        return stored

    # ------------------------------------------------------------------------------------------ change log
    def changes(self, *, since: str | None = None, drive_id: str | None = None, include_self: bool = False,
                limit: int | None = None) -> list[ChangeRecord]:
        """Change events, oldest first; ``since`` is an ISO-8601 UTC time (inclusive)."""
        t = schema.changes
        query = sa.select(t).order_by(t.c.id)
        if since is not None:
            query = query.where(t.c.at >= since)
        if drive_id is not None:
            query = query.where(t.c.drive_id == drive_id)
        if not include_self:
            query = query.where(t.c.by_self.is_(False))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [ChangeRecord(r.cycle_id, r.at, r.drive_id, r.item_id, r.kind, r.path, r.old_path,
                                 json.loads(r.classification), bool(r.by_self), r.id)
                    for r in conn.execute(query)]

    # ------------------------------------------------------------------------------------------ audit
    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit entries in one transaction (``before``/``after`` are stored as JSON)."""
        if not entries:
            return
        with self.engine.begin() as conn:
            conn.execute(schema.audit.insert(), [
                {"at": e.at, "cycle_id": e.cycle_id, "action": e.action, "target": e.target,
                 "before": _json_or_none(e.before), "after": _json_or_none(e.after), "rule": e.rule}
                for e in entries])

    def audit(self, since: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first, from ``since`` (ISO-8601 UTC, inclusive)."""
        t = schema.audit
        query = sa.select(t).order_by(t.c.id)
        if since is not None:
            query = query.where(t.c.at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [AuditEntry(r.action, r.target, r.at, r.cycle_id, _load_or_none(r.before),
                               _load_or_none(r.after), r.rule, r.id) for r in conn.execute(query)]

    # ------------------------------------------------------------------------------------------ subscriptions
    def save_subscription(self, sub: Subscription) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, schema.subscriptions, [dataclass_row(sub)], ("id",))

    def subscriptions(self, drive_id: str | None = None) -> list[Subscription]:
        t = schema.subscriptions
        query = sa.select(t) if drive_id is None else sa.select(t).where(t.c.drive_id == drive_id)
        with self.engine.connect() as conn:
            return [Subscription(r.id, r.drive_id, r.expiration, r.client_state_hash, r.notification_url,
                                 r.lifecycle_notification_url, bool(r.include_security))
                    for r in conn.execute(query)]

    def delete_subscription(self, sub_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(schema.subscriptions.delete().where(schema.subscriptions.c.id == sub_id))

    # ------------------------------------------------------------------------------------------ outbox
    def enqueue(self, channel: str, idempotency_key: str, payload: Any, *, conn: Connection | None = None) -> bool:
        """Add a message unless one with the same key exists; True when added.

        With ``conn`` (an open transaction) the message commits or rolls back with the caller's
        other writes — a register entry and its circulation event go in together."""
        if conn is None:
            with self.engine.begin() as own:
                return self.enqueue(channel, idempotency_key, payload, conn=own)
        exists = conn.execute(sa.select(schema.outbox.c.id).where(
            schema.outbox.c.idempotency_key == idempotency_key)).first()
        if exists:
            return False
        conn.execute(schema.outbox.insert().values(
            created_at=utc_now(), channel=channel, idempotency_key=idempotency_key,
            payload=json.dumps(payload, sort_keys=True), attempts=0, status="pending"))
        return True

    def outbox(self, status: str | None = "pending") -> list[OutboxMessage]:
        t = schema.outbox
        query = sa.select(t).order_by(t.c.id)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [OutboxMessage(r.channel, r.idempotency_key, json.loads(r.payload), r.created_at, r.attempts,
                                  r.next_attempt_at, r.status, r.last_error, r.id) for r in conn.execute(query)]


# ---------------------------------------------------------------------------------------------- helpers
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        stmt = sqlite_insert(table)
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        stmt = pg_insert(table)  # type: ignore[assignment]
    else:  # pragma: no cover - Store.open accepts only these two
        raise ValueError(f"unsupported database: {dialect}")
    columns = [c.name for c in table.columns if c.name not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: getattr(stmt.excluded, c) for c in columns})
    for start in range(0, len(rows), 5000):
        conn.execute(stmt, rows[start:start + 5000])


def dataclass_row(value: Any) -> dict[str, Any]:
    return {f: getattr(value, f) for f in value.__dataclass_fields__}


def _item(row: Any) -> TrackedItem:
    return TrackedItem(row.drive_id, row.id, row.parent_id, row.path, row.name, bool(row.is_folder), row.etag,
                       row.ctag, row.size, row.sha256, row.quick_xor, row.modified_by, row.modified_at,
                       bool(row.deleted))


def _replace_id(record: ChangeRecord, new_id: int | None) -> ChangeRecord:
    return ChangeRecord(record.cycle_id, record.at, record.drive_id, record.item_id, record.kind, record.path,
                        record.old_path, record.classification, record.by_self, new_id)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _load_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
