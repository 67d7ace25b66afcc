"""End-to-end fixtures: the real action server and Rasa server, started once
per test session on free ports, with the trained model and a demo ledger."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from cobrador.devstack import MODEL, free_port, local_stack, sql_trackers, wait_for  # noqa: F401 - re-exported to the tests
from tests.support import unavailable

DEMO_TODAY = "2026-11-23"  # a Monday; the demo portfolio is written around it
FAKE_NOW = "2026-11-23T18:00:00+00:00"  # noon in Mexico City, 10:00 in San Francisco
LOCAL_TOKEN = "test-local-token"


class Stack:
    """URLs and settings of a running bot."""

    def __init__(
        self, rasa_url: str, actions_url: str, database_url: str, rasa_log: Path, public_url: str = ""
    ) -> None:
        self.rasa_url = rasa_url
        # The ingest: where Twilio's webhooks go, and the URL they are signed for.
        self.public_url = public_url or rasa_url
        self.actions_url = actions_url
        self.database_url = database_url
        self.rasa_log = rasa_log
        self.launch: Callable[..., subprocess.Popen] = lambda port, log, trackers=None: None  # set by the fixture

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
    # The bot's clock is pinned so dates in the tests mean the same every day.
    with local_stack(
        folder,
        database_url,
        token=LOCAL_TOKEN,
        demo_today=DEMO_TODAY,
        extra_env={"COBRADOR_FAKE_NOW": FAKE_NOW, "COBRADOR_SWEEP_SECONDS": "2"},
        # Rasa keeps its trackers in its SQL tracker store, as `make run` does.
        tracker_store=sql_trackers(folder / "trackers.db"),
    ) as local:
        stack = Stack(local.rasa_url, local.actions_url, database_url, local.rasa_log, local.ingest_url)
        stack.launch = local.launch_rasa
        yield stack


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser).
    Module-scoped: Playwright's sync API keeps an event loop running while it
    is open, which asyncio tests after it could not share."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable("Chromium", f"{CHROMIUM} not found; `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()
