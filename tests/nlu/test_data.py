"""The NLU data keeps its promises: every contract intent in both languages,
enough examples, no duplicates, and a held-out split never trained on."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("es", "en")
BIG = {"promise_to_pay", "cannot_pay", "request_plan", "dispute", "claim_paid", "ask_balance", "inform"}
ENTITY_KEYS = {"amount", "currency", "date", "installments", "frequency"}


def contract_intents() -> list[str]:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["intents"]


def training(lang: str, intent: str) -> list[str]:
    path = ROOT / "data" / "nlu" / lang / f"{intent}.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    (block,) = document["nlu"]
    assert block["intent"] == intent, path
    return [line[2:].strip() for line in block["examples"].splitlines() if line.startswith("- ")]


def held_out(lang: str, intent: str) -> list[dict]:
    path = ROOT / "tests" / "nlu" / "holdout" / lang / f"{intent}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def key(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip()


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("intent", contract_intents())
def test_every_intent_has_enough_training_and_held_out_examples(lang: str, intent: str) -> None:
    train, held = training(lang, intent), held_out(lang, intent)
    assert len(train) >= (60 if intent in BIG else 25)
    assert len(held) / (len(held) + len(train)) >= 0.2 - 1e-9, "held-out must be at least 20% of what was written"


def test_no_example_is_written_twice_and_nothing_held_out_is_trained_on() -> None:
    seen: Counter[str] = Counter()
    for lang in LANGUAGES:
        for intent in contract_intents():
            seen.update(key(text) for text in training(lang, intent))
    duplicates = [text for text, count in seen.items() if count > 1]
    assert duplicates == []
    leaked = [
        row["text"]
        for lang in LANGUAGES
        for intent in contract_intents()
        for row in held_out(lang, intent)
        if key(row["text"]) in seen
    ]
    assert leaked == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_held_out_rows_follow_the_eval_format(lang: str) -> None:
    ids: set[str] = set()
    for intent in contract_intents():
        for row in held_out(lang, intent):
            assert row["intent"] == intent and row["lang"] == lang
            assert row["id"] not in ids
            ids.add(row["id"])
            assert set(row["entities"]) <= ENTITY_KEYS, row
            assert not row["text"].lstrip().startswith("/")
