"""Benchmark: the WhatsApp channel against Rasa's stock REST channel.

Starts the local stack (action server, one Rasa server with both channels on
the trained model, the WhatsApp ingest; demo ledger in a temporary SQLite
file or `--postgres`; local mode), then, for 1, 10 and 30 concurrent
conversations, drives the same turns through

* the WhatsApp webhook, signed with twilio's RequestValidator and posted to
  the ingest: the acknowledgement latency (POST until Twilio would get its
  200) and the end-to-end turn latency (inbound stored until it is
  `processed`, its replies recorded in the outbox, by the server's clock);
* the REST channel: POST until the replies come back (its turn latency).

Each channel runs twice (`--rounds`) per level, in alternating order, on fresh
debtors. Prints p50/p95 per measure, turns per second per channel, and the CPU
time each process spent per turn (from /proc), which tells a channel's cost
apart from a machine that is slower or busier. Run with
`make bench` or `.venv/bin/python bench/whatsapp.py [--turns N] [--postgres URL]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Optional

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cobrador.devstack import MODEL, local_stack, redis_locks, scratch_postgres, sql_trackers  # noqa: E402
from cobrador.whatsapp.simulator import signed_form, twilio_fields  # noqa: E402

TOKEN = "bench-local-token"
TURNS = ["hola", "quien habla?", "eres un robot?", "que clima hace", "gracias"]


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by each process of the stack (and the client, and the
    PostgreSQL server's backends) from /proc, so each channel's cost per turn
    can be told apart from the machine being slower or busier."""

    def __init__(self, stack) -> None:
        actions, rasa, ingest = stack.processes[:3]
        self.pids = {"rasa": rasa.pid, "actions": actions.pid, "ingest": ingest.pid}

    @staticmethod
    def _pid_seconds(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime

    @staticmethod
    def postgres_pids() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "comm").read_text().strip().startswith("postgres"):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    @staticmethod
    def postgres_seconds() -> float:
        """CPU seconds of the PostgreSQL server's processes on this machine so far."""
        return sum(CpuMeter._pid_seconds(pid) for pid in CpuMeter.postgres_pids())

    def _workers(self) -> float:
        """The ingest's NLU worker (and any other process the ingest started)."""
        try:
            children = Path(f"/proc/{self.pids['ingest']}/task/{self.pids['ingest']}/children").read_text().split()
        except OSError:
            return 0.0
        return sum(self._pid_seconds(int(pid)) for pid in children)

    def snapshot(self) -> dict[str, float]:
        times = os.times()
        shot = {name: self._pid_seconds(pid) for name, pid in self.pids.items()}
        shot["nlu-worker"] = self._workers()
        shot["client"] = times.user + times.system
        shot["postgres"] = self.postgres_seconds()
        return shot

    @staticmethod
    def per_turn(before: dict[str, float], after: dict[str, float], turns: int) -> dict[str, float]:
        return {name: (after[name] - before[name]) / turns * 1000 for name in before}


def cpu_line(costs: list[dict[str, float]]) -> str:
    """Mean CPU ms per turn by process over the rounds, non-zero ones only."""
    names = [n for n in costs[0] if any(c[n] > 0.05 for c in costs)]
    return " ".join(f"{n} {statistics.mean(c[n] for c in costs):.1f}" for n in names) + " ms CPU/turn"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def median_interval(values: list[float], confidence: float = 0.95) -> Optional[tuple[float, float]]:
    """A distribution-free interval for the median of `values`: the order
    statistics whose ranks the binomial distribution with p = 1/2 gives,
    covering the median with at least `confidence` if the values are
    independent draws. The rounds' webhook/REST ratios are only roughly so
    (a slow spell of the machine can span rounds, and both channels of a
    round do not always feel it alike), so the interval is a guide, not a
    guarantee. None when there are too few values for one (fewer than 6 at 95 %)."""
    n, tail = len(values), (1 - confidence) / 2
    below, k = 0.0, 0  # P(Binomial(n, 1/2) <= k - 1)
    while k < n and below + math.comb(n, k) / 2**n <= tail:
        below += math.comb(n, k) / 2**n
        k += 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def verdict(paired: list[float]) -> str:
    """The median of the rounds' webhook/REST ratios, its 95 % interval, and
    what the interval says of the bar (webhook turns/s at least REST's)."""
    median = f"median {statistics.median(paired):.0%}"
    interval = median_interval(paired)
    if interval is None:
        return f"{median} (too few rounds for an interval)"
    low, high = interval
    if low >= 1:
        said = "at least REST's"
    elif high < 1:
        said = "below REST's"
    else:
        said = "not told apart from REST's"
    return f"{median}, 95 % interval {low:.0%}-{high:.0%}: {said}"


