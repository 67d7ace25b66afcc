"""End-to-end fixtures: the real action server and Rasa server, started once
per test session on free ports, with the trained model and a demo ledger."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.support import unavailable

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "cobrador.tar.gz"
BIN = Path(sys.executable).parent
DEMO_TODAY = "2026-11-23"  # a Monday; the demo portfolio is written around it
FAKE_NOW = "2026-11-23T18:00:00+00:00"  # noon in Mexico City, 10:00 in San Francisco
LOCAL_TOKEN = "test-local-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
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


class Stack:
    """URLs and settings of a running bot."""

    def __init__(self, rasa_url: str, actions_url: str, database_url: str, rasa_log: Path) -> None:
        self.rasa_url = rasa_url
        self.actions_url = actions_url
        self.database_url = database_url
        self.rasa_log = rasa_log
        self.launch: Callable[[int, Path], subprocess.Popen] = lambda port, log: None  # set by the fixture

    def say(self, sender: str, text: str) -> list[str]:
        """Sends one message through Rasa's REST channel; returns the reply texts."""
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60
        )
        response.raise_for_status()
        return [message.get("text", "") for message in response.json()]

    def restart(self, sender: str) -> None:
        """Forgets the Rasa conversation of `sender` (REST channel only, tests only)."""
        self.say(sender, "/restart")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The action server and Rasa server, up once for the whole session."""
    if not MODEL.exists():
        unavailable("a trained model", f"{MODEL} is missing; `make train` builds it")
    folder = tmp_path_factory.mktemp("e2e")
    database_url = f"sqlite:///{folder / 'ledger.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RASA_TELEMETRY_ENABLED": "false",
        # The bot's clock is pinned so dates in the tests mean the same every day.
        "COBRADOR_FAKE_NOW": FAKE_NOW,
        # Local mode (no Twilio credentials): webhooks signed with this token.
        "COBRADOR_LOCAL_TOKEN": LOCAL_TOKEN,
    }
    for variable in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_FROM"):
        env.pop(variable, None)
    subprocess.run([sys.executable, "-m", "cobrador", "migrate"], env=env, cwd=ROOT, check=True)
    subprocess.run(
        [sys.executable, "-m", "cobrador", "demo", "load", "--today", DEMO_TODAY], env=env, cwd=ROOT, check=True
    )

    actions_port, rasa_port = free_port(), free_port()
    env["COBRADOR_PUBLIC_URL"] = f"http://127.0.0.1:{rasa_port}"
    credentials = folder / "credentials.yml"
    # The WhatsApp channel as in production, plus Rasa's REST channel, which
    # only the tests use (it has no authentication).
    credentials.write_text("cobrador.whatsapp.channel.WhatsAppInput:\nrest:\n", encoding="utf-8")
    endpoints = folder / "endpoints.yml"
    endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n', encoding="utf-8")
    processes = []
    try:
        actions_log = folder / "actions.log"
        actions = subprocess.Popen(
            [str(BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", str(actions_port)],
            cwd=ROOT,
            env=env,
            stdout=open(actions_log, "w"),
            stderr=subprocess.STDOUT,
        )
        processes.append(actions)
        rasa_log = folder / "rasa.log"

        def launch(port: int, log: Path) -> subprocess.Popen:
            """Another Rasa server on the same ledger, actions and public URL."""
            process = subprocess.Popen(
                [str(BIN / "rasa"), "run", "--model", str(MODEL), "--endpoints", str(endpoints),
                 "--credentials", str(credentials), "--port", str(port)],
                cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            processes.append(process)
            return process

        rasa = launch(rasa_port, rasa_log)
        wait_for(f"http://127.0.0.1:{actions_port}/health", actions, 120, actions_log)
        wait_for(f"http://127.0.0.1:{rasa_port}/", rasa, 300, rasa_log)
        # The root answers before the model has loaded; the REST channel only after.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{rasa_port}/webhooks/rest/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        stack = Stack(f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{actions_port}", database_url, rasa_log)
        stack.launch = launch
        yield stack
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
