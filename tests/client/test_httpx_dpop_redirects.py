"""flow.auth() with DPoP when httpx follows redirects (sync and async), on real servers.

httpx follows a redirect inside one auth step, with the first request's proof,
which names another URL. The same deployment as for requests: tokens from
``authkestra serve``, an API behind our own BearerTokenMiddleware that checks
every proof, and a recorder of what arrived.
"""

from __future__ import annotations

import anyio
import httpx

from tests.client.test_requests_dpop import (  # the deployment fixtures and checks
    Deployment,
    _checked_proof,
    _distinct_jtis,
    _token_of,
    api,
    deployment,
)

__all__ = ["api", "deployment"]  # fixtures used by name


def _get(flow_auth: httpx.Auth, url: str, *, use_async: bool) -> httpx.Response:
    if not use_async:
        with httpx.Client(auth=flow_auth, follow_redirects=True, timeout=10) as client:
            return client.get(url)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(auth=flow_auth, follow_redirects=True, timeout=10) as client:
            return await client.get(url)

    return anyio.run(run)


def test_a_redirect_on_the_same_origin_gets_a_proof_of_its_own(api: Deployment) -> None:
    for use_async in (False, True):
        api.recorder.arrived.clear()
        response = _get(api.flow().auth(["read"]), f"{api.url}/moved?x=1", use_async=use_async)
        assert response.status_code == 200, response.text
        arrived = api.recorder.arrived
        assert [(a.path, a.status) for a in arrived] == [
            ("/moved", 307),
            ("/items", 401),  # httpx followed with the first proof, made for /moved
            ("/items", 200),  # proved again, for /items
        ]
        proofs = [_checked_proof(arrived[0], api.url), _checked_proof(arrived[2], api.url)]
        _distinct_jtis(proofs)
        assert len({_token_of(a) for a in arrived}) == 1  # the token was not thrown away


def test_a_redirect_to_another_origin_gets_no_token_and_no_retry(api: Deployment) -> None:
    for use_async in (False, True):
        api.recorder.arrived.clear()
        flow = api.flow()
        response = _get(flow.auth(["read"]), f"{api.url}/away", use_async=use_async)
        assert response.status_code == 401
        arrived = api.recorder.arrived
        assert [(a.path, a.status) for a in arrived] == [("/away", 307), ("/items", 401)]
        assert arrived[1].header("host") == api.other_origin.removeprefix("http://")
        assert arrived[1].header("authorization") is None
        # The token is still the flow's: the other origin's 401 said nothing about it.
        assert flow.get_token_sync(["read"]).access_token == _token_of(arrived[0])


def test_a_nonce_challenge_from_another_origin_is_not_answered(api: Deployment) -> None:
    api.gate.enabled = True  # both origins ask for nonces
    for use_async in (False, True):
        api.recorder.arrived.clear()
        api.gate.issued = 0
        response = _get(api.flow().auth(["read"]), f"{api.url}/away", use_async=use_async)
        assert response.status_code == 401
        arrived = api.recorder.arrived
        assert [(a.path, a.status) for a in arrived] == [
            ("/away", 401),  # the API's own nonce challenge: answered
            ("/away", 307),
            ("/items", 401),  # the other origin's challenge, to a request without the token
        ]
        assert arrived[2].header("authorization") is None
