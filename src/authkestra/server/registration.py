"""Registering clients and changing them: the rules, in one place for every way in.

The ``authkestra clients`` commands, the demo and the admin API all call
:class:`Registry`; none of them writes clients to the store itself. What a
client may be:

- its id: 1-128 of letters, digits and ``. _ ~ -``;
- a confidential client (``none`` gets no client_credentials tokens), with one of
  :data:`SUPPORTED_AUTH_METHODS`;
- its scopes, RFC 6749 §3.3 scope tokens; its default scopes, some of those;
  its audiences, URIs without spaces;
- ``private_key_jwt``: its public keys (a JWK Set, one JWK or a PEM public key,
  each checked by :mod:`.client_keys`) or an ``https`` ``jwks_uri``;
- ``self_signed_tls_client_auth``: its certificates (PEM, or a JWK Set with ``x5c``);
- ``tls_client_auth``: exactly one certificate subject (subject DN or one SAN);
- a federated ``private_key_jwt`` client: no keys, but a trusted issuer (by name,
  see :mod:`.issuers`) and the ``sub`` of that issuer's tokens for its workload;
- its right to introspect tokens (RFC 7662 §4): none (the default), the tokens
  meant for one of its audiences (:data:`INTROSPECT_AUDIENCE`), or every token
  (:data:`INTROSPECT_ANY`).

:meth:`Registry.update` changes scopes, audiences, token lifetime, enabled state
and the introspection right under the same rules, without touching the secret.

A secret client gets a new 256-bit secret, stored only as a keyed hash (and,
for ``client_secret_jwt``, encrypted, since its HMAC assertions need it back);
the secret is handed back once, in :class:`IssuedClient`.

A refusal is a :class:`RegistrationError` whose message names the fields in the
caller's words (``--jwks`` on the command line, ``jwks`` in JSON).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .._protocol.client_auth import AuthMethod
from .._protocol.scope import is_scope_token
from .._protocol.token_exchange import TOKEN_EXCHANGE
from ..errors import ConfigError
from .client_auth import forget_client
from .client_keys import InvalidJwks, normalize_jwks
from .context import hasher_for, secret_box_for
from .housekeeping import purge
from .issuers import IssuerError, UnknownIssuer, check_subject
from .jwks_uri import JwksUriError, check_jwks_uri
from .logs import audit
from .mtls import SUBJECT_KINDS, TLSSubject, jwks_for_certificates, self_signed_pems
from .revocation_list import announce
from .settings import ServerSettings
from .store import ClientRecord, Store, new_secret

__all__ = [
    "GRANT_TYPES",
    "INTROSPECTION_RIGHTS",
    "INTROSPECT_ANY",
    "INTROSPECT_AUDIENCE",
    "KEEP",
    "SUPPORTED_AUTH_METHODS",
    "ClientChanges",
    "ClientSpec",
    "IssuedClient",
    "RegistrationError",
    "Registry",
    "field_name",
]

#: The client authentication methods this server accepts, in the order they are listed.
SUPPORTED_AUTH_METHODS = (
    AuthMethod.CLIENT_SECRET_BASIC,
    AuthMethod.CLIENT_SECRET_POST,
    AuthMethod.PRIVATE_KEY_JWT,
    AuthMethod.CLIENT_SECRET_JWT,
    AuthMethod.TLS_CLIENT_AUTH,
    AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
)
#: The grants a client may be allowed: every client has client_credentials.
GRANT_TYPES = ("client_credentials", TOKEN_EXCHANGE)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
#: A client may introspect the tokens meant for one of its audiences (an API asking
#: about the tokens presented to it) ...
INTROSPECT_AUDIENCE = "audience"
#: ... or every token this server issued (a gateway in front of many APIs).
INTROSPECT_ANY = "any"
INTROSPECTION_RIGHTS = (INTROSPECT_AUDIENCE, INTROSPECT_ANY)


def field_name(field: str) -> str:
    """A field as JSON names it (the default spelling of :meth:`RegistrationError.describe`)."""
    return field.replace(".", "_")


class RegistrationError(ValueError):
    """A registration refused, and why. ``{field}`` placeholders name what to change."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.describe())

    def describe(self, spelling: Callable[[str], str] = field_name) -> str:
        """The reason, each field spelled by ``spelling`` (``--jwks`` for the CLI)."""
        return re.sub(r"\{([a-z_.]+)\}", lambda m: spelling(m.group(1)), self.template)


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    """A client to register. Keys and certificates are their text (JSON or PEM)."""

    client_id: str
    auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    scopes: Sequence[str] = ()
    #: Granted when the client asks for none (empty: all of ``scopes``).
    default_scopes: Sequence[str] = ()
    audiences: Sequence[str] = ()
    token_ttl: int | None = None
    jwks: str | None = None
    jwks_uri: str | None = None
    certificates: Sequence[str] = ()
    #: tls_client_auth: subject kind (``subject_dn``, ``san_dns``...) -> value, exactly one.
    tls_subjects: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Which tokens it may introspect: None, :data:`INTROSPECT_AUDIENCE` or :data:`INTROSPECT_ANY`.
    introspection: str | None = None
    #: A name for people (RFC 7591 ``client_name``).
    client_name: str | None = None
    #: Federated (private_key_jwt with no keys): the trusted issuer whose tokens
    #: authenticate it, and their ``sub`` (``system:serviceaccount:payments:reporter``).
    trusted_issuer: str | None = None
    subject: str | None = None
    #: Grants beyond client_credentials it may use: :data:`GRANT_TYPES` (token exchange).
    grant_types: Sequence[str] = ()


