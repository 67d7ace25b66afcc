"""The ingest's link to the Rasa channel's `/process`: HTTP/1.1 on kept-alive
connections, written straight to the socket.

Every turn the ingest forwards is one POST to Rasa, and at one conversation the
time a turn spends outside Rasa counts against it whole. With aiohttp's
client the message left 0.39 ms after its forward began (building the
request, a task of its own to write the body); here 0.14 ms (one trace each,
README "Benchmarks"): the request's head and its first chunk are written in
the caller's step, in one `write`, and the answer is parsed as it arrives by
httptools' C parser (which Sanic, under Rasa, uses as well).

A request body is bytes, or chunks from an async iterator sent as they come
(chunked transfer encoding): the ingest sends the message first and word that
it is stored after it. The answer is read whole (`Answer`), and returned as
soon as it is, even if the body has more to come (a server may answer before
it has read it all; the rest still goes, as it comes).

What can go wrong comes out as one of three errors, which tell the ingest
whether Rasa may have the turn:

* `Unreachable`: no connection could be made (Rasa down or starting): Rasa
  got nothing, the forward can be tried again;
* `Dropped`: the connection ended before the whole answer came (Rasa died or
  restarted mid-turn): Rasa may have run the turn;
* `asyncio.TimeoutError`: no whole answer within `total` seconds.

A connection goes back to the pool only after a whole answer with keep-alive
and, whichever came first, the whole request; one left unused for `idle`
seconds is closed rather than reused (the server would close it before long:
Rasa after 120 s, Sanic's own default 5).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional, Union
from urllib.parse import urlsplit

import httptools

Body = Union[bytes, AsyncIterator[bytes]]


class Unreachable(ConnectionError):
    """No connection to Rasa could be made: it got nothing."""


class Dropped(ConnectionError):
    """The connection ended before Rasa's whole answer came."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection: a request at a time, its answer parsed as it comes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.closed = False
        self.answer: Optional[asyncio.Future] = None
        self.parser: Optional[httptools.HttpResponseParser] = None
        self.body: list[bytes] = []
        self.reuse = False  # a whole answer came, and the server keeps the connection open
        self.used = time.monotonic()
        self.paused: Optional[asyncio.Future] = None

    # asyncio.Protocol
    def connection_made(self, transport: Any) -> None:  # uvloop's transports are not asyncio.Transport's kind
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.parser is None:  # nothing asked: the server has nothing to say now
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(Dropped(f"an answer that is not HTTP: {error}"))
            self.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self._fail(Dropped(f"the connection closed before the answer came ({exc or 'closed by Rasa'})"))
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)

    def pause_writing(self) -> None:
        self.paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.reuse = self.parser.should_keep_alive()  # asked here: the parser forgets it once this returns
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(Answer(self.parser.get_status_code(), b"".join(self.body)))

    # the link's side
    def start(self) -> asyncio.Future:
        """Readies the connection for a request; its answer comes in the future."""
        self.answer = self.loop.create_future()
        self.parser = httptools.HttpResponseParser(self)
        self.body = []
        self.reuse = False
        return self.answer

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise Dropped("the connection closed while the request was being sent")
        self.transport.write(data)

    async def drained(self) -> None:
        if self.paused is not None:
            await self.paused

    def sent(self, sending: asyncio.Task) -> None:
        """The body's rest was sent, or could not be: then there is no whole
        answer to wait for (if it has not come), nor is the connection used again."""
        if sending.cancelled():
            self.close()
            return
        error = sending.exception()
        if error is not None:
            if not isinstance(error, Dropped):
                error = Dropped(f"the request could not be sent whole: {error!r}")
            self._fail(error)
            self.close()

    def reusable(self) -> bool:
        return not self.closed and self.reuse

    def _fail(self, error: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class RasaLink:
    """POSTs to one server (`base`, say http://127.0.0.1:5005) on a pool of kept-alive connections."""

    def __init__(self, base: str, connect: float = 5.0, total: float = 120.0, idle: float = 30.0) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"Rasa's address must be http://host[:port], not {base!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.authority = parts.netloc.encode("ascii")
        self.connect_seconds = connect
        self.total = total
        self.idle = idle
        self.pool: list[_Connection] = []  # idle connections, the last used last
        self.open: set[_Connection] = set()

    async def post(self, path: str, headers: dict[str, str], body: Body) -> Answer:
        """POSTs `body` to `path` with `headers` (and Host, and Content-Length
        or chunked transfer encoding) and returns the whole answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total
        connection = await self._connection(loop)
        answer = connection.start()
        head = [f"POST {self.prefix}{path} HTTP/1.1".encode("ascii"), b"Host: " + self.authority]
        head += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        timer = loop.call_at(deadline, _time_out, answer, self.total)
        sending: Optional[asyncio.Task] = None
        try:
            if isinstance(body, bytes):
                head.append(b"Content-Length: %d" % len(body))
                connection.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            else:
                head.append(b"Transfer-Encoding: chunked")
                # The head and the first chunk go now, in the caller's step
                # (the ingest's message is ready at once); the rest as it comes.
                first = await anext(body, b"")
                connection.write(b"\r\n".join(head) + b"\r\n\r\n" + _chunk(first))
                sending = loop.create_task(_send_rest(connection, body))
                sending.add_done_callback(connection.sent)
            result = await answer
        except BaseException as error:
            self._discard(connection)
            if isinstance(error, asyncio.CancelledError) and sending is not None:
                sending.cancel()
            raise
        finally:
            timer.cancel()
        if sending is not None and not sending.done():
            # Answered before the whole body went: the rest goes on, and the
            # connection is used again once it has gone (a server that wants
            # no more closes it, and the rest finds it closed).
            sending.add_done_callback(lambda _: self._release(connection))
        else:
            self._release(connection)
        return result

    def _release(self, connection: _Connection) -> None:
        """Back to the pool after its request and answer, if it can be used again."""
        if connection.reusable():
            connection.used = time.monotonic()
            self.pool.append(connection)
        else:
            self._discard(connection)

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        now = time.monotonic()
        while self.pool:
            connection = self.pool.pop()
            if not connection.closed and now - connection.used < self.idle:
                return connection
            self._discard(connection)
        try:
            transport, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port), self.connect_seconds
            )
        except (OSError, asyncio.TimeoutError) as error:
            raise Unreachable(f"cannot connect to {self.host}:{self.port}: {error or 'timed out'}") from error
        connection.transport = transport  # uvloop may call connection_made a step later
        self.open.add(connection)
        return connection

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self.open.discard(connection)

    async def close(self) -> None:
        for connection in list(self.open):
            self._discard(connection)
        self.pool.clear()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n" if data else b""


async def _send_rest(connection: _Connection, body: AsyncIterator[bytes]) -> None:
    """The chunks of a body after its first, then its end."""
    async for data in body:
        if data:
            connection.write(_chunk(data))
            await connection.drained()
    connection.write(b"0\r\n\r\n")


def _time_out(answer: asyncio.Future, seconds: float) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError(f"no answer from Rasa in {seconds:.0f} s"))
