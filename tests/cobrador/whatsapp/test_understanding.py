"""Parse-ahead: the ingest's NLU worker (the real model on a real worker
process) and the rule by which Rasa takes or ignores a parse it is handed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cobrador.devstack import MODEL
from cobrador.whatsapp.understanding import Understanding, parsed, usable
from tests.support import kill_worker, trained_model, until_loaded

MODEL_ID = "0123456789abcdef"


def parse_of(text: str, model: str = MODEL_ID, **data: Any) -> dict[str, Any]:
    return {
        "model": model,
        "data": {"text": text, "intent": {"name": "greet", "confidence": 0.9}, "entities": [], **data},
    }


def test_a_parse_of_this_model_and_this_text_is_taken_as_it_is() -> None:
    parse = parse_of("¡Hola! 😀", intent_ranking=[{"name": "greet", "confidence": 0.9}])
    assert usable(parse, MODEL_ID, "¡Hola! 😀") is parse["data"]


@pytest.mark.parametrize(
    ("parse", "model_id", "text"),
    [
        (None, MODEL_ID, "hola"),
        ("greet", MODEL_ID, "hola"),
        (parse_of("hola", model="another-model"), MODEL_ID, "hola"),  # Rasa has another model loaded
        (parse_of("hola"), None, "hola"),  # Rasa's model id unknown
        (parse_of("hola"), MODEL_ID, "hola "),  # not the text Rasa would parse
        (parse_of("/restart"), MODEL_ID, "hola"),
        (parse_of("hola", intent=None), MODEL_ID, "hola"),
        (parse_of("hola", intent={"name": 3}), MODEL_ID, "hola"),
        (parse_of("hola", intent={"confidence": 1.0}), MODEL_ID, "hola"),
        (parse_of("hola", entities={"amount": 1}), MODEL_ID, "hola"),
        ({"model": MODEL_ID, "data": ["hola"]}, MODEL_ID, "hola"),
        ({"model": MODEL_ID}, MODEL_ID, "hola"),
    ],
)
def test_any_other_parse_is_ignored_and_rasa_parses_itself(parse: Any, model_id: Any, text: str) -> None:
    assert usable(parse, model_id, text) is None


@pytest.fixture(scope="module")
def understanding() -> Understanding:
    """The trained model's NLU on its worker process, ready."""
    worker = Understanding(trained_model())
    worker.start()
    until_loaded(worker)
    yield worker
    worker.close()


def model_id_of(model: Path) -> str:
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    return LocalModelStorage.metadata_from_archive(model).model_id


def test_the_worker_parses_with_the_models_own_id(understanding: Understanding) -> None:
    assert understanding.model_id == model_id_of(MODEL)

    async def ahead(text: str) -> Any:
        return await parsed(understanding.parse_soon(text))

    for text in ("te pago el viernes", "that's not my debt", "😀🙏💸", "a" * 5000):
        parse = asyncio.run(ahead(text))
        assert parse["model"] == understanding.model_id
        assert usable(parse, understanding.model_id, text) is parse["data"]
        assert parse["data"]["intent_ranking"][0]["name"] == parse["data"]["intent"]["name"]


TEXTS = [
    "hola", "te pago el viernes", "no me alcanza", "that's not my debt", "pay Friday", "quiero hablar con alguien",
    "¡¿Quién habla?!", "😀🙏💸", "", "   ", "/greet", "a" * 5000, "1", "STOP please", "ñandú ÁÉÍÓÚ",
]  # fmt: skip


def test_the_workers_own_run_of_the_nlu_graph_equals_rasas_parse() -> None:
    """The worker runs the NLU nodes itself, not through Rasa's dask runner:
    the parse data must be Rasa's, key for key and float for float."""
    from rasa.core.channels.channel import UserMessage

    from cobrador.whatsapp import understanding as worker

    worker._load(str(trained_model()))
    try:
        assert worker._steps is not None  # the direct run is what is compared, not the fallback
        assert [node._node_name for node, _ in worker._steps][-1] == worker._agent.processor.model_metadata.nlu_target
        loop = asyncio.new_event_loop()
        for text in TEXTS:
            rasa = loop.run_until_complete(worker._agent.processor.parse_message(UserMessage(text)))
            assert worker._parse(text) == {"model": worker._model_id(), "data": rasa}, text
        loop.close()
        steps, worker._steps = worker._steps, None  # a runner it does not know: Rasa's processor
        try:
            assert worker._parse(TEXTS[1]) == {"model": worker._model_id(), "data": rasa_of(TEXTS[1])}
        finally:
            worker._steps = steps
    finally:
        worker._agent, worker._steps = None, None


def rasa_of(text: str) -> dict[str, Any]:
    from rasa.core.channels.channel import UserMessage

    from cobrador.whatsapp import understanding as worker

    return asyncio.run(worker._agent.processor.parse_message(UserMessage(text)))


def test_a_burst_beyond_what_may_wait_goes_without(understanding: Understanding) -> None:
    async def burst() -> list[Any]:
        futures = [understanding.parse_soon(f"te pago {n} pesos") for n in range(understanding.most_waiting + 5)]
        assert [future is None for future in futures] == [False] * understanding.most_waiting + [True] * 5
        assert understanding.waiting == understanding.most_waiting
        return [await parsed(future) for future in futures]

    parses = asyncio.run(burst())
    assert all(parse is not None for parse in parses[: understanding.most_waiting])
    assert understanding.waiting == 0


def test_no_model_means_no_worker_and_no_parse(tmp_path: Path) -> None:
    worker = Understanding(tmp_path / "missing.tar.gz")
    worker.start()
    assert worker.process is None

    async def ask() -> Any:
        return worker.parse_soon("hola")

    assert asyncio.run(ask()) is None


def test_a_worker_that_dies_leaves_every_message_to_rasa() -> None:
    worker = Understanding(trained_model())
    worker.start()
    try:
        until_loaded(worker)
        kill_worker(worker)

        async def after_death() -> list[Any]:
            # The first ask may still be on its way to the dead worker: it fails, the worker is dropped.
            answers = []
            for _ in range(3):
                answers.append(await parsed(worker.parse_soon("hola"), seconds=10))
                await asyncio.sleep(0.2)
            return answers

        assert asyncio.run(after_death()) == [None, None, None]
        assert worker.process is None and worker.model_id is None
    finally:
        worker.close()


def test_a_model_the_worker_cannot_load_leaves_every_message_to_rasa(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a model")
    worker = Understanding(broken)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while worker.process is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.process is None and worker.model_id is None

        async def ask() -> Any:
            return worker.parse_soon("hola")

        assert asyncio.run(ask()) is None
    finally:
        worker.close()
