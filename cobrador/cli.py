"""`python -m cobrador ...`: the command line of everything that is not Rasa.

Each subcommand is a thin shell around a function of the package; the
function does the work and is what the tests call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def _cmd_migrate(args: argparse.Namespace) -> int:
    from cobrador.ledger.migrate import upgrade

    upgrade()
    print("database is at the latest schema", file=sys.stderr)
    return EXIT_OK


def _cmd_creditors_load(args: argparse.Namespace) -> int:
    from cobrador.ledger.creditors import CreditorConfigError, load_creditors
    from cobrador.ledger.db import session_scope

    try:
        with session_scope() as session:
            codes = load_creditors(session, Path(args.file))
    except CreditorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"loaded creditors: {', '.join(codes) or '(none)'}")
    return EXIT_OK


def _progress_factory(enabled: bool) -> Optional[Callable]:
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda rows: tqdm(rows, unit=" rows", file=sys.stderr, mininterval=0.5)


def _cmd_import_portfolio(args: argparse.Namespace) -> int:
    from cobrador.ledger.db import session_scope
    from cobrador.ledger.importer import ImportFileError, import_portfolio

    show_progress = args.progress or (args.progress is None and sys.stderr.isatty())
    try:
        with session_scope() as session:
            report = import_portfolio(session, Path(args.file), progress_factory=_progress_factory(show_progress))
    except (ImportFileError, FileNotFoundError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for error in report.errors:
        print(f"line {error.line}: {error.reason}", file=sys.stderr)
    print(
        f"{report.rows} rows: {report.imported} imported, {len(report.errors)} rejected; "
        f"accounts {report.accounts_created} created, {report.accounts_updated} updated, "
        f"{report.accounts_unchanged} unchanged; debtors {report.debtors_created} created, "
        f"{report.debtors_updated} updated"
    )
    return EXIT_PARTIAL if report.errors else EXIT_OK


def _cmd_import_payments(args: argparse.Namespace) -> int:
    from cobrador.ledger.db import session_scope
    from cobrador.ledger.payments import ImportFileError, import_payments

    try:
        today = dt.date.fromisoformat(args.today) if args.today else dt.datetime.now(dt.timezone.utc).date()
    except ValueError:
        print(f"error: --today {args.today!r} is not a date YYYY-MM-DD", file=sys.stderr)
        return EXIT_USAGE
    show_progress = args.progress or (args.progress is None and sys.stderr.isatty())
    try:
        with session_scope() as session:
            report = import_payments(
                session, Path(args.file), today=today, progress_factory=_progress_factory(show_progress)
            )
    except (ImportFileError, FileNotFoundError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for error in report.errors:
        print(f"line {error.line}: {error.reason}", file=sys.stderr)
    for warning in report.warnings:
        print(f"line {warning.line}: warning: {warning.reason}", file=sys.stderr)
    totals = ", ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(report.totals.items())) or "nothing"
    print(
        f"{report.rows} rows: {report.applied} applied ({totals}), {report.already_applied} already applied, "
        f"{len(report.errors)} rejected; promises {report.promises_kept} kept, {report.promises_broken} broken; "
        f"instalments {report.installments_paid} paid, plans {report.plans_completed} completed; "
        f"accounts {report.accounts_paid_off} paid off; claims {report.claims_confirmed} confirmed"
    )
    return EXIT_PARTIAL if report.errors else EXIT_OK


def _moment(text: str, what: str) -> dt.datetime:
    """A date (midnight UTC) or an ISO date-time (UTC when it has no offset)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date YYYY-MM-DD or an ISO date-time") from None
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


