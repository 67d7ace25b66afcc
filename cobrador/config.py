"""Process configuration, read from environment variables.

Every setting has a local default so that `make run` works without accounts;
setting the production variables (database, Twilio) changes the deployment,
not the code. See the README's "Configuration" section.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_DATABASE_URL = f"sqlite:///{VAR_DIR / 'cobrador.db'}"


@dataclass(frozen=True)
class Settings:
    """Settings of one process, resolved once from the environment."""

    database_url: str
    sql_pool_size: int
    sql_max_overflow: int
    default_region: str

    @classmethod
    def from_env(cls) -> Settings:
        """Builds settings from `os.environ`, with local defaults."""
        return cls(
            database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            sql_pool_size=int(os.environ.get("SQL_POOL_SIZE", "5")),
            sql_max_overflow=int(os.environ.get("SQL_MAX_OVERFLOW", "5")),
            default_region=os.environ.get("COBRADOR_DEFAULT_REGION", "MX"),
        )


def settings() -> Settings:
    """Current settings. Read on each call so tests can change the environment."""
    return Settings.from_env()


def switched_on(name: str) -> bool:
    """An on/off environment variable that is on unless set to off, no, false or 0."""
    return os.environ.get(name, "on").strip().lower() not in ("off", "no", "false", "0")
