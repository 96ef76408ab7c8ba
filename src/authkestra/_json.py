"""Strict JSON objects: what every answer, token part and key set is read with.

One definition of "a JSON object" for the whole package: UTF-8 text, one object,
no ``NaN``/``Infinity``, no member named twice (two parsers would disagree on
which one counts), nesting no deeper than the interpreter can follow.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

__all__ = ["no_duplicates", "parse_json_object", "reject_constant"]


def reject_constant(name: str) -> NoReturn:
    """``parse_constant`` hook: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: an object, unless a member name appears twice."""
    result = dict(pairs)
    if len(result) != len(pairs):
        # Two members with one name: which one a reader takes differs between parsers.
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate member {key[:40]!r}")  # repr: no control character
            seen.add(key)
    return result


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a strict JSON object (UTF-8, no NaN, no duplicate members).

    Raises ValueError with a short reason when the body is anything else.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=reject_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"the JSON is {type(value).__name__}, not an object")
    return value
