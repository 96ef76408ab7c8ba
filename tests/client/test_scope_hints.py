"""A comma-separated scope list is one scope to a server: the refusal says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authkestra import ClientCredentialsFlow, InvalidScope
from tests.support.authkestra_server import AuthkestraServer


@pytest.fixture(scope="module")
def server() -> Iterator[AuthkestraServer]:
    served = AuthkestraServer()
    yield served
    served.stop()


def test_a_comma_in_a_refused_scope_is_pointed_out(server: AuthkestraServer) -> None:
    client_id, secret = server.create_client("svc", "--scope", "read write")
    flow = ClientCredentialsFlow(client_id, secret, server.token_url)
    with pytest.raises(InvalidScope) as caught:
        flow.get_token_sync("read,write")
    assert "'read,write' has a comma: scopes are separated by spaces" in str(caught.value)
    assert flow.get_token_sync("read write").scope == "read write"
    with pytest.raises(InvalidScope) as plain:
        flow.get_token_sync("admin")
    assert "comma" not in str(plain.value)  # no hint where it would mislead
