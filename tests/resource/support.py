"""An issuer the resource-server tests control: keys, a JWKS on the hostile server, tokens.

Tokens are signed here, by hand, so a test can put anything in a header or a payload --
the corpus of forgeries needs exactly what no well-behaved library would produce.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from tests.support.clock import FakeClock
from tests.support.hostile_server import HostileServer, Received, Reply

AUDIENCE = "https://api.example.test/"
#: A claim value meaning "leave this claim out".
DROP: Any = object()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(part: dict[str, Any] | list[Any] | bytes | str) -> str:
    """A token segment: JSON-encode dicts and lists, take bytes as they are, then base64url."""
    if isinstance(part, (dict, list)):
        part = json.dumps(part).encode()
    elif isinstance(part, str):
        part = part.encode()
    return b64url(part)


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A private key with the kid and alg it is published (or not) under."""

    kid: str
    alg: str
    key: Any  # a joserfc key, or a cryptography RSA key for the weak one

    def public_jwk(self) -> dict[str, Any]:
        if isinstance(self.key, rsa.RSAPrivateKey):
            numbers = self.key.public_key().public_numbers()

            def integer(value: int) -> str:
                return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

            jwk = {"kty": "RSA", "n": integer(numbers.n), "e": integer(numbers.e)}
        else:
            jwk = self.key.as_dict(private=False)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def sign(self, signing_input: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        if isinstance(self.key, rsa.RSAPrivateKey):
            assert alg == "RS256"
            return self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return bytes(JWSRegistry.algorithms[alg].sign(signing_input, self.key))


@functools.cache
def keys() -> dict[str, SigningKey]:
    """Every key the tests use, made once: the issuer's, an attacker's, a too-weak one."""
    return {
        "es": SigningKey("es-1", "ES256", ECKey.generate_key("P-256", private=True)),
        "ed": SigningKey("ed-1", "EdDSA", OKPKey.generate_key("Ed25519", private=True)),
        "rs": SigningKey("rs-1", "RS256", RSAKey.generate_key(2048, private=True)),
        "attacker-es": SigningKey(
            "attacker-es", "ES256", ECKey.generate_key("P-256", private=True)
        ),
        "attacker-rs": SigningKey("attacker-rs", "RS256", RSAKey.generate_key(2048, private=True)),
        # joserfc warns about (and pytest turns into errors) RSA keys under 2048 bits.
        "weak-rs": SigningKey(
            "weak-rs", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)
        ),
    }


def sign_compact(
    header: dict[str, Any] | list[Any] | bytes | str,
    payload: dict[str, Any] | list[Any] | bytes | str,
    key: SigningKey | None,
    alg: str | None = None,
) -> str:
    """header.payload.signature; no signature when ``key`` is None."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = key.sign(signing_input.encode(), alg) if key is not None else b""
    return f"{signing_input}.{b64url(signature)}"


class TestIssuer:
    """An issuer on the hostile server: ``/jwks`` serves ``published``; tokens come from ``token``.

    ``jwks_reply`` (a Reply, or a function of the request) replaces the JWKS answer, to
    take the issuer down or make it misbehave; ``metadata`` turns on RFC 8414 discovery.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self, server: HostileServer, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.url = server.url
        self.jwks_url = f"{server.url}/jwks"
        self.published = [keys()[name].public_jwk() for name in ("es", "ed", "rs")]
        self.jwks_headers: dict[str, str] = {}
        self.jwks_reply: Reply | Any | None = None
        self.metadata = False
        server.script = self._answer

    def _answer(self, request: Received) -> Reply:
        path = request.path.split("?")[0]
        if path == "/jwks":
            if self.jwks_reply is None:
                return Reply(200, json.dumps({"keys": self.published}), headers=self.jwks_headers)
            if isinstance(self.jwks_reply, Reply):
                return self.jwks_reply
            return self.jwks_reply(request)  # type: ignore[no-any-return]
        if path == "/.well-known/oauth-authorization-server" and self.metadata:
            document = {"issuer": self.url, "jwks_uri": self.jwks_url}
            return Reply(200, json.dumps(document))
        return Reply(404, "{}")

    def requests_to(self, path: str) -> int:
        return sum(1 for r in self.server.received if r.path.split("?")[0] == path)

    @property
    def jwks_requests(self) -> int:
        return self.requests_to("/jwks")

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "billing-service",
            "client_id": "billing-service",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "scope": "read write",
        }
        for name, value in overrides.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def header(self, key: SigningKey, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
        for name, value in overrides.items():
            if value is DROP:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def token(
        self,
        key: str = "es",
        *,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with ``keys()[key]``; ``header`` overrides header members."""
        signer = keys()[key]
        return sign_compact(self.header(signer, **(header or {})), self.claims(**claims), signer)