class Ledger:
    """Read-only queries of the message log (plain sqlite3: never takes the write lock)."""

    # inotify tells of a commit as SQLite writes it to the log, which can be
    # before it can be read: each change is looked at once more this much later.
    recheck_after: Optional[float] = 0.001

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()

    def watch(self, loop: asyncio.AbstractEventLoop, changed) -> None:  # noqa: ANN001
        """`changed()` on every commit (each writes the write-ahead log)."""
        watch_file(loop, Path(f"{self.path}-wal"), changed)

    def processed(self, sids: list[str]) -> dict[str, float]:
        """Seconds from storing to finishing, for those of `sids` whose turn is over."""
        if not hasattr(self.local, "db"):
            self.local.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        marks = ",".join("?" * len(sids))
        rows = self.local.db.execute(
            "SELECT provider_sid, (julianday(updated_at) - julianday(created_at)) * 86400 FROM messages "  # noqa: S608
            f"WHERE status = 'processed' AND provider_sid IN ({marks})",
            sids,
        ).fetchall()
        return dict(rows)

    def window(self, sids: list[str]) -> float:
        """Seconds from the first message stored to the last turn finished (server clock)."""
        marks = ",".join("?" * len(sids))
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        first, last = db.execute(
            f"SELECT min(julianday(created_at)), max(julianday(updated_at)) FROM messages "  # noqa: S608
            f"WHERE provider_sid IN ({marks})",
            sids,
        ).fetchone()
        return (last - first) * 86400


class PostgresLedger:
    """The same queries on PostgreSQL, with psycopg2 itself (one connection
    per client thread): the client's polling should cost the shared cores as
    little as on SQLite."""

    # A notification comes after its commit: no second look.
    recheck_after: Optional[float] = None

    def __init__(self, url: str) -> None:
        self.dsn = url
        self.local = threading.local()
        # What the notifications told: each processed message's seconds from
        # stored to processed, so the client need not ask.
        self.finished: dict[str, float] = {}

    def watch(self, loop: asyncio.AbstractEventLoop, changed) -> None:  # noqa: ANN001
        """`changed()` whenever a message is marked processed: a trigger in
        the bench's scratch database notifies (with the MessageSid and the
        turn's seconds, read into `finished`), this connection listens."""
        import psycopg2

        listener = psycopg2.connect(self.dsn)
        listener.autocommit = True
        with listener.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION bench_turn_done() RETURNS trigger AS $$ "
                "BEGIN PERFORM pg_notify('bench_turns', NEW.provider_sid || ' ' || "
                "EXTRACT(EPOCH FROM NEW.updated_at - NEW.created_at)::text); RETURN NULL; END $$ LANGUAGE plpgsql"
            )
            cursor.execute("DROP TRIGGER IF EXISTS bench_turn_done ON messages")
            cursor.execute(
                "CREATE TRIGGER bench_turn_done AFTER UPDATE OF status ON messages FOR EACH ROW "
                "WHEN (NEW.status = 'processed' AND NEW.direction = 'inbound') EXECUTE FUNCTION bench_turn_done()"
            )
            cursor.execute("LISTEN bench_turns")

        def drain() -> None:
            listener.poll()
            for notification in listener.notifies:
                sid, took = notification.payload.split(" ")
                self.finished[sid] = float(took)
            listener.notifies.clear()
            changed()

        self.listener = listener
        loop.add_reader(listener.fileno(), drain)

    def _cursor(self):  # noqa: ANN202
        if not hasattr(self.local, "db"):
            import psycopg2

            self.local.db = psycopg2.connect(self.dsn)
            self.local.db.autocommit = True
        return self.local.db.cursor()

    def processed(self, sids: list[str]) -> dict[str, float]:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT provider_sid, EXTRACT(EPOCH FROM updated_at - created_at) FROM messages "
                "WHERE status = 'processed' AND provider_sid = ANY(%s)",
                (sids,),
            )
            return {sid: float(took) for sid, took in cursor.fetchall()}

    def window(self, sids: list[str]) -> float:
        """Seconds from the first message stored to the last turn finished (server clock)."""
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT EXTRACT(EPOCH FROM max(updated_at) - min(created_at)) FROM messages "
                "WHERE provider_sid = ANY(%s)",
                (sids,),
            )
            return float(cursor.fetchone()[0])


