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


def trained_model():
    """The trained model (`make train`); the test skips (fails in CI) without it."""
    from cobrador.devstack import MODEL

    if not MODEL.exists():
        unavailable("a trained model", f"{MODEL} is missing; `make train` builds it")
    return MODEL


def wait_until(condition, tries: int = 100, step: float = 0.02) -> bool:
    """Looks `tries` times, `step` seconds apart, until `condition()` holds;
    whether it did (the caller may go on either way)."""
    import time

    for _ in range(tries):
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def until_loaded(worker, seconds: float = 120) -> None:
    """Waits until an `Understanding`'s worker has loaded its model."""
    import time

    deadline = time.monotonic() + seconds
    while worker.model_id is None and worker.process is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.model_id is not None, "the NLU worker did not load the model"


def kill_worker(worker) -> None:
    """SIGKILLs an `Understanding`'s worker process, as a crash would."""
    import signal

    os.kill(worker.process.pid, signal.SIGKILL)
