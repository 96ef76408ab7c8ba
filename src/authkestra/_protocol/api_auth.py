"""Calling an API with a flow's token (RFC 6750, RFC 9449): one decision for every HTTP library.

An adapter (httpx, requests, ...) puts the token on a request with
:func:`authorize`, sends it, and hands the answer to :func:`after_answer`, a
generator that says what else to do. It yields

- :class:`Resend` -- send this request again, authorized with this token; the
  adapter answers with the new response (its last answer is the call's answer);
- :class:`Renew` -- the API refused this token: drop it and get a fresh one; the
  adapter answers with the token.

What it decides, in this order:

1. an answer the library follows on its own (a redirect): a DPoP proof names
   one method and URL and is good once, so it does not travel to the next hop;
2. the API's ``DPoP-Nonce`` is remembered for its origin, from every answer;
3. a 401 to a request the library redirected (the answer is not to the request
   we proved) that still carries the token: proved for its own method and URL and
   sent once more. A request that reached another origin lost its token there
   (the library drops it) and never gets it back;
4. the API's ``use_dpop_nonce`` challenge, with a nonce we had not sent: sent once
   more with it;
5. any other 401 for the token itself: the token is dropped, a fresh one fetched
   and, if it differs, the request sent once more with it.

A request whose body cannot be sent again (a stream, a file, a generator) is
never sent again. No network, no HTTP library here: what the decision needs of
one is the :class:`HttpLibrary` an adapter implements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any, Protocol, TypeVar

from ..token import Token
from .dpop import is_nonce_challenge

__all__ = [
    "HttpLibrary",
    "Prover",
    "Renew",
    "Resend",
    "advance",
    "after_answer",
    "authorize",
    "needs_decision",
]


S = TypeVar("S")


class HttpLibrary(Protocol):
    """What the decision needs to read and change of one library's requests and responses."""

    def method(self, request: Any) -> str: ...

    def url(self, request: Any) -> str: ...

    def replayable(self, request: Any) -> bool:
        """Whether the request's body can be sent again (kept in memory)."""
        ...

    def has_authorization(self, request: Any) -> bool: ...

    def set_credentials(self, request: Any, token: Token, proof: str | None) -> None:
        """Set ``Authorization: <type> <token>``, and the ``DPoP`` header to ``proof`` or none."""
        ...

    def drop_proof(self, request: Any) -> None:
        """Remove the ``DPoP`` header, if any (and nothing else)."""
        ...

    def status(self, response: Any) -> int: ...

    def header(self, response: Any, name: str) -> str | None: ...

    def request_of(self, response: Any) -> Any:
        """The request that got this answer (after redirects, maybe not the one sent)."""
        ...

    def is_redirect(self, response: Any) -> bool:
        """An answer the library follows itself, without calling the adapter again."""
        ...


class Prover(Protocol):
    """Proof of possession (DPoP) for a flow's tokens, and the nonces its APIs sent."""

    def proves(self, token: Token) -> bool:
        """Whether ``token`` is bound to a key this prover holds (``token_type`` DPoP)."""
        ...

    def proof(self, method: str, url: str, token: Token) -> str: ...

    def observe(self, url: str, nonce: str | None) -> bool:
        """Remember a ``DPoP-Nonce`` an answer from ``url`` sent; True when it was a new one."""
        ...


@dataclasses.dataclass(frozen=True)
class Resend:
    """Send ``request`` again, authorized with ``token``; answer with the new response."""

    request: Any
    token: Token


@dataclasses.dataclass(frozen=True)
class Renew:
    """Drop ``stale`` (refused by the API) and answer with a fresh token."""

    stale: Token


def authorize(http: HttpLibrary, request: Any, token: Token, prover: Prover) -> None:
    """Put ``token`` on ``request``: the Authorization header, and a proof if it is bound."""
    proof = (
        prover.proof(http.method(request), http.url(request), token)
        if prover.proves(token)
        else None
    )
    http.set_credentials(request, token, proof)


def needs_decision(status_code: int, token: Token) -> bool:
    """False when :func:`after_answer` would do nothing: a Bearer token answered with no 401.

    Adapters ask this first, so the common call costs no generator.
    """
    return status_code == 401 or token.token_type == "DPoP"


def _refused(http: HttpLibrary, response: Any) -> bool:
    return http.status(response) == 401


def _nonce_challenge(http: HttpLibrary, response: Any) -> bool:
    return is_nonce_challenge(http.status(response), http.header(response, "WWW-Authenticate"))


def after_answer(
    http: HttpLibrary, sent: Any, response: Any, token: Token, prover: Prover
) -> Generator[Resend | Renew, Any, None]:
    """What to do once the API answered ``sent`` (authorized with ``token``); see the module."""
    proves = prover.proves(token)
    answered = http.request_of(response)
    if http.is_redirect(response):
        if proves:
            http.drop_proof(answered)
            http.drop_proof(sent)
        return
    fresh_nonce = proves and prover.observe(http.url(answered), http.header(response, "DPoP-Nonce"))
    request = sent
    if (
        answered is not sent
        and proves
        and _refused(http, response)
        and http.has_authorization(answered)
        and http.replayable(answered)
    ):
        request = answered  # redirected carrying the token: proved for where it went
        response = yield Resend(request, token)
        fresh_nonce = prover.observe(http.url(request), http.header(response, "DPoP-Nonce"))
    if (
        fresh_nonce
        and _nonce_challenge(http, response)
        and http.has_authorization(http.request_of(response))
        and http.replayable(request)
    ):
        response = yield Resend(request, token)
        prover.observe(http.url(http.request_of(response)), http.header(response, "DPoP-Nonce"))
    if (
        _refused(http, response)
        and http.replayable(request)
        and not _nonce_challenge(http, response)
        and http.has_authorization(http.request_of(response))
    ):
        fresh: Token = yield Renew(token)
        if fresh.access_token != token.access_token:
            yield Resend(request, fresh)


def advance(steps: Generator[S, Any, None], answer: Any) -> S | None:
    """Hand ``answer`` to a decision (or a generator made on one): its next action, or
    None once it has no more."""
    try:
        return steps.send(answer)
    except StopIteration:
        return None
