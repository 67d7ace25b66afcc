"""Alembic environment: migrates the database of `DATABASE_URL` (or the URL
the caller put in the Alembic config)."""

from alembic import context

from cobrador.ledger.db import get_engine
from cobrador.ledger.models import Base

config = context.config


def run_migrations() -> None:
    """Runs migrations online; SQLite needs batch mode to alter tables."""
    url = config.get_main_option("sqlalchemy.url") or None
    connectable = config.attributes.get("connection")
    if connectable is None:
        with get_engine(url).connect() as connection:
            _run(connection)
            connection.commit()
    else:
        _run(connectable)


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
