"""A TCP proxy that holds every chunk back for a fixed delay each way: a
server on this machine made to look like one on another host (production's
PostgreSQL and Redis are), for the benchmarks (`cobrador.devstack.SlowLink`).

    python bench/slow_link.py --listen 15432 --to 127.0.0.1:5432 --delay-ms 0.15

A request and its answer then cost a round trip of twice the delay (and the
threads' wake-ups, about 0.1 ms each way here) on top of the real one: with
0.15 ms, a Redis PING takes 0.64 ms instead of 0.13, about a database in the
same region as the bot. Its CPU, a few microseconds a chunk, falls on the
machine's cores like the rest.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cobrador.devstack import SlowLink  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--to", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.15, help="delay each way, in milliseconds")
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    SlowLink((host, int(port)), args.delay_ms / 1000, args.listen)
    print(f"127.0.0.1:{args.listen} -> {args.to}, {args.delay_ms} ms each way", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
