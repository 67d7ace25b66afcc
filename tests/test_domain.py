"""The domain keeps the NLU contract and answers in both languages."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_INTENTS = {
    "greet",
    "goodbye",
    "affirm",
    "deny",
    "thank",
    "ask_balance",
    "promise_to_pay",
    "claim_paid",
    "request_plan",
    "cannot_pay",
    "dispute",
    "request_agent",
    "ask_payment_methods",
    "wrong_person",
    "opt_out",
    "ask_identity",
    "inform",
    "complain",
    "bot_challenge",
    "change_language",
    "out_of_scope",
}
CONTRACT_ENTITIES = {"amount", "currency", "date", "installments", "frequency"}


def load_domain() -> dict:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def test_domain_has_every_contract_intent_and_entity() -> None:
    domain = load_domain()
    assert CONTRACT_INTENTS <= set(domain["intents"])
    assert CONTRACT_ENTITIES <= set(domain["entities"])


def test_every_response_exists_in_spanish_and_english() -> None:
    missing = []
    for name, variations in load_domain()["responses"].items():
        languages = set()
        for variation in variations:
            conditions = variation.get("condition") or []
            language = next((c["value"] for c in conditions if c.get("name") == "language"), "es")
            if variation.get("text", "").strip() or variation.get("custom") or variation.get("image"):
                languages.add(language)
        if languages != {"es", "en"}:
            missing.append(f"{name}: has {sorted(languages)}")
    assert missing == []