class _Keep:
    """The value of a :class:`ClientChanges` field left as it is."""

    def __repr__(self) -> str:
        return "KEEP"


#: Leave this field as it is (in :class:`ClientChanges`).
KEEP: Any = _Keep()


@dataclasses.dataclass(frozen=True)
class ClientChanges:
    """What :meth:`Registry.update` changes; every field left :data:`KEEP` stays as it is."""

    scopes: Sequence[str] = KEEP
    #: Empty: all of its scopes.
    default_scopes: Sequence[str] = KEEP
    audiences: Sequence[str] = KEEP
    #: None: the server's default lifetime.
    token_ttl: int | None = KEEP
    enabled: bool = KEEP
    introspection: str | None = KEEP
    client_name: str | None = KEEP
    grant_types: Sequence[str] = KEEP

    def given(self) -> dict[str, Any]:
        """The fields to change, by name."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not KEEP
        }


@dataclasses.dataclass(frozen=True, repr=False)
class IssuedClient:
    """What a registration made: the client, its new secret (shown once) and its key ids."""

    client: ClientRecord
    secret: str | None = None
    key_ids: tuple[str, ...] = ()
    #: tls_client_auth: the subject, as one ``{kind: value}`` member.
    tls_subject: Mapping[str, str] | None = None
    #: When the secrets it had stop working (after a rotation).
    old_secrets_until: datetime | None = None

    def __repr__(self) -> str:
        return f"IssuedClient({self.client!r}, key_ids={list(self.key_ids)!r})"


class Registry:
    """The registration rules over one store; see the module docstring."""

    def __init__(self, store: Store, settings: ServerSettings, *, door: str = "cli") -> None:
        """``door``: the way changes come in (``cli``, ``admin``, ``registration``...), which
        every audit line of a change names."""
        self.store = store
        self.settings = settings
        self.door = door

    def _audit(self, event: str, client_id: str, **fields: Any) -> None:
        """Log a change that was made, and drop the client from this process's caches."""
        forget_client(client_id)
        audit(event, client_id=client_id, door=self.door, **fields)

    # -- registering -------------------------------------------------------------------

    def create(
        self, spec: ClientSpec, *, registration_token_hash: str | None = None
    ) -> IssuedClient:
        """Register ``spec``; ClientExists if its id is taken, RegistrationError if refused.

        ``registration_token_hash``: the keyed hash of its RFC 7592 registration access
        token, for a client registered dynamically.
        """
        method = _method(spec.auth_method)
        if not isinstance(spec.client_id, str) or not _CLIENT_ID.fullmatch(spec.client_id):
            raise RegistrationError(
                "the client id may hold letters, digits and . _ ~ - (at most 128)"
            )
        scopes = _scopes(spec.scopes)
        defaults = _scopes(spec.default_scopes)
        _defaults_among(defaults, scopes)
        audiences = _audiences(spec.audiences)
        _token_ttl(spec.token_ttl)
        _introspection(spec.introspection)
        _client_name(spec.client_name)
        grant_types = _grant_types(spec.grant_types)
        federation = self._federation(method, spec)
        keys = (
            None if federation else self._keys(method, spec.jwks, spec.jwks_uri, spec.certificates)
        )
        subject = _tls_subject(method, spec.tls_subjects)
        secret = new_secret() if method.needs_secret else None
        record = self.store.create_client(
            spec.client_id,
            secret_hash=hasher_for(self.settings, self.store).hash(secret) if secret else None,
            encrypted_secret=self._sealed(secret, spec.client_id, method),
            auth_method=method.value,
            scopes=scopes,
            audiences=audiences,
            default_scopes=defaults or None,
            token_ttl=spec.token_ttl,
            jwks=keys[0] if keys else None,
            jwks_uri=spec.jwks_uri,
            tls_client_auth=subject.to_json() if subject else None,
            introspection=spec.introspection,
            client_name=spec.client_name,
            registration_token_hash=registration_token_hash,
            federated_issuer=federation[0] if federation else None,
            federated_subject=federation[1] if federation else None,
            grant_types=grant_types,
        )
        self._audit(
            "client_created",
            spec.client_id,
            auth_method=method.value,
            scopes=scopes,
            audiences=audiences,
            can_introspect=spec.introspection,
            trusted_issuer=spec.trusted_issuer,
            grant_types=grant_types,
        )
        return IssuedClient(
            record,
            secret,
            tuple(keys[1]) if keys else (),
            {subject.kind: subject.value} if subject else None,
        )

    def rotate_secret(self, client_id: str, grace: timedelta | None = None) -> IssuedClient:
        """A new secret for a secret client; its current ones keep working for ``grace``
        (default: the ``secret_grace_period`` setting). UnknownClient if there is none."""
        client = self.store.get_client(client_id)
        method = AuthMethod.parse(client.auth_method)
        if not method.needs_secret:
            raise RegistrationError(
                f"{client_id!r} authenticates with its keys or certificate, not a secret:"
                " use {set_keys}"
            )
        secret = new_secret()
        until = self.store.rotate_secret(
            client_id,
            hasher_for(self.settings, self.store).hash(secret),
            grace if grace is not None else timedelta(seconds=self.settings.secret_grace_period),
            encrypted_secret=self._sealed(secret, client_id, method),
        )
        purge(self.store)  # secrets of earlier rotations whose grace has passed
        self._audit("client_secret_rotated", client_id, old_secrets_until=until.isoformat())
        return IssuedClient(self.store.get_client(client_id), secret, old_secrets_until=until)

    def set_keys(
        self,
        client_id: str,
        *,
        jwks: str | None = None,
        jwks_uri: str | None = None,
        certificates: Sequence[str] = (),
        tls_subjects: Mapping[str, str] | None = None,
    ) -> IssuedClient:
        """Replace what a client without a secret is known by (keys, certificates, subject).

        To rotate without a gap, give the old and the new key or certificate; drop the
        old one once the client uses the new.
        """
        client = self.store.get_client(client_id)
        method = AuthMethod.parse(client.auth_method)
        if method.needs_secret:
            raise RegistrationError(f"{client_id!r} is a {method.value} client: it has no keys")
        if client.federated:
            raise RegistrationError(
                f"{client_id!r} is authenticated by the tokens of trusted issuer"
                f" {client.federated_issuer!r}: it has no keys"
            )
        if method is AuthMethod.TLS_CLIENT_AUTH:
            if jwks is not None or jwks_uri is not None or certificates:
                raise RegistrationError(
                    "a tls_client_auth client is known by one {tls_subject} option"
                )
            subject = _tls_subject(method, tls_subjects or {})
            assert subject is not None
            self.store.set_tls_subject(client_id, subject.to_json())
            self._audit("client_keys_set", client_id, tls_subject=subject.kind)
            return IssuedClient(
                self.store.get_client(client_id), tls_subject={subject.kind: subject.value}
            )
        _tls_subject(method, tls_subjects or {})  # refuses a subject for the other methods
        keys = self._keys(method, jwks, jwks_uri, certificates)
        self.store.set_client_keys(client_id, jwks=keys[0] if keys else None, jwks_uri=jwks_uri)
        self._audit("client_keys_set", client_id, kids=keys[1] if keys else None, jwks_uri=jwks_uri)
        return IssuedClient(
            self.store.get_client(client_id), key_ids=tuple(keys[1]) if keys else ()
        )

    def update(
        self,
        client_id: str,
        changes: ClientChanges,
        *,
        keys: Mapping[str, Any] | None = None,
    ) -> ClientRecord:
        """Change what ``changes`` gives, under the rules of :meth:`create`; the secret and
        the method stay. ``keys``: :meth:`set_keys` arguments, to replace its keys too.

        Everything is checked before anything is written. UnknownClient if there is
        none; the changed record.
        """
        client = self.store.get_client(client_id)
        given = self._checked(client, changes)
        if keys is not None:
            self.set_keys(client_id, **keys)
        if not given:
            return self.store.get_client(client_id)
        updated = self.store.update_client(client_id, given)
        self._audit("client_updated", client_id, changed=sorted(given))
        if given.get("enabled") is False:
            announce(client_id)  # its tokens are refused by APIs that follow the list
        return updated

    def _checked(self, client: ClientRecord, changes: ClientChanges) -> dict[str, Any]:
        """``changes`` as the store takes them, checked; RegistrationError if refused."""
        given = changes.given()
        if "scopes" in given:
            given["scopes"] = _scopes(given["scopes"])
        if "default_scopes" in given:
            given["default_scopes"] = _scopes(given["default_scopes"]) or None
        scopes = given.get("scopes", client.scopes)
        defaults = given.get("default_scopes", client.default_scopes) or ()
        if "default_scopes" in given or "scopes" in given:
            if "scopes" in given and "default_scopes" not in given:
                # Narrowed scopes narrow the defaults with them, rather than being refused.
                kept = tuple(s for s in defaults if s in scopes)
                given["default_scopes"] = kept or None
                defaults = kept
            _defaults_among(defaults, scopes)
        if "audiences" in given:
            given["audiences"] = _audiences(given["audiences"])
        if "token_ttl" in given:
            _token_ttl(given["token_ttl"])
        if "enabled" in given and not isinstance(given["enabled"], bool):
            raise RegistrationError("{enabled} is true or false")
        if "introspection" in given:
            _introspection(given["introspection"])
        if "client_name" in given:
            _client_name(given["client_name"])
        if "grant_types" in given:
            given["grant_types"] = _grant_types(given["grant_types"])
        return given

    def set_enabled(self, client_id: str, enabled: bool) -> None:
        """Enable or disable a client (a disabled one gets no tokens; its tokens go inactive)."""
        self.update(client_id, ClientChanges(enabled=enabled))

    def delete(self, client_id: str) -> None:
        """Delete a client and its secrets."""
        self.store.delete_client(client_id)
        self._audit("client_deleted", client_id)

    # -- the rules ---------------------------------------------------------------------

    def _federation(self, method: AuthMethod, spec: ClientSpec) -> tuple[str, str] | None:
        """(issuer name, subject) of a federated client, checked; None for the others."""
        if spec.trusted_issuer is None and spec.subject is None:
            return None
        if spec.trusted_issuer is None or spec.subject is None:
            raise RegistrationError("{trusted_issuer} and {subject} go together")
        if method is not AuthMethod.PRIVATE_KEY_JWT:
            raise RegistrationError("{trusted_issuer} goes with {auth_method} private_key_jwt")
        if spec.jwks is not None or spec.jwks_uri is not None or spec.certificates:
            raise RegistrationError(
                "a client of a {trusted_issuer} has no keys of its own: drop {jwks}/{jwks_uri}"
            )
        try:
            subject = check_subject(spec.subject)
            self.store.get_issuer(spec.trusted_issuer)
        except IssuerError as exc:
            raise RegistrationError("{subject}: " + _literal(str(exc))) from None
        except UnknownIssuer:
            raise RegistrationError(
                "{trusted_issuer}: no trusted issuer "
                + _literal(repr(spec.trusted_issuer))
                + " (authkestra issuers add)"
            ) from None
        return spec.trusted_issuer, subject

    def _sealed(self, secret: str | None, client_id: str, method: AuthMethod) -> str | None:
        """The secret, encrypted, for a client whose assertions need it back."""
        if secret is None or method is not AuthMethod.CLIENT_SECRET_JWT:
            return None
        return secret_box_for(self.settings, self.store).encrypt(secret, client_id)

    def _keys(
        self,
        method: AuthMethod,
        jwks: str | None,
        jwks_uri: str | None,
        certificates: Sequence[str],
    ) -> tuple[str, list[str]] | None:
        """The JWK Set to store and its kids, for the method; None when it has none."""
        if method is AuthMethod.PRIVATE_KEY_JWT:
            if (jwks is None) == (jwks_uri is None):
                raise RegistrationError(
                    "private_key_jwt needs the client's public keys: {jwks} or {jwks_uri}"
                )
        elif method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH and jwks_uri is None:
            pass  # jwks (with x5c) or certificates, checked below
        elif jwks is not None or jwks_uri is not None:
            raise RegistrationError("{jwks} and {jwks_uri} go with {auth_method} private_key_jwt")
        if method is not AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH and certificates:
            raise RegistrationError(
                "{certificates} goes with {auth_method} self_signed_tls_client_auth"
            )
        if jwks_uri is not None:
            try:
                check_jwks_uri(jwks_uri, allow_insecure=self.settings.allow_insecure_jwks_uri)
            except JwksUriError as exc:
                raise RegistrationError("{jwks_uri}: " + _literal(str(exc))) from None
        keys = _normalized(jwks) if jwks is not None else None
        if method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
            return _self_signed(certificates, keys)
        return keys


