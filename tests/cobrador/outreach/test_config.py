"""The outreach configuration is validated whole before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cobrador.outreach.config import DEFAULT_PATH, OutreachConfigError, load_config


def test_the_shipped_configuration_is_valid() -> None:
    config = load_config()
    portfolio = config.for_creditor("ANY")
    assert portfolio.reminders == (-3, 0, 3, 7)
    template = portfolio.template("first_notice", "en")
    values = {name: f"<{name}>" for name in template.variables}
    assert template.content_variables(values)["1"] == "<name>"
    assert "{{" not in template.render(values)


def write(tmp_path: Path, mutate) -> Path:  # noqa: ANN001
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "outreach.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def drop_first_notice_es(data) -> None:  # noqa: ANN001
    del data["default"]["templates"]["first_notice"]["es"]


def unknown_variable(data) -> None:  # noqa: ANN001
    spec = data["default"]["templates"]["due"]["es"]
    spec["variables"].append("ssn")
    spec["body"] += " {{ssn}}"


def first_notice_without_complaints(data) -> None:  # noqa: ANN001
    spec = data["default"]["templates"]["first_notice"]["en"]
    spec["variables"].remove("complaints")
    spec["body"] = spec["body"].replace(" Complaints: {{complaints}}.", "")


def body_and_variables_differ(data) -> None:  # noqa: ANN001
    data["default"]["templates"]["thank_you"]["en"]["body"] += " {{balance}} {{last4}}"


def bad_content_sid(data) -> None:  # noqa: ANN001
    data["default"]["templates"]["overdue"]["en"]["sid"] = "MG123"


def promise_variable_on_a_reminder(data) -> None:  # noqa: ANN001
    spec = data["default"]["templates"]["pre_due"]["en"]
    spec["variables"].append("promise_amount")
    spec["body"] += " {{promise_amount}}"


def no_opt_out_line(data) -> None:  # noqa: ANN001
    spec = data["default"]["templates"]["due"]["en"]
    spec["variables"].remove("opt_out")
    spec["body"] = spec["body"].replace(" {{opt_out}}", "")


def bad_cadence(data) -> None:  # noqa: ANN001
    data["creditors"] = {"MX": {"reminders": [0, 0]}}


def creditor_rate(data) -> None:  # noqa: ANN001
    data["creditors"] = {"MX": {"rate_per_minute": 5}}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (drop_first_notice_es, "missing first_notice.es"),
        (unknown_variable, "unknown for due: ssn"),
        (first_notice_without_complaints, "a first notice must include complaints"),
        (body_and_variables_differ, "body and variables differ"),
        (bad_content_sid, "expected a Twilio ContentSid"),
        (promise_variable_on_a_reminder, "unknown for pre_due: promise_amount"),
        (no_opt_out_line, "must include opt_out"),
        (bad_cadence, "creditors.MX.reminders: repeated offsets"),
        (creditor_rate, "the throttle is per worker"),
    ],
)
def test_configuration_errors_say_where_and_why(tmp_path: Path, mutate, message: str) -> None:  # noqa: ANN001
    with pytest.raises(OutreachConfigError, match=message):
        load_config(write(tmp_path, mutate))


def test_a_creditor_overrides_the_cadence_only(tmp_path: Path) -> None:
    def override(data) -> None:  # noqa: ANN001
        data["creditors"] = {"US": {"reminders": [7, -1, 0]}}

    config = load_config(write(tmp_path, override))
    assert config.for_creditor("US").reminders == (-1, 0, 7)
    assert config.for_creditor("US").templates == config.default.templates
    assert config.for_creditor("MX").reminders == (-3, 0, 3, 7)
