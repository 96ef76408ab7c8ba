"""Clients as RFC 7591 client metadata, the language of the admin API and of registration.

Read into a :class:`~.registration.ClientSpec` or :class:`~.registration.ClientChanges`
(so the rules applied are :class:`~.registration.Registry`'s, as for the CLI), and
written back from a :class:`~.store.ClientRecord`. The standard fields: ``client_name``,
``scope`` (space-separated), ``grant_types`` (``client_credentials`` only: the one grant
this server has), ``token_endpoint_auth_method``, ``jwks`` or ``jwks_uri``, and RFC 8705's
``tls_client_auth_subject_dn`` / ``_san_dns`` / ``_san_uri`` / ``_san_ip`` / ``_san_email``.
The server's own: ``audience`` (a list of URIs), ``default_scope``,
``access_token_lifetime`` (seconds), ``enabled`` and ``introspection``
(``"audience"``, ``"any"`` or null).

A refusal is a :class:`MetadataError` naming the metadata field, answered as RFC 7591's
``invalid_client_metadata``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._protocol.client_auth import AuthMethod
from ..errors import ConfigError
from .mtls import SUBJECT_KINDS
from .registration import GRANT_TYPES as ALL_GRANT_TYPES
from .registration import KEEP, ClientChanges, ClientSpec, IssuedClient, RegistrationError
from .store import ClientRecord, SecretHash

__all__ = [
    "GRANT_TYPES",
    "MetadataError",
    "changes_from_metadata",
    "issued_metadata",
    "metadata_from_changes",
    "metadata_from_spec",
    "metadata_of",
    "metadata_spelling",
    "record_from_metadata",
    "refusal",
    "spec_from_metadata",
]

#: The grants a client registers itself for (dynamic registration): the operator
#: allows token exchange (:data:`~.registration.GRANT_TYPES`).
GRANT_TYPES = ("client_credentials",)
_TLS_FIELDS = {f"tls_client_auth_{kind}": kind for kind in SUBJECT_KINDS}
#: Registry's field names as metadata names them.
_SPELLING = {
    "scopes": "scope",
    "default_scopes": "default_scope",
    "audiences": "audience",
    "token_ttl": "access_token_lifetime",
    "auth_method": "token_endpoint_auth_method",
    "certificates": "jwks",
    "tls_subject": "tls_client_auth_subject_dn",
    "set_keys": "jwks, jwks_uri or tls_client_auth_*",
}
#: What a PATCH may change (the method and the id stay what they were made).
_CHANGEABLE = {
    "client_name",
    "scope",
    "default_scope",
    "audience",
    "access_token_lifetime",
    "enabled",
    "introspection",
    "jwks",
    "jwks_uri",
    "grant_types",
    *_TLS_FIELDS,
}
#: A federated client's binding (this server's own members): set when it is made, by an
#: operator only -- dynamic registration ignores them, as it does every unknown member.
_FEDERATION = {"trusted_issuer", "subject"}
_KNOWN = {*_CHANGEABLE, *_FEDERATION, "client_id", "token_endpoint_auth_method"}


class MetadataError(ValueError):
    """Client metadata refused (RFC 7591 ``invalid_client_metadata``), naming the field."""


def metadata_spelling(field: str) -> str:
    """A :class:`~.registration.RegistrationError` field in metadata words."""
    if field.startswith("tls_subject."):
        return "tls_client_auth_" + field.removeprefix("tls_subject.")
    return _SPELLING.get(field, field)


def refusal(error: RegistrationError) -> MetadataError:
    """A registration refusal in metadata words."""
    return MetadataError(error.describe(metadata_spelling))


def spec_from_metadata(
    document: object, *, client_id: str, ignore_unknown: bool = False
) -> ClientSpec:
    """The registration ``document`` (a JSON object) asks for, as ``client_id``.

    ``ignore_unknown``: skip fields this server does not know (RFC 7591 §2 asks that of
    dynamic registration); otherwise they are refused (an operator's typo is not
    silently dropped).
    """
    fields = _object(document, ignore_unknown=ignore_unknown)
    if ignore_unknown:
        fields = {name: value for name, value in fields.items() if name not in _FEDERATION}
    grant_types = _grant_types(fields, ALL_GRANT_TYPES if not ignore_unknown else GRANT_TYPES)
    method = _string(fields, "token_endpoint_auth_method") or (
        AuthMethod.PRIVATE_KEY_JWT.value  # its platform's assertions are private_key_jwt ones
        if "trusted_issuer" in fields
        else AuthMethod.CLIENT_SECRET_BASIC.value
    )
    try:
        auth_method = AuthMethod.parse(method)
    except ConfigError:  # not a method at all
        raise MetadataError(f"token_endpoint_auth_method: unknown method {method[:64]!r}") from None
    jwks = _jwks(fields)
    return ClientSpec(
        client_id=client_id,
        client_name=_name(fields),
        auth_method=auth_method,
        scopes=_scope(fields, "scope") or (),
        default_scopes=_scope(fields, "default_scope") or (),
        audiences=_audience(fields) or (),
        token_ttl=_lifetime(fields),
        jwks=jwks,
        jwks_uri=_string(fields, "jwks_uri"),
        tls_subjects=_tls_subjects(fields),
        introspection=_introspection(fields),
        trusted_issuer=_string(fields, "trusted_issuer"),
        subject=_string(fields, "subject"),
        grant_types=grant_types,
    )


def _grant_types(fields: Mapping[str, Any], allowed: Sequence[str]) -> tuple[str, ...]:
    grant_types = fields.get("grant_types", ["client_credentials"])
    if (
        not isinstance(grant_types, list)
        or "client_credentials" not in grant_types
        or not all(isinstance(g, str) and g in allowed for g in grant_types)
    ):
        raise MetadataError(
            "grant_types: client_credentials"
            + (", and optionally " + ", ".join(allowed[1:]) if len(allowed) > 1 else " only")
        )
    return tuple(grant_types)


def changes_from_metadata(document: object) -> tuple[ClientChanges, dict[str, Any] | None]:
    """What a PATCH ``document`` changes, and the new keys (``Registry.set_keys``
    arguments) if it gives any."""
    fields = _object(document, ignore_unknown=False)
    fixed = sorted(set(fields) - _CHANGEABLE)
    if fixed:
        raise MetadataError(
            f"{', '.join(fixed)}: cannot be changed (register a new client instead)"
        )
    changes = ClientChanges(
        client_name=_name(fields) if "client_name" in fields else KEEP,
        scopes=_scope(fields, "scope") or () if "scope" in fields else KEEP,
        default_scopes=_scope(fields, "default_scope") or () if "default_scope" in fields else KEEP,
        audiences=_audience(fields) or () if "audience" in fields else KEEP,
        token_ttl=_lifetime(fields) if "access_token_lifetime" in fields else KEEP,
        enabled=_enabled(fields) if "enabled" in fields else KEEP,
        introspection=_introspection(fields) if "introspection" in fields else KEEP,
        grant_types=_grant_types(fields, ALL_GRANT_TYPES) if "grant_types" in fields else KEEP,
    )
    keys: dict[str, Any] | None = None
    if {"jwks", "jwks_uri", *_TLS_FIELDS} & set(fields):
        keys = {"jwks": _jwks(fields), "jwks_uri": _string(fields, "jwks_uri")}
        subjects = _tls_subjects(fields)
        if subjects:
            keys = {"tls_subjects": subjects}
    return changes, keys


def metadata_of(client: ClientRecord) -> dict[str, Any]:
    """``client`` as client metadata (RFC 7591 §3.2.1 response members, and the server's)."""
    document: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "token_endpoint_auth_method": client.auth_method,
        "grant_types": list(client.grant_types),
        "scope": " ".join(client.scopes),
        "audience": list(client.audiences),
        "access_token_lifetime": client.token_ttl,
        "enabled": client.enabled,
        "introspection": client.introspection,
    }
    if client.client_name is not None:
        document["client_name"] = client.client_name
    if client.default_scopes is not None:
        document["default_scope"] = " ".join(client.default_scopes)
    if client.jwks:
        document["jwks"] = json.loads(client.jwks)
    if client.jwks_uri:
        document["jwks_uri"] = client.jwks_uri
    if client.tls_client_auth:
        for kind, value in json.loads(client.tls_client_auth).items():
            document[f"tls_client_auth_{kind}"] = value
    if client.federated:
        document["trusted_issuer"] = client.federated_issuer
        document["subject"] = client.federated_subject
    if client.method.needs_secret:
        document["secrets"] = [
            {"expires_at": int(s.expires_at.timestamp()) if s.expires_at else None}
            for s in client.secrets
        ]
    return document


