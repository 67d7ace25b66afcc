"""Ledger tables of the agent console: audit log and login throttling.

Defined on the ledger's `Base`; imported at the end of `cobrador.ledger.models`
so every table is part of one metadata (and of the migrations' comparison).
"""

from __future__ import annotations

from cobrador.ledger.models import Base  # noqa: F401
