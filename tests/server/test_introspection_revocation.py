"""POST /introspect (RFC 7662) and POST /revoke (RFC 7009), both client-authenticated."""

from __future__ import annotations

import json
import time

import pytest

from tests.server.harness import (
    API,
    ISSUER,
    InProcessServer,
    assert_oauth_error,
    b64url,
    jose_part,
    poll,
)


@pytest.fixture
def owner(server: InProcessServer) -> tuple[str, str]:
    return server.add_client(scopes=("read", "write"))


@pytest.fixture
def api(server: InProcessServer) -> tuple[str, str]:
    """A resource server, registered as a client that may introspect the tokens meant for it."""
    return server.add_client(scopes=(), audiences=(API,), introspection="audience")


# -- who may introspect what --------------------------------------------------------------

OTHER_API = "https://other-api.example.test/"


def test_a_client_without_the_right_learns_nothing(
    server: InProcessServer, owner: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    caller = server.add_client(audiences=(API,), introspection=None)
    assert server.introspect(token, caller) == {"active": False}
    assert server.introspect(token, owner)["active"] is True  # a caller with the right
    # Its own token too: the right is about asking, not about owning.
    own = server.access_token(caller)
    assert server.introspect(own, caller) == {"active": False}


def test_the_audience_right_covers_the_tokens_meant_for_its_audiences_only(
    server: InProcessServer,
) -> None:
    owner = server.add_client(audiences=(API, OTHER_API))
    for_api = server.access_token(owner, audience=API)
    for_other = server.access_token(owner, audience=OTHER_API)
    api = server.add_client(scopes=(), audiences=(API,), introspection="audience")
    assert server.introspect(for_api, api)["active"] is True
    assert server.introspect(for_other, api) == {"active": False}
    both = server.add_client(scopes=(), audiences=(OTHER_API, API), introspection="audience")
    assert server.introspect(for_api, both)["active"] is True
    assert server.introspect(for_other, both)["active"] is True


def test_the_any_right_covers_every_token(server: InProcessServer) -> None:
    owner = server.add_client(audiences=(OTHER_API,))
    token = server.access_token(owner)
    gateway = server.add_client(scopes=(), audiences=(), introspection="any")
    assert server.introspect(token, gateway)["aud"] == OTHER_API


def test_the_right_is_given_and_taken_with_the_cli(server: InProcessServer) -> None:
    from tests.server.test_clients_cli import create, run

    owner = server.add_client(audiences=(API,))
    token = server.access_token(owner)
    caller = create(server.db, "reporting-api", "--audience", API)
    assert server.introspect(token, caller) == {"active": False}
    code, out, err = run(
        "clients", "update", "reporting-api", "--can-introspect", "audience", "--format", "json",
        "--db", server.db,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["can_introspect"] == "audience"
    poll(lambda: server.introspect(token, caller)["active"] is True)
    code, _, err = run(
        "clients", "update", "reporting-api", "--can-introspect", "none", "--db", server.db
    )
    assert code == 0, err
    poll(lambda: server.introspect(token, caller) == {"active": False})
    code, _, err = run(
        "clients", "update", "reporting-api", "--can-introspect", "all", "--db", server.db
    )
    assert code == 2
    assert "--can-introspect is one of: audience, any (or none)" in err


# -- introspection -----------------------------------------------------------------------


def test_valid_token_is_active_with_its_claims(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner, scope="read")
    response = server.form("/introspect", {"token": token}, basic=api)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    claims = jose_part(token, 1)
    assert answer == {
        "active": True,
        "token_type": "Bearer",
        "scope": "read",
        "client_id": owner[0],
        "sub": owner[0],
        "aud": API,
        "iss": ISSUER,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": claims["jti"],
    }


def test_token_type_hint_is_accepted(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    for hint in ("access_token", "refresh_token", "whatever"):
        response = server.form("/introspect", {"token": token, "token_type_hint": hint}, basic=api)
        assert response.json()["active"] is True


def test_post_client_can_introspect(server: InProcessServer, owner: tuple[str, str]) -> None:
    api_id, api_secret = server.add_client(auth_method="client_secret_post")
    token = server.access_token(owner)
    response = server.form(
        "/introspect", {"token": token, "client_id": api_id, "client_secret": api_secret}
    )
    assert response.json()["active"] is True


def test_introspection_requires_client_authentication(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    assert_oauth_error(server.form("/introspect", {"token": token}), "invalid_client", 400)
    response = server.form("/introspect", {"token": token}, basic=(api[0], "wrong"))
    assert_oauth_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic ")
    response = server.form("/introspect", {"token": token, "client_id": api[0]})
    assert_oauth_error(response, "invalid_client", 400)
    # Nothing about the token leaks to an unauthenticated caller.
    assert "active" not in response.json()


def test_disabled_caller_cannot_introspect(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    server.ctx.store.set_enabled(api[0], False)
    assert_oauth_error(server.form("/introspect", {"token": token}, basic=api), "invalid_client")


def test_unknown_token_is_inactive(server: InProcessServer, api: tuple[str, str]) -> None:
    assert server.introspect("not-a-token", api) == {"active": False}


def test_expired_token_is_inactive(server: InProcessServer, api: tuple[str, str]) -> None:
    short = server.add_client(token_ttl=1)
    token = server.access_token(short)
    assert jose_part(token, 1)["exp"] - jose_part(token, 1)["iat"] == 1
    # Active at first (unless this machine is very slow), then inactive once exp passes.
    poll(lambda: server.introspect(token, api) == {"active": False}, timeout=10, interval=0.2)
    assert jose_part(token, 1)["exp"] <= time.time()


def test_token_past_its_exp_is_inactive_at_once(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    now = int(time.time())
    expired = server.sign(server.claims_for(owner[0], iat=now - 60, exp=now - 1))
    assert server.introspect(expired, api) == {"active": False}
    fresh = server.sign(server.claims_for(owner[0], iat=now - 60, exp=now + 60))
    assert server.introspect(fresh, api)["active"] is True


def test_revoked_token_is_inactive(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    other = server.access_token(owner)
    response = server.revoke(token, owner)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert server.introspect(token, api) == {"active": False}
    assert server.introspect(other, api)["active"] is True  # only that token
    assert server.ctx.store.is_revoked(jose_part(token, 1)["jti"])
    # Revoking it again is fine.
    assert server.revoke(token, owner).status_code == 200


def test_tokens_of_a_disabled_client_are_inactive_until_it_is_enabled(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    server.ctx.store.set_enabled(owner[0], False)
    assert server.introspect(token, api) == {"active": False}
    server.ctx.store.set_enabled(owner[0], True)
    assert server.introspect(token, api)["active"] is True


def test_tokens_of_a_deleted_client_are_inactive(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    server.ctx.store.delete_client(owner[0])
    assert server.introspect(token, api) == {"active": False}


def test_tokens_of_a_deleted_client_stay_inactive_when_the_id_is_registered_again(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    now = int(time.time())
    # Issued to the first client of that id an hour ago, still unexpired.
    old = server.sign(server.claims_for(owner[0], iat=now - 3600, exp=now + 3600))
    assert server.introspect(old, api)["active"] is False  # older than the client itself
    server.ctx.store.delete_client(owner[0])
    successor = server.add_client(owner[0])
    assert server.introspect(old, api) == {"active": False}
    assert server.introspect(server.access_token(successor), api)["active"] is True


def test_forged_token_is_inactive(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner, scope="read")
    header, _, signature = token.split(".")
    claims = jose_part(token, 1)
    forged_payload = b64url(json.dumps({**claims, "scope": "read write"}).encode())
    forged = f"{header}.{forged_payload}.{signature}"
    assert server.introspect(forged, api) == {"active": False}
    assert server.introspect(token, api)["active"] is True


def test_token_of_another_issuer_signed_with_our_key_is_inactive(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.sign(server.claims_for(owner[0], iss="https://other.example.test"))
    assert server.introspect(token, api) == {"active": False}


# -- revocation --------------------------------------------------------------------------


def test_unknown_tokens_are_revoked_with_200(
    server: InProcessServer, owner: tuple[str, str]
) -> None:
    for token in ("unknown", "a.b.c", "x" * 5000):
        response = server.revoke(token, owner)
        assert response.status_code == 200
        assert response.content == b""


def test_a_client_cannot_revoke_another_clients_token(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    intruder = server.add_client()
    response = server.revoke(token, intruder)
    # Answered like any token it cannot revoke: no oracle for other clients' tokens.
    assert response.status_code == 200
    assert server.introspect(token, api)["active"] is True
    assert not server.ctx.store.is_revoked(jose_part(token, 1)["jti"])


def test_revocation_requires_client_authentication(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    assert_oauth_error(server.form("/revoke", {"token": token}), "invalid_client", 400)
    assert_oauth_error(
        server.form("/revoke", {"token": token}, basic=(owner[0], "wrong")), "invalid_client", 401
    )
    assert server.introspect(token, api)["active"] is True


def test_revocation_needs_a_token(server: InProcessServer, owner: tuple[str, str]) -> None:
    assert_oauth_error(server.form("/revoke", {}, basic=owner), "invalid_request", 400)


def test_post_client_revokes_its_token(server: InProcessServer, api: tuple[str, str]) -> None:
    client_id, secret = server.add_client(auth_method="client_secret_post")
    response = server.token((client_id, secret), post=True)
    token = response.json()["access_token"]
    revoked = server.form(
        "/revoke",
        {
            "token": token,
            "token_type_hint": "access_token",
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert revoked.status_code == 200
    assert server.introspect(token, api) == {"active": False}


def test_revoked_client_still_gets_new_tokens(
    server: InProcessServer, owner: tuple[str, str], api: tuple[str, str]
) -> None:
    token = server.access_token(owner)
    server.revoke(token, owner)
    fresh = server.access_token(owner)
    assert server.introspect(fresh, api)["active"] is True


def test_revocations_are_purged_after_expiry(
    server: InProcessServer, owner: tuple[str, str]
) -> None:
    now = int(time.time())
    # Valid for 4-5 s (int() drops up to a second): long enough to be revoked on a busy
    # machine, short enough to be purged soon after.
    token = server.sign(server.claims_for(owner[0], iat=now - 10, exp=now + 5))
    assert server.revoke(token, owner).status_code == 200
    jti = jose_part(token, 1)["jti"]
    assert server.ctx.store.is_revoked(jti)
    poll(lambda: server.ctx.store.purge_revocations() >= 1, timeout=30, interval=0.2)
    assert not server.ctx.store.is_revoked(jti)


def test_a_token_checked_once_is_not_trusted_past_its_key_or_with_another_signature(
    server: InProcessServer,
) -> None:
    """Signatures found good are remembered (a token introspected again is not verified
    again) -- by the whole token, and only while its key is published."""
    from datetime import timedelta

    client = server.add_client()
    token = server.access_token(client)
    assert server.introspect(token, client)["active"] is True
    assert server.introspect(token, client)["active"] is True  # remembered
    head, payload, signature = token.split(".")
    other = "A" if signature[0] != "A" else "B"
    assert server.introspect(f"{head}.{payload}.{other}{signature[1:]}", client) == {
        "active": False
    }
    kid = jose_part(token, 0)["kid"]
    server.ctx.keys.withdraw(kid, keep_others_for=timedelta(0))
    assert server.introspect(token, client) == {"active": False}
