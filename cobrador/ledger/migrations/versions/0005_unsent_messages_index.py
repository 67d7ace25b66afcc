"""index of the replies logged for Twilio that Twilio has not taken yet

In Twilio mode a turn's replies are logged `sending` with its "processed"
mark, then sent; the ingest's resend sweep finds those a crash left unsent.
Partial: it holds only those messages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNSENT = "direction = 'outbound' AND status = 'sending' AND provider_sid IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_messages_unsent",
        "messages",
        ["updated_at"],
        unique=False,
        sqlite_where=sa.text(UNSENT),
        postgresql_where=sa.text(UNSENT),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_unsent", table_name="messages")
