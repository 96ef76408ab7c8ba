"""The strict compact-JWS reader: a token's parts, before any signature is checked.

Every JWS the package reads -- access tokens at an API and at the introspection
endpoint, DPoP proofs, client assertions, a client peeking at its token's
``exp`` -- is split and decoded here, one way:

- a string of at most ``max_length`` characters, in three dot-separated parts;
- header and payload: base64url without padding (:mod:`.base64url`), each a
  strict JSON object (:func:`authkestra._json.parse_json_object`: UTF-8, no
  duplicate member, no NaN), nested at most :data:`MAX_DEPTH` levels, with no
  lone surrogate escape (``\\ud800``) that no UTF-8 could carry on;
- the signature: base64url, possibly empty (``alg: none``, refused by every
  caller's algorithm check);
- no ``crit`` and no ``b64: false`` (RFC 7515 §4.1.11: extensions not
  understood make the JWS invalid).

Anything else is a :class:`MalformedJWS` saying which part is wrong and how;
each caller puts it in its own words and error type.

:func:`read_compact` is the fast path for the tokens an API reads on every
request: it takes only the common plain form and gives up (None) on anything
else, and its caller then runs :func:`parse_compact`, the reference. It never
accepts what the reference refuses, and what it accepts it reads exactly as the
reference does (``tests/resource/test_verify_fast_path.py`` holds them to that).
"""

from __future__ import annotations

import binascii
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._json import no_duplicates, parse_json_object, reject_constant
from . import base64url

__all__ = [
    "MAX_DEPTH",
    "CompactJWS",
    "MalformedJWS",
    "json_object",
    "parse_compact",
    "peek_claims",
    "read_compact",
]

H = TypeVar("H")

#: How deeply a header or payload may nest arrays and objects. The JSON scanner's own
#: limit is the interpreter's recursion limit, which depends on how deep the caller's
#: stack already is: the same token would pass or fail by where it is read.
MAX_DEPTH = 32

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


class MalformedJWS(ValueError):
    """A JWS that is not well-formed: ``part`` (None for the whole) and what is wrong with it.

    :meth:`describe` puts it in a caller's words: ``"the token's header is not
    base64url"``, ``"it is not a JWS in compact form (three dot-separated parts)"``.
    """

    def __init__(self, part: str | None, problem: str) -> None:
        super().__init__(f"{part or 'JWS'} {problem}")
        self.part = part
        self.problem = problem

    def describe(self, subject: str = "the token", possessive: str | None = None) -> str:
        """The problem said of ``subject`` (``possessive`` for its parts, default "subject's")."""
        if self.part is None:
            return f"{subject} {self.problem}"
        owner = possessive or f"{subject}'s"
        return f"{owner} {self.part} {self.problem}"


@dataclasses.dataclass(frozen=True, repr=False)
class CompactJWS:
    """A compact JWS, decoded and not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    #: The header part as sent (base64url, as ASCII bytes): what identifies a header.
    header_segment: bytes

    def __repr__(self) -> str:
        return f"CompactJWS(alg={self.header.get('alg')!r}, kid={self.header.get('kid')!r})"


# -- what both readers share -----------------------------------------------------------------

# What parse_json_object builds on every call, built once. Its scanner (JSONDecoder.raw_decode
# without the wrapper) gives (value, end), or StopIteration when there is no JSON value.
_decoder = json.JSONDecoder(object_pairs_hook=no_duplicates, parse_constant=reject_constant)
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and dicts (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in item)
    return deepest


def too_deep(data: bytes, value: Any) -> bool:
    """True when ``value``, parsed from ``data``, nests deeper than :data:`MAX_DEPTH`."""
    # A value that deep has at least that many brackets: the common case is two counts.
    brackets = data.count(b"[") + data.count(b"{")
    return brackets > MAX_DEPTH and _depth(value) > MAX_DEPTH


def lone_surrogates(data: bytes, value: Any) -> bool:
    """True when ``value``, parsed from ``data``, holds a string no UTF-8 can encode.

    JSON's ``\\ud800`` escapes may stand alone, and Python's reader takes them: a
    handler that later writes such a claim out (as JSON, to a log) would fail there.
    Only an escape can make one (the text itself was valid UTF-8), so text without
    ``\\u`` is not read again.
    """
    if b"\\u" not in data:
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object ``data`` holds, as :func:`parse_json_object` reads it, or None.

    None: not a plain strict JSON object (not UTF-8, not JSON, not an object, duplicate
    members, NaN, nested too deeply, whitespace around it...). Whitespace is valid
    JSON, but rare enough here to be left to :func:`parse_json_object`, like the rest.
    """
    try:
        text = data.decode("utf-8")
        value, end = _scan(text, 0)
    except (ValueError, StopIteration, RecursionError):  # UnicodeError is a ValueError
        return None
    return value if end == len(text) and type(value) is dict else None


