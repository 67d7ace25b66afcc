"""One debtor turn: what the bot answers and what it records.

Rasa classifies the intent; everything after that is here. A turn reads the
dialogue state (a plain dict the action keeps in the `dialogue` slot), the
ledger and the message, and returns the replies and the new state. The
decisions it makes are the collection rules of the product:

* no debt detail before right-party verification (name + a partial
  identifier, three attempts, then a person is offered);
* every promise and plan is read back and confirmed before it is stored,
  and a written confirmation follows;
* disputes freeze collection and escalate; complaints, hardship the plans
  cannot fit, and requests for a person escalate; an escalated conversation
  is paused (the bot stays silent) until an agent returns it;
* opt-out and wrong number are recorded and then the bot stays silent.

Money and date rules live in `cobrador.policy`, parsing in
`cobrador.language`, persistence in `cobrador.ledger`; this module only
sequences them. It is synchronous (SQLAlchemy); the action runs it in a
worker thread.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional
from zoneinfo import ZoneInfo

from cobrador.conversation.messages import say
from cobrador.language import extract_entities
from cobrador.language.dates import find_dates
from cobrador.language.format import format_date, format_money, frequency_label
from cobrador.language.text import fold
from cobrador.ledger import commands, lookups
from cobrador.ledger.db import optimistic_unit
from cobrador.ledger.lookups import AccountView, CreditorView, DebtorView
from cobrador.policy.plan_options import PlanOption, PlanPolicy, plan_options
from cobrador.policy.promises import check_promise
from cobrador.policy.verification import MAX_ATTEMPTS, identifier_matches, name_matches

# The operating company, named to unknown numbers (same variable as action_session_start).
DEFAULT_COMPANY = os.environ.get("COBRADOR_COMPANY_NAME", "Cobrador")
DEFAULT_TIMEZONE = "America/Mexico_City"
# Below this NLU confidence a message is treated as not understood.
CONFIDENCE_FLOOR = 0.4
# Intents that need a verified debtor before anything about the debt is said.
NEEDS_VERIFICATION = {"ask_balance", "promise_to_pay", "request_plan", "cannot_pay", "claim_paid"}
# Intents that interrupt whatever the conversation was doing.
INTERRUPTING = {
    "opt_out",
    "wrong_person",
    "request_agent",
    "complain",
    "dispute",
    "change_language",
    "bot_challenge",
    "ask_identity",
    "goodbye",
}
FALLBACK_INTENTS = {"nlu_fallback", "out_of_scope"}
# During verification, a subject change needs this much confidence.
INTERRUPT_CONFIDENCE = 0.5
_REFERENCE_TOKEN = re.compile(r"[A-Za-z]{0,4}[- ]?\d{4,}|[A-Za-z0-9][A-Za-z0-9-]{3,}")
ORDINALS = {
    "primera": 1, "primero": 1, "first": 1, "uno": 1, "one": 1,
    "segunda": 2, "segundo": 2, "second": 2, "dos": 2, "two": 2,
    "tercera": 3, "tercero": 3, "third": 3, "tres": 3, "three": 3,
}  # fmt: skip


@dataclass(frozen=True)
class Turn:
    """One inbound debtor message, as NLU understood it.

    Attributes:
        sender: the debtor's E.164 phone (Rasa's sender id).
        text: what they wrote (may be empty for a media-only message).
        intent: the predicted intent (`nlu_fallback` when unsure).
        confidence: the intent's confidence.
        message_sid: the provider's message id, when known.
        media: attachments, each {"url", "content_type"}.
    """

    sender: str
    text: str
    intent: str
    confidence: float = 1.0
    message_sid: Optional[str] = None
    media: tuple[dict[str, str], ...] = ()


@dataclass
class Reply:
    """What a turn produced: messages to send and the new state."""

    messages: list[str]
    state: dict[str, Any]
    language: str
    company: str
    paused: bool = False
    # Documents to attach, as (kind, id): ("plan", 12), ("statement", 3).
    documents: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class _Context:
    """Everything a turn works with; built once per turn."""

    turn: Turn
    state: dict[str, Any]
    lang: str
    today: dt.date
    debtor: Optional[DebtorView]
    accounts: list[AccountView]
    creditor: Optional[CreditorView]
    out: list[str] = field(default_factory=list)
    paused: bool = False
    documents: list[tuple[str, int]] = field(default_factory=list)
    _entities: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def say(self, key: str, **values: object) -> None:
        self.out.append(say(key, self.lang, **values))

    @property
    def company(self) -> str:
        return self.creditor.collector_name if self.creditor else DEFAULT_COMPANY

    @property
    def hours(self) -> str:
        if self.creditor and self.creditor.business_hours:
            return self.creditor.business_hours
        return "lunes a viernes de 9:00 a 18:00" if self.lang == "es" else "Monday to Friday, 9 am to 6 pm"

    def entities(self, text: str) -> dict[str, Any]:
        """Entities of `text` read in the conversation language, or in the other
        one when that finds nothing (debtors switch: "ok te pago next friday").
        Read once per text and language in a turn."""
        key = (text, self.lang)
        if key not in self._entities:
            found = extract_entities(text, self.lang, self.today)
            if not found.keys() & {"date", "amount"}:
                other = extract_entities(text, "en" if self.lang == "es" else "es", self.today)
                found = {**other, **found} if other.keys() & {"date", "amount"} else found
            self._entities[key] = found
        return dict(self._entities[key])

    def money(self, amount: Decimal, currency: Optional[str] = None) -> str:
        return format_money(amount, currency or self._currency(), self.lang)

    def date(self, day: dt.date) -> str:
        return format_date(day, self.lang, today=self.today)

    def _currency(self) -> str:
        if self.accounts:
            return self.accounts[0].currency
        return self.creditor.default_currency if self.creditor else "MXN"


def initial_state() -> dict[str, Any]:
    """The dialogue state of a new session."""
    return {
        "debtor_id": None,
        "verified": False,
        "verify": None,
        "pending": None,
        "flow": None,
        "data": {},
        "fallbacks": 0,
        "greeted": False,
    }


class Conversation:
    """Runs debtor turns against the ledger.

    Args:
        database_url: the ledger; the configured default when None.
        clock: returns the current instant (UTC-aware); injectable for tests.
    """

    def __init__(self, database_url: Optional[str] = None, clock: Optional[Callable[[], dt.datetime]] = None):
        self.database_url = database_url
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    # --- entry point ------------------------------------------------------------------
    def handle(self, turn: Turn, state: Optional[dict[str, Any]], language: Optional[str]) -> Reply:
        """Answers one turn.

        Args:
            turn: the debtor's message.
            state: the dialogue state from the previous turn (None: new).
            language: the conversation language ("es"/"en").

        Returns:
            The replies (possibly none: paused, opted out or wrong number)
            and the new state.
        """
        # Most turns only read the ledger: on SQLite they run without taking
        # its write lock, and once more under it if they wrote into a conflict
        # (so each attempt starts from its own copy of the state).
        return optimistic_unit(
            lambda session: self._answer(session, turn, copy.deepcopy(state), language), self.database_url
        )

    def _answer(self, session, turn: Turn, state: Optional[dict[str, Any]], language: Optional[str]) -> Reply:  # noqa: ANN001
        state = {**initial_state(), **(state or {})}
        debtor = self._debtor(session, turn.sender, state)
        lang = language or (debtor.language if debtor else "es")
        if debtor is not None:
            state["debtor_id"] = debtor.id
        accounts = lookups.open_accounts(session, debtor.id) if debtor else []
        creditor = self._creditor(session, debtor)
        zone = ZoneInfo(debtor.timezone if debtor else DEFAULT_TIMEZONE)
        today = self.clock().astimezone(zone).date()
        ctx = _Context(turn, state, lang, today, debtor, accounts, creditor)
        if self._silenced(session, ctx):
            return Reply([], state, lang, ctx.company, paused=True)
        self._dispatch(session, ctx)
        return Reply(ctx.out, ctx.state, ctx.lang, ctx.company, ctx.paused, ctx.documents)

    # --- loading ------------------------------------------------------------
    def _debtor(self, session, phone: str, state: dict[str, Any]) -> Optional[DebtorView]:  # noqa: ANN001
        debtor = lookups.find_debtor(session, phone)
        if debtor is None and state.get("debtor_id"):
            # An unknown number that identified itself with an account reference.
            debtor = lookups.debtor_by_id(session, int(state["debtor_id"]))
        return debtor

    def _creditor(self, session, debtor: Optional[DebtorView]) -> Optional[CreditorView]:  # noqa: ANN001
        if debtor is None:
            return None
        creditor_id = lookups.first_creditor_id(session, debtor.id)
        return lookups.creditor_view(session, creditor_id) if creditor_id else None

    def _silenced(self, session, ctx: _Context) -> bool:  # noqa: ANN001
        """Paused for an agent, opted out, or a wrong number: the bot says nothing."""
        debtor = ctx.debtor
        if debtor is not None and debtor.phone == ctx.turn.sender:
            # The debtor's view already answered all three for this phone.
            return debtor.paused or debtor.opted_out or debtor.wrong_number
        return lookups.is_paused(session, ctx.turn.sender) or lookups.is_opted_out(session, ctx.turn.sender)

    # --- routing ------------------------------------------------------------
    def _dispatch(self, session, ctx: _Context) -> None:  # noqa: ANN001
        turn, state = ctx.turn, ctx.state
        intent = turn.intent if turn.confidence >= CONFIDENCE_FLOOR else "nlu_fallback"
        if not turn.text.strip():
            self._media_only(session, ctx)
            return
        if intent not in FALLBACK_INTENTS:
            state["fallbacks"] = 0
        if state.get("verify"):
            # An answer that verifies wins over whatever NLU made of it ("juan
            # carlos ramirez" can look like "no soy Juan"); only an answer that
            # does not verify may be a confident change of subject.
            if self._answers_verification(session, ctx) or not (
                intent in INTERRUPTING and intent != "goodbye" and turn.confidence >= INTERRUPT_CONFIDENCE
            ):
                self._verification_answer(session, ctx)
                return
        if ctx.debtor is None and self._identify_by_reference(session, ctx):
            return
        if intent in INTERRUPTING:
            state["flow"], state["data"], state["verify"] = None, {}, None
            self._intent(session, ctx, intent, turn.text)
            return
        flow = state.get("flow")
        if flow and self._continue_flow(session, ctx, flow, intent):
            return
        self._intent(session, ctx, intent, turn.text)

    def _intent(self, session, ctx: _Context, intent: str, text: str) -> None:  # noqa: ANN001, C901
        state = ctx.state
        if intent in NEEDS_VERIFICATION and not state["verified"]:
            if intent == "cannot_pay":
                ctx.say("hardship_empathy")
            self._start_verification(ctx, intent, text)
            return
        handler = {
            "greet": self._greet,
            "goodbye": lambda s, c, t: c.say("goodbye"),
            "thank": lambda s, c, t: c.say("thank"),
            "affirm": lambda s, c, t: c.say("anything_else"),
            "deny": lambda s, c, t: c.say("deny_nothing_pending"),
            "ask_balance": self._balance,
            "promise_to_pay": self._promise_start,
            "request_plan": self._plan_start,
            "cannot_pay": self._plan_start,
            "claim_paid": self._claim_start,
            "dispute": self._dispute,
            "complain": self._complain,
            "request_agent": self._request_agent,
            "wrong_person": self._wrong_person,
            "opt_out": self._opt_out,
            "ask_identity": self._identity,
            "ask_payment_methods": self._payment_methods,
            "bot_challenge": lambda s, c, t: c.say("bot_challenge", company=c.company, hours=c.hours),
            "change_language": self._change_language,
            "inform": self._inform,
        }.get(intent)
        if handler is None:
            self._fallback(ctx, intent)
            return
        if intent == "cannot_pay":
            ctx.say("hardship_empathy")
        handler(session, ctx, text)

    # --- greeting and verification ------------------------------------------------------------
    def _greet(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        state = ctx.state
        if state["verified"]:
            ctx.say("greet_again")
        elif ctx.debtor is None:
            ctx.say("greet_unknown", company=ctx.company)
        else:
            ctx.say("greet_known", company=ctx.company, creditor=ctx.creditor.display_name if ctx.creditor else "")
            if ctx.creditor and ctx.creditor.debt_collector_disclosure:
                ctx.say("debt_collector_disclosure")
            # The first message's structure: identify, verify, then the amount,
            # a way to pay and a request for a date (the pending balance).
            self._start_verification(ctx, "ask_balance", "")
        state["greeted"] = True

    def _start_verification(self, ctx: _Context, intent: str, text: str) -> None:
        ctx.state["pending"] = {"intent": intent, "text": text}
        ctx.state["verify"] = {"step": "name" if ctx.debtor else "reference", "attempts": 0}
        ctx.say("verify_intro")
        ctx.say("ask_name" if ctx.debtor else "ask_reference")

    def _reference_debtor(self, session, text: str) -> Optional[DebtorView]:  # noqa: ANN001
        for token in [text.strip(), *_REFERENCE_TOKEN.findall(text)]:
            if any(ch.isdigit() for ch in token):
                debtor = lookups.debtor_by_account_reference(session, token)
                if debtor is not None:
                    return debtor
        return None

    def _answers_verification(self, session, ctx: _Context) -> bool:  # noqa: ANN001
        """Whether the message is a correct answer to the verification step in progress."""
        step, text = ctx.state["verify"]["step"], ctx.turn.text
        if step == "reference":
            return self._reference_debtor(session, text) is not None
        if ctx.debtor is None:
            return False
        if step == "name":
            return name_matches(text, ctx.debtor.name)
        return identifier_matches(text, ctx.debtor.last4s, ctx.debtor.birth_year)

    def _identify_by_reference(self, session, ctx: _Context) -> bool:  # noqa: ANN001
        """An unknown number that quotes an account reference starts verification for it."""
        debtor = self._reference_debtor(session, ctx.turn.text)
        if debtor is None:
            return False
        ctx.debtor = debtor
        ctx.state["debtor_id"] = debtor.id
        ctx.lang = debtor.language
        ctx.state["pending"] = {"intent": "ask_balance", "text": ""}
        ctx.state["verify"] = {"step": "name", "attempts": 0}
        ctx.say("verify_intro")
        ctx.say("ask_name")
        return True

    def _verification_answer(self, session, ctx: _Context) -> None:  # noqa: ANN001
        state, text = ctx.state, ctx.turn.text
        verify = state["verify"]
        step = verify["step"]
        if step == "reference":
            debtor = self._reference_debtor(session, text)
            if debtor is not None:
                state["debtor_id"] = debtor.id
                ctx.debtor = debtor
                ctx.lang = debtor.language
                verify["step"] = "name"
                ctx.say("ask_name")
                return
            self._verification_failed_attempt(ctx, "reference_unknown", "ask_reference")
            return
        debtor = ctx.debtor
        if debtor is None:  # state lost its debtor: start over
            verify["step"] = "reference"
            ctx.say("ask_reference")
            return
        if step == "name":
            if name_matches(text, debtor.name):
                verify["step"] = "identifier"
                ctx.say("ask_identifier")
            else:
                self._verification_failed_attempt(ctx, "verify_retry", "ask_name")
            return
        if identifier_matches(text, debtor.last4s, debtor.birth_year):
            state["verified"], state["verify"] = True, None
            # The debtor is now known for this session even on another number.
            ctx.accounts = lookups.open_accounts(session, debtor.id)
            ctx.creditor = self._creditor(session, debtor)
            ctx.say("verified", name=debtor.name.split()[0])
            pending = state.pop("pending", None) or {"intent": "ask_balance", "text": ""}
            state["pending"] = None
            self._intent(session, ctx, pending["intent"], pending.get("text") or "")
        else:
            self._verification_failed_attempt(ctx, "verify_retry", "ask_name")
            if state.get("verify"):
                state["verify"]["step"] = "name"

    def _verification_failed_attempt(self, ctx: _Context, message: str, ask: str) -> None:
        verify = ctx.state["verify"]
        verify["attempts"] += 1
        if verify["attempts"] >= MAX_ATTEMPTS:
            ctx.state["verify"], ctx.state["pending"] = None, None
            ctx.state["flow"], ctx.state["data"] = "offer_agent", {"reason": "verification_failed"}
            ctx.say("verify_failed")
            return
        ctx.say(message)
        ctx.say(ask)

    # --- flows in progress ---------------------------------------------------------------------------
    def _continue_flow(self, session, ctx: _Context, flow: str, intent: str) -> bool:  # noqa: ANN001
        """Handles the turn inside the flow in progress; False lets the intent route it."""
        if flow == "offer_agent":
            if intent == "affirm":
                self._escalate(session, ctx, ctx.state["data"].get("reason", "request_agent"), "agent_handoff")
                return True
            ctx.state["flow"], ctx.state["data"] = None, {}
            if intent == "deny":
                ctx.say("deny_nothing_pending")
                return True
            return False
        if flow == "offer_plan":
            ctx.state["flow"], ctx.state["data"] = None, {}
            if intent == "affirm":
                self._plan_start(session, ctx, "")
                return True
            if intent == "deny":
                ctx.say("promise_retry")
                ctx.state["flow"], ctx.state["data"] = "promise", {"step": "date"}
                return True
            return False
        if flow == "promise":
            return self._promise_continue(session, ctx, intent)
        if flow == "plan":
            return self._plan_continue(session, ctx, intent)
        if flow == "claim":
            return self._claim_continue(session, ctx, intent)
        if flow == "account":
            return self._account_choice(session, ctx, intent)
        ctx.state["flow"] = None
        return False

    # --- accounts ------------------------------------------------------------
    def _collectable(self, ctx: _Context) -> list[AccountView]:
        return [a for a in ctx.accounts if a.status == "active"]

    def _pick_account(self, ctx: _Context, next_flow: str, text: str) -> Optional[AccountView]:
        """The account a flow is about; asks with a numbered menu when unclear."""
        accounts = self._collectable(ctx)
        chosen_id = ctx.state["data"].get("account_id")
        for account in accounts:
            if account.id == chosen_id:
                return account
        if len(accounts) == 1:
            return accounts[0]
        if not accounts:
            ctx.say("no_open_accounts")
            ctx.state["flow"], ctx.state["data"] = None, {}
            return None
        matched = _account_named(accounts, text, ctx.lang, ctx.today)
        if matched is not None:
            return matched
        ctx.state["flow"] = "account"
        ctx.state["data"] = {"next": next_flow, "text": text, "choices": [a.id for a in accounts]}
        ctx.say("which_account")
        for n, account in enumerate(accounts, start=1):
            ctx.say("account_option", n=n, product=account.product or "", creditor=account.creditor_name,
                    last4=account.last4)  # fmt: skip
        return None

    def _account_choice(self, session, ctx: _Context, intent: str) -> bool:  # noqa: ANN001
        data = ctx.state["data"]
        number = _choice(ctx.turn.text, len(data.get("choices", [])))
        text = data.get("text", "")
        if number is None:
            accounts = [a for a in self._collectable(ctx) if a.id in data.get("choices", [])]
            matched = _account_named(accounts, ctx.turn.text, ctx.lang, ctx.today)
            if matched is not None:
                number = data["choices"].index(matched.id) + 1
                text = f"{text} {ctx.turn.text}".strip()
        if number is None:
            if ctx.entities(ctx.turn.text) and intent not in INTERRUPTING:
                # Said when or how much but not which: keep it and ask again.
                data["text"] = f"{text} {ctx.turn.text}".strip()
                ctx.say("which_account")
                for n, account_id in enumerate(data["choices"], start=1):
                    account = next((a for a in self._collectable(ctx) if a.id == account_id), None)
                    if account is not None:
                        ctx.say("account_option", n=n, product=account.product or "", creditor=account.creditor_name,
                                last4=account.last4)  # fmt: skip
                return True
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        next_flow = data["next"]
        ctx.state["flow"], ctx.state["data"] = next_flow, {"account_id": data["choices"][number - 1]}
        {"promise": self._promise_start, "plan": self._plan_start, "claim": self._claim_start}[next_flow](
            session, ctx, text
        )
        return True

    # --- balance ------------------------------------------------------------
    def _balance(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        if not ctx.accounts:
            ctx.say("no_open_accounts")
            return
        ctx.say("balance_header")
        for account in ctx.accounts:
            ctx.say("balance_line", product=account.product or "", creditor=account.creditor_name,
                    last4=account.last4, balance=ctx.money(account.balance, account.currency),
                    as_of=ctx.date(account.balance_as_of))  # fmt: skip
            overdue = account.days_overdue(ctx.today)
            if account.status == "disputed":
                ctx.say("balance_disputed")
            elif overdue > 0:
                ctx.say("balance_overdue", due=ctx.date(account.due_date), days=overdue)
            else:
                ctx.say("balance_due", due=ctx.date(account.due_date))
            if account.pending_promise:
                amount, day = account.pending_promise
                ctx.say("balance_promise", amount=ctx.money(amount, account.currency), date=ctx.date(day))
            elif account.active_plan_next:
                amount, day = account.active_plan_next
                ctx.say("balance_plan", amount=ctx.money(amount, account.currency), date=ctx.date(day))
        ctx.documents += [("statement", account.id) for account in ctx.accounts[:3]]
        collectable = self._collectable(ctx)
        if len(collectable) == 1:
            if collectable[0].payment_link:
                ctx.say("how_to_pay_link", link=collectable[0].payment_link)
            ctx.say("ask_when")
            ctx.state["flow"] = "promise"
            ctx.state["data"] = {"step": "date", "soft": True, "account_id": collectable[0].id}
        elif collectable:
            # Several debts: which one first, then the date.
            ctx.state["flow"], ctx.state["data"] = "promise", {}
            self._pick_account(ctx, "promise", "")

    # --- promise to pay --------------------------------------------------------------------------------------
    def _promise_start(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        if ctx.state.get("flow") != "promise":
            ctx.state["flow"], ctx.state["data"] = "promise", {}
        account = self._pick_account(ctx, "promise", text)
        if account is None:
            return
        ctx.state["data"]["account_id"] = account.id
        self._promise_merge(ctx, text)
        self._promise_next(session, ctx, account)

    def _promise_merge(self, ctx: _Context, text: str) -> bool:
        """Takes a date and an amount from `text`; True if it had either."""
        entities = ctx.entities(text)
        data = ctx.state["data"]
        found = False
        if "date" in entities:
            data["date"] = entities["date"].isoformat()
            found = True
        if "amount" in entities:
            data["amount"] = str(entities["amount"])
            found = True
        return found

    def _promise_next(self, session, ctx: _Context, account: AccountView) -> None:  # noqa: ANN001
        data = ctx.state["data"]
        data.pop("soft", None)
        if not data.get("date"):
            data["step"] = "date"
            ctx.say("promise_ask_date")
            return
        day = dt.date.fromisoformat(data["date"])
        default_amount = account.active_plan_next[0] if account.active_plan_next else account.balance
        amount = Decimal(data["amount"]) if data.get("amount") else default_amount
        horizon = ctx.creditor.promise_horizon_days if ctx.creditor else 15
        problem = check_promise(amount, day, ctx.today, account.balance, horizon)
        if problem == "date_in_past":
            data.pop("date", None)
            data["step"] = "date"
            ctx.say("promise_date_past")
        elif problem == "beyond_horizon":
            limit = ctx.today + dt.timedelta(days=horizon)
            ctx.state["flow"], ctx.state["data"] = "offer_plan", {"account_id": account.id}
            ctx.say("promise_beyond_horizon", limit=ctx.date(limit))
        elif problem in ("amount_not_positive", "amount_above_balance"):
            data.pop("amount", None)
            data["step"] = "amount"
            ctx.say("promise_amount_invalid", balance=ctx.money(account.balance, account.currency))
        else:
            data["amount"] = str(amount)
            data["step"] = "confirm"
            ctx.say("promise_confirm", amount=ctx.money(amount, account.currency), date=ctx.date(day))

    def _promise_continue(self, session, ctx: _Context, intent: str) -> bool:  # noqa: ANN001
        data = ctx.state["data"]
        account = next((a for a in self._collectable(ctx) if a.id == data.get("account_id")), None)
        entities = ctx.entities(ctx.turn.text)
        dated = "date" in entities and not ({"installments", "frequency"} & set(entities))
        if dated and intent not in INTERRUPTING and intent not in ("claim_paid", "ask_balance"):
            intent = "promise_to_pay"  # "what day could you pay?" answered with a day
        if data.get("soft") and intent not in ("inform", "promise_to_pay", "affirm"):
            # The balance ended with "what day could you pay?": anything else starts over.
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        if account is None:
            if intent in ("inform", "promise_to_pay", "affirm"):
                ctx.state["data"] = {}
                self._promise_start(session, ctx, ctx.turn.text)
                return True
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        if data.get("step") == "confirm":
            if intent == "affirm":
                promise_day = dt.date.fromisoformat(data["date"])
                amount = Decimal(data["amount"])
                commands.record_promise(
                    session, account.id, amount, promise_day, source_message_sid=ctx.turn.message_sid
                )
                ctx.state["flow"], ctx.state["data"] = None, {}
                ctx.say("promise_recorded", amount=ctx.money(amount, account.currency), date=ctx.date(promise_day))
                if account.payment_link:
                    ctx.say("how_to_pay_link", link=account.payment_link)
                return True
            if intent == "deny" and not self._promise_merge(ctx, ctx.turn.text):
                ctx.state["data"] = {"account_id": account.id, "step": "date"}
                ctx.say("promise_retry")
                return True
        if intent in ("request_plan", "cannot_pay"):
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        if self._promise_merge(ctx, ctx.turn.text):
            self._promise_next(session, ctx, account)
            return True
        if data.get("step") == "confirm" or intent in ("inform", "promise_to_pay"):
            if data.get("step") == "confirm":
                ctx.say("yes_no")
            else:
                self._promise_next(session, ctx, account)
            return True
        ctx.state["flow"], ctx.state["data"] = None, {}
        return False

    # --- plans ------------------------------------------------------------
    def _policy(self, ctx: _Context) -> PlanPolicy:
        creditor = ctx.creditor
        if creditor is None:
            return PlanPolicy(6, Decimal("200.00"), ("weekly", "biweekly", "monthly"))
        return PlanPolicy(
            creditor.plan_max_installments,
            creditor.plan_min_installment,
            tuple(creditor.plan_frequencies),
            creditor.settlement_discount_pct,
        )

    def _plan_start(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        if ctx.state.get("flow") != "plan":
            keep = ctx.state["data"].get("account_id") if ctx.state.get("flow") in ("account", "plan") else None
            ctx.state["flow"], ctx.state["data"] = "plan", ({"account_id": keep} if keep else {})
        account = self._pick_account(ctx, "plan", text)
        if account is None:
            return
        data = ctx.state["data"]
        data["account_id"] = account.id
        data.setdefault("words", [])
        if text:
            data["words"].append(text)
        if self._plan_merge(ctx, text):
            self._plan_offer(session, ctx, account)
        else:
            data["step"] = "afford"
            ctx.say("plan_ask_affordable")

    def _plan_merge(self, ctx: _Context, text: str) -> bool:
        entities = ctx.entities(text)
        data = ctx.state["data"]
        found = False
        for key in ("amount", "frequency", "installments"):
            if key in entities:
                data[key] = str(entities[key])
                found = True
        return found

    def _plan_offer(self, session, ctx: _Context, account: AccountView) -> None:  # noqa: ANN001
        data = ctx.state["data"]
        policy = self._policy(ctx)
        affordable = Decimal(data["amount"]) if data.get("amount") else None
        frequency = data.get("frequency") or ("monthly" if affordable else None)
        if frequency and frequency not in policy.frequencies:
            frequency = policy.frequencies[-1]
        options = plan_options(
            account.balance,
            ctx.today,
            policy,
            affordable=affordable,
            frequency=frequency,
            installments=int(data["installments"]) if data.get("installments") else None,
        )
        if not options:
            summary = " / ".join(data.get("words") or [ctx.turn.text])
            case = self._escalate_case(session, ctx, "hardship", summary, account.id)
            ctx.say("plan_nothing_fits", creditor=account.creditor_name, case=case, hours=ctx.hours)
            return
        data["options"] = [_option_to_json(o) for o in options]
        data["step"] = "choose"
        ctx.say("plan_menu_header", balance=ctx.money(account.balance, account.currency))
        for n, option in enumerate(options, start=1):
            ctx.out.append(self._option_text(ctx, n, option, account.currency))
        ctx.say("plan_menu_footer")

    def _option_text(self, ctx: _Context, n: int, option: PlanOption, currency: str) -> str:
        first = ctx.date(option.dates[0])
        if option.kind == "lump_sum_discount":
            return say("plan_option_lump_sum", ctx.lang, n=n, amount=ctx.money(option.total, currency), first=first,
                       discount=ctx.money(option.discount, currency))  # fmt: skip
        frequency = frequency_label(option.frequency or "monthly", ctx.lang)
        if option.amounts[-1] != option.amounts[0]:
            return say("plan_option_uneven", ctx.lang, n=n, count=option.count, frequency=frequency,
                       installment=ctx.money(option.amounts[0], currency),
                       last=ctx.money(option.amounts[-1], currency), first=first)  # fmt: skip
        return say("plan_option_installments", ctx.lang, n=n, count=option.count, frequency=frequency,
                   installment=ctx.money(option.amounts[0], currency), first=first)  # fmt: skip

    def _plan_continue(self, session, ctx: _Context, intent: str) -> bool:  # noqa: ANN001
        data = ctx.state["data"]
        account = next((a for a in self._collectable(ctx) if a.id == data.get("account_id")), None)
        if account is None:
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        step = data.get("step")
        text = ctx.turn.text
        if step == "confirm":
            if intent == "affirm":
                option = _option_from_json(data["options"][data["choice"] - 1])
                plan_id = commands.record_plan(
                    session, account.id, option.frequency or "monthly", list(option.amounts), list(option.dates),
                    discount=option.discount, source_message_sid=ctx.turn.message_sid,
                )  # fmt: skip
                ctx.state["flow"], ctx.state["data"] = None, {}
                ctx.say("plan_recorded")
                for n, (day, amount) in enumerate(zip(option.dates, option.amounts, strict=True), start=1):
                    ctx.say("schedule_line", n=n, date=ctx.date(day), amount=ctx.money(amount, account.currency))
                ctx.documents.append(("plan", plan_id))
                if account.payment_link:
                    ctx.say("how_to_pay_link", link=account.payment_link)
                return True
            if intent == "deny":
                data["step"] = "afford"
                for key in ("amount", "frequency", "installments", "options", "choice"):
                    data.pop(key, None)
                ctx.say("plan_retry")
                return True
            ctx.say("yes_no")
            return True
        if step == "choose":
            number = _choice(text, len(data.get("options", [])))
            if number is not None:
                data["choice"], data["step"] = number, "confirm"
                option = _option_from_json(data["options"][number - 1])
                summary = self._option_text(ctx, number, option, account.currency).split(") ", 1)[1]
                ctx.say("plan_confirm", n=number, summary=summary)
                return True
            if self._plan_merge(ctx, text):
                data["words"].append(text)
                self._plan_offer(session, ctx, account)
                return True
            if intent in ("inform", "affirm", "request_plan"):
                ctx.say("plan_choose_again", count=len(data.get("options", [])))
                return True
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        # step "afford": what can they pay, and how often
        if self._plan_merge(ctx, text):
            data["words"].append(text)
            self._plan_offer(session, ctx, account)
            return True
        if intent in ("cannot_pay", "deny"):
            data["words"].append(text)
            summary = " / ".join(data["words"])
            case = self._escalate_case(session, ctx, "hardship", summary, account.id)
            ctx.say("plan_nothing_fits", creditor=account.creditor_name, case=case, hours=ctx.hours)
            return True
        if intent in ("inform", "request_plan", "affirm"):
            data["words"].append(text)
            if intent == "request_plan":
                self._plan_offer(session, ctx, account)
            else:
                ctx.say("plan_ask_affordable")
            return True
        ctx.state["flow"], ctx.state["data"] = None, {}
        return False

    # --- payment claims ------------------------------------------------------------------------------------------
    def _claim_start(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        if ctx.state.get("flow") != "claim":
            keep = ctx.state["data"].get("account_id") if ctx.state.get("flow") == "claim" else None
            ctx.state["flow"], ctx.state["data"] = "claim", ({"account_id": keep} if keep else {})
        account = self._pick_account(ctx, "claim", text)
        if account is None:
            return
        data = ctx.state["data"]
        data["account_id"] = account.id
        data.setdefault("words", [])
        self._claim_merge(ctx, text)
        if data.get("paid_on") and data.get("amount") and (data.get("reference") or data.get("media")):
            self._claim_record(session, ctx, account)
        else:
            data["step"] = "details"
            ctx.say("claim_ask_details")

    def _claim_merge(self, ctx: _Context, text: str) -> None:
        data = ctx.state["data"]
        if text:
            data["words"].append(text)
        spans = find_dates(text, ctx.lang, ctx.today)
        past = [s for s in spans if s.last <= ctx.today]
        if past:
            data["paid_on"] = max(past, key=lambda s: s.last).last.isoformat()
        reference = _payment_reference(text)
        if reference:
            data["reference"] = reference
            text = re.sub(re.escape(reference), " ", text, flags=re.IGNORECASE)
        entities = ctx.entities(text)
        account = next((a for a in ctx.accounts if a.id == data.get("account_id")), None)
        ceiling = account.original_amount if account else None
        if "amount" in entities and (ceiling is None or entities["amount"] <= ceiling):
            data["amount"] = str(entities["amount"])
        if ctx.turn.media:
            data.setdefault("media", []).extend(m.get("url", "") for m in ctx.turn.media)

    def _claim_continue(self, session, ctx: _Context, intent: str) -> bool:  # noqa: ANN001
        data = ctx.state["data"]
        account = next((a for a in self._collectable(ctx) if a.id == data.get("account_id")), None)
        if account is None:
            ctx.state["flow"], ctx.state["data"] = None, {}
            return False
        if intent in ("request_plan", "cannot_pay", "promise_to_pay", "ask_balance") and not ctx.turn.media:
            # Changed subject: record what we have, then follow the new intent.
            self._claim_record(session, ctx, account)
            return False
        self._claim_merge(ctx, ctx.turn.text)
        self._claim_record(session, ctx, account)
        return True

    def _claim_record(self, session, ctx: _Context, account: AccountView) -> None:  # noqa: ANN001
        data = ctx.state["data"]
        amount = Decimal(data["amount"]) if data.get("amount") else None
        paid_on = dt.date.fromisoformat(data["paid_on"]) if data.get("paid_on") else None
        commands.record_payment_claim(
            session,
            account.id,
            amount=amount,
            paid_on=paid_on,
            reference=data.get("reference"),
            media_urls=tuple(u for u in data.get("media", []) if u),
            debtor_words=" / ".join(data.get("words") or []) or None,
            source_message_sid=ctx.turn.message_sid,
        )
        parts = []
        if amount is not None:
            parts.append(ctx.money(amount, account.currency))
        if paid_on is not None:
            parts.append(ctx.date(paid_on))
        if data.get("reference"):
            parts.append(data["reference"])
        details = say("claim_details", ctx.lang, details=", ".join(parts)) if parts else ""
        ctx.state["flow"], ctx.state["data"] = None, {}
        ctx.say("claim_recorded", creditor=account.creditor_name, details=details)

    def _media_only(self, session, ctx: _Context) -> None:  # noqa: ANN001
        media = ctx.turn.media
        kinds = {str(m.get("content_type", "")).split("/")[0] for m in media}
        if ctx.state.get("flow") == "claim":
            account = next((a for a in self._collectable(ctx) if a.id == ctx.state["data"].get("account_id")), None)
            if account is not None:
                ctx.state["data"].setdefault("media", []).extend(m.get("url", "") for m in media)
                ctx.state["data"].setdefault("words", [])
                ctx.say("receipt_attached")
                self._claim_record(session, ctx, account)
                return
        if "audio" in kinds:
            ctx.say("voice_note")
        else:
            ctx.say("media_received")

    # --- disputes, complaints, people -------------------------------------------------------------------------------
    def _escalate_case(self, session, ctx: _Context, reason: str, summary: str,  # noqa: ANN001
                       account_id: Optional[int] = None) -> str:  # fmt: skip
        _, case = commands.escalate(
            session,
            ctx.turn.sender,
            reason,
            summary,
            debtor_id=ctx.debtor.id if ctx.debtor else None,
            account_id=account_id,
        )
        ctx.state["flow"], ctx.state["data"], ctx.state["pending"] = None, {}, None
        ctx.paused = True
        return case

    def _escalate(self, session, ctx: _Context, reason: str, message: str) -> None:  # noqa: ANN001
        case = self._escalate_case(session, ctx, reason, ctx.turn.text)
        ctx.say(message, case=case, hours=ctx.hours)

    def _dispute(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        accounts = [a for a in ctx.accounts if a.status in ("active", "disputed")]
        if ctx.state["verified"]:
            folded = fold(text)
            named = [a for a in accounts if a.last4 in folded or fold(a.reference) in folded]
            accounts = named or accounts
        if not accounts:
            self._escalate(session, ctx, "dispute", "dispute_recorded")
            return
        cases = [commands.open_dispute(session, a.id, text, ctx.turn.sender)[1] for a in accounts]
        ctx.state["flow"], ctx.state["data"], ctx.state["pending"] = None, {}, None
        ctx.paused = True
        ctx.say("dispute_recorded", case=", ".join(cases), hours=ctx.hours)

    def _complain(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        case = self._escalate_case(session, ctx, "complaint", text)
        complaints = ctx.creditor.complaints_contact if ctx.creditor and ctx.creditor.complaints_contact else ""
        ctx.say("complaint_recorded", case=case, hours=ctx.hours, complaints=complaints or ctx.company)

    def _request_agent(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        self._escalate(session, ctx, "request_agent", "agent_handoff")

    def _wrong_person(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        commands.mark_wrong_number(session, ctx.turn.sender)
        commands.record_opt_out(session, ctx.turn.sender, keyword="wrong_person",
                                debtor_id=ctx.debtor.id if ctx.debtor else None)  # fmt: skip
        ctx.state.update(initial_state())
        ctx.say("wrong_person")

    def _opt_out(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        commands.record_opt_out(session, ctx.turn.sender, keyword=text[:200],
                                debtor_id=ctx.debtor.id if ctx.debtor else None)  # fmt: skip
        ctx.state["flow"], ctx.state["data"], ctx.state["pending"] = None, {}, None
        ctx.say("opt_out")

    # --- information ------------------------------------------------------------
    def _identity(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        creditor = ctx.creditor
        if creditor is None:
            ctx.say("identity_unknown", company=ctx.company)
            return
        contact = ", ".join(
            x for x in (creditor.official_phone, creditor.official_website, creditor.official_email) if x
        )
        ctx.say("identity", company=creditor.collector_name, legal_name=creditor.legal_name, contact=contact,
                creditor=creditor.display_name)  # fmt: skip

    def _payment_methods(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        creditor = ctx.creditor
        if creditor is None:
            ctx.say("methods_need_verification")
            self._start_verification(ctx, "ask_payment_methods", text)
            return
        ctx.say("methods_header", creditor=creditor.display_name)
        collectable = self._collectable(ctx)
        if ctx.state["verified"] and collectable and collectable[0].payment_link:
            ctx.say("methods_link", link=collectable[0].payment_link)
        if creditor.bank_reference:
            ctx.say("methods_bank", bank=creditor.bank_name or "", reference=creditor.bank_reference)
        if creditor.payment_stores:
            ctx.say("methods_stores", stores=creditor.payment_stores)
        if not ctx.state["verified"]:
            ctx.say("methods_need_verification")
            self._start_verification(ctx, "ask_payment_methods", text)

    def _change_language(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        folded = fold(text)
        if re.search(r"ingles|english|inglish", folded):
            target = "en"
        elif re.search(r"espanol|spanish|castellano|espanish", folded):
            target = "es"
        else:
            target = "en" if ctx.lang == "es" else "es"
        ctx.lang = target
        if ctx.debtor is not None:
            commands.set_language(session, ctx.debtor.id, target)
        ctx.say("language_changed")

    def _inform(self, session, ctx: _Context, text: str) -> None:  # noqa: ANN001
        """A bare value with no question pending: a date reads as a promise, a rhythm as a plan."""
        entities = ctx.entities(text)
        if "frequency" in entities or "installments" in entities:
            self._intent(session, ctx, "request_plan", text)
        elif "date" in entities or "amount" in entities:
            self._intent(session, ctx, "promise_to_pay", text)
        else:
            self._fallback(ctx, "nlu_fallback")

    def _fallback(self, ctx: _Context, intent: str) -> None:
        ctx.state["fallbacks"] = int(ctx.state.get("fallbacks") or 0) + 1
        if ctx.state["fallbacks"] >= 2:
            ctx.state["fallbacks"] = 0
            ctx.state["flow"], ctx.state["data"] = "offer_agent", {"reason": "fallback"}
            ctx.say("offer_agent")
        elif intent == "out_of_scope":
            ctx.say("out_of_scope")
        else:
            ctx.say("rephrase")


# --- helpers -----------------------------------------------------------------------------------------------------


def _choice(text: str, count: int) -> Optional[int]:
    """A menu answer: "2", "la 2", "opción 3", "la segunda", "the first one"."""
    folded = fold(text)
    numbers = re.findall(r"(?<![\d.,$])(\d{1,2})(?![\d.,])", folded)
    if len(numbers) == 1 and 1 <= int(numbers[0]) <= count:
        return int(numbers[0])
    words = [ORDINALS[w] for w in re.findall(r"[a-z]+", folded) if w in ORDINALS]
    if len(words) == 1 and 1 <= words[0] <= count and len(folded) <= 40:
        return words[0]
    return None


_REFERENCE_WORDS = re.compile(
    r"\b(?:referencia|ref|folio|clave(?:\s+de\s+rastreo)?|rastreo|autorizacion|operacion|ticket|recibo|comprobante"
    r"|confirmation|conf|transaction|reference|receipt|tracking)\b"
)


def _payment_reference(text: str) -> Optional[str]:
    """A payment reference or tracking key the debtor quotes ("folio A-99812230")."""
    folded = fold(text)
    for keyword in _REFERENCE_WORDS.finditer(folded):
        window = folded[keyword.end() : keyword.end() + 60]
        for token in re.findall(r"[a-z0-9][a-z0-9-]{3,39}", window):
            if sum(ch.isdigit() for ch in token) >= 4:
                return token.upper()
    return None


def _account_named(accounts: list[AccountView], text: str, lang: str, today: dt.date) -> Optional[AccountView]:
    """The account a message points at: its last 4 digits, its reference, or its exact balance."""
    folded = fold(text)
    named = [a for a in accounts if a.last4 in folded or fold(a.reference) in folded]
    if len(named) == 1:
        return named[0]
    amount = extract_entities(text, lang, today).get("amount")
    by_balance = [a for a in accounts if amount is not None and a.balance == amount]
    return by_balance[0] if len(by_balance) == 1 else None


def _option_to_json(option: PlanOption) -> dict[str, Any]:
    return {
        "kind": option.kind,
        "frequency": option.frequency,
        "amounts": [str(a) for a in option.amounts],
        "dates": [d.isoformat() for d in option.dates],
        "discount": str(option.discount),
    }


def _option_from_json(data: dict[str, Any]) -> PlanOption:
    try:
        return PlanOption(
            kind=data["kind"],
            frequency=data.get("frequency"),
            amounts=tuple(Decimal(a) for a in data["amounts"]),
            dates=tuple(dt.date.fromisoformat(d) for d in data["dates"]),
            discount=Decimal(data.get("discount") or "0"),
        )
    except (KeyError, InvalidOperation, ValueError) as exc:
        raise ValueError(f"corrupt plan option in the dialogue state: {data!r}") from exc
