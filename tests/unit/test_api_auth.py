"""The one decision for calling an API with a token, driven by hand (no HTTP library)."""

from __future__ import annotations

import dataclasses
from typing import Any

from authkestra import Token
from authkestra._protocol.api_auth import Renew, Resend, after_answer, authorize, needs_decision

BEARER = Token("bearer-1")
DPOP = Token("dpop-1", token_type="DPoP")


@dataclasses.dataclass
class Req:
    url: str = "https://api.example/r"
    method: str = "GET"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body_kept: bool = True


@dataclasses.dataclass
class Resp:
    status: int
    request: Req
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    redirect: bool = False


class Library:
    def method(self, request: Req) -> str:
        return request.method

    def url(self, request: Req) -> str:
        return request.url

    def replayable(self, request: Req) -> bool:
        return request.body_kept

    def has_authorization(self, request: Req) -> bool:
        return "Authorization" in request.headers

    def set_credentials(self, request: Req, token: Token, proof: str | None) -> None:
        request.headers["Authorization"] = token.authorization
        if proof is None:
            request.headers.pop("DPoP", None)
        else:
            request.headers["DPoP"] = proof

    def drop_proof(self, request: Req) -> None:
        request.headers.pop("DPoP", None)

    def status(self, response: Resp) -> int:
        return response.status

    def header(self, response: Resp, name: str) -> str | None:
        return response.headers.get(name)

    def request_of(self, response: Resp) -> Req:
        return response.request

    def is_redirect(self, response: Resp) -> bool:
        return response.redirect


class Prover:
    def __init__(self) -> None:
        self.nonces: dict[str, str] = {}
        self.proofs = 0

    def proves(self, token: Token) -> bool:
        return token.token_type == "DPoP"

    def proof(self, method: str, url: str, token: Token) -> str:
        self.proofs += 1
        return f"proof-{self.proofs}:{method}:{url}:{self.nonces.get('o', '')}"

    def observe(self, url: str, nonce: str | None) -> bool:
        if nonce is None or self.nonces.get("o") == nonce:
            return False
        self.nonces["o"] = nonce
        return True


HTTP = Library()


def drive(sent: Req, first: Resp, token: Token, prover: Prover, answers: list[Any]) -> list[Any]:
    """Run the decision, answering each action with the next of ``answers``; the actions."""
    decision = after_answer(HTTP, sent, first, token, prover)
    actions: list[Any] = []
    answer: Any = None
    while True:
        try:
            action = decision.send(answer)
        except StopIteration:
            return actions
        actions.append(action)
        if isinstance(action, Resend):
            authorize(HTTP, action.request, action.token, prover)
        answer = answers.pop(0)


def test_a_bearer_answer_needs_no_decision_unless_401() -> None:
    assert not needs_decision(200, BEARER)
    assert not needs_decision(403, BEARER)
    assert needs_decision(401, BEARER)
    assert needs_decision(200, DPOP)


def test_authorize_sets_the_header_and_a_proof_only_for_a_bound_token() -> None:
    prover = Prover()
    request = Req(headers={"DPoP": "stale"})
    authorize(HTTP, request, BEARER, prover)
    assert request.headers == {"Authorization": "Bearer bearer-1"}  # the stale proof is gone
    authorize(HTTP, request, DPOP, prover)
    assert request.headers["Authorization"] == "DPoP dpop-1"
    assert request.headers["DPoP"].startswith("proof-1:GET:https://api.example/r")


def test_a_401_renews_the_token_and_sends_once_more() -> None:
    sent = Req()
    authorize(HTTP, sent, BEARER, Prover())
    fresh = Token("bearer-2")
    actions = drive(sent, Resp(401, sent), BEARER, Prover(), [fresh, Resp(401, sent)])
    assert actions == [Renew(BEARER), Resend(sent, fresh)]
    assert sent.headers["Authorization"] == "Bearer bearer-2"


def test_no_retry_when_the_same_token_comes_back() -> None:
    sent = Req(headers={"Authorization": "Bearer bearer-1"})
    actions = drive(sent, Resp(401, sent), BEARER, Prover(), [BEARER])
    assert actions == [Renew(BEARER)]


def test_no_retry_for_a_body_that_cannot_go_again_or_a_request_that_lost_its_token() -> None:
    streamed = Req(headers={"Authorization": "Bearer bearer-1"}, body_kept=False)
    assert drive(streamed, Resp(401, streamed), BEARER, Prover(), []) == []
    elsewhere = Req(url="https://other.example/r")  # redirected: the library dropped the token
    sent = Req(headers={"Authorization": "Bearer bearer-1"})
    assert drive(sent, Resp(401, elsewhere), BEARER, Prover(), []) == []


def test_a_nonce_challenge_is_answered_once_with_the_nonce() -> None:
    prover = Prover()
    sent = Req()
    authorize(HTTP, sent, DPOP, prover)
    challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n1"}
    again = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n1"}
    actions = drive(sent, Resp(401, sent, challenge), DPOP, prover, [Resp(401, sent, again)])
    assert actions == [Resend(sent, DPOP)]  # the same nonce again: no second try, no renewal
    assert sent.headers["DPoP"].endswith(":n1")


def test_a_redirected_request_is_proved_for_where_it_went() -> None:
    prover = Prover()
    sent = Req()
    authorize(HTTP, sent, DPOP, prover)
    hop = Req(url="https://api.example/moved", headers=dict(sent.headers))  # the old proof
    actions = drive(sent, Resp(401, hop), DPOP, prover, [Resp(200, hop)])
    assert actions == [Resend(hop, DPOP)]
    assert ":https://api.example/moved:" in hop.headers["DPoP"]


def test_a_redirect_answer_takes_the_proof_off_both_requests() -> None:
    prover = Prover()
    sent = Req()
    authorize(HTTP, sent, DPOP, prover)
    hop = Req(headers=dict(sent.headers))
    assert drive(sent, Resp(302, hop, redirect=True), DPOP, prover, []) == []
    assert "DPoP" not in sent.headers and "DPoP" not in hop.headers
    assert sent.headers["Authorization"] == "DPoP dpop-1"  # the token itself is left alone


def test_every_answer_leaves_its_nonce() -> None:
    prover = Prover()
    sent = Req()
    authorize(HTTP, sent, DPOP, prover)
    assert drive(sent, Resp(200, sent, {"DPoP-Nonce": "n7"}), DPOP, prover, []) == []
    assert prover.nonces == {"o": "n7"}
