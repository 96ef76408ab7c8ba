"""The registration rules (server/registration.py), as every way in -- CLI, demo, admin API -- uses them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from authkestra import AuthMethod
from authkestra.server.context import hasher_for, secret_box_for
from authkestra.server.registration import (
    SUPPORTED_AUTH_METHODS,
    ClientSpec,
    RegistrationError,
    Registry,
)
from authkestra.server.settings import ServerSettings
from authkestra.server.store import ClientExists, Store, UnknownClient


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    settings = ServerSettings(db=f"sqlite:///{tmp_path}/authkestra.db")
    store = Store(settings.db)
    store.migrate()
    yield Registry(store, settings)
    store.close()


def public_jwks() -> str:
    key = ECKey.generate_key("P-256", private=True)
    return json.dumps({"keys": [key.as_dict(private=False)]})


def test_a_secret_client_gets_a_secret_stored_only_as_its_hash(registry: Registry) -> None:
    issued = registry.create(ClientSpec("svc", scopes=["read write", "read"]))
    assert issued.secret is not None and len(issued.secret) >= 43
    assert issued.secret not in repr(issued)
    client = registry.store.get_client("svc")
    assert client.scopes == ("read", "write")
    assert client.method is AuthMethod.CLIENT_SECRET_BASIC
    (stored,) = client.secrets
    assert stored.value == hasher_for(registry.settings, registry.store).hash(issued.secret)
    assert stored.encrypted is None
    with pytest.raises(ClientExists):
        registry.create(ClientSpec("svc"))


def test_a_client_secret_jwt_client_keeps_its_secret_sealed(registry: Registry) -> None:
    issued = registry.create(ClientSpec("hs", AuthMethod.CLIENT_SECRET_JWT))
    (stored,) = registry.store.get_client("hs").secrets
    assert stored.encrypted is not None and issued.secret not in stored.encrypted
    box = secret_box_for(registry.settings, registry.store)
    assert box.decrypt(stored.encrypted, "hs") == issued.secret
    rotated = registry.rotate_secret("hs", timedelta(seconds=5))
    assert rotated.secret != issued.secret and rotated.old_secrets_until is not None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (ClientSpec("bad id"), "letters, digits"),
        (ClientSpec("x" * 129), "at most 128"),
        (ClientSpec("svc", AuthMethod.NONE), "only confidential clients"),
        (ClientSpec("svc", "password"), "authenticates clients with client_secret_basic"),  # type: ignore[arg-type]
        (ClientSpec("svc", scopes=['say"hi']), "RFC 6749"),
        (ClientSpec("svc", scopes=["a"], default_scopes=["b"]), "default_scopes must be among"),
        (ClientSpec("svc", audiences=["a b"]), "audience"),
        (ClientSpec("svc", token_ttl=0), "token_ttl"),
        (ClientSpec("svc", AuthMethod.PRIVATE_KEY_JWT), "jwks or jwks_uri"),
        (ClientSpec("svc", jwks="{}"), "go with auth_method private_key_jwt"),
        (
            ClientSpec("svc", AuthMethod.PRIVATE_KEY_JWT, jwks_uri="http://keys.example/j"),
            "jwks_uri: the jwks_uri must be https",
        ),
        (ClientSpec("svc", AuthMethod.PRIVATE_KEY_JWT, jwks='{"keys": []}'), "jwks: a JWK Set"),
        (ClientSpec("svc", AuthMethod.TLS_CLIENT_AUTH), "exactly one certificate subject"),
        (
            ClientSpec("svc", AuthMethod.TLS_CLIENT_AUTH, tls_subjects={"san_ip": "1.2.3"}),
            "tls_subject_san_ip:",
        ),
        (ClientSpec("svc", tls_subjects={"san_dns": "a.example"}), "go with auth_method"),
        (ClientSpec("svc", AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH), "needs the client's cert"),
        (ClientSpec("svc", certificates=["x"]), "certificates goes with auth_method"),
    ],
)
def test_refusals_name_the_field(registry: Registry, spec: ClientSpec, words: str) -> None:
    with pytest.raises(RegistrationError) as refused:
        registry.create(spec)
    assert words in str(refused.value)
    assert registry.store.list_clients() == []  # nothing half-written


def test_refusals_in_the_callers_words() -> None:
    error = RegistrationError("{jwks} and {jwks_uri} go with {auth_method} private_key_jwt")
    assert str(error) == "jwks and jwks_uri go with auth_method private_key_jwt"
    spelled = error.describe(lambda field: "--" + field.replace("_", "-"))
    assert spelled == "--jwks and --jwks-uri go with --auth-method private_key_jwt"


def test_keys_are_replaced_only_for_clients_without_a_secret(registry: Registry) -> None:
    registry.create(ClientSpec("pk", AuthMethod.PRIVATE_KEY_JWT, jwks=public_jwks()))
    before = registry.store.get_client("pk").jwks
    issued = registry.set_keys("pk", jwks=public_jwks())
    assert issued.key_ids and registry.store.get_client("pk").jwks != before
    registry.create(ClientSpec("plain"))
    with pytest.raises(RegistrationError, match="has no keys"):
        registry.set_keys("plain", jwks=public_jwks())
    with pytest.raises(RegistrationError, match="not a secret"):
        registry.rotate_secret("pk")
    with pytest.raises(UnknownClient):
        registry.set_keys("nobody", jwks=public_jwks())


def test_the_server_declares_the_methods_it_supports() -> None:
    assert AuthMethod.NONE not in SUPPORTED_AUTH_METHODS
    assert set(SUPPORTED_AUTH_METHODS) == set(AuthMethod) - {AuthMethod.NONE}
