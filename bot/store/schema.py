"""The store's tables as SQLAlchemy Core metadata: what migrations create and what ``Store`` queries.

Where it sits: ``bot.store.Store`` reads and writes these tables; the Alembic migrations in
``bot/store/migrations/versions`` create them (``0001_initial`` mirrors this file — a later
schema change adds a migration AND updates this file). Core, not ORM: rows leave the store as
the light dataclasses of ``bot.store.rows``, never as mapped objects.

Timestamps are ISO-8601 UTC strings with a ``Z`` (as Graph sends them), so they sort and compare
as text on SQLite and PostgreSQL alike; JSON columns hold JSON text.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, UniqueConstraint, false

__all__ = ["audit", "changes", "cursors", "items", "metadata", "outbox", "register", "service_runs",
           "subscriptions"]

metadata = MetaData()

#: Every driveItem we know of, by (drive, id); ``path`` is drive-relative ("" for the root,
#: "/A/b.txt"), recomputed from the parent chain because delta never sends it.
items = Table(
    "tracked_items", metadata,
    Column("drive_id", String(128), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("parent_id", String(128), nullable=True),
    Column("path", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("is_folder", Boolean, nullable=False),
    Column("etag", Text, nullable=True),
    Column("ctag", Text, nullable=True),
    Column("size", Integer, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("quick_xor", String(64), nullable=True),
    Column("modified_by", Text, nullable=True),
    Column("modified_at", String(40), nullable=True),
    Column("deleted", Boolean, nullable=False, default=False),
    Index("ix_tracked_items_path", "drive_id", "path"),
    Index("ix_tracked_items_parent", "drive_id", "parent_id"),
)

#: The delta cursor per drive: the deltaLink to resume from.
cursors = Table(
    "delta_cursors", metadata,
    Column("drive_id", String(128), primary_key=True),
    Column("delta_link", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

#: Graph change-notification subscriptions we created (the clientState is kept as a hash only).
subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(128), primary_key=True),
    Column("drive_id", String(128), nullable=False),
    Column("expiration", String(40), nullable=False),
    Column("client_state_hash", String(64), nullable=False),
    Column("notification_url", Text, nullable=False),
    # NULL: created before lifecycle notifications were asked for (migration 0004)
    Column("lifecycle_notification_url", Text, nullable=True),
    # created with Prefer: includesecuritywebhooks (permission changes notified too)
    Column("include_security", Boolean, nullable=False, server_default=false()),
)

#: One row per change event a sync found (including the bot's own writes, flagged ``by_self``).
changes = Table(
    "change_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cycle_id", String(40), nullable=False),
    Column("at", String(40), nullable=False),
    Column("drive_id", String(128), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("old_path", Text, nullable=True),
    Column("classification", Text, nullable=False),
    Column("by_self", Boolean, nullable=False, default=False),
    Index("ix_change_log_at", "at"),
)

#: What the bot did and why: one row per action (later issues write most of them).
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("cycle_id", String(40), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("rule", Text, nullable=True),
    Index("ix_audit_at", "at"),
)

#: Messages to deliver at least once (Teams notices, …); ``idempotency_key`` stops duplicates.
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", String(40), nullable=False),
    Column("channel", Text, nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", String(40), nullable=True),
    Column("status", String(16), nullable=False, default="pending"),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

#: The document register (migration 0002): one row per circulated text, keyed by its symbol.
#: ``(series, content_sha256)`` is unique so that circulating the same content twice finds the
#: existing entry instead of assigning a new symbol; ``text_json``/``brackets_json`` keep the
#: extracted text and its bracket analysis so ``register show/diff`` need no download.
register = Table(
    "document_register", metadata,
    Column("symbol", String(200), primary_key=True),
    Column("series", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("revises", String(200), nullable=True),
    Column("title", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("source_drive_id", String(128), nullable=False),
    Column("source_item_id", String(128), nullable=False),
    Column("source_path", Text, nullable=False),
    Column("source_version_id", String(64), nullable=True),
    Column("source_etag", Text, nullable=True),
    Column("archive_item_id", String(128), nullable=False),
    Column("archive_path", Text, nullable=False),
    Column("archive_url", Text, nullable=False),
    Column("redline_path", Text, nullable=True),
    Column("redline_url", Text, nullable=True),
    Column("register_item_id", String(128), nullable=True),
    Column("status", String(32), nullable=False),
    Column("restricted", Boolean, nullable=False),
    Column("derestricted_at", String(40), nullable=True),
    Column("derestricted_by", Text, nullable=True),
    Column("circulated_at", String(40), nullable=False),
    Column("circulated_by", Text, nullable=False),
    Column("text_json", Text, nullable=False),
    Column("brackets_json", Text, nullable=False),
    Column("comparison_json", Text, nullable=True),
    UniqueConstraint("series", "content_sha256", name="uq_document_register_content"),
    Index("ix_document_register_series", "series", "number"),
)

#: The service's run history (migration 0003): one row per cycle ``cartif-bot run`` started, written
#: at start (status "running") and updated at the end; ``steps`` is a JSON summary per step. A row
#: still "running" when the leader starts a run belonged to a process that died: it is marked "interrupted".
#: Kept ``service.run_history_days`` (bot.service.history prunes at the end of each run).
service_runs = Table(
    "service_runs", metadata,
    Column("id", String(40), primary_key=True),
    Column("trigger", String(32), nullable=False),
    Column("requested_by", Text, nullable=True),
    Column("follow_up_of", String(40), nullable=True),
    Column("triggers", Integer, nullable=False),
    Column("requested_at", String(40), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40), nullable=True),
    Column("seconds", Float, nullable=True),
    Column("status", String(16), nullable=False),
    Column("steps", Text, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_service_runs_started", "started_at"),
    Index("ix_service_runs_status", "status"),
)
