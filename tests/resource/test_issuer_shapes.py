"""Tokens shaped like those of other issuers, with the settings docs/resource-servers.md gives.

Keycloak, Auth0, Azure AD and Okta do not all follow RFC 9068: most send ``typ: JWT``
(or none), some leave out ``client_id`` or ``jti``, and their scopes come in ``scope``,
``scp`` or ``roles``. The claims here follow what each documents for a token issued
to a client by the Client Credentials grant; the settings are the documented ones,
so a change that breaks a recipe fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from authkestra import InvalidToken
from tests.resource.conftest import MakeVerifier
from tests.resource.support import AUDIENCE, DROP, TestIssuer

#: name -> (header changes, claim changes, verifier settings, expected client_id, scopes)
SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], str, tuple[str, ...]]] = {
    "keycloak": (
        {"typ": "JWT"},
        {
            "client_id": DROP,
            "sub": "0c7e3b1e-5d4a-4c3e-9d1b-1f8a2f0e6b7a",  # the service account user
            "azp": "reports-job",
            "typ": "Bearer",
            "scope": "orders:read profile",
        },
        {"require_at_jwt_typ": False, "required_claims": ("iss", "exp", "aud", "sub", "iat")},
        "reports-job",
        ("orders:read", "profile"),
    ),
    "auth0": (
        {"typ": "JWT"},
        {
            "client_id": DROP,
            "sub": "reports-job@clients",
            "azp": "reports-job",
            "gty": "client-credentials",
            "jti": DROP,
            "aud": [AUDIENCE, "https://tenant.example.auth0.com/userinfo"],
            "scope": "orders:read",
        },
        {"require_at_jwt_typ": False, "required_claims": ("iss", "exp", "aud", "sub", "iat")},
        "reports-job",
        ("orders:read",),
    ),
    "azure-ad-v2": (
        {"typ": "JWT"},
        {
            "client_id": DROP,
            "jti": DROP,
            "scope": DROP,
            "sub": "6f5e1c2a-0000-4c3e-9d1b-1f8a2f0e6b7a",
            "azp": "a1b2c3d4-0000-4000-8000-00000000c11e",
            "azpacr": "1",
            "oid": "6f5e1c2a-0000-4c3e-9d1b-1f8a2f0e6b7a",
            "roles": ["Orders.Read.All"],
            "tid": "72f988bf-0000-41af-91ab-2d7cd011db47",
            "uti": "AbCdEf",
            "ver": "2.0",
        },
        {
            "require_at_jwt_typ": False,
            "required_claims": ("iss", "exp", "aud", "sub", "iat"),
            "scope_claims": ("roles",),
        },
        "a1b2c3d4-0000-4000-8000-00000000c11e",
        ("Orders.Read.All",),
    ),
    "okta": (
        {"typ": DROP},
        {
            "client_id": DROP,
            "sub": "0oa1b2c3d4reports",
            "cid": "0oa1b2c3d4reports",
            "scope": DROP,
            "scp": ["orders:read"],
            "ver": 1,
        },
        {"require_at_jwt_typ": False, "required_claims": ("iss", "exp", "aud", "sub", "iat")},
        "",  # Okta names the client in cid only: read token.claims["cid"] or token.subject
        ("orders:read",),
    ),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_documented_settings_accept_the_issuers_tokens(
    issuer: TestIssuer, make_verifier: MakeVerifier, name: str
) -> None:
    header, claims, settings, client_id, scopes = SHAPES[name]
    raw = issuer.token("rs", header=header, **claims)
    with pytest.raises(InvalidToken):  # the defaults are RFC 9068's: not these tokens
        make_verifier().verify_sync(raw)
    token = make_verifier(**settings).verify_sync(raw)
    assert token.client_id == (client_id or None)
    assert token.scopes == scopes
    assert AUDIENCE in token.audience


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_settings_still_refuse_forgeries_and_wrong_tokens(
    issuer: TestIssuer, make_verifier: MakeVerifier, name: str
) -> None:
    header, claims, settings, _, _ = SHAPES[name]
    verifier = make_verifier(**settings)
    refusals = {
        "another audience": issuer.token("rs", header=header, **{**claims, "aud": "other"}),
        "another issuer": issuer.token("rs", header=header, **{**claims, "iss": "https://x"}),
        "expired": issuer.token("rs", header=header, **{**claims, "exp": 1_000_000}),
        "signature": issuer.token("attacker-rs", header={**header, "kid": "rs-1"}, **claims),
        "ID token": issuer.token("rs", header=header, **{**claims, "nonce": "n-0S6"}),
        "typ": issuer.token("rs", header={**header, "typ": "dpop+jwt"}, **claims),
    }
    for reason, token in refusals.items():
        with pytest.raises(InvalidToken, match=reason):
            verifier.verify_sync(token)


def test_roles_as_scopes_only_when_asked(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    """A user's roles are not a client's scopes unless the API says they are."""
    raw = issuer.token(scope=DROP, roles=["Orders.Admin"])
    assert make_verifier().verify_sync(raw).scopes == ()
    assert make_verifier(scope_claims=("roles",)).verify_sync(raw).scopes == ("Orders.Admin",)
    both = issuer.token(scope="orders:read", roles=["Orders.Admin"])
    assert make_verifier(scope_claims=("roles",)).verify_sync(both).scopes == ("Orders.Admin",)
    assert make_verifier(scope_claims=("scope", "roles")).verify_sync(both).scopes == (
        "orders:read",
    )
    with pytest.raises(InvalidToken, match="roles claim is not a list of scopes"):
        make_verifier(scope_claims=("roles",)).verify_sync(issuer.token(roles=[1]))