class Poller:
    """One task that watches every outstanding turn with one query per change.

    The client must learn that a turn ended before the debtor's next message
    goes, and in production nobody waits to learn it (Twilio is sent the
    replies at once). So the client is told by the database itself: inotify
    on SQLite's write-ahead log (every commit writes it), or LISTEN on
    PostgreSQL (a trigger in the bench's scratch database notifies each
    processed message). On each change it runs one query for all the turns
    it waits for, and on SQLite one more `recheck_after` later (its inotify
    comes as the commit is written to the log, which can be before it is
    visible); changes that come while a query runs are answered by the next
    one. On PostgreSQL the notification itself says which message and how
    long its turn took (the ledger's `finished`): no query. (It also looks
    every `longest_tick`, should a change be missed.)"""

    def __init__(self, ledger, longest_tick: float = 0.05) -> None:
        self.ledger = ledger
        self.longest_tick = longest_tick
        # SQLite writes a commit to its log before the commit can be read:
        # a query run at once on the change may miss it, so each change is
        # looked at once more shortly after (unless another change comes first).
        self.recheck_after = ledger.recheck_after
        # On PostgreSQL, what the notifications told (see PostgresLedger.finished).
        self.finished: Optional[dict[str, float]] = getattr(ledger, "finished", None)
        self.waiting: dict[str, asyncio.Future] = {}
        self.changed = asyncio.Event()

    def wait(self, sid: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.finished and sid in self.finished:  # told before the client asked (ended before its ack was read)
            future.set_result(self.finished.pop(sid))
        else:
            self.waiting[sid] = future
        return future

    async def run(self) -> None:
        self.ledger.watch(asyncio.get_running_loop(), self.changed.set)
        recheck = False
        finished = self.finished
        while True:
            try:
                await asyncio.wait_for(self.changed.wait(), self.recheck_after if recheck else self.longest_tick)
                recheck = self.recheck_after is not None
                told = True
            except asyncio.TimeoutError:
                recheck = told = False
            self.changed.clear()
            if finished is not None:
                for sid in [sid for sid in finished if sid in self.waiting]:
                    future = self.waiting.pop(sid)
                    if not future.done():
                        future.set_result(finished.pop(sid))
                if told:  # the notifications said it all; a query only if one was missed
                    continue
            if not self.waiting:
                continue
            # On the loop itself: a read of the log takes a fraction of a
            # millisecond, less than handing it to a thread and back.
            done = self.ledger.processed(list(self.waiting))
            for sid, took in done.items():
                future = self.waiting.pop(sid, None)
                if future is not None and not future.done():
                    future.set_result(took)


IN_MODIFY = 0x2


def watch_file(loop: asyncio.AbstractEventLoop, path: Path, changed) -> None:  # noqa: ANN001
    """Calls `changed()` on the loop whenever `path` is written (inotify)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(fd, str(path).encode(), IN_MODIFY) < 0:
        raise OSError(ctypes.get_errno(), f"inotify on {path}")

    def drain() -> None:
        try:
            while os.read(fd, 65536):
                pass
        except BlockingIOError:
            pass
        changed()

    loop.add_reader(fd, drain)


def signed_turns(url: str, phone: str, turns: int) -> list[tuple[dict, bytes, dict]]:
    """A conversation's webhooks as Twilio would send them, signed and encoded
    (on Twilio's machines: so before the round, not on the cores being measured):
    the fields, the body and the headers."""
    built = []
    for n in range(turns):
        fields, signature = signed_form(TOKEN, url, twilio_fields(phone, TURNS[n % len(TURNS)], []))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        built.append((fields, urllib.parse.urlencode(fields).encode("utf-8"), headers))
    return built


async def webhook_conversation(
    http: aiohttp.ClientSession, url: str, poller: Poller, forms: list[tuple[dict, bytes, dict]]
) -> tuple[list[float], list[float], list[str]]:
    acks, e2e, sids = [], [], []
    for fields, body, headers in forms:
        started = time.perf_counter()
        async with http.post(url, data=body, headers=headers) as answer:
            await answer.read()
            acks.append(time.perf_counter() - started)
            assert answer.status == 200, await answer.text()
        # The turn is timed by the server (stored -> processed, its replies
        # recorded); the client only waits for it before the debtor's next message.
        e2e.append(await asyncio.wait_for(poller.wait(fields["MessageSid"]), 120))
        sids.append(fields["MessageSid"])
    return acks, e2e, sids


def rest_turns(phone: str, turns: int) -> list[bytes]:
    """A conversation's REST requests, encoded before the round as the webhooks are."""
    return [json.dumps({"sender": phone, "message": TURNS[n % len(TURNS)]}).encode() for n in range(turns)]


async def rest_conversation(http: aiohttp.ClientSession, base: str, bodies: list[bytes]) -> list[float]:
    headers = {"Content-Type": "application/json"}
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        async with http.post(base + "/webhooks/rest/webhook", data=body, headers=headers) as answer:
            await answer.read()
            latencies.append(time.perf_counter() - started)
            assert answer.status == 200
    return latencies


def rates(values: list[float]) -> str:
    return "rounds " + ", ".join(f"{v:.1f}" for v in values)


def ms(values: list[float]) -> str:
    return f"p50={statistics.median(values) * 1000:.0f} ms p95={percentile(values, 95) * 1000:.0f} ms"


async def webhook_round(http, stack, ledger, poller: Poller, phones: list[str], turns: int):
    """One round of signed webhooks to the ingest: acks, turn latencies, turns/s (server clock)."""
    url = stack.ingest_url + "/webhooks/whatsapp/webhook"
    forms = [signed_turns(url, phone, turns) for phone in phones]
    results = await asyncio.gather(*(webhook_conversation(http, url, poller, f) for f in forms))
    acks = [a for r in results for a in r[0]]
    e2e = [e for r in results for e in r[1]]
    # Throughput by the server's clock: first message stored to last turn finished.
    wall = await asyncio.to_thread(ledger.window, [sid for r in results for sid in r[2]])
    return acks, e2e, len(e2e) / wall


async def rest_round(http, stack, phones: list[str], turns: int):
    """One round through Rasa's REST channel: turn latencies, turns/s."""
    conversations = [rest_turns(phone, turns) for phone in phones]
    started = time.perf_counter()
    results = await asyncio.gather(*(rest_conversation(http, stack.rasa_url, c) for c in conversations))
    latencies = [x for r in results for x in r]
    return latencies, len(latencies) / (time.perf_counter() - started)


def pin(stack) -> None:
    """Rasa alone on the first core; the action server, the ingest (and its
    NLU worker), this client and the PostgreSQL server's processes on the others."""
    cores = sorted(os.sched_getaffinity(0))
    first, others = {cores[0]}, set(cores[1:])
    actions, rasa, ingest = stack.processes[:3]
    for pid in _threads(rasa.pid):
        os.sched_setaffinity(pid, first)
    try:  # the ingest's NLU worker (a process of its own) goes with the ingest
        workers = [int(pid) for pid in Path(f"/proc/{ingest.pid}/task/{ingest.pid}/children").read_text().split()]
    except OSError:
        workers = []
    for pid in [actions.pid, ingest.pid, *workers]:
        for thread in _threads(pid):
            os.sched_setaffinity(thread, others)
    for pid in _threads(os.getpid()):
        os.sched_setaffinity(pid, others)
    for pid in CpuMeter.postgres_pids():
        try:
            os.sched_setaffinity(pid, others)
        except OSError:
            continue


def _threads(pid: int) -> list[int]:
    return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]


async def measure(stack, ledger, turns: int, levels: tuple[int, ...], rounds: int = 2) -> None:
    meter = CpuMeter(stack)
    poller = Poller(ledger)
    watcher = asyncio.create_task(poller.run())
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:
        # Warm-up, both ways in alike: first connections, first statements.
        await rest_conversation(http, stack.rasa_url, rest_turns("+525590000000", 2))
        url = stack.ingest_url + "/webhooks/whatsapp/webhook"
        await webhook_conversation(http, url, poller, signed_turns(url, "+525590000001", 2))
        for concurrency in levels:
            # Both channels are measured twice, in alternating order, on fresh
            # conversations, so neither profits from going second (warmer
            # caches); figures are over both rounds, turns/s their mean.
            webhook_rounds, rest_rounds = [], []
            cpu: dict[str, list[dict[str, float]]] = {"webhook": [], "rest": []}
            for round_ in range(rounds):
                order = ("webhook", "rest") if round_ % 2 == 0 else ("rest", "webhook")
                for channel in order:
                    # Fresh debtors every round and channel: equal tracker lengths.
                    # (channel, level, round, conversation) in the number's digits: no two alike.
                    kind = {"webhook": 1, "rest": 2}[channel]
                    phones = [f"+5255{kind}{concurrency:02d}{round_:03d}{i:02d}" for i in range(concurrency)]
                    before = meter.snapshot()
                    if channel == "webhook":
                        webhook_rounds.append(await webhook_round(http, stack, ledger, poller, phones, turns))
                    else:
                        rest_rounds.append(await rest_round(http, stack, phones, turns))
                    cpu[channel].append(meter.per_turn(before, meter.snapshot(), concurrency * turns))
            acks = [a for r in webhook_rounds for a in r[0]]
            e2e = [e for r in webhook_rounds for e in r[1]]
            rest = [x for r in rest_rounds for x in r[0]]
            webhook_rates = [r[2] for r in webhook_rounds]
            rest_rates = [r[1] for r in rest_rounds]
            print(
                f"{concurrency:>2} concurrent: webhook ack {ms(acks)}; webhook turn {ms(e2e)}; "
                f"{statistics.mean(webhook_rates):.1f} turns/s ({rates(webhook_rates)}) | "
                f"REST turn {ms(rest)}; {statistics.mean(rest_rates):.1f} turns/s ({rates(rest_rates)})",
                flush=True,
            )
            # Each round's two channels ran back to back: their ratio is the
            # figure the machine's drift (rounds of one channel vary by a third
            # here) disturbs least.
            paired = [w / r for w, r in zip(webhook_rates, rest_rates, strict=True)]
            print(f"   webhook/REST by round: {', '.join(f'{p:.0%}' for p in paired)}; {verdict(paired)}", flush=True)
            print(f"   webhook: {cpu_line(cpu['webhook'])} | REST: {cpu_line(cpu['rest'])}", flush=True)
    watcher.cancel()


class FakeTwilio:
    """Twilio's Messages API at the HTTP boundary (production sends there):
    accepts every send at once, on a thread of its own, so its cost is not
    on the client's event loop. Counts what it was sent. With `callbacks`,
    it then posts each message's delivery callbacks (sent, delivered, read,
    signed as Twilio signs them) to its StatusCallback URL, as Twilio does."""

    def __init__(self, callbacks: bool = False) -> None:
        from aiohttp import web

        self.sent = 0
        self.callbacks = callbacks
        self.called_back: dict[int, int] = {}  # HTTP status -> how many
        self.http: Optional[aiohttp.ClientSession] = None
        self.tasks: set[asyncio.Task] = set()
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._send)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _send(self, request):  # noqa: ANN001, ANN202
        from aiohttp import web

        form = await request.post()
        assert form.get("To", "").startswith("whatsapp:+") and form.get("StatusCallback"), dict(form)
        self.sent += 1
        sid = f"SM{self.sent:032x}"
        if self.callbacks:
            task = asyncio.get_running_loop().create_task(self._call_back(form["StatusCallback"], sid))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.json_response({"sid": sid, "status": "queued"}, status=201)

    async def _call_back(self, url: str, sid: str) -> None:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        for status, after in (("sent", 0.02), ("delivered", 0.1), ("read", 0.5)):
            await asyncio.sleep(after)
            fields, signature = signed_form(TOKEN, url, {"MessageSid": sid, "MessageStatus": status})
            try:
                async with self.http.post(url, data=fields, headers={"X-Twilio-Signature": signature}) as answer:
                    code = answer.status
            except aiohttp.ClientError:
                code = 0  # the ingest could not be reached
            self.called_back[code] = self.called_back.get(code, 0) + 1

    def drain(self, seconds: float = 10.0) -> None:
        """Waits (from another thread) for the callbacks still to be posted."""

        async def pending() -> None:
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=seconds)

        asyncio.run_coroutine_threadsafe(pending(), self.loop).result(seconds + 5)


