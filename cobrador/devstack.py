"""A complete local bot for the end-to-end tests and the benchmarks.

The action server, a Rasa server and the WhatsApp ingest on free ports, with the trained model, a
migrated ledger holding the demo portfolio, the WhatsApp channel in local
mode (webhooks signed with a given token) and Rasa's REST channel. The REST
channel has no authentication: this is for tests and benchmarks only, never
for serving debtors (`make run` uses credentials.yml, which omits it).
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "cobrador.tar.gz"
BIN = Path(sys.executable).parent
TWILIO_VARIABLES = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_FROM")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Waits until `url` answers 200; fails with the log's tail if `process` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


@dataclass
class LocalStack:
    """A running local bot: where it listens and how to start another Rasa server on it."""

    folder: Path
    database_url: str
    env: dict[str, str]
    actions_port: int
    rasa_port: int
    ingest_port: int
    model: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def ingest_url(self) -> str:
        """Where Twilio's webhooks go (the ingest process)."""
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.actions_port}"

    @property
    def rasa_log(self) -> Path:
        return self.folder / "rasa.log"

    def launch_rasa(
        self,
        port: int,
        log: Path,
        tracker_store: Optional[dict[str, Any]] = None,
        lock_store: Optional[dict[str, Any]] = None,
    ) -> subprocess.Popen:
        """A Rasa server on `port` sharing this stack's ledger, actions and public
        URL, and its endpoints unless `tracker_store` names another (then
        with the lock store `lock_store`, None: in memory)."""
        endpoints = self.folder / "endpoints.yml"
        if tracker_store is not None:
            endpoints = self.folder / f"endpoints-{port}.yml"
            write_endpoints(endpoints, self.actions_port, tracker_store, lock_store)
        process = subprocess.Popen(
            [str(BIN / "rasa"), "run", "--model", str(self.model), "--endpoints", str(endpoints),
             "--credentials", str(self.folder / "credentials.yml"), "--port", str(port),
             "--enable-api", "--jwt-secret", self.env["RASA_JWT_SECRET"], "--jwt-method", "HS256"],
            cwd=ROOT, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        return process


@contextmanager
def local_stack(
    folder: Path,
    database_url: str,
    *,
    token: str,
    demo_today: Optional[str] = None,
    extra_env: Optional[dict[str, str]] = None,
    model: Path = MODEL,
    twilio: Optional[dict[str, str]] = None,
    tracker_store: Optional[dict[str, Any]] = None,
    lock_store: Optional[dict[str, Any]] = None,
) -> Iterator[LocalStack]:
    """Starts the bot, yields it once Rasa's channels answer, stops it at the end.

    Args:
        folder: where the credentials, endpoints and logs go.
        database_url: the ledger; it is migrated and the demo loaded into it.
        token: the local-mode signing token of the WhatsApp channel.
        demo_today: the date the demo is written around (default: today).
        extra_env: more variables for both servers (e.g. a pinned clock).
        model: the trained model.
        twilio: TWILIO_* variables (with TWILIO_API_BASE, a fake Twilio) to
            run in Twilio mode instead of local mode.
        tracker_store: Rasa's `tracker_store` endpoint (as in endpoints.yml);
            by default Rasa keeps its trackers in memory.
        lock_store: Rasa's `lock_store` endpoint (`redis_locks`); by default in memory.
    """
    actions_port, rasa_port, ingest_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RASA_TELEMETRY_ENABLED": "false",
        "COBRADOR_LOCAL_TOKEN": token,
        "COBRADOR_PUBLIC_URL": f"http://127.0.0.1:{ingest_port}",
        "COBRADOR_RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "RASA_JWT_SECRET": f"devstack-{token}",
        **(extra_env or {}),
    }
    for variable in TWILIO_VARIABLES:  # local mode, whatever the caller's shell has
        env.pop(variable, None)
    env.update(twilio or {})
    demo = ["--today", demo_today] if demo_today else []
    subprocess.run([sys.executable, "-m", "cobrador", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "cobrador", "demo", "load", *demo], env=env, cwd=ROOT, check=True, capture_output=True
    )
    (folder / "credentials.yml").write_text("cobrador.whatsapp.channel.WhatsAppInput:\nrest:\n", encoding="utf-8")
    write_endpoints(folder / "endpoints.yml", actions_port, tracker_store, lock_store)
    stack = LocalStack(folder, database_url, env, actions_port, rasa_port, ingest_port, model)
    try:
        actions_log = folder / "actions.log"
        actions = subprocess.Popen(
            [str(BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", str(actions_port)],
            cwd=ROOT, env=env, stdout=open(actions_log, "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.processes.append(actions)
        rasa = stack.launch_rasa(rasa_port, stack.rasa_log)
        ingest_log = folder / "ingest.log"
        ingest = subprocess.Popen(
            [sys.executable, "-m", "cobrador", "ingest", "--port", str(ingest_port), "--rasa-url", stack.rasa_url,
             "--model", str(model)],
            cwd=ROOT, env=env, stdout=open(ingest_log, "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.processes.append(ingest)
        wait_for(f"{stack.ingest_url}/webhooks/whatsapp/", ingest, 60, ingest_log)
        wait_for(f"{stack.actions_url}/health", actions, 120, actions_log)
        # The root answers before the model has loaded; the REST channel only after.
        wait_for(f"{stack.rasa_url}/webhooks/rest/", rasa, 300, stack.rasa_log)
        yield stack
    finally:
        for process in stack.processes:
            process.terminate()
        for process in stack.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def write_endpoints(
    path: Path,
    actions_port: int,
    tracker_store: Optional[dict[str, Any]],
    lock_store: Optional[dict[str, Any]] = None,
) -> None:
    """Rasa's endpoints file: the action server on `actions_port`, the
    `tracker_store` endpoint (None: Rasa keeps its trackers in memory) and
    the `lock_store` one (None: in memory)."""
    endpoints: dict[str, Any] = {"action_endpoint": {"url": f"http://127.0.0.1:{actions_port}/webhook"}}
    if tracker_store:
        endpoints["tracker_store"] = tracker_store
    if lock_store:
        endpoints["lock_store"] = lock_store
    path.write_text(yaml.safe_dump(endpoints), encoding="utf-8")


def sql_trackers(sqlite_file: Path, postgres: Optional[str] = None, name: str = "cobrador_trackers") -> dict[str, Any]:
    """Rasa's `tracker_store` endpoint for its SQL tracker store: the SQLite
    file `sqlite_file`, or with `postgres` (a server's URL) the database
    `name` on that server (Rasa creates it when missing)."""
    if postgres is None:
        return {"type": "SQL", "dialect": "sqlite", "db": str(sqlite_file)}
    server = urlsplit(postgres)
    return {
        "type": "SQL", "dialect": "postgresql", "url": server.hostname, "port": server.port or 5432,
        "username": server.username or "postgres", "password": server.password or "", "db": name,
        "login_db": "postgres",
    }  # fmt: skip


def redis_locks(url: str, prefix: str = "cobrador") -> dict[str, Any]:
    """Rasa's `lock_store` endpoint on a Redis server (`redis://host:port/db`),
    as endpoints.production.yml configures it (Rasa takes a `prefix` of
    letters and digits only, and otherwise its default)."""
    server = urlsplit(url)
    return {
        "type": "redis", "url": server.hostname, "port": server.port or 6379,
        "db": int(server.path.lstrip("/") or 0), "password": server.password or "", "key_prefix": prefix,
    }  # fmt: skip


def open_tracker_store(endpoint: dict[str, Any], domain: Any) -> Any:
    """The tracker store Rasa makes of a `tracker_store` endpoint (`sql_trackers`)."""
    from rasa.core.tracker_store import TrackerStore
    from rasa.utils.endpoints import EndpointConfig

    return TrackerStore.create(EndpointConfig.from_dict(endpoint), domain)


def scratch_postgres(server: str, name: str) -> str:
    """A fresh, empty database `name` on a PostgreSQL server (benchmarks); its URL."""
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


class SlowLink:
    """A TCP proxy on 127.0.0.1 in front of `to` (host, port) that holds every
    chunk back `delay` seconds each way: a server on this machine made to look
    like one on another host, as production's PostgreSQL and Redis are
    (bench/slow_link.py, tests/deploy/test_store_round_trips.py). It counts
    the chunks clients send (`sent`): each request a client makes and waits
    for is one, so they count the round trips.

    Event loops time in whole milliseconds, so each direction of each
    connection is a reader thread and a writer thread that sleeps to the
    chunk's due time (about 0.1 ms late here)."""

    def __init__(self, to: tuple[str, int], delay: float = 0.0, port: int = 0) -> None:
        self.to, self.delay = to, delay
        self.sent = 0
        self._count = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.to)
        except OSError:
            client.close()
            return
        for end in (client, upstream):
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True)
        back.start()
        self._pipe(client, upstream, True)
        back.join()
        client.close()
        upstream.close()

    def _pipe(self, source: socket.socket, target: socket.socket, counted: bool) -> None:
        chunks: queue.SimpleQueue = queue.SimpleQueue()

        def write() -> None:
            while True:
                due, data = chunks.get()
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    break
                try:
                    target.sendall(data)
                except OSError:
                    break
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if data and counted:
                with self._count:
                    self.sent += 1
            chunks.put((time.perf_counter() + self.delay, data))
            if not data:
                break
        writer.join()
