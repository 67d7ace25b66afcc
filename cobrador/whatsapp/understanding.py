"""Parse-ahead: the ingest understands a message while it is being stored.

Rasa runs every turn on one event loop, so under load its one core is what
limits turns per second, and about a sixth of each turn's CPU there is the NLU
parse (the featurizers, the intent classifier and the fallback classifier of
`config.yml`). The ingest has the other core. So it loads the same model's NLU
on a worker process of its own and parses the message's text while the
acknowledgement's transaction commits; the parse goes to Rasa with the
message (under the forward's signature), and Rasa's `/process` hands it to
Rasa as the message's `parse_data`, which Rasa's processor uses instead of
parsing again. The dialogue, the tracker and everything after the parse are
Rasa's own, unchanged.

Rasa uses the parse only if it comes from the model Rasa has loaded (the
model's id) and for the very text it would parse; otherwise, and whenever the
worker is not ready, busy, or gone, Rasa parses as it always does, so the
worker can only make a turn cheaper, never different. (It can parse ahead of
the turn because this model's NLU reads the text alone, not the conversation:
the test suite checks the parse equals Rasa's own, in the middle of a
conversation.) Rasa answers each turn with its model's id, and the ingest
keeps the worker on that model (`Ingest._follow`): a new model in the file
is loaded by a new worker.

The worker is a separate process (spawned: no state shared with the ingest's
threads), so its CPU never holds the ingest's event loop, and the
acknowledgements keep their milliseconds. It runs the model's NLU nodes
itself, in the graph's order, rather than through Rasa's dask runner, which
rebuilds and schedules the graph on every parse (a third of the parse's CPU);
the nodes, and so the parse, are Rasa's own. It costs about 0.6 GB of memory and
a few seconds to load; `COBRADOR_PARSE_AHEAD=off` leaves it out.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import multiprocessing
import os
import stat
import threading
from pathlib import Path
from typing import Any, Optional

from cobrador import heap
from cobrador.config import switched_on

logger = logging.getLogger(__name__)

# Parses queued at the worker beyond which a message goes without (Rasa parses
# it): a burst never waits on the worker longer than on Rasa itself.
MOST_WAITING = 16
# A longer text goes without (Rasa parses it): what waits for the worker fits
# in the pipe's buffers, so asking never blocks the ingest's event loop.
LONGEST_TEXT = 8192  # bytes of UTF-8


def enabled() -> bool:
    return switched_on("COBRADOR_PARSE_AHEAD")


class WorkerGone(RuntimeError):
    """The worker died (or was closed) with this parse asked of it."""


class Understanding:
    """The model's NLU on one worker process; `parse_soon` is None until it is ready.

    The ingest's event loop writes each text straight to the worker's pipe and
    one reader thread takes the answers, in the order asked (the worker parses
    one at a time): no executor, feeder or manager threads and no pickling,
    which cost the ingest 0.44 ms of CPU a parse (the pipe: 0.26 ms)."""

    def __init__(self, model: Path, most_waiting: int = MOST_WAITING) -> None:
        self.model = Path(model)
        self.most_waiting = most_waiting
        self.model_id: Optional[str] = None  # set once the worker has loaded the model
        self.waiting = 0
        self.process: Optional[multiprocessing.process.BaseProcess] = None  # None: no worker (any more)
        self.connection: Any = None
        self.asked: collections.deque[concurrent.futures.Future] = collections.deque()
        self.lock = threading.Lock()  # a text is asked and its future queued together
        self.stamp: Optional[tuple[int, int, int]] = None  # the model file's, when the worker started

    def start(self) -> None:
        """Starts the worker and has it load the model (in the background)."""
        self.stamp = file_stamp(self.model)
        if self.stamp is None:
            logger.warning("no model at %s: Rasa parses every message itself", self.model)
            return
        context = multiprocessing.get_context("spawn")  # nothing shared with the ingest's threads
        ours, theirs = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(theirs, str(self.model)), name="nlu-worker", daemon=True)
        self.process.start()
        theirs.close()
        self.connection = ours
        threading.Thread(target=self._read, args=(ours,), name="nlu-answers", daemon=True).start()

    def _read(self, connection: Any) -> None:
        """The worker's answers: first its model id (or why it could not load), then the parses."""
        try:
            hello = json.loads(connection.recv_bytes())
            if "model" not in hello:
                logger.error("the NLU worker could not load %s (%s): Rasa parses every message itself",
                             self.model, hello.get("error"))  # fmt: skip
                return
            self.model_id = str(hello["model"])
            logger.info("NLU worker ready (model %s)", self.model_id)
            while True:
                answer = json.loads(connection.recv_bytes())
                with self.lock:
                    future = self.asked.popleft()
                _settle(future, answer)
        except (EOFError, OSError, ValueError):
            if self.connection is connection:
                logger.error("the NLU worker died: Rasa parses every message itself")
        finally:
            self._gone(connection)

    def parse_soon(self, text: str) -> Optional[asyncio.Future]:
        """The parse of `text` as {"model": id, "data": parse data}, on the
        worker, or None when there is no ready worker with room for it."""
        connection = self.connection
        if connection is None or self.model_id is None or self.waiting >= self.most_waiting:
            return None
        request = text.encode("utf-8", "surrogatepass")
        if len(request) > LONGEST_TEXT:
            return None
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            with self.lock:
                if self.connection is not connection:
                    return None  # gone meanwhile
                connection.send_bytes(request)
                self.asked.append(future)
        except (OSError, ValueError):  # the worker is gone (the reader is closing it)
            return None
        self.waiting += 1
        waiting = asyncio.wrap_future(future)
        waiting.add_done_callback(self._done)
        return waiting

    def _done(self, future: asyncio.Future) -> None:
        self.waiting -= 1

    def _gone(self, connection: Any) -> None:
        """No worker any more: what it was asked fails (Rasa parses those itself)."""
        with self.lock:
            if self.connection is connection:
                self.connection, self.model_id = None, None
            asked, self.asked = list(self.asked), collections.deque()
        for future in asked:
            _settle(future, WorkerGone("the NLU worker is gone"))
        process, self.process = self.process, None
        if process is not None and process.is_alive():
            process.kill()

    def close(self) -> None:
        with self.lock:
            connection, self.connection, self.model_id = self.connection, None, None
        process, self.process = self.process, None
        if process is not None and process.is_alive():
            process.kill()  # its end of the pipe closes: the reader stops
        if connection is not None:
            connection.close()


