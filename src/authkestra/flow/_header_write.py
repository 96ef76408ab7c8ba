"""Writing a token's headers (``Authorization``, ``DPoP``) into an ``httpx.Request``, at least cost.

``httpx.Headers.__setitem__`` encodes the name and the value, lower-cases the
name and scans every header on each call: over half of what authenticating a
request from a warm cache costs. A request built by an httpx client carries no
``Authorization`` header of its own in the common case, so the header can be
appended to the list of ``(name, lower-case name, value)`` byte tuples that
``httpx.Headers`` keeps, with the value encoded once per token.

That list is not public httpx API. It is used only when a probe at import
shows that it behaves as expected (the header written through it reads back
through the public API), only on ``httpx.Headers`` itself (not a subclass),
and only when the request has at most one ``Authorization`` header already;
everything else goes through ``Headers.__setitem__``. If a future httpx changes its internals,
the probe fails and every write takes the public path.
"""

from __future__ import annotations

import httpx

from ..token import Token

__all__ = ["FAST_PATH", "set_credentials"]

_NAME = b"Authorization"
_LOOKUP = b"authorization"
#: The (lower-case) names the write looks for: its own, and a proof left from before.
_WATCHED = frozenset({_LOOKUP, b"dpop"})


def _probe() -> bool:
    """True when appending to ``Headers._list`` is the same as setting the header."""
    try:
        headers = httpx.Headers({"Host": "example.com", "Accept": "*/*"})
        entries = headers._list
        if type(entries) is not list or any(
            not (isinstance(item, tuple) and len(item) == 3) for item in entries
        ):
            return False
        if entries[0] != (b"Host", b"host", b"example.com"):
            return False
        entries.append((_NAME, _LOOKUP, b"Bearer probe"))
        return (
            headers.get("authorization") == "Bearer probe"
            and headers.get_list("Authorization") == ["Bearer probe"]
            and headers.raw[-1] == (_NAME, b"Bearer probe")
            and len(headers) == 3
        )
    except Exception:  # any surprise in the internals: use the public path
        return False


#: Whether the fast write is in use with the installed httpx.
FAST_PATH = _probe()


def set_credentials(headers: httpx.Headers, token: Token, proof: str | None = None) -> None:
    """Set ``Authorization: <token_type> <access_token>`` (replacing any), and ``DPoP`` to
    ``proof`` -- or remove a ``DPoP`` header left from another request when there is none."""
    value = token.authorization_bytes
    stale_proof = False
    if FAST_PATH and value is not None and type(headers) is httpx.Headers:
        entries = headers._list
        found = -1
        for index, entry in enumerate(entries):
            if entry[1] in _WATCHED:  # one test for the two names: most headers are neither
                if entry[1] != _LOOKUP:
                    stale_proof = True
                elif found >= 0:
                    break  # several: let httpx collapse them
                else:
                    found = index
        else:
            if found >= 0:
                entries[found] = (_NAME, _LOOKUP, value)  # a retry, or a reused request
            else:
                entries.append((_NAME, _LOOKUP, value))
            if proof is not None:
                headers["DPoP"] = proof
            elif stale_proof:
                del headers["DPoP"]
            return
    headers["Authorization"] = token.authorization
    if proof is not None:
        headers["DPoP"] = proof
    elif "DPoP" in headers:
        del headers["DPoP"]
