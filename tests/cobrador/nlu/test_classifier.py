"""The intent classifier's own arithmetic gives scikit-learn's probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.importers.importer import TrainingDataImporter
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from cobrador.nlu.classifier import TextIntentClassifier

ROOT = Path(__file__).resolve().parents[3]
TEXTS = [
    "te pago el viernes", "no me alcanza", "that's not my debt", "pay Friday", "hola", "¿quién habla?",
    "ya pagué, aquí está el recibo", "STOP", "😀", "", "a" * 5000, "qwerty asdf", "1", "2",
]  # fmt: skip


def _trained(tmp_path: Path, training_data: TrainingData) -> tuple[TextIntentClassifier, LocalModelStorage, Resource]:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("classifier")
    context = ExecutionContext(GraphSchema({}), "test")
    classifier = TextIntentClassifier.create({}, storage, resource, context)
    classifier.train(training_data)
    return classifier, storage, resource


def _probabilities(classifier: TextIntentClassifier, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    features = classifier._features(texts)
    assert classifier._model is not None
    return classifier._probabilities(features), classifier._model.predict_proba(features)


@pytest.fixture(scope="module")
def project_data() -> TrainingData:
    importer = TrainingDataImporter.load_from_dict(training_data_paths=[str(ROOT / "data" / "nlu")])
    return importer.get_nlu_data()


def test_probabilities_equal_scikit_learn_on_the_project_data(tmp_path: Path, project_data: TrainingData) -> None:
    classifier, storage, resource = _trained(tmp_path, project_data)
    texts = TEXTS + [m.get("text") for m in project_data.intent_examples[::7]]
    ours, theirs = _probabilities(classifier, texts)
    assert len(classifier._model.classes_) > 2
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()
    # The same once loaded back from the model storage, as Rasa does at start.
    loaded = TextIntentClassifier.load({}, storage, resource, ExecutionContext(GraphSchema({}), "test"))
    again, _ = _probabilities(loaded, texts)
    np.testing.assert_allclose(again, theirs, rtol=0, atol=1e-12)
    assert loaded._weights is not None and loaded._weights.flags["C_CONTIGUOUS"]


def test_two_intents_keep_scikit_learns_one_vs_rest(tmp_path: Path) -> None:
    examples = [Message(data={"text": t, "intent": "affirm"}) for t in ("sí", "claro", "de acuerdo", "yes", "ok")]
    examples += [Message(data={"text": t, "intent": "deny"}) for t in ("no", "para nada", "nope", "no gracias", "nel")]
    classifier, _, _ = _trained(tmp_path, TrainingData(examples))
    ours, theirs = _probabilities(classifier, ["sí", "no", "tal vez"])
    np.testing.assert_array_equal(ours, theirs)


def test_process_ranks_intents_by_those_probabilities(tmp_path: Path, project_data: TrainingData) -> None:
    classifier, _, _ = _trained(tmp_path, project_data)
    message = Message(data={"text": "te pago el viernes"})
    classifier.process([message])
    _, theirs = _probabilities(classifier, ["te pago el viernes"])
    best = int(theirs[0].argmax())
    assert message.get("intent")["name"] == str(classifier._model.classes_[best])
    assert message.get("intent")["confidence"] == pytest.approx(float(theirs[0][best]), abs=1e-12)


def test_one_message_gets_the_sparse_paths_probabilities_bit_for_bit(
    tmp_path: Path, project_data: TrainingData
) -> None:
    classifier, storage, resource = _trained(tmp_path, project_data)
    loaded = TextIntentClassifier.load({}, storage, resource, ExecutionContext(GraphSchema({}), "test"))
    texts = TEXTS + ["   ", "/greet", "¡¡¡PAGO MAÑANA!!!", "pago pago pago pago"]
    texts += [m.get("text") for m in project_data.intent_examples]
    for model in (classifier, loaded):
        sparse = model._probabilities(model._features(texts))
        for text, expected in zip(texts, sparse, strict=True):
            np.testing.assert_array_equal(model._probabilities_of(text), expected, err_msg=text)
    message = Message(data={"text": "no me alcanza"})
    loaded.process([message])
    best = loaded._probabilities(loaded._features(["no me alcanza"]))[0]
    assert message.get("intent")["confidence"] == float(best.max())
