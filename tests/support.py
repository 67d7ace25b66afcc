"""Helpers shared by test suites (importable, unlike conftest)."""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(service: str, reason: str) -> None:
    """Skips the test, or fails it in CI where every service must run."""
    message = f"{service} is not available here ({reason})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)
