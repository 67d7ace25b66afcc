"""Outreach configuration: cadence, throttle and approved templates per portfolio.

Read from `config/outreach.yml` (or `COBRADOR_OUTREACH_CONFIG`) and validated
whole at load time, so a template that names an unknown variable, lacks what
a first notice must say, or is missing for a kind and language is a
configuration error before anything is sent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from cobrador.config import PROJECT_ROOT
from cobrador.ledger.models import LANGUAGES
from cobrador.ledger.models_outreach import OUTREACH_KINDS

DEFAULT_PATH = PROJECT_ROOT / "config" / "outreach.yml"

COMMON_VARIABLES = frozenset(
    {"name", "collector", "creditor", "reference", "last4", "amount", "as_of", "due_date", "pay_how", "complaints",
     "opt_out", "balance"}
)  # fmt: skip
KIND_VARIABLES = {
    "promise_reminder": {"promise_amount", "promise_date"},
    "promise_broken": {"promise_amount", "promise_date"},
    "installment_reminder": {"installment_amount", "installment_date", "installment_number", "installments_total"},
    "thank_you": {"payment_amount", "payment_date"},
}
# What the first message must carry (CONDUSEF: who collects, for whom, which
# account, how much as of when, where to complain; every text: how to opt out).
FIRST_NOTICE_REQUIRED = frozenset(
    {"collector", "creditor", "reference", "amount", "as_of", "pay_how", "complaints", "opt_out"}
)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


class OutreachConfigError(ValueError):
    """The outreach configuration is invalid; the message says where and why."""


@dataclass(frozen=True)
class Template:
    """One approved WhatsApp template: its ContentSid, variables in order and text."""

    sid: str
    variables: tuple[str, ...]
    body: str

    def content_variables(self, values: dict[str, str]) -> dict[str, str]:
        """Twilio's ContentVariables: {"1": ..., "2": ...} in declared order."""
        return {str(n): values[name] for n, name in enumerate(self.variables, start=1)}

    def render(self, values: dict[str, str]) -> str:
        """The text as the debtor reads it (message log, simulator, free-form)."""
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.body)


@dataclass(frozen=True)
class Portfolio:
    """The outreach settings of one creditor (the defaults with its overrides)."""

    reminders: tuple[int, ...]
    rate_per_minute: int
    templates: dict[tuple[str, str], Template]  # (kind, language) -> template

    def template(self, kind: str, language: str) -> Template:
        return self.templates[(kind, language)]


@dataclass(frozen=True)
class OutreachConfig:
    default: Portfolio
    creditors: dict[str, Portfolio] = field(default_factory=dict)

    def for_creditor(self, code: str) -> Portfolio:
        return self.creditors.get(code, self.default)


def config_path(path: Optional[str | Path] = None) -> Path:
    return Path(path or os.environ.get("COBRADOR_OUTREACH_CONFIG") or DEFAULT_PATH)


def load_config(path: Optional[str | Path] = None) -> OutreachConfig:
    """Reads and validates the outreach configuration.

    Raises:
        OutreachConfigError: with the section and the problem.
    """
    source = config_path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise OutreachConfigError(f"{source}: {exc}") from None
    # The worker reads the file on every pass (an edit takes effect at the
    # next one); parsing and validating it again only when it changed.
    where = str(source.resolve())
    cached = _last.get(where)
    if cached is not None and cached[0] == text:
        return cached[1]
    config = _parse(source, text)
    _last[where] = (text, config)
    return config


_last: dict[str, tuple[str, OutreachConfig]] = {}


def _parse(source: Path, text: str) -> OutreachConfig:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise OutreachConfigError(f"{source}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("default"), dict):
        raise OutreachConfigError(f"{source}: a `default` section is required")
    default = _portfolio(data["default"], None, "default")
    creditors = {}
    for code, section in (data.get("creditors") or {}).items():
        if not isinstance(section, dict):
            raise OutreachConfigError(f"creditors.{code}: expected a mapping")
        creditors[str(code)] = _portfolio(section, default, f"creditors.{code}")
    return OutreachConfig(default, creditors)


def _portfolio(section: dict[str, Any], base: Optional[Portfolio], where: str) -> Portfolio:
    reminders = section.get("reminders", base.reminders if base else None)
    if not isinstance(reminders, (list, tuple)) or not all(isinstance(d, int) for d in reminders):
        raise OutreachConfigError(f"{where}.reminders: expected a list of whole days, e.g. [-3, 0, 3, 7]")
    if len(set(reminders)) != len(reminders):
        raise OutreachConfigError(f"{where}.reminders: repeated offsets")
    if base is not None and "rate_per_minute" in section:
        raise OutreachConfigError(f"{where}.rate_per_minute: the throttle is per worker; set it in `default`")
    rate = section.get("rate_per_minute", base.rate_per_minute if base else 60)
    if not isinstance(rate, int) or rate < 1:
        raise OutreachConfigError(f"{where}.rate_per_minute: expected a positive whole number")
    templates = dict(base.templates) if base else {}
    for kind, languages in (section.get("templates") or {}).items():
        if kind not in OUTREACH_KINDS:
            raise OutreachConfigError(f"{where}.templates.{kind}: unknown message kind")
        for language, spec in (languages or {}).items():
            templates[(kind, language)] = _template(spec, kind, f"{where}.templates.{kind}.{language}")
    missing = [f"{k}.{lang}" for k in OUTREACH_KINDS for lang in LANGUAGES if (k, lang) not in templates]
    if missing:
        raise OutreachConfigError(f"{where}.templates: missing {', '.join(missing)}")
    return Portfolio(tuple(sorted(reminders)), rate, templates)


def _template(spec: Any, kind: str, where: str) -> Template:
    if not isinstance(spec, dict):
        raise OutreachConfigError(f"{where}: expected sid, variables and body")
    sid, variables, body = spec.get("sid"), spec.get("variables"), spec.get("body")
    if not isinstance(sid, str) or not _CONTENT_SID.match(sid):
        raise OutreachConfigError(f"{where}.sid: expected a Twilio ContentSid (HX and 32 hex digits), got {sid!r}")
    if not isinstance(variables, list) or not variables or not all(isinstance(v, str) for v in variables):
        raise OutreachConfigError(f"{where}.variables: expected a non-empty list of names")
    if len(set(variables)) != len(variables):
        raise OutreachConfigError(f"{where}.variables: repeated names")
    known = COMMON_VARIABLES | KIND_VARIABLES.get(kind, set())
    unknown = [v for v in variables if v not in known]
    if unknown:
        raise OutreachConfigError(f"{where}.variables: unknown for {kind}: {', '.join(unknown)}")
    if not isinstance(body, str) or not body.strip():
        raise OutreachConfigError(f"{where}.body: the approved text is required")
    used = _PLACEHOLDER.findall(body)
    if set(used) != set(variables):
        raise OutreachConfigError(
            f"{where}: body and variables differ (body uses {sorted(set(used))}, declared {sorted(variables)})"
        )
    if kind == "first_notice" and not FIRST_NOTICE_REQUIRED <= set(variables):
        lacking = sorted(FIRST_NOTICE_REQUIRED - set(variables))
        raise OutreachConfigError(f"{where}: a first notice must include {', '.join(lacking)}")
    if "opt_out" not in variables:
        raise OutreachConfigError(f"{where}: every business-initiated message must include opt_out")
    return Template(sid, tuple(variables), body)
