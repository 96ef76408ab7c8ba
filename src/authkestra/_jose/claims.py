"""The time claims of a JWT (RFC 7519 §4.1.4-6), checked one way everywhere.

:class:`TimeRules` is set up once by each checker -- the API's verifier, the
server's client assertion and DPoP proof checks, introspection answers -- with
its leeway and bounds, and then checks claims against ``now``:

- ``exp``: a number; ``now < exp + leeway``; at most ``max_ahead`` seconds ahead;
- ``nbf``: when present, a number with ``nbf <= now + leeway``;
- ``iat``: when present, a number with ``iat <= now + leeway``; not older than
  ``max_age`` seconds;
- ``require`` names the ones that must be present; ``names`` the ones looked at.

A time is an integer or a finite float (never a boolean, a string or null); an
integer too large for a float is out of range. A failure is a :class:`ClaimError`
naming the claim and what is wrong with it, which each checker puts in its words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ClaimError", "TimeRules", "claim_time"]

#: Integer times below this (in absolute value) are exact as floats: compared as they are.
_INT_TIME = 2**53

MISSING = "missing"
NOT_A_NUMBER = "not a number"
OUT_OF_RANGE = "out of range"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
IN_THE_FUTURE = "in the future"
TOO_OLD = "too old"
TOO_FAR_AHEAD = "too far ahead"


class ClaimError(ValueError):
    """A time claim that does not hold: ``claim`` (exp, nbf, iat) and ``problem``."""

    def __init__(self, claim: str, problem: str, *, bound: float | None = None) -> None:
        super().__init__(f"{claim} {problem}")
        self.claim = claim
        self.problem = problem
        #: The bound that was passed (the longest lifetime, the oldest age), when one was.
        self.bound = bound

    def describe(self, subject: str = "the token", possessive: str | None = None) -> str:
        """What is wrong, said of ``subject`` ("the token has expired")."""
        owner = possessive or f"{subject}'s"
        claim, problem = self.claim, self.problem
        if problem == MISSING:
            return f"{subject} has no {claim} claim"
        if problem in (NOT_A_NUMBER, OUT_OF_RANGE):
            return f"{owner} {claim} claim is {problem}"
        if problem == EXPIRED:
            return f"{subject} has expired"
        if problem == NOT_YET_VALID:
            return f"{subject} is not valid yet (nbf)"
        if problem == IN_THE_FUTURE:
            return f"{subject} was issued in the future ({claim})"
        if problem == TOO_OLD:
            return f"{subject} is too old ({claim})"
        return f"{owner} {claim} is more than {self.bound or 0:.0f} s ahead"


def claim_time(value: Any, claim: str) -> float:
    """A time claim's value as a float; ClaimError for anything but a finite number."""
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # an integer no float can hold (over 10**308)
            raise ClaimError(claim, OUT_OF_RANGE) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClaimError(claim, NOT_A_NUMBER)
    try:
        number = float(value)
    except OverflowError:  # an int subclass
        raise ClaimError(claim, OUT_OF_RANGE) from None
    if not math.isfinite(number):
        raise ClaimError(claim, NOT_A_NUMBER)
    return number


class TimeRules:
    """How one checker judges ``exp``, ``nbf`` and ``iat``; see the module docstring."""

    __slots__ = ("_exp", "_iat", "_nbf", "leeway", "max_age", "max_ahead", "require")

    def __init__(
        self,
        *,
        leeway: float,
        require: Iterable[str] = ("exp",),
        names: Iterable[str] = ("exp", "nbf", "iat"),
        max_age: float | None = None,
        max_ahead: float | None = None,
    ) -> None:
        looked_at = frozenset(names)
        self.leeway = leeway
        self.require = frozenset(require)
        self.max_age = max_age
        self.max_ahead = max_ahead
        self._exp = "exp" in looked_at
        self._nbf = "nbf" in looked_at
        self._iat = "iat" in looked_at

    def check(self, claims: Mapping[str, Any], now: float) -> tuple[float | None, float | None]:
        """``(exp, iat)`` as given (None when absent) if they hold at ``now``; else ClaimError."""
        # Runs for every token an API has not seen before: the common case (integer times)
        # is compared as it is, which for integers this size is the same as float(value).
        leeway = self.leeway
        exp = iat = None
        if self._exp:
            if "exp" in claims:
                exp = claims["exp"]
                if type(exp) is not int or not -_INT_TIME < exp < _INT_TIME:
                    exp = claim_time(exp, "exp")
                if now >= exp + leeway:
                    raise ClaimError("exp", EXPIRED)
                if self.max_ahead is not None and exp > now + self.max_ahead + leeway:
                    raise ClaimError("exp", TOO_FAR_AHEAD, bound=self.max_ahead)
            elif "exp" in self.require:
                raise ClaimError("exp", MISSING)
        if self._nbf and "nbf" in claims and now + leeway < claim_time(claims["nbf"], "nbf"):
            raise ClaimError("nbf", NOT_YET_VALID)
        if self._iat:
            if "iat" in claims:
                iat = claims["iat"]
                if type(iat) is not int or not -_INT_TIME < iat < _INT_TIME:
                    iat = claim_time(iat, "iat")
                if iat > now + leeway:
                    raise ClaimError("iat", IN_THE_FUTURE)
                if self.max_age is not None and iat < now - self.max_age:
                    raise ClaimError("iat", TOO_OLD, bound=self.max_age)
            elif "iat" in self.require:
                raise ClaimError("iat", MISSING)
        return exp, iat