def _literal(text: str) -> str:
    """``text`` safe inside a template (no brace is a placeholder)."""
    return text.replace("{", "(").replace("}", ")")


def _method(value: AuthMethod | str) -> AuthMethod:
    try:
        method: AuthMethod | None = AuthMethod.parse(value)
    except ConfigError:  # not a method at all: said below, with the ones there are
        method = None
    if method is AuthMethod.NONE:
        raise RegistrationError(
            "only confidential clients get client_credentials tokens: use a secret method"
        )
    if method not in SUPPORTED_AUTH_METHODS:
        raise RegistrationError(
            "this server authenticates clients with "
            + " or ".join(m.value for m in SUPPORTED_AUTH_METHODS)
        )
    return method


def _grant_types(values: Sequence[str]) -> tuple[str, ...]:
    """client_credentials, and the other grants asked for (each one of :data:`GRANT_TYPES`)."""
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise RegistrationError("{grant_types} is a list of grant types")
    if not set(values) <= set(GRANT_TYPES):
        raise RegistrationError("{grant_types}: one or more of " + ", ".join(GRANT_TYPES))
    return tuple(g for g in GRANT_TYPES if g == "client_credentials" or g in values)


def _scopes(values: Sequence[str]) -> tuple[str, ...]:
    """Scopes as given (each value may hold several, space-separated), distinct, checked."""
    scopes = tuple(dict.fromkeys(s for value in values for s in str(value).split()))
    if not all(is_scope_token(s) for s in scopes):
        raise RegistrationError("a scope has characters RFC 6749 does not allow")
    return scopes


