"""The interval bench/whatsapp.py gives for the median of the rounds'
webhook/REST ratios, and what it says of the bar."""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path

spec = importlib.util.spec_from_file_location("bench_whatsapp", Path(__file__).parents[2] / "bench" / "whatsapp.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def binomial_below(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) <= k)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def test_the_interval_is_the_order_statistics_the_binomial_gives() -> None:
    values = [float(v) for v in range(1, 41)]
    random.Random(5).shuffle(values)
    # n = 40: P(X <= 13) = 0.019 <= 0.025 < P(X <= 14) = 0.040, so the 14th and 27th values.
    assert binomial_below(40, 13) <= 0.025 < binomial_below(40, 14)
    assert bench.median_interval(values) == (14.0, 27.0)
    assert bench.median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)  # 6 values: the extremes
    assert bench.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # 5: no 95 % interval


def test_the_interval_covers_the_median_as_often_as_it_says() -> None:
    generator = random.Random(11)
    covered = 0
    for _ in range(2000):
        draws = [generator.gauss(0.97, 0.1) for _ in range(40)]
        low, high = bench.median_interval(draws)
        covered += low <= 0.97 <= high
    assert covered / 2000 >= 0.95  # 96.2 % in theory for 40 draws


def test_the_verdict_says_what_the_interval_says_of_the_bar() -> None:
    assert bench.verdict([1.02 + 0.001 * i for i in range(20)]).endswith("at least REST's")
    assert bench.verdict([0.90 + 0.001 * i for i in range(20)]).endswith("below REST's")
    assert bench.verdict([0.9, 1.1] * 20).endswith("not told apart from REST's")
    assert bench.verdict([1.5, 1.5, 1.5]) == "median 150% (too few rounds for an interval)"
