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

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
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