def _cmd_export(args: argparse.Namespace) -> int:
    from cobrador.ledger.db import session_scope
    from cobrador.ledger.export import write_export

    try:
        since = _moment(args.since, "--since")
        until = _moment(args.until, "--until") if args.until else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if until is not None and until <= since:
        print("error: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        with session_scope() as session:
            count = write_export(session, out, since, until, args.creditor)
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    finally:
        if args.out:
            out.close()
    print(f"{count} events exported", file=sys.stderr)
    return EXIT_OK


def _cmd_debtor_show(args: argparse.Namespace) -> int:
    from cobrador.ledger.db import session_scope
    from cobrador.ledger.inspect import debtor_snapshot, render_text
    from cobrador.ledger.phones import InvalidPhone, to_e164

    try:
        phone = to_e164(args.phone)
    except InvalidPhone as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with session_scope() as session:
        snapshot = debtor_snapshot(session, phone, dt.date.today())
    if snapshot is None:
        print(f"error: no debtor with phone {phone}", file=sys.stderr)
        return EXIT_PARTIAL
    if args.json:
        print(json.dumps(snapshot, ensure_ascii=False, indent=2))
    else:
        print(render_text(snapshot))
    return EXIT_OK


def _cmd_escalations_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from cobrador.ledger.db import session_scope
    from cobrador.ledger.models import Escalation

    with session_scope() as session:
        rows = session.execute(
            select(Escalation).where(Escalation.status.in_(("open", "assigned"))).order_by(Escalation.created_at)
        ).scalars()
        for row in rows:
            summary = " ".join(row.summary.split())[:80]
            opened = f"{row.created_at:%Y-%m-%d %H:%M}"
            print(f"{row.case_number}\t{row.reason}\t{row.status}\t{row.phone}\t{opened}\t{summary}")
    return EXIT_OK


def _cmd_escalations_resolve(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from cobrador.ledger.commands import resolve_escalation
    from cobrador.ledger.db import session_scope
    from cobrador.ledger.models import Escalation

    with session_scope() as session:
        escalation = session.execute(
            select(Escalation).where(Escalation.case_number == args.case.upper())
        ).scalar_one_or_none()
        if escalation is None:
            print(f"error: no escalation {args.case}", file=sys.stderr)
            return EXIT_PARTIAL
        resolve_escalation(session, escalation.id, status="closed" if args.close else "resolved")
    print(f"{args.case.upper()} {'closed' if args.close else 'resolved'}: the bot answers {escalation.phone} again")
    return EXIT_OK


def _cmd_demo_load(args: argparse.Namespace) -> int:
    from cobrador.ledger.db import session_scope
    from cobrador.ledger.demo import is_empty, load_demo

    with session_scope() as session:
        if args.if_empty and not is_empty(session):
            print("ledger already has debtors: demo not loaded", file=sys.stderr)
            return EXIT_OK
        report = load_demo(session, dt.date.fromisoformat(args.today) if args.today else dt.date.today())
    print(f"demo portfolio loaded: {report.debtors_created} debtors, {report.accounts_created} accounts")
    return EXIT_OK


def _cmd_dates(args: argparse.Namespace) -> int:
    from cobrador.nlu.evaluate import read_jsonl, run_dates

    try:
        run_dates(read_jsonl(sys.stdin), sys.stdout)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_nlu_eval(args: argparse.Namespace) -> int:
    from cobrador.nlu.evaluate import IntentModel, read_jsonl, run_nlu_eval, today_in

    model_path = Path(args.model)
    if not model_path.exists():
        print(f"error: no model at {model_path}; run `make train`", file=sys.stderr)
        return EXIT_USAGE
    try:
        today = today_in(args.tz, args.today)
        run_nlu_eval(read_jsonl(sys.stdin), sys.stdout, IntentModel(model_path), today)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_nlu_report(args: argparse.Namespace) -> int:
    from cobrador.nlu.evaluate import read_jsonl, report

    gold = [line for path in args.gold for line in read_jsonl(open(path, encoding="utf-8"))]
    with open(args.predictions, encoding="utf-8") as handle:
        predicted = list(read_jsonl(handle))
    print(report(gold, predicted, Path(args.out)))
    return EXIT_OK


def _cmd_ingest(args: argparse.Namespace) -> int:
    from cobrador.whatsapp.ingest import serve

    serve(args.host, args.port, args.rasa_url, args.model)
    return EXIT_OK


def _cmd_outreach(args: argparse.Namespace) -> int:
    import logging
    import signal
    import time

    from cobrador.outreach import dry_run, run_once
    from cobrador.outreach.config import OutreachConfigError

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    now = lambda: dt.datetime.now(dt.timezone.utc)  # noqa: E731
    try:
        if args.dry_run:
            at = dt.datetime.fromisoformat(args.at) if args.at else now()
            if at.tzinfo is None:
                print("error: --at needs an offset, e.g. 2026-11-24T09:00:00-06:00", file=sys.stderr)
                return EXIT_USAGE
            for line in dry_run(at):
                print(line)
            return EXIT_OK
        if args.at:
            print("error: --at only goes with --dry-run", file=sys.stderr)
            return EXIT_USAGE
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        interval = float(os.environ.get("COBRADOR_OUTREACH_INTERVAL", "60"))
        while True:
            try:
                report = run_once(now(), worker_id=args.worker_id)
            except OutreachConfigError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the database is down: log, wait, try again
                logging.exception("outreach pass failed; retrying in %s s", interval)
                if args.once:
                    return EXIT_PARTIAL
                time.sleep(interval)
                continue
            print(
                f"outreach pass: {report.planned} planned, {report.sent} sent, {report.deferred} deferred, "
                f"{report.held} held, {report.cancelled} cancelled, {report.unknown} unknown",
                file=sys.stderr,
            )
            if args.once:
                return EXIT_OK
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.5)
            if stopping:
                return EXIT_OK
    except (OutreachConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def _cmd_web(args: argparse.Namespace) -> int:
    from cobrador.console.app import serve

    serve(args.host, args.port)
    return EXIT_OK


def _cmd_agent_add(args: argparse.Namespace) -> int:
    import getpass

    from cobrador.console.auth import AuthError, add_agent
    from cobrador.ledger.db import session_scope

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    try:
        with session_scope() as session:
            agent_id = add_agent(session, args.email, args.name, password, args.role)
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.role} {args.email} created (id {agent_id})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m cobrador`."""
    parser = argparse.ArgumentParser(prog="python -m cobrador", description="Cobrador: WhatsApp collections assistant")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="bring the database to the latest schema")
    migrate.set_defaults(func=_cmd_migrate)

    creditors = commands.add_parser("creditors", help="creditor (portfolio) configuration")
    creditors_commands = creditors.add_subparsers(dest="creditors_command", required=True, metavar="ACTION")
    creditors_load = creditors_commands.add_parser("load", help="validate and upsert creditors from a YAML file")
    creditors_load.add_argument("file")
    creditors_load.set_defaults(func=_cmd_creditors_load)

    importer = commands.add_parser("import-portfolio", help="import a portfolio CSV (see README)")
    importer.add_argument("file")
    importer.add_argument("--progress", dest="progress", action="store_true", default=None, help="force a progress bar")
    importer.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    importer.set_defaults(func=_cmd_import_portfolio)

    payments = commands.add_parser("import-payments", help="apply the creditor's payments reconciliation CSV")
    payments.add_argument("file")
    payments.add_argument("--today", help="the import's date, YYYY-MM-DD (default: today in UTC)")
    payments.add_argument("--progress", dest="progress", action="store_true", default=None, help="force a progress bar")
    payments.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    payments.set_defaults(func=_cmd_import_payments)

    export = commands.add_parser("export", help="outcomes since a date as CSV, for the creditor's system")
    export.add_argument("--since", required=True, help="YYYY-MM-DD or ISO date-time (UTC when no offset), inclusive")
    export.add_argument("--until", help="YYYY-MM-DD or ISO date-time, exclusive (default: now)")
    export.add_argument("--creditor", help="only this creditor's accounts and debtors")
    export.add_argument("--out", help="write to this file instead of stdout")
    export.set_defaults(func=_cmd_export)

    debtor = commands.add_parser("debtor", help="inspect debtors")
    debtor_commands = debtor.add_subparsers(dest="debtor_command", required=True, metavar="ACTION")
    show = debtor_commands.add_parser("show", help="everything the ledger knows about a phone number")
    show.add_argument("phone")
    show.add_argument("--json", action="store_true", help="the documented JSON form (schema cobrador.debtor/1)")
    show.set_defaults(func=_cmd_debtor_show)

    escalations = commands.add_parser("escalations", help="conversations handed to a person")
    escalation_commands = escalations.add_subparsers(dest="escalation_command", required=True, metavar="ACTION")
    escalation_commands.add_parser("list", help="open and assigned escalations, oldest first").set_defaults(
        func=_cmd_escalations_list
    )
    resolve = escalation_commands.add_parser("resolve", help="resolve a case and return the conversation to the bot")
    resolve.add_argument("case", help="case number, e.g. DSP-000042")
    resolve.add_argument("--close", action="store_true", help="close it instead of resolving it")
    resolve.set_defaults(func=_cmd_escalations_resolve)

    ingest = commands.add_parser("ingest", help="serve Twilio's WhatsApp webhooks and hand the messages to Rasa")
    ingest.add_argument("--host", default=os.environ.get("COBRADOR_INGEST_HOST", "127.0.0.1"))
    ingest.add_argument("--port", type=int, default=int(os.environ.get("COBRADOR_INGEST_PORT", "5004")))
    ingest.add_argument("--rasa-url", default=os.environ.get("COBRADOR_RASA_URL", "http://127.0.0.1:5005"))
    ingest.add_argument(
        "--model",
        default=os.environ.get("MODEL", "models/cobrador.tar.gz"),
        help="Rasa's model, whose NLU the ingest runs ahead of the turn (COBRADOR_PARSE_AHEAD=off: not at all)",
    )
    ingest.set_defaults(func=_cmd_ingest)

    outreach = commands.add_parser("outreach", help="send due notices and reminders under the contact rules")
    outreach.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    outreach.add_argument("--dry-run", action="store_true", help="print what would be sent and why; change nothing")
    outreach.add_argument("--at", help="with --dry-run: the moment to simulate, ISO date-time with offset")
    outreach.add_argument("--worker-id", default=f"{socket.gethostname()}:{os.getpid()}")
    outreach.set_defaults(func=_cmd_outreach)

    web = commands.add_parser("web", help="the agent console")
    web.add_argument("--host", default=os.environ.get("COBRADOR_CONSOLE_HOST", "127.0.0.1"))
    web.add_argument("--port", type=int, default=int(os.environ.get("COBRADOR_CONSOLE_PORT", "8000")))
    web.set_defaults(func=_cmd_web)

    agent = commands.add_parser("agent", help="console users")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    agent_add = agent_commands.add_parser("add", help="create an agent or supervisor (password prompted)")
    agent_add.add_argument("email")
    agent_add.add_argument("--name", default="")
    agent_add.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    agent_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    agent_add.set_defaults(func=_cmd_agent_add)

    demo = commands.add_parser("demo", help="the demo portfolio")
    demo_commands = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    demo_load = demo_commands.add_parser("load", help="load the demo creditors, debtors and states")
    demo_load.add_argument("--if-empty", action="store_true", help="only when the ledger has no debtor")
    demo_load.add_argument("--today", help="date the demo is written around, YYYY-MM-DD (default: today)")
    demo_load.set_defaults(func=_cmd_demo_load)

    dates = commands.add_parser("dates", help="JSONL {id,text,lang,ref} on stdin -> {id,value} ISO dates on stdout")
    dates.set_defaults(func=_cmd_dates)

    nlu_eval = commands.add_parser(
        "nlu-eval", help="JSONL {id,text,lang} on stdin -> {id,intent,confidence,entities} on stdout"
    )
    nlu_eval.add_argument("--today", help="the debtor's local date, YYYY-MM-DD (default: today in --tz)")
    nlu_eval.add_argument("--tz", default="America/Mexico_City", help="IANA time zone of the debtor")
    nlu_eval.add_argument("--model", default="models/cobrador.tar.gz", help="trained Rasa model")
    nlu_eval.set_defaults(func=_cmd_nlu_eval)

    nlu_report = commands.add_parser("nlu-report", help="score nlu-eval predictions against held-out gold")
    nlu_report.add_argument("--gold", nargs="+", required=True, help="gold JSONL files")
    nlu_report.add_argument("--predictions", required=True)
    nlu_report.add_argument("--out", default="results/nlu", help="folder for the confusion-matrix PNGs")
    nlu_report.set_defaults(func=_cmd_nlu_report)

    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)
