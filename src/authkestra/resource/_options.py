"""Checks of a verifier's settings: a bad one is a ConfigError at construction.

A verifier finds out about its settings on a request otherwise, as a TypeError
(a 500), or worse, never: a NaN leeway makes every expiry check pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import httpx

from ..errors import ConfigError

__all__ = ["audience_names", "claim_names", "count", "name_list", "seconds", "timeout"]


def seconds(value: Any, name: str, *, positive: bool = False) -> float:
    """``value`` as a number of seconds: finite, not negative (above zero if ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "above zero" if positive else "zero or more"
        raise ConfigError(f"{name} must be a finite number of seconds, {bound}")
    return number


def count(value: Any, name: str, *, positive: bool = False) -> int:
    """``value`` as a count: an integer, zero or more (above zero if ``positive``)."""
    least = 1 if positive else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer, {least} or more")
    return value


def timeout(value: Any) -> httpx.Timeout:
    """The timeout for requests to the issuer: seconds above zero, or an ``httpx.Timeout``."""
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(seconds(value, "timeout", positive=True))


def name_list(value: Any, name: str) -> tuple[Any, ...]:
    """The items of a list of names (a single string is refused: it is not several)."""
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of names, not {type(value).__name__}")
    return tuple(value)


def audience_names(value: Any, name: str = "audience") -> tuple[str, ...]:
    """This API's identifiers: one string or several, at least one, none empty."""
    values = (value,) if isinstance(value, str) else name_list(value, name)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{name} must name this API (a non-empty string or several)")
    return values


def claim_names(value: Any, name: str) -> tuple[str, ...]:
    """Claim names: a list of non-empty strings."""
    values = name_list(value, name)
    if not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{name} must be a list of claim names (non-empty strings)")
    return values