def _defaults_among(defaults: Sequence[str], scopes: Sequence[str]) -> None:
    if not set(defaults) <= set(scopes):
        raise RegistrationError("{default_scopes} must be among its {scopes} values")


def _audiences(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise RegistrationError("{audiences} is a list of URIs")
    audiences = tuple(dict.fromkeys(values))
    if any(not isinstance(a, str) or not a or " " in a for a in audiences):
        raise RegistrationError("an audience must be a non-empty URI without spaces")
    return audiences


def _token_ttl(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 86400:
        raise RegistrationError("{token_ttl} must be 1 to 86400 seconds")


def _introspection(value: object) -> None:
    if value is not None and value not in INTROSPECTION_RIGHTS:
        raise RegistrationError(
            "{introspection} is one of: " + ", ".join(INTROSPECTION_RIGHTS) + " (or none)"
        )


#: The longest client name.
MAX_CLIENT_NAME = 256


def _client_name(value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or len(value) > MAX_CLIENT_NAME or not value.isprintable()
    ):
        raise RegistrationError(
            "{client_name} is at most " + str(MAX_CLIENT_NAME) + " printable characters"
        )


def _normalized(jwks: str) -> tuple[str, list[str]]:
    try:
        return normalize_jwks(jwks)
    except InvalidJwks as exc:
        raise RegistrationError("{jwks}: " + _literal(str(exc))) from None


def _self_signed(
    certificates: Sequence[str], keys: tuple[str, list[str]] | None
) -> tuple[str, list[str]]:
    """The JWK Set (with x5c) of a self-signed client: from its certificates, or its jwks."""
    if certificates and keys is not None:
        raise RegistrationError(
            "give the certificates with {certificates} or {jwks} (x5c), not both"
        )
    if certificates:
        try:
            return normalize_jwks(json.dumps(jwks_for_certificates(certificates)))
        except (ValueError, InvalidJwks) as exc:
            raise RegistrationError(
                "{certificates}: not a readable PEM certificate (" + _literal(str(exc)) + ")"
            ) from None
    if keys is None or not self_signed_pems([keys[0]]):
        raise RegistrationError(
            "self_signed_tls_client_auth needs the client's certificate:"
            " {certificates} (or {jwks} with x5c)"
        )
    return keys


def _tls_subject(method: AuthMethod, subjects: Mapping[str, str]) -> TLSSubject | None:
    """The tls_client_auth subject, from exactly one kind (in :data:`SUBJECT_KINDS`)."""
    given = {kind: value for kind, value in subjects.items() if value is not None}
    if method is not AuthMethod.TLS_CLIENT_AUTH:
        if given:
            raise RegistrationError(
                "the {tls_subject} options go with {auth_method} tls_client_auth"
            )
        return None
    if len(given) != 1 or not set(given) <= set(SUBJECT_KINDS):
        raise RegistrationError(
            "tls_client_auth needs exactly one certificate subject: {tls_subject}"
        )
    ((kind, value),) = given.items()
    try:
        return TLSSubject(kind, value)
    except ValueError as exc:
        raise RegistrationError("{tls_subject." + kind + "}: " + _literal(str(exc))) from None
