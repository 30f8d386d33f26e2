"""Initial store: tracked items, delta cursors, subscriptions, change log, audit, outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tracked_items",
        sa.Column("drive_id", sa.String(128), primary_key=True),
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("parent_id", sa.String(128), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("is_folder", sa.Boolean, nullable=False),
        sa.Column("etag", sa.Text, nullable=True),
        sa.Column("ctag", sa.Text, nullable=True),
        sa.Column("size", sa.Integer, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("quick_xor", sa.String(64), nullable=True),
        sa.Column("modified_by", sa.Text, nullable=True),
        sa.Column("modified_at", sa.String(40), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_tracked_items_path", "tracked_items", ["drive_id", "path"])
    op.create_index("ix_tracked_items_parent", "tracked_items", ["drive_id", "parent_id"])
    op.create_table(
        "delta_cursors",
        sa.Column("drive_id", sa.String(128), primary_key=True),
        sa.Column("delta_link", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("drive_id", sa.String(128), nullable=False),
        sa.Column("expiration", sa.String(40), nullable=False),
        sa.Column("client_state_hash", sa.String(64), nullable=False),
        sa.Column("notification_url", sa.Text, nullable=False),
    )
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("cycle_id", sa.String(40), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("drive_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("old_path", sa.Text, nullable=True),
        sa.Column("classification", sa.Text, nullable=False),
        sa.Column("by_self", sa.Boolean, nullable=False),
    )
    op.create_index("ix_change_log_at", "change_log", ["at"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("cycle_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("after", sa.Text, nullable=True),
        sa.Column("rule", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    for index, table in (("ix_outbox_due", "outbox"), ("ix_audit_at", "audit"), ("ix_change_log_at", "change_log"),
                         ("ix_tracked_items_parent", "tracked_items"), ("ix_tracked_items_path", "tracked_items")):
        op.drop_index(index, table_name=table)
    for table in ("outbox", "audit", "change_log", "subscriptions", "delta_cursors", "tracked_items"):
        op.drop_table(table)
