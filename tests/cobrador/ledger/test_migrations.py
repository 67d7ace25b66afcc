"""Alembic migrations build exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cobrador.ledger.db import get_engine
from cobrador.ledger.migrate import downgrade, upgrade
from cobrador.ledger.models import Base


def test_upgrade_matches_models_and_downgrade_empties(db_url: str) -> None:
    upgrade(db_url)
    engine = get_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables

    downgrade(db_url)
    assert set(inspect(get_engine(db_url)).get_table_names()) <= {"alembic_version"}


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    with get_engine(db_url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is not None
