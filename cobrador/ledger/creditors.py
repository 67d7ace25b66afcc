"""Creditor (portfolio) configuration, loaded from YAML and upserted by code.

Collections teams change plan policy, payment instructions and contact rules
by editing the file and running `python -m cobrador creditors load FILE`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from cobrador.ledger.models import CURRENCIES, FREQUENCIES, Creditor

REQUIRED = ("code", "legal_name", "display_name", "collector_name")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_FIELDS = {column.key for column in Creditor.__table__.columns} - {"id", "created_at", "updated_at"}


class CreditorConfigError(ValueError):
    """The creditor file is invalid; the message names the creditor and field."""


def _validated(entry: dict[str, Any]) -> dict[str, Any]:
    code = entry.get("code", "?")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise CreditorConfigError(f"creditor {code}: unknown fields {sorted(unknown)}")
    for field in REQUIRED:
        if not str(entry.get(field) or "").strip():
            raise CreditorConfigError(f"creditor {code}: {field} is required")
    values = dict(entry)
    if values.get("default_currency", "MXN") not in CURRENCIES:
        raise CreditorConfigError(f"creditor {code}: default_currency must be one of {CURRENCIES}")
    frequencies = values.get("plan_frequencies", "weekly,biweekly,monthly")
    if isinstance(frequencies, list):
        frequencies = ",".join(frequencies)
    bad = [f for f in frequencies.split(",") if f.strip() not in FREQUENCIES]
    if bad or not frequencies.strip():
        raise CreditorConfigError(f"creditor {code}: plan_frequencies must be among {FREQUENCIES}")
    values["plan_frequencies"] = ",".join(f.strip() for f in frequencies.split(","))
    for field in ("plan_min_installment", "settlement_discount_pct"):
        if values.get(field) is not None:
            try:
                values[field] = Decimal(str(values[field]))
            except InvalidOperation as exc:
                raise CreditorConfigError(f"creditor {code}: {field} is not a number") from exc
    pct = values.get("settlement_discount_pct")
    if pct is not None and not (Decimal(0) <= pct < Decimal(100)):
        raise CreditorConfigError(f"creditor {code}: settlement_discount_pct must be in [0, 100)")
    for field in ("contact_window_start", "contact_window_end"):
        if field in values and not _HHMM.match(str(values[field])):
            raise CreditorConfigError(f"creditor {code}: {field} must be HH:MM")
    for field in ("plan_max_installments", "promise_horizon_days", "max_attempts_per_7_days"):
        if field in values and (not isinstance(values[field], int) or values[field] < 0):
            raise CreditorConfigError(f"creditor {code}: {field} must be a non-negative integer")
    return values


def load_creditors(session: Session, path: Path) -> list[str]:
    """Validates every creditor in `path` and upserts them by `code`.

    Args:
        session: an open unit of work.
        path: a YAML file with a top-level `creditors:` list.

    Returns:
        The codes loaded, in file order.

    Raises:
        CreditorConfigError: if any entry is invalid (nothing is written).
    """
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = document.get("creditors") or []
    validated = [_validated(entry) for entry in entries]
    codes = []
    for values in validated:
        creditor = session.execute(select(Creditor).where(Creditor.code == values["code"])).scalar_one_or_none()
        if creditor is None:
            creditor = Creditor(code=values["code"])
            session.add(creditor)
        for key, value in values.items():
            if getattr(creditor, key) != value:
                setattr(creditor, key, value)
        codes.append(values["code"])
    session.flush()
    return codes
