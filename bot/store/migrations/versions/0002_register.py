"""Document register: one row per circulated text (symbol, pinned version, archive copy, analysis).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "document_register",
        sa.Column("symbol", sa.String(200), primary_key=True),
        sa.Column("series", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("revises", sa.String(200), nullable=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("source_drive_id", sa.String(128), nullable=False),
        sa.Column("source_item_id", sa.String(128), nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("source_version_id", sa.String(64), nullable=True),
        sa.Column("source_etag", sa.Text, nullable=True),
        sa.Column("archive_item_id", sa.String(128), nullable=False),
        sa.Column("archive_path", sa.Text, nullable=False),
        sa.Column("archive_url", sa.Text, nullable=False),
        sa.Column("redline_path", sa.Text, nullable=True),
        sa.Column("redline_url", sa.Text, nullable=True),
        sa.Column("register_item_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("restricted", sa.Boolean, nullable=False),
        sa.Column("derestricted_at", sa.String(40), nullable=True),
        sa.Column("derestricted_by", sa.Text, nullable=True),
        sa.Column("circulated_at", sa.String(40), nullable=False),
        sa.Column("circulated_by", sa.Text, nullable=False),
        sa.Column("text_json", sa.Text, nullable=False),
        sa.Column("brackets_json", sa.Text, nullable=False),
        sa.Column("comparison_json", sa.Text, nullable=True),
        sa.UniqueConstraint("series", "content_sha256", name="uq_document_register_content"),
    )
    op.create_index("ix_document_register_series", "document_register", ["series", "number"])


def downgrade() -> None:
    op.drop_index("ix_document_register_series", table_name="document_register")
    op.drop_table("document_register")