def issued_metadata(issued: IssuedClient) -> dict[str, Any]:
    """A registration's answer: the metadata, with the new secret (shown this once)."""
    document = metadata_of(issued.client)
    document.pop("secrets", None)
    if issued.secret is not None:
        document["client_secret"] = issued.secret
        document["client_secret_expires_at"] = 0  # RFC 7591: 0, it does not expire
    if issued.old_secrets_until is not None:
        document["previous_secrets_expire_at"] = int(issued.old_secrets_until.timestamp())
    return document


def metadata_from_spec(spec: ClientSpec) -> dict[str, Any]:
    """The registration document that asks for ``spec`` (what the CLI sends an admin API).

    Certificates (``self_signed_tls_client_auth``) travel as a JWK Set with ``x5c``.
    """
    document: dict[str, Any] = {
        "client_id": spec.client_id,
        "token_endpoint_auth_method": AuthMethod.parse(spec.auth_method).value,
        "scope": " ".join(spec.scopes),
        "audience": list(spec.audiences),
    }
    if spec.default_scopes:
        document["default_scope"] = " ".join(spec.default_scopes)
    optional = {
        "client_name": spec.client_name,
        "access_token_lifetime": spec.token_ttl,
        "jwks_uri": spec.jwks_uri,
        "introspection": spec.introspection,
        "trusted_issuer": spec.trusted_issuer,
        "subject": spec.subject,
        "grant_types": ["client_credentials", *spec.grant_types] if spec.grant_types else None,
    }
    document.update({name: value for name, value in optional.items() if value is not None})
    document.update(_keys_metadata(spec.jwks, spec.certificates, spec.tls_subjects))
    return document


