"""Benchmark: NLU training time and parse latency.

Trains the full model (NLU and rules) from scratch into a temporary folder
and times it, then loads it and parses every held-out message once per
repetition, printing p50/p95/max latency of `Agent.parse_message` plus the
entity resolution `nlu-eval` adds. Run with `make bench` or
`.venv/bin/python bench/nlu.py [--skip-train] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from cobrador.language import extract_entities  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-train", action="store_true", help="reuse models/cobrador.tar.gz")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    model = ROOT / "models" / "cobrador.tar.gz"
    if not args.skip_train:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "rasa"), "train", "--out", out, "--fixed-model-name", "bench",
                 "--quiet", "--force"],
                cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            print(f"training (NLU + rules, from scratch): {time.perf_counter() - started:.1f} s")
    if not model.exists():
        print(f"no model at {model}; run `make train`", file=sys.stderr)
        return 2

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    from rasa.core.agent import Agent

    started = time.perf_counter()
    agent = Agent.load(str(model))
    print(f"model load: {time.perf_counter() - started:.1f} s")
    texts = [
        (json.loads(line)["text"], json.loads(line)["lang"])
        for path in sorted((ROOT / "tests" / "nlu" / "holdout").glob("*/*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    loop = asyncio.new_event_loop()
    loop.run_until_complete(agent.parse_message("hola"))  # warm-up
    today = dt.date(2026, 11, 18)
    intent_ms, entity_ms = [], []
    for _ in range(args.repeat):
        for text, lang in texts:
            started = time.perf_counter()
            loop.run_until_complete(agent.parse_message(text))
            intent_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            extract_entities(text, lang, today)
            entity_ms.append((time.perf_counter() - started) * 1000)
    for name, values in (("intent (Rasa parse)", intent_ms), ("entities (cobrador.language)", entity_ms)):
        print(
            f"{name}: n={len(values)} p50={statistics.median(values):.1f} ms "
            f"p95={percentile(values, 95):.1f} ms max={max(values):.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
