"""PDF attachments and their expiring signed URLs."""

from __future__ import annotations

import datetime as dt

from cobrador.ledger.demo import load_demo
from cobrador.ledger.models import Account, PaymentPlan
from cobrador.whatsapp import documents

KEY = documents.media_key("secret")


def test_a_token_round_trips_and_expires() -> None:
    token = documents.sign(KEY, "plan", 12, "es", ttl=60, now=1_000)
    assert documents.verify(KEY, token, now=1_030) == ("plan", 12, "es")
    assert documents.verify(KEY, token, now=1_061) is None


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = documents.sign(KEY, "plan", 12, "es", now=1_000)
    assert documents.verify(KEY, token.replace("plan.12", "plan.13"), now=1_000) is None
    assert documents.verify(documents.media_key("other"), token, now=1_000) is None
    assert documents.verify(KEY, "garbage", now=1_000) is None
    assert "+52" not in token and "$" not in token  # the URL names nothing personal


def test_plan_and_statement_pdfs(session) -> None:
    load_demo(session, dt.date(2026, 11, 23))
    plan = session.query(PaymentPlan).first()
    pdf = documents.plan_pdf(session, plan.id, "es", dt.date(2026, 11, 23))
    assert pdf.startswith(b"%PDF") and len(pdf) > 800
    account = session.query(Account).filter_by(reference="AM-100231").one()
    statement = documents.statement_pdf(session, account.id, "en", dt.date(2026, 11, 23))
    assert statement.startswith(b"%PDF")
    assert documents.plan_pdf(session, 999_999, "es", dt.date(2026, 11, 23)) is None
