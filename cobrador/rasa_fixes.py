"""Fixes to Rasa 3.6.21 itself, applied in every process that loads a Cobrador model.

Rasa imports `cobrador.nlu.classifier` wherever it loads our model (`rasa run`,
`rasa test`, `rasa shell`), and that module calls `apply()`; no launch command
has to change. Each fix keeps Rasa's behaviour and only removes waste.

* **The action server's answer is validated against a schema compiled once.**
  `RemoteAction._validate_action_result` calls `jsonschema.validate`, which
  first checks the *schema* against the JSON Schema 2020-12 meta-schema, on
  every custom action, every turn. Profiled under load (py-spy on the Rasa
  server, 30 concurrent conversations) that meta-schema check was 60% of the
  Rasa process's CPU. The schema is a constant, so it is checked once here and
  every answer is still validated against it, with the same error (and message)
  when the action server sends something malformed.
* **The usual answers skip the schema walk, never the check.** Validating an
  answer against that schema still took a sixth of Rasa's CPU a turn: each
  event is tried against all 23 alternatives of a `oneOf`. An answer whose
  every event is one of the kinds whose whole schema is a few types (a slot
  set, an executed action, a bot message, ...), checked here directly, is
  valid by that schema; any other answer (a user message, entities, anything
  unknown or malformed) is validated by jsonschema exactly as before, with
  its error. The shortcut is installed only for the schema it was written
  against (its digest), so a Rasa whose schema changed validates everything.
* **An event's class is found by its name in a table.** Every event read back
  from the tracker store (the whole conversation, every turn) went through
  `Event.resolve_by_type`, which walks all of `Event`'s subclasses, asking
  `inspect.isabstract` of each, to find the one with that name: 24% of the
  Rasa process's CPU once the fix above was in. The table holds what that walk
  returns (the first class with the name, in the same order); a name it does
  not hold walks the subclasses again, so a class defined later is still found
  and an unknown name fails as before.
"""

from __future__ import annotations

from typing import Any, Optional

_applied = False


def apply() -> None:
    """Installs the fixes (idempotent)."""
    global _applied
    if _applied:
        return
    from jsonschema import exceptions, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    kind = validators.validator_for(schema)
    kind.check_schema(schema)  # what jsonschema.validate did on every call, now once
    validator = kind(schema)

    known = _digest(schema) == SCHEMA_DIGEST

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        if known and plainly_valid(result):
            return True
        error = exceptions.best_match(validator.iter_errors(result))  # as jsonschema.validate
        if error is not None:
            error.message += (
                f". Failed to validate Action server response from API, "
                f"make sure your response from the Action endpoint is valid. "
                f"For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
            raise error
        return True

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    _event_classes_by_name()
    _applied = True


# The digest of RemoteAction.action_response_format_spec() in Rasa 3.6.21,
# the schema `plainly_valid` was written against.
SCHEMA_DIGEST = "fb650e99afd82f1c650004526571ec7bc95a81aa36aaf6a899a6e9e212b166be"

# Events whose alternative in the schema's oneOf is their name alone.
_NAME_ONLY = frozenset(
    {
        "user_featurization", "cancel_reminder", "reminder", "action_execution_rejected", "form_validation",
        "loop_interrupted", "form", "active_loop", "reset_slots", "resume", "pause", "followup", "export",
        "restart", "undo", "rewind", "bot", "session_started", "agent",
    }
)  # fmt: skip
_ACTION_FIELDS = (("policy", str), ("name", str), ("action_text", str))


def _digest(schema: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON Schema: a bool is no number


def _plain_event(event: Any) -> bool:
    """True only if `event` is valid by the schema's EVENT_SCHEMA, checked by
    hand for the kinds whose alternative is a few types; False for all else
    (which is then validated by the schema itself)."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return False
    if "timestamp" in event and event["timestamp"] is not None and not _number(event["timestamp"]):
        return False
    if "metadata" in event and event["metadata"] is not None and not isinstance(event["metadata"], dict):
        return False
    # The alternatives' "event" consts differ, so exactly one can match: this one.
    kind = event["event"]
    if kind in _NAME_ONLY:
        return True
    if kind == "slot":
        return isinstance(event.get("name"), str) and "value" in event
    if kind == "action":
        for field, kind_of in _ACTION_FIELDS:
            if event.get(field) is not None and not isinstance(event[field], kind_of):
                return False
        if event.get("confidence") is not None and not _number(event["confidence"]):
            return False
        return "hide_rule_turn" not in event or isinstance(event["hide_rule_turn"], bool)
    return False  # a user message, entities, or an unknown kind: the schema decides


def plainly_valid(result: Any) -> bool:
    """True only if the action server's answer is valid by Rasa's schema
    (objects, an `events` array of plain events, a `responses` array of
    objects); False means "ask the schema", not "invalid"."""
    if not isinstance(result, dict):
        return False
    events = result.get("events", [])
    responses = result.get("responses", [])
    return (
        isinstance(events, list)
        and isinstance(responses, list)
        and all(isinstance(response, dict) for response in responses)
        and all(_plain_event(event) for event in events)
    )


def _event_classes_by_name() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    stock = Event.resolve_by_type
    table: dict[str, type] = {}

    def resolve_by_type(type_name: str, default: Optional[type] = None) -> Optional[type]:
        found = table.get(type_name)
        if found is not None:
            return found
        for kind in all_subclasses(Event):  # the stock walk, kept in a table
            table.setdefault(kind.type_name, kind)
        if type_name in table:
            return table[type_name]
        return stock(type_name, default)  # "topic", the default, or Rasa's ValueError

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]
