"""The ingest's link to Rasa's /process (cobrador.whatsapp.rasa_link), against
real servers on this machine: aiohttp's, and plain sockets for what a server
can do wrong. Each test runs on asyncio's own event loop and on uvloop's (the
ingest's), whose transports differ in small ways."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import uvloop
from aiohttp import web

from cobrador.devstack import free_port
from cobrador.whatsapp.rasa_link import Answer, Dropped, RasaLink, Unreachable


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Awaitable], object]]:
    def running(coroutine: Awaitable) -> object:
        loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coroutine, 20))
        finally:  # the servers' handlers of connections just closed
            loop.run_until_complete(_cancel_the_rest())
            loop.close()

    yield running


async def _cancel_the_rest() -> None:
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


async def serve(app: web.Application, keepalive: float = 75.0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, keepalive_timeout=keepalive)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def echo_app(seen: list[dict]) -> web.Application:
    """Answers each POST with what it got, noting the client's port and headers."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"port": request.transport.get_extra_info("peername")[1], "headers": dict(request.headers)})
        return web.json_response({"path": request.path, "body": body.decode()}, status=201)

    app = web.Application()
    app.router.add_post("/hook/process", echo)
    return app


def test_a_body_in_one_piece_goes_with_its_headers_and_the_whole_answer_comes_back(run) -> None:  # noqa: ANN001
    async def scenario() -> tuple[Answer, list[dict]]:
        seen: list[dict] = []
        runner, url = await serve(echo_app(seen))
        link = RasaLink(url + "/hook")
        try:
            return await link.post("/process", {"X-Signature": "abc", "Content-Type": "application/json"}, b"{}"), seen
        finally:
            await link.close()
            await runner.cleanup()

    answer, seen = run(scenario())
    assert answer.status == 201
    assert answer.body == b'{"path": "/hook/process", "body": "{}"}'
    assert seen[0]["headers"]["X-Signature"] == "abc"
    assert seen[0]["headers"]["Host"].startswith("127.0.0.1:")
    assert seen[0]["headers"]["Content-Length"] == "2"


def test_a_streamed_body_goes_a_chunk_at_a_time_as_each_comes(run) -> None:  # noqa: ANN001
    """The second chunk is made only once the server has read the first: had
    the link held the first back, neither would come, and the test times out."""

    async def scenario() -> tuple[Answer, list[bytes]]:
        first_read = asyncio.Event()
        lines: list[bytes] = []

        async def process(request: web.Request) -> web.Response:
            lines.append(await request.content.readline())
            first_read.set()
            lines.append(await request.content.readline())
            assert await request.content.read() == b""
            return web.Response(text="ok")

        async def body() -> AsyncIterator[bytes]:
            yield b"the message\n"
            await first_read.wait()
            yield b"word that it is stored\n"

        app = web.Application()
        app.router.add_post("/process", process)
        runner, url = await serve(app)
        link = RasaLink(url)
        try:
            return await asyncio.wait_for(link.post("/process", {}, body()), 5), lines
        finally:
            await link.close()
            await runner.cleanup()

    answer, lines = run(scenario())
    assert (answer.status, answer.body) == (200, b"ok")
    assert lines == [b"the message\n", b"word that it is stored\n"]


def test_an_answer_sent_in_chunks_is_read_whole(run) -> None:  # noqa: ANN001
    async def scenario() -> Answer:
        async def process(request: web.Request) -> web.StreamResponse:
            await request.read()
            answer = web.StreamResponse()
            answer.enable_chunked_encoding()
            await answer.prepare(request)
            await answer.write(b'{"messages": ')
            await asyncio.sleep(0.05)
            await answer.write(b"[]}")
            await answer.write_eof()
            return answer

        app = web.Application()
        app.router.add_post("/process", process)
        runner, url = await serve(app)
        link = RasaLink(url)
        try:
            return await link.post("/process", {}, b"x")
        finally:
            await link.close()
            await runner.cleanup()

    answer = run(scenario())
    assert (answer.status, answer.body) == (200, b'{"messages": []}')


def test_a_connection_is_kept_alive_for_the_next_request(run) -> None:  # noqa: ANN001
    async def scenario() -> list[dict]:
        seen: list[dict] = []
        runner, url = await serve(echo_app(seen))
        link = RasaLink(url)
        try:
            for n in range(3):
                await link.post("/hook/process", {}, str(n).encode())
            return seen
        finally:
            await link.close()
            await runner.cleanup()

    seen = run(scenario())
    assert len({s["port"] for s in seen}) == 1


def test_a_connection_the_server_closed_or_left_idle_too_long_is_not_used_again(run) -> None:  # noqa: ANN001
    async def scenario() -> tuple[list[dict], list[dict]]:
        closed_by_server: list[dict] = []
        runner, url = await serve(echo_app(closed_by_server), keepalive=0.1)  # the server closes idle ones
        link = RasaLink(url)
        idle: list[dict] = []
        runner_2, url_2 = await serve(echo_app(idle))
        link_2 = RasaLink(url_2, idle=0.1)  # the link drops idle ones itself
        try:
            for _ in range(2):
                assert (await link.post("/hook/process", {}, b"a")).status == 201
                assert (await link_2.post("/hook/process", {}, b"a")).status == 201
                await asyncio.sleep(0.3)
                for _ in range(100):  # aiohttp closes idle connections on a coarse timer
                    if all(connection.closed for connection in link.pool):
                        break
                    await asyncio.sleep(0.05)
            return closed_by_server, idle
        finally:
            await link.close()
            await link_2.close()
            await runner.cleanup()
            await runner_2.cleanup()

    closed_by_server, idle = run(scenario())
    assert closed_by_server[0]["port"] != closed_by_server[1]["port"]
    assert idle[0]["port"] != idle[1]["port"]