def metadata_from_changes(
    changes: ClientChanges, keys: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The PATCH document of ``changes`` (and ``Registry.set_keys`` arguments ``keys``)."""
    names = {
        "scopes": "scope",
        "default_scopes": "default_scope",
        "audiences": "audience",
        "token_ttl": "access_token_lifetime",
    }
    document: dict[str, Any] = {}
    for name, given in changes.given().items():
        value: Any = given
        if name in ("scopes", "default_scopes"):
            value = " ".join(given or ()) or (None if name == "default_scopes" else "")
        elif name == "audiences":
            value = list(given)
        elif name == "grant_types":
            value = list(dict.fromkeys(["client_credentials", *given]))
        document[names.get(name, name)] = value
    if keys is not None:
        document["jwks"] = None
        document["jwks_uri"] = keys.get("jwks_uri")
        document.update(
            _keys_metadata(
                keys.get("jwks"), keys.get("certificates", ()), keys.get("tls_subjects") or {}
            )
        )
    return document


def _keys_metadata(
    jwks: str | None, certificates: Sequence[str], subjects: Mapping[str, str]
) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if certificates:
        from .mtls import jwks_for_certificates

        try:
            document["jwks"] = jwks_for_certificates(list(certificates))
        except ValueError as exc:
            raise MetadataError(f"jwks: not a readable PEM certificate ({exc})") from None
    elif jwks is not None:
        try:
            parsed = json.loads(jwks)
        except ValueError:
            raise MetadataError("jwks: not JSON (a PEM key is sent as a JWK Set)") from None
        document["jwks"] = parsed if "keys" in parsed else {"keys": [parsed]}
    for kind, value in subjects.items():
        document[f"tls_client_auth_{kind}"] = value
    return document


def record_from_metadata(document: Mapping[str, Any]) -> ClientRecord:
    """A :class:`~.store.ClientRecord` from an admin API's answer (its secret hashes are
    never sent: each secret appears with its expiry only)."""
    from datetime import datetime, timezone

    subject = {
        kind: document[f"tls_client_auth_{kind}"]
        for kind in SUBJECT_KINDS
        if document.get(f"tls_client_auth_{kind}") is not None
    }
    secrets = tuple(
        SecretHash(
            "",
            datetime.fromtimestamp(s["expires_at"], timezone.utc) if s.get("expires_at") else None,
        )
        for s in document.get("secrets", ())
    )
    default_scope = document.get("default_scope")
    return ClientRecord(
        client_id=str(document["client_id"]),
        auth_method=str(document["token_endpoint_auth_method"]),
        scopes=tuple(str(document.get("scope") or "").split()),
        default_scopes=tuple(default_scope.split()) if default_scope is not None else None,
        audiences=tuple(document.get("audience") or ()),
        token_ttl=document.get("access_token_lifetime"),
        enabled=bool(document.get("enabled", True)),
        created_at=datetime.fromtimestamp(
            int(document.get("client_id_issued_at", 0)), timezone.utc
        ),
        secrets=secrets,
        jwks=json.dumps(document["jwks"]) if document.get("jwks") is not None else None,
        jwks_uri=document.get("jwks_uri"),
        tls_client_auth=json.dumps(subject) if subject else None,
        introspection=document.get("introspection"),
        client_name=document.get("client_name"),
        federated_issuer=document.get("trusted_issuer"),
        federated_subject=document.get("subject"),
        grant_types=tuple(document.get("grant_types") or ("client_credentials",)),
    )


# -- reading fields --------------------------------------------------------------------------


def _object(document: object, *, ignore_unknown: bool) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise MetadataError("the body must be a JSON object of client metadata")
    unknown = sorted(set(document) - _KNOWN)
    if unknown and not ignore_unknown:
        raise MetadataError(f"unknown client metadata: {', '.join(n[:64] for n in unknown[:5])}")
    return {name: value for name, value in document.items() if name in _KNOWN}


def _string(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise MetadataError(f"{name} must be a string")
    return value


def _name(fields: Mapping[str, Any]) -> str | None:
    return _string(fields, "client_name")  # its length and characters: Registry's rules


def _scope(fields: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = _string(fields, name)
    return tuple(value.split(" ")) if value else None


def _audience(fields: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = fields.get("audience")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise MetadataError("audience must be a list of URIs (strings)")
    return tuple(value)


def _lifetime(fields: Mapping[str, Any]) -> int | None:
    value = fields.get("access_token_lifetime")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise MetadataError("access_token_lifetime must be a number of seconds (or null)")
    return value


def _enabled(fields: Mapping[str, Any]) -> bool:
    value = fields.get("enabled")
    if not isinstance(value, bool):
        raise MetadataError("enabled must be true or false")
    return value


def _introspection(fields: Mapping[str, Any]) -> str | None:
    return _string(fields, "introspection")


def _jwks(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("jwks")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MetadataError('jwks must be a JWK Set object ({"keys": [...]})')
    return json.dumps(value)


def _tls_subjects(fields: Mapping[str, Any]) -> dict[str, str]:
    subjects = {}
    for name, kind in _TLS_FIELDS.items():
        value = _string(fields, name)
        if value is not None:
            subjects[kind] = value
    return subjects
