"""Benchmark: import a 100,000-row portfolio with 1 % bad rows on SQLite.

Prints the figures the foundation issue asks for: time of a first import,
every bad row reported, and a second import of the same file changing
nothing. Run with `make bench` or `.venv/bin/python bench/import_portfolio.py
[--rows N]`.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cobrador.ledger.creditors import load_creditors  # noqa: E402
from cobrador.ledger.db import get_engine, session_scope  # noqa: E402
from cobrador.ledger.importer import import_portfolio  # noqa: E402
from cobrador.ledger.migrate import upgrade  # noqa: E402

COLUMNS = [
    "creditor",
    "account_reference",
    "phone",
    "name",
    "language",
    "timezone",
    "currency",
    "original_amount",
    "balance",
    "due_date",
    "balance_as_of",
    "account_last4",
    "birth_year",
]
BAD_FIELDS = [
    ("phone", "12345"),
    ("currency", "EUR"),
    ("balance", "1.234,5"),
    ("due_date", "31/12/2026"),
    ("timezone", "Mars/Base"),
    ("language", "fr"),
]
ZONES = ["America/Mexico_City", "America/Monterrey", "America/Tijuana", "America/Cancun", "America/Hermosillo"]


def write_portfolio(path: Path, rows: int, bad_ratio: float, seed: int = 7) -> int:
    """Writes a synthetic portfolio; returns how many rows were made bad."""
    rng = random.Random(seed)
    bad = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            balance = rng.randint(100, 5_000_000) / 100
            row = {
                "creditor": "amigo",
                "account_reference": f"BN-{i:08d}",
                # Two accounts per debtor on average.
                "phone": f"+5255{(i // 2):08d}",
                "name": f"Deudor {i // 2}",
                "language": "es" if i % 5 else "en",
                "timezone": ZONES[i % len(ZONES)],
                "currency": "MXN",
                "original_amount": f"{balance * 1.5:.2f}",
                "balance": f"{balance:.2f}",
                "due_date": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "balance_as_of": "2026-11-20",
                "account_last4": "",
                "birth_year": str(1950 + i % 55),
            }
            if rng.random() < bad_ratio:
                column, value = BAD_FIELDS[bad % len(BAD_FIELDS)]
                row[column] = value
                bad += 1
            writer.writerow([row[c] for c in COLUMNS])
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--bad-ratio", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "portfolio.csv"
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        bad = write_portfolio(csv_path, args.rows, args.bad_ratio)
        upgrade(url)
        with session_scope(url) as session:
            load_creditors(session, Path(__file__).resolve().parent.parent / "demo" / "creditors.yml")
        for attempt in ("first import", "second import"):
            start = time.perf_counter()
            with session_scope(url) as session:
                report = import_portfolio(session, csv_path)
            elapsed = time.perf_counter() - start
            print(
                f"{attempt}: {report.rows} rows in {elapsed:.1f} s ({report.rows / elapsed:,.0f} rows/s); "
                f"rejected {len(report.errors)} (planted {bad}); accounts created {report.accounts_created}, "
                f"updated {report.accounts_updated}, unchanged {report.accounts_unchanged}; "
                f"debtors created {report.debtors_created}, updated {report.debtors_updated}"
            )
        get_engine(url).dispose()


if __name__ == "__main__":
    main()
