"""Trusting external issuers: the rules, in one place for the CLI and the admin API.

A trusted issuer is a platform whose JWTs authenticate the clients bound to it
(see :mod:`.federation`): a Kubernetes cluster's service-account issuer, GitHub
Actions (``https://token.actions.githubusercontent.com``), a SPIFFE trust domain's
JWT issuer. What one may be:

- its name: 1-64 of letters, digits and ``. _ ~ -`` (clients name it);
- its issuer: the exact ``iss`` of its tokens, an ``https`` URL (``http`` only on
  loopback with the ``allow_insecure_jwks_uri`` test setting), fetched from only
  under the same SSRF rules as a client's ``jwks_uri``;
- its ``jwks_url`` (optional): where its keys are, when its metadata does not say
  (Kubernetes clusters whose discovery document is not public);
- its ``audience`` (optional): the ``aud`` its tokens carry for this server, when
  it is not this server's issuer (a cluster whose tokens name an audience of the
  operator's choosing);
- its ``max_lifetime`` (optional): 60 to 86400 seconds.

An issuer with clients bound to it cannot be removed before them.
"""

from __future__ import annotations

import re
from typing import Any

from .federation import forget_issuers
from .jwks_uri import JwksUriError, check_jwks_uri
from .logs import audit
from .settings import ServerSettings
from .store import IssuerExists, IssuerInUse, Store, TrustedIssuerRecord, UnknownIssuer

__all__ = ["IssuerError", "IssuerRegistry", "UnknownIssuer", "check_subject", "issuer_document"]

_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
MAX_SUBJECT_CHARS = 1024


class IssuerError(ValueError):
    """A trusted issuer refused, and why (the message names the field)."""


class IssuerRegistry:
    """The trusted issuers of one store; see the module docstring."""

    def __init__(self, store: Store, settings: ServerSettings, *, door: str = "cli") -> None:
        self.store = store
        self.settings = settings
        self.door = door

    def add(
        self,
        name: object,
        issuer: object,
        *,
        jwks_url: object = None,
        audience: object = None,
        max_lifetime: object = None,
    ) -> TrustedIssuerRecord:
        """Trust ``issuer`` under ``name``; IssuerError if refused or taken."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise IssuerError("name: letters, digits and . _ ~ - (at most 64)")
        issuer = self._url(issuer, "issuer")
        if issuer.endswith("/.well-known/openid-configuration"):
            raise IssuerError("issuer: the iss of its tokens, not its discovery document")
        jwks_url = self._url(jwks_url, "jwks_url") if jwks_url is not None else None
        if audience is not None and (
            not isinstance(audience, str) or not audience or len(audience) > 2048
        ):
            raise IssuerError("audience: a non-empty string of at most 2048 characters")
        if audience is not None and any(ch.isspace() for ch in audience):
            raise IssuerError("audience: no spaces")
        if max_lifetime is not None and (
            isinstance(max_lifetime, bool)
            or not isinstance(max_lifetime, int)
            or not 60 <= max_lifetime <= 86400
        ):
            raise IssuerError("max_lifetime: 60 to 86400 seconds")
        try:
            record = self.store.add_issuer(
                name, issuer, jwks_url=jwks_url, audience=audience, max_lifetime=max_lifetime
            )
        except IssuerExists:
            raise IssuerError(f"name: {name!r} or its issuer URL is trusted already") from None
        forget_issuers()
        audit("issuer_added", issuer_name=name, issuer=issuer, jwks_url=jwks_url, door=self.door)
        return record

    def list(self) -> list[TrustedIssuerRecord]:
        return self.store.issuers()

    def remove(self, name: str) -> None:
        """Trust ``name`` no more; UnknownIssuer, or IssuerError while clients use it."""
        try:
            self.store.remove_issuer(name)
        except IssuerInUse as exc:
            raise IssuerError(
                f"clients are bound to {name!r} (first: {exc}): delete them first"
            ) from None
        forget_issuers()
        audit("issuer_removed", issuer_name=name, door=self.door)

    def _url(self, value: object, field: str) -> str:
        if not isinstance(value, str):
            raise IssuerError(f"{field}: a URL")
        try:
            check_jwks_uri(value, allow_insecure=self.settings.allow_insecure_jwks_uri)
        except JwksUriError as exc:
            raise IssuerError(str(exc).replace("jwks_uri", field)) from None
        return value


def check_subject(subject: object) -> str:
    """A federated client's subject (the ``sub`` of its platform's tokens), checked."""
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > MAX_SUBJECT_CHARS
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in subject)
    ):
        raise IssuerError(
            f"subject: the sub of the platform's tokens, 1-{MAX_SUBJECT_CHARS} printable characters"
        )
    return subject


def issuer_document(record: TrustedIssuerRecord) -> dict[str, Any]:
    """A trusted issuer as JSON (the admin API, ``issuers list --format json``)."""
    return {
        "name": record.name,
        "issuer": record.issuer,
        "jwks_url": record.jwks_url,
        "audience": record.audience,
        "max_lifetime": record.max_lifetime,
        "created_at": record.created_at.isoformat(timespec="seconds"),
    }
