"""Cleaning text that came from a server before it reaches a message or a log."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["Redactor", "clean_text"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
MASK = "***"


def clean_text(text: str, limit: int = 200) -> str:
    """Collapse whitespace, drop control characters, and cut to ``limit`` characters."""
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


#: The most needles a redactor keeps: a credential that rotates every hour (a platform's
#: assertion) must not grow it for the life of the process; the oldest go first.
MAX_NEEDLES = 256


class Redactor:
    """Replaces known secrets, in every encoding we send them in, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._needles: dict[str, None] = {}  # a set that remembers the order of arrival
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str, *, client_id: str | None = None) -> None:
        """Remember a secret (and the Basic credentials built from it)."""
        if len(secret) < 4:
            # Masking a one- or two-character "secret" would shred every message.
            return
        needles = [secret, quote_plus(secret, safe=""), quote(secret, safe="")]
        if client_id is not None:
            for pair in (
                f"{quote_plus(client_id, safe='')}:{quote_plus(secret, safe='')}",
                f"{client_id}:{secret}",
            ):
                needles.append(base64.b64encode(pair.encode()).decode())
        for needle in needles:
            self._needles.pop(needle, None)
            self._needles[needle] = None
        while len(self._needles) > MAX_NEEDLES:
            del self._needles[next(iter(self._needles))]

    def __call__(self, text: str) -> str:
        # Longest first, so a secret inside its own encoding is masked whole.
        for needle in sorted(self._needles, key=len, reverse=True):
            if needle in text:
                text = text.replace(needle, MASK)
        return text

    def clean(self, text: str, limit: int = 200) -> str:
        """Redact, then clean (secrets are masked before anything is cut)."""
        return clean_text(self(text), limit)
