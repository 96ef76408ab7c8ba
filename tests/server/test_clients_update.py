"""``authkestra clients update`` and ``keys withdraw``: changes without a new secret, checked by
the registration rules, seen by a running server."""

from __future__ import annotations

import json

import pytest

from tests.server.harness import InProcessServer, assert_oauth_error, jose_part, poll
from tests.server.test_clients_cli import create, run

API, OTHER = "https://api.example.test/", "https://other.example.test/"


def update(server: InProcessServer, client_id: str, *args: str) -> dict[str, object]:
    code, out, err = run(
        "clients", "update", client_id, *args, "--format", "json", "--db", server.db
    )
    assert code == 0, err
    document = json.loads(out)
    assert isinstance(document, dict)
    return document


def test_update_changes_scopes_audiences_and_lifetime_and_keeps_the_secret(
    server: InProcessServer,
) -> None:
    client = create(server.db, "svc", "--scope", "read", "--audience", API)
    before = server.access_token(client)
    assert jose_part(before, 1)["scope"] == "read"
    document = update(
        server, "svc", "--scope", "read", "--scope", "write", "--audience", OTHER,
        "--token-ttl", "120",
    )  # fmt: skip
    assert document["scopes"] == ["read", "write"] and document["audiences"] == [OTHER]
    assert document["token_ttl"] == 120

    def updated() -> bool:
        answer = server.token(client, {"scope": "read write"})
        return answer.status_code == 200

    poll(updated)  # the same secret, the new scopes (the server's client cache is 0 s here)
    claims = jose_part(server.access_token(client, scope="write"), 1)
    assert claims["aud"] == OTHER
    assert claims["exp"] - claims["iat"] == 120
    # Back to the server's default lifetime.
    assert update(server, "svc", "--default-token-ttl")["token_ttl"] is None


def test_narrowed_scopes_narrow_the_default_scopes(server: InProcessServer) -> None:
    create(server.db, "svc", "--scope", "read", "--scope", "write", "--default-scope", "write")
    document = update(server, "svc", "--scope", "read")
    assert document["scopes"] == ["read"] and document["default_scopes"] is None
    document = update(server, "svc", "--scope", "read write", "--default-scope", "read")
    assert document["default_scopes"] == ["read"]
    assert update(server, "svc", "--all-scopes-by-default")["default_scopes"] is None


def test_disable_and_enable_through_update(server: InProcessServer) -> None:
    client = create(server.db, "svc")
    assert update(server, "svc", "--disable")["enabled"] is False
    assert_oauth_error(server.token(client), "invalid_client", 401)
    assert update(server, "svc", "--enable")["enabled"] is True
    assert server.token(client).status_code == 200


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "nothing to change"),
        (("--default-scope", "admin"), "--default-scope must be among its --scope values"),
        (("--audience", "has space"), "an audience must be a non-empty URI without spaces"),
        (("--scope", 'bad"scope'), "a scope has characters RFC 6749 does not allow"),
        (("--can-introspect", "everything"), "--can-introspect is one of"),
        (("--token-ttl", "5", "--default-token-ttl"), "--token-ttl and --default-token-ttl"),
        (
            ("--jwks-uri", "https://keys.example.test/"),
            "is a client_secret_basic client: it has no keys",
        ),
    ],
)
def test_update_refusals_are_one_line_and_change_nothing(
    server: InProcessServer, args: tuple[str, ...], said: str
) -> None:
    create(server.db, "svc", "--scope", "read")
    before = run("clients", "show", "svc", "--format", "json", "--db", server.db)[1]
    code, out, err = run("clients", "update", "svc", *args, "--db", server.db)
    assert code == 2, err
    assert out == ""
    assert said in err and err.count("\n") == 1 + err.count("authkestra: store")
    assert run("clients", "show", "svc", "--format", "json", "--db", server.db)[1] == before


def test_update_of_an_unknown_client(server: InProcessServer) -> None:
    code, _, err = run("clients", "update", "ghost", "--disable", "--db", server.db)
    assert code == 3 and "no client 'ghost'" in err


# -- keys withdraw ------------------------------------------------------------------------------


def test_withdrawing_the_signing_key_replaces_it_at_once(server: InProcessServer) -> None:
    client = server.add_client()
    token = server.access_token(client)
    kid = jose_part(token, 0)["kid"]
    code, out, err = run("keys", "withdraw", kid, "--db", server.db)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"key {kid} withdrawn and deleted"
    new_kid = lines[1].split()[3].rstrip(",")
    listed = json.loads(run("keys", "list", "--format", "json", "--db", server.db)[1])
    assert [k["kid"] for k in listed] == [new_kid]
    assert listed[0]["signing"] is True
    # The running server: the old key is gone from the JWKS, its tokens are inactive.
    poll(lambda: [k["kid"] for k in server.jwks()["keys"]] == [new_kid])
    assert server.introspect(token, client) == {"active": False}
    assert jose_part(server.access_token(client), 0)["kid"] == new_kid


def test_withdrawing_a_retired_key_leaves_the_signing_one(server: InProcessServer) -> None:
    assert run("keys", "rotate", "--publish-ahead", "0", "--db", server.db)[0] == 0
    listed = json.loads(run("keys", "list", "--format", "json", "--db", server.db)[1])
    old = next(k["kid"] for k in listed if not k["signing"])
    signing = next(k["kid"] for k in listed if k["signing"])
    code, out, err = run("keys", "withdraw", old, "--db", server.db)
    assert code == 0, err
    assert out == f"key {old} withdrawn and deleted\n"
    listed = json.loads(run("keys", "list", "--format", "json", "--db", server.db)[1])
    assert [k["kid"] for k in listed] == [signing]


def test_withdrawing_an_unknown_key(server: InProcessServer) -> None:
    code, out, err = run("keys", "withdraw", "nope", "--db", server.db)
    assert code == 3 and out == ""
    assert "no published key 'nope'" in err
