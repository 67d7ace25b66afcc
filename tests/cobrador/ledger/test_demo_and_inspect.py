"""The demo portfolio and the documented `debtor show --json` contract."""

import datetime as dt
import json

from cobrador.cli import main
from cobrador.ledger.db import session_scope
from cobrador.ledger.demo import is_empty, load_demo
from cobrador.ledger.inspect import SCHEMA, debtor_snapshot

TODAY = dt.date(2026, 11, 23)


def test_demo_loads_mixed_states(ledger_url: str) -> None:
    with session_scope() as session:
        assert is_empty(session)
        report = load_demo(session, TODAY)
        assert report.errors == []
        assert (report.debtors_created, report.accounts_created) == (19, 20)
        assert not is_empty(session)

        promised = debtor_snapshot(session, "+525550000102", TODAY)
        assert [(p["amount"], p["due_date"], p["status"]) for p in promised["accounts"][0]["promises"]] == [
            ("2000.00", "2026-11-26", "pending")
        ]
        on_plan = debtor_snapshot(session, "+523312340002", TODAY)["accounts"][0]
        plan = on_plan["plans"][0]
        assert plan["frequency"] == "biweekly"
        assert sum(float(i["amount"]) for i in plan["installments"]) == float(on_plan["balance"])
        assert [i["status"] for i in plan["installments"]] == ["paid", "pending", "pending", "pending"]
        disputed = debtor_snapshot(session, "+529981230004", TODAY)
        assert disputed["accounts"][0]["status"] == "disputed"
        assert [(e["reason"], e["status"], e["account"]) for e in disputed["escalations"]] == [
            ("dispute", "open", "AM-100237")
        ]
        assert disputed["escalations"][0]["case_number"].startswith("DSP-")
        two_accounts = debtor_snapshot(session, "+525550000110", TODAY)
        assert [a["reference"] for a in two_accounts["accounts"]] == ["AM-100240", "AM-100241"]
        # Dates are shifted to keep the demo relative to today: 53 days overdue.
        assert two_accounts["accounts"][0]["days_overdue"] == 53


def test_snapshot_json_contract(ledger_url: str, capsys) -> None:
    with session_scope() as session:
        load_demo(session, dt.date.today())
    assert main(["debtor", "show", "whatsapp:+1 415 555 0123", "--json"]) == 0
    snapshot = json.loads(capsys.readouterr().out)
    assert snapshot["schema"] == SCHEMA
    assert set(snapshot) == {"schema", "debtor", "accounts", "escalations", "opt_outs", "messages"}
    assert set(snapshot["debtor"]) == {
        "phone",
        "name",
        "language",
        "timezone",
        "birth_year_on_file",
        "whatsapp_opt_in_at",
        "wrong_number_at",
    }
    account = snapshot["accounts"][0]
    assert set(account) == {
        "reference",
        "creditor",
        "creditor_name",
        "product",
        "currency",
        "original_amount",
        "balance",
        "balance_as_of",
        "due_date",
        "days_overdue",
        "status",
        "promises",
        "plans",
        "payments",
        "payment_claims",
    }
    # Money is a string with two decimals, never a float.
    assert (account["balance"], account["currency"]) == ("1375.40", "USD")
    assert snapshot["debtor"]["phone"] == "+14155550123"
    # Verification data is never printed, only whether it is on file.
    assert "birth_year" not in snapshot["debtor"]


def test_show_text_and_unknown_phone(ledger_url: str, capsys) -> None:
    with session_scope() as session:
        load_demo(session, TODAY)
    assert main(["debtor", "show", "+52 998 123 0004"]) == 0
    text = capsys.readouterr().out
    assert "Guadalupe Sánchez Cruz" in text and "DSP-" in text and "disputed" in text
    assert main(["debtor", "show", "+52 55 9999 9999"]) == 1
    assert "no debtor with phone +525599999999" in capsys.readouterr().err
    assert main(["debtor", "show", "hola"]) == 2


def test_escalations_are_listed_and_resolving_one_returns_the_conversation(ledger_url: str, capsys) -> None:
    from cobrador.ledger.lookups import is_paused

    with session_scope() as session:
        load_demo(session, dt.date.today())
    assert main(["escalations", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    cases = {line.split("\t")[3]: line.split("\t")[0] for line in listed}
    assert set(cases) == {"+529981230004", "+13035550172"} and all(c.startswith("DSP-") for c in cases.values())
    with session_scope() as session:
        assert is_paused(session, "+529981230004")
    assert main(["escalations", "resolve", cases["+529981230004"].lower()]) == 0
    with session_scope() as session:
        assert not is_paused(session, "+529981230004")
    assert main(["escalations", "resolve", "DSP-999999"]) == 1
