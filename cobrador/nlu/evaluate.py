"""Evaluation contracts: `nlu-eval`, `dates` and the held-out report.

`nlu-eval` and `dates` are line protocols other tools use (JSONL in, JSONL
out, one output line per input line, same order). Intents come from the
trained Rasa model; entity values come from `cobrador.language`, the same
code the actions use to resolve what a debtor said against their local
"today".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TextIO
from zoneinfo import ZoneInfo

from cobrador.language import extract_entities
from cobrador.language.commands import neutralize_command
from cobrador.language.dates import MONTH, WEEK, resolve_span

FALLBACK_INTENT = "nlu_fallback"
DEFAULT_MODEL = Path("models/cobrador.tar.gz")


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def read_jsonl(handle: TextIO) -> Iterator[dict[str, Any]]:
    """Yields the JSON objects of a JSONL stream, skipping blank lines."""
    for number, line in enumerate(handle, start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not JSON ({exc.msg})") from exc


def local_date(ref: str) -> dt.date:
    """The calendar date of an ISO datetime in its own offset (or a bare date)."""
    return dt.datetime.fromisoformat(ref).date() if "T" in ref or " " in ref else dt.date.fromisoformat(ref)


def run_dates(lines: Iterable[dict[str, Any]], out: TextIO, default_today: Optional[dt.date] = None) -> int:
    """`python -m cobrador dates`: resolves each line's phrase to an ISO date.

    Args:
        lines: objects with `id`, `text`, `lang` and `ref` (ISO datetime with
            offset); other fields are ignored.
        out: where `{"id", "value"}` lines are written.
        default_today: used when a line has no `ref`.

    Returns:
        The number of lines written.
    """
    count = 0
    for line in lines:
        ref = line.get("ref")
        today = local_date(ref) if ref else (default_today or dt.date.today())
        span = resolve_span(str(line.get("text") or ""), str(line.get("lang") or "es"), today)
        value = None
        if span is not None:
            # A phrase naming a whole week or month is reported by its first
            # day, the convention of Duckling's corpora ("next week" is a
            # value of week grain: its Monday). Ranges of days, and the
            # bot's `date` entity, use the last day (the contract's deadline).
            value = span.first if span.grain in (WEEK, MONTH) else span.last
        out.write(json.dumps({"id": line.get("id"), "value": value.isoformat() if value else None}) + "\n")
        count += 1
    return count


class IntentModel:
    """The trained Rasa model, loaded once, answering intent queries."""

    def __init__(self, model_path: Path) -> None:
        import structlog

        logging.getLogger("rasa").setLevel(logging.ERROR)
        os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
        # Rasa logs through structlog, which prints to stdout unless told
        # otherwise; stdout is this command's output protocol.
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
        from rasa.core.agent import Agent

        self._loop = asyncio.new_event_loop()
        self._agent = Agent.load(str(model_path))

    def parse(self, text: str) -> tuple[str, float]:
        """The best contract intent for `text` and its confidence.

        The fallback pseudo-intent is skipped: the contract asks which intent
        the message expresses, and low confidence is visible in the number.
        """
        result = self._loop.run_until_complete(self._agent.parse_message(neutralize_command(text)))
        ranking = [r for r in result.get("intent_ranking") or [] if r.get("name") != FALLBACK_INTENT]
        if not ranking:
            return "out_of_scope", 0.0
        return ranking[0]["name"], round(float(ranking[0].get("confidence") or 0.0), 4)


def run_nlu_eval(lines: Iterable[dict[str, Any]], out: TextIO, model: IntentModel, today: dt.date) -> int:
    """`python -m cobrador nlu-eval`: intent, confidence and normalised entities.

    Args:
        lines: objects with `id`, `text` and `lang`.
        out: where `{"id", "intent", "confidence", "entities"}` lines go.
        model: the loaded intent model.
        today: the debtor's local date that dates resolve against.

    Returns:
        The number of lines written.
    """
    count = 0
    for line in lines:
        text = str(line.get("text") or "")
        lang = str(line.get("lang") or "es")
        intent, confidence = model.parse(text) if text.strip() else ("out_of_scope", 0.0)
        entities = {key: _json_value(value) for key, value in extract_entities(text, lang, today).items()}
        record = {"id": line.get("id"), "intent": intent, "confidence": confidence, "entities": entities}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        count += 1
    return count


def today_in(zone: str, today: Optional[str]) -> dt.date:
    """`--today` if given, else the current date in `zone`."""
    if today:
        return dt.date.fromisoformat(today)
    return dt.datetime.now(ZoneInfo(zone)).date()


def _entity_matches(gold: Any, predicted: Any) -> bool:
    if gold is None or predicted is None:
        return gold is predicted
    if isinstance(gold, (int, float)) and isinstance(predicted, (int, float)):
        return abs(float(gold) - float(predicted)) < 0.005
    return str(gold) == str(predicted)


def report(gold_lines: list[dict[str, Any]], predicted: list[dict[str, Any]], out_dir: Path) -> str:
    """Scores predictions against the held-out gold; writes a confusion matrix PNG.

    Returns:
        The printable report: per language intent accuracy and macro-F1,
        per-intent F1, and entity accuracy per entity type.
    """
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    by_id = {p["id"]: p for p in predicted}
    lines = []
    out_dir.mkdir(parents=True, exist_ok=True)
    languages = sorted({g["lang"] for g in gold_lines})
    for lang in languages + ["all"]:
        rows = [g for g in gold_lines if lang == "all" or g["lang"] == lang]
        y_true = [g["intent"] for g in rows]
        y_pred = [by_id.get(g["id"], {}).get("intent", "<missing>") for g in rows]
        labels = sorted(set(y_true))
        lines.append(
            f"[{lang}] intents: n={len(rows)} accuracy={accuracy_score(y_true, y_pred):.3f} "
            f"macro-F1={f1_score(y_true, y_pred, labels=labels, average='macro', zero_division=0):.3f}"
        )
        if lang != "all":
            per_intent = classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0)
            lines.append("  per-intent F1: " + ", ".join(f"{i}={per_intent[i]['f1-score']:.2f}" for i in labels))
            confusions = Counter((t, p) for t, p in zip(y_true, y_pred, strict=True) if t != p)
            if confusions:
                lines.append(
                    "  top confusions (gold->predicted): "
                    + ", ".join(f"{t}->{p} x{n}" for (t, p), n in confusions.most_common(8))
                )
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        exact = 0
        for g in rows:
            gold_entities = g.get("entities") or {}
            pred_entities = by_id.get(g["id"], {}).get("entities") or {}
            if set(gold_entities) == set(pred_entities) and all(
                _entity_matches(gold_entities[k], pred_entities[k]) for k in gold_entities
            ):
                exact += 1
            for key in set(gold_entities) | set(pred_entities):
                totals[key][1] += 1
                totals[key][0] += _entity_matches(gold_entities.get(key), pred_entities.get(key))
        lines.append(
            f"  entities: all-exact {exact}/{len(rows)} = {exact / max(1, len(rows)):.3f}; "
            + ", ".join(f"{k} {c}/{n} = {c / n:.3f}" for k, (c, n) in sorted(totals.items()))
        )
        _confusion_png(y_true, y_pred, labels, out_dir / f"confusion_{lang}.png", lang)
    lines.append(f"confusion matrices: {out_dir}/confusion_*.png")
    return "\n".join(lines)


def _confusion_png(y_true: list[str], y_pred: list[str], labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(13, 11))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=labels, ax=axes, xticks_rotation=70, colorbar=False, cmap="Blues"
    )
    axes.set_title(f"Held-out intents ({title})")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