def file_stamp(path: Path) -> Optional[tuple[int, int, int]]:
    """What changes when a file is rewritten or replaced (modified time, size,
    inode); None if there is no such file."""
    try:
        status = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino


def _settle(future: concurrent.futures.Future, answer: Any) -> None:
    try:
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        elif "error" in answer:
            future.set_exception(RuntimeError(f"the NLU worker could not parse it: {answer['error']}"))
        else:
            future.set_result(answer)
    except concurrent.futures.InvalidStateError:  # cancelled meanwhile (the message was a replay)
        pass


async def parsed(future: Optional[asyncio.Future], seconds: float = 2.0) -> Optional[dict[str, Any]]:
    """The parse a `parse_soon` future gives, or None (none asked, failed, too slow)."""
    if future is None:
        return None
    try:
        return await asyncio.wait_for(asyncio.shield(future), seconds)
    except Exception:  # noqa: BLE001 - without a parse Rasa parses itself
        logger.warning("no parse ahead for a message", exc_info=True)
        return None


def usable(parse: Any, model_id: Optional[str], text: Optional[str]) -> Optional[dict[str, Any]]:
    """The parse data Rasa can take as the message's own: made by the model
    Rasa has loaded, of the very text Rasa would parse, and shaped as Rasa's
    parse data is. None otherwise (Rasa then parses the text itself)."""
    if not isinstance(parse, dict) or model_id is None or parse.get("model") != model_id:
        return None
    data = parse.get("data")
    if not isinstance(data, dict) or data.get("text") != text:
        return None
    intent = data.get("intent")
    if not isinstance(intent, dict) or not isinstance(intent.get("name"), str):
        return None
    if not isinstance(data.get("entities"), list):
        return None
    return data