def test_nothing_listening_is_unreachable(run) -> None:  # noqa: ANN001
    async def scenario() -> None:
        link = RasaLink(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(Unreachable):
            await link.post("/process", {}, b"x")

    run(scenario())


async def raw_server(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]):  # noqa: ANN201
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_a_connection_that_ends_before_the_whole_answer_is_dropped(run) -> None:  # noqa: ANN001
    async def scenario() -> list[str]:
        async def half_an_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
            await writer.drain()
            writer.close()

        async def no_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
            await writer.drain()

        errors = []
        for handle in (half_an_answer, no_answer, not_http):
            server, url = await raw_server(handle)
            link = RasaLink(url)
            try:
                with pytest.raises(Dropped) as raised:
                    await link.post("/process", {}, b"x")
                errors.append(str(raised.value))
                assert not link.pool and not link.open
            finally:
                await link.close()
                server.close()
        return errors

    errors = run(scenario())
    assert "closed before the answer came" in errors[0]
    assert "closed before the answer came" in errors[1]
    assert "not HTTP" in errors[2]


def test_no_whole_answer_in_time_is_a_timeout_and_the_connection_is_closed(run) -> None:  # noqa: ANN001
    async def scenario() -> bytes:
        ended = asyncio.get_running_loop().create_future()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            ended.set_result(await reader.read())  # until the client closes

        server, url = await raw_server(slow)
        link = RasaLink(url, total=0.2)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await link.post("/process", {}, b"x")
            return await asyncio.wait_for(ended, 5)
        finally:
            await link.close()
            server.close()

    assert run(scenario()) == b"x"


def test_an_answer_before_the_whole_body_comes_back_at_once_and_the_rest_still_goes(run) -> None:  # noqa: ANN001
    """As Rasa answers a forwarded turn (before the ingest ends its request):
    the answer is returned at once, the rest of the body goes as it comes,
    and the connection is used again only once it has."""

    async def scenario() -> tuple[Answer, int, bytes, int, Answer, int]:
        more = asyncio.Event()
        rest: asyncio.Future = asyncio.get_running_loop().create_future()
        connections = []

        async def answer_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)
            await reader.readuntil(b"the message\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            rest.set_result(await reader.readuntil(b"0\r\n\r\n"))
            await reader.readuntil(b"\r\n\r\nnext")  # the next request, on this connection
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain")

        async def body() -> AsyncIterator[bytes]:
            yield b"the message\n"
            await more.wait()
            yield b"the rest\n"

        server, url = await raw_server(answer_early)
        link = RasaLink(url)
        try:
            answer = await link.post("/process", {}, body())
            pooled_before = len(link.pool)  # the body is not over: not to be used yet
            more.set()
            sent = await asyncio.wait_for(rest, 5)
            await asyncio.sleep(0.01)
            pooled_after = len(link.pool)
            again = await link.post("/process", {}, b"next")
            return answer, pooled_before, sent, pooled_after, again, len(connections)
        finally:
            await link.close()
            server.close()

    answer, pooled_before, sent, pooled_after, again, connections = run(scenario())
    assert (answer.status, answer.body) == (200, b"ok")
    assert pooled_before == 0
    assert sent == b"9\r\nthe rest\n\r\n0\r\n\r\n"
    assert pooled_after == 1
    assert (again.status, again.body, connections) == (200, b"again", 1)


def test_a_refusal_that_closes_the_connection_ends_the_body_quietly(run) -> None:  # noqa: ANN001
    """A server that answers early and wants no more (a bad signature, say)
    closes the connection: the rest of the body finds it closed, and it is not
    used again."""

    async def scenario() -> tuple[Answer, list[bytes], int, int]:
        more = asyncio.Event()
        made: list[bytes] = []

        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"the message\n\r\n")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 17\r\nConnection: close\r\n\r\ninvalid signature")
            await writer.drain()
            writer.close()

        async def body() -> AsyncIterator[bytes]:
            yield b"the message\n"
            await more.wait()
            made.append(b"the rest")
            yield b"the rest\n"

        server, url = await raw_server(refuse)
        link = RasaLink(url)
        try:
            answer = await link.post("/process", {}, body())
            more.set()
            await asyncio.sleep(0.1)  # the body's task goes on, finds the connection closed, ends
            return answer, made, len(link.pool), len(link.open)
        finally:
            await link.close()
            server.close()

    answer, made, pooled, still_open = run(scenario())
    assert (answer.status, answer.body) == (403, b"invalid signature")
    assert made == [b"the rest"]
    assert pooled == 0 and still_open == 0


def test_the_base_address_must_be_plain_http() -> None:
    with pytest.raises(ValueError):
        RasaLink("https://rasa.example")
