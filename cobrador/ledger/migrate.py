"""Schema migrations with Alembic, configured in code (no alembic.ini)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: Optional[str] = None) -> Config:
    """An Alembic config for `url` (default: the configured database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: Optional[str] = None, revision: str = "heads") -> None:
    """Brings the database at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: Optional[str] = None, revision: str = "base") -> None:
    """Takes the database at `url` down to `revision`."""
    command.downgrade(alembic_config(url), revision)