# --- on the worker process ---------------------------------------------------

_agent: Any = None
_steps: Optional[list[tuple[Any, tuple[str, ...]]]] = None


def _load(model: str) -> None:
    global _agent, _steps
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # not Rasa's per-parse debug lines
    _agent = Agent.load(model)
    _steps = _nlu_steps(_agent.processor)
    heap.freeze()  # the model's objects out of the collector's full walks (cobrador.heap)


def _nlu_steps(processor: Any) -> Optional[list[tuple[Any, tuple[str, ...]]]]:
    """The model's NLU nodes in the order the graph runs them, each with the
    names of the nodes (or inputs) it takes: what `_parse_message_with_graph`
    asks of Rasa's dask runner, without rebuilding the graph and scheduling it
    on every parse. None if the runner is not the one this knows (then the
    worker parses through Rasa's processor)."""
    nodes = getattr(processor.graph_runner, "_instantiated_nodes", None)
    if not isinstance(nodes, dict):
        return None
    schema = processor.model_metadata.predict_schema.nodes
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in schema:
            return  # done, or an input (the message, the tracker)
        for need in schema[name].needs.values():
            visit(need)
        order.append(name)

    visit(processor.model_metadata.nlu_target)
    return [(nodes[name], tuple(schema[name].needs.values())) for name in order]


def _serve(connection: Any, model: str) -> None:
    """The worker: loads the model, says which (or why not), then answers each
    text with its parse, as JSON, until the ingest closes the pipe."""
    try:
        _load(model)
    except Exception as error:  # noqa: BLE001 - told to the ingest, which goes on without
        connection.send_bytes(json.dumps({"error": repr(error)}).encode())
        return
    connection.send_bytes(json.dumps({"model": _model_id()}).encode())
    while True:
        try:
            text = connection.recv_bytes().decode("utf-8", "surrogatepass")
        except (EOFError, OSError):
            return
        try:
            answer = json.dumps(_parse(text), ensure_ascii=False)
        except Exception as error:  # noqa: BLE001 - this message goes without; the next is parsed
            answer = json.dumps({"error": repr(error)})
        try:
            connection.send_bytes(answer.encode("utf-8", "surrogatepass"))
        except OSError:  # the ingest is gone
            return


def _model_id() -> str:
    return str(_agent.model_id)


def _parse(text: str) -> dict[str, Any]:
    """What Rasa's processor gets from its own NLU for a message of `text`
    (`parse_message`: the graph's NLU target, as Rasa's parse data)."""
    from rasa.core.channels.channel import UserMessage
    from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT

    processor = _agent.processor
    message = UserMessage(text)
    if _steps is None:
        data = asyncio.run(processor.parse_message(message))
    else:
        # As dask runs the graph: each node gets its needs' (name, output) pairs.
        tracker = DialogueStateTracker.from_events(message.sender_id, [])
        results: dict[str, Any] = {
            PLACEHOLDER_MESSAGE: (PLACEHOLDER_MESSAGE, [message]),
            PLACEHOLDER_TRACKER: (PLACEHOLDER_TRACKER, tracker),
        }
        for node, needs in _steps:
            name, output = node(*(results[need] for need in needs))
            results[name] = (name, output)
        data = {TEXT: "", INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, ENTITIES: []}
        data.update(results[processor.model_metadata.nlu_target][1][0].as_dict(only_output_properties=True))
        processor._update_full_retrieval_intent(data)
    return {"model": str(_agent.model_id), "data": data}
