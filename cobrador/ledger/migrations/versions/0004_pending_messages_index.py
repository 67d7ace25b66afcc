"""index of the inbound messages not answered yet

The channel's sweep (every 15 seconds) and its start-up recovery look for
inbound messages still `received` or `processing`; without this index each
look read the whole message log. Partial: it holds only those messages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 05:05:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PENDING = "direction = 'inbound' AND status IN ('received', 'processing')"


def upgrade() -> None:
    op.create_index(
        "ix_messages_pending",
        "messages",
        ["status", "updated_at"],
        unique=False,
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_pending", table_name="messages")
