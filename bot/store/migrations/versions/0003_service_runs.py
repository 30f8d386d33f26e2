"""Service run history: one row per cycle the service started (``cartif-bot run``), kept N days.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "service_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.Text, nullable=True),
        sa.Column("follow_up_of", sa.String(40), nullable=True),
        sa.Column("triggers", sa.Integer, nullable=False),
        sa.Column("requested_at", sa.String(40), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40), nullable=True),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_service_runs_started", "service_runs", ["started_at"])
    op.create_index("ix_service_runs_status", "service_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_service_runs_status", table_name="service_runs")
    op.drop_index("ix_service_runs_started", table_name="service_runs")
    op.drop_table("service_runs")