# -- the fast path ---------------------------------------------------------------------------

# base64url to standard base64, and '+', '/' and '=' (not base64url) to '!', which no base64
# decoder takes: after this, a strict standard decoder refuses exactly what is not base64url.
# The padding is added here: a length of 1 mod 4 is never base64, and the "===" it gets makes
# the decoder refuse it.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"===", b"==", b"=")

if sys.version_info >= (3, 11):
    _a2b = binascii.a2b_base64
else:  # no strict mode before 3.11: the alphabet and the padding are checked first
    _STANDARD_B64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

    def _a2b(data: bytes, *, strict_mode: bool) -> bytes:
        if _STANDARD_B64.fullmatch(data) is None:
            raise binascii.Error("not base64")
        return binascii.a2b_base64(data)


def read_compact(
    token: object, max_length: int, known_headers: Mapping[bytes, H]
) -> tuple[H, dict[str, Any], bytes, bytes] | None:
    """(header, claims, signing input, signature) of a plain compact JWS, or None.

    ``known_headers`` maps header segments (base64url, as bytes) the caller has read and
    checked before to what it made of them: the header is looked up there, not decoded.
    None unless the token is an ASCII string of at most ``max_length`` characters, in
    three parts: a known header, a base64url payload holding a plain strict JSON object
    (see :func:`json_object`) with no ``\\u`` escape and at most :data:`MAX_DEPTH`
    brackets, and a base64url signature.
    """
    if type(token) is not str or len(token) > max_length:
        return None
    try:
        raw = token.encode("ascii")
        # One translation for both decoded parts ('.' is left as it is).
        head, payload, signature = raw.translate(_TO_STANDARD).split(b".")
        header = known_headers.get(raw[: len(head)])
        if header is None or not payload:
            return None
        text = _a2b(payload + _PADDING[len(payload) & 3], strict_mode=True).decode("utf-8")
        claims, end = _scan(text, 0)
        if end != len(text) or type(claims) is not dict:
            return None
        if "\\u" in text or text.count("[") + text.count("{") > MAX_DEPTH:
            # An escape, or many brackets: rare, and read again by the reference parser.
            return None
        return (
            header,
            claims,
            raw[: len(head) + 1 + len(payload)],
            _a2b(signature + _PADDING[len(signature) & 3], strict_mode=True),
        )
    except (ValueError, StopIteration, RecursionError):
        # UnicodeError, binascii.Error and JSONDecodeError are ValueErrors; StopIteration is
        # the scanner finding no JSON value at all.
        return None


# -- the reference ---------------------------------------------------------------------------


def _b64(segment: str, part: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):  # header and payload are never empty
        raise MalformedJWS(part, "is not base64url")
    try:
        return base64url.decode(segment)
    except ValueError:
        raise MalformedJWS(part, "is not base64url") from None


def _json(segment: str, part: str) -> dict[str, Any]:
    data = _b64(segment, part)
    value = json_object(data)  # the common case, without building a decoder
    if value is None:
        try:
            value = parse_json_object(data)
        except ValueError as exc:
            raise MalformedJWS(part, f"is not a JSON object ({exc})") from None
    if too_deep(data, value):
        raise MalformedJWS(part, f"nests deeper than {MAX_DEPTH} levels")
    if lone_surrogates(data, value):
        raise MalformedJWS(part, "has a string that is not valid Unicode")
    return value


def parse_compact(token: object, *, max_length: int) -> CompactJWS:
    """Split and decode a compact JWS; :class:`MalformedJWS` for anything malformed."""
    if not isinstance(token, str):
        raise MalformedJWS(None, f"is not a string but {type(token).__name__}")
    if not token:
        raise MalformedJWS(None, "is empty")
    if len(token) > max_length:
        raise MalformedJWS(None, f"is longer than {max_length} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedJWS(None, "is not a JWS in compact form (three dot-separated parts)")
    header = _json(parts[0], "header")
    claims = _json(parts[1], "payload")
    signature = _b64(parts[2], "signature") if parts[2] else b""
    if "crit" in header or header.get("b64") is False:
        raise MalformedJWS(None, "uses critical header extensions")
    head = parts[0].encode("ascii")  # checked: base64url is ASCII
    return CompactJWS(header, claims, head + b"." + parts[1].encode("ascii"), signature, head)


def peek_claims(token: str, *, max_length: int = 65_536) -> dict[str, Any] | None:
    """The claims of a JWS, unverified, or None when it is not a well-formed one.

    For a client scheduling the renewal of its own token, never to trust anything.
    """
    try:
        return parse_compact(token, max_length=max_length).claims
    except MalformedJWS:
        return None