def health_until(url: str, done, seconds: float, step: float) -> dict:  # noqa: ANN001
    """A WhatsApp health check (`url`) looked at every `step` seconds until
    `done(answer)` holds or `seconds` have passed; its last answer."""
    import requests

    deadline = time.monotonic() + seconds
    while True:
        answer = requests.get(url + "/webhooks/whatsapp/", timeout=10).json()
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(step)


def ready_to_parse(stack, seconds: float = 300) -> str:
    """Waits while the ingest's NLU worker loads the model (it would parse
    nothing ahead meanwhile); its state then: "ready" or "off"."""
    answer = health_until(stack.ingest_url, lambda a: a.get("parse_ahead", "off") != "loading", seconds, 0.5)
    return answer.get("parse_ahead", "off")


def settled(stack, seconds: float = 120) -> None:
    """Waits until Rasa has frozen its heap (cobrador.heap), a pause of about
    half a second at start that would otherwise fall in the first round."""
    if not health_until(stack.rasa_url, lambda a: a.get("heap_frozen"), seconds, 0.2).get("heap_frozen"):
        print("Rasa did not freeze its heap: the first round may hold its pause", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 10, 30], help="concurrent conversations per round"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds per channel and level, alternating which goes first"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Rasa alone on the first core, everything else (action server, ingest, client, PostgreSQL) on the others",
    )
    parser.add_argument(
        "--twilio",
        action="store_true",
        help="Twilio mode: replies are sent to a fake Twilio API in this process (as in production) "
        "instead of the local outbox",
    )
    parser.add_argument(
        "--callbacks",
        action="store_true",
        help="with --twilio: the fake Twilio API posts each reply's delivery callbacks (sent, delivered, read) "
        "to the ingest, as Twilio does",
    )
    parser.add_argument(
        "--sql-trackers",
        action="store_true",
        help="Rasa's trackers in its SQL tracker store, as `make run` and production keep them (a SQLite file, "
        "or with --postgres a database on that server), instead of in memory",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the ledger on this PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432); "
        "a scratch database cobrador_bench is created there",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="Rasa's lock store on this Redis server (e.g. redis://127.0.0.1:6379/14), as production keeps it "
        "(endpoints.production.yml), instead of in memory",
    )
    args = parser.parse_args()
    if args.callbacks and not args.twilio:
        parser.error("--callbacks needs --twilio")
    if args.rounds > 999 or max(args.concurrency) > 99:
        parser.error("at most 999 rounds and 99 concurrent conversations (they are numbered in the phone numbers)")
    if not MODEL.exists():
        print("no model: run `make train`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        ledger_path = Path(folder) / "ledger.db"
        database_url = f"sqlite:///{ledger_path}"
        if args.postgres:
            database_url = scratch_postgres(args.postgres.rstrip("/"), "cobrador_bench")
        twilio = None
        if args.twilio:
            fake = FakeTwilio(callbacks=args.callbacks)
            twilio = {
                "TWILIO_ACCOUNT_SID": "ACbench", "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886", "TWILIO_API_BASE": fake.url,
            }  # fmt: skip
        trackers = None
        if args.sql_trackers:
            trackers = sql_trackers(Path(folder) / "trackers.db", args.postgres, "cobrador_bench_trackers")
            if args.postgres:
                scratch_postgres(args.postgres.rstrip("/"), "cobrador_bench_trackers")  # fresh, empty
        locks = redis_locks(args.redis, "cobradorbench") if args.redis else None
        with local_stack(
            Path(folder), database_url, token=TOKEN, twilio=twilio, tracker_store=trackers, lock_store=locks
        ) as stack:
            ledger = PostgresLedger(database_url) if args.postgres else Ledger(ledger_path)
            parse_ahead = ready_to_parse(stack)
            settled(stack)
            if args.pin:
                pin(stack)
            print(
                f"ledger: {'PostgreSQL' if args.postgres else 'SQLite'}; parse-ahead: {parse_ahead}; "
                f"replies: {'sent to a fake Twilio API' if args.twilio else 'local outbox'}; "
                f"Rasa's trackers: {'SQL' if trackers else 'in memory'}; locks: {'Redis' if locks else 'in memory'}",
                flush=True,
            )
            # uvloop (installed with Sanic) for the client too: its own cost
            # on the shared cores is smaller, for both channels alike.
            import uvloop

            uvloop.run(measure(stack, ledger, args.turns, tuple(args.concurrency), args.rounds))
            if twilio is not None:
                fake.drain()
                answers = ", ".join(f"{n} answered {code}" for code, n in sorted(fake.called_back.items()))
                print(f"fake Twilio: {fake.sent} sends; delivery callbacks: {answers or 'none'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
