"""Subscriptions remember their lifecycleNotificationUrl and whether they include permission changes.

Graph sends ``reauthorizationRequired`` lifecycle notifications (and pauses change notifications
until they are answered) only to subscriptions created with a lifecycleNotificationUrl, and
permission changes only to those created with ``Prefer: includesecuritywebhooks``; neither can
be added later by PATCH. Rows from before this revision have NULL / false here: the subscription
manager replaces those subscriptions once.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("lifecycle_notification_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("include_security", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("include_security")
        batch.drop_column("lifecycle_notification_url")
