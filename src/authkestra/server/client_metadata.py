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
from collections.abc import Mapping
from typing import Any

from .._protocol.client_auth import AuthMethod
from .mtls import SUBJECT_KINDS
from .registration import KEEP, ClientChanges, ClientSpec, IssuedClient, RegistrationError
from .store import ClientRecord

__all__ = [
    "GRANT_TYPES",
    "MetadataError",
    "changes_from_metadata",
    "issued_metadata",
    "metadata_of",
    "metadata_spelling",
    "refusal",
    "spec_from_metadata",
]

#: The grants a client of this server can use.
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
    *_TLS_FIELDS,
}
_KNOWN = {*_CHANGEABLE, "client_id", "grant_types", "token_endpoint_auth_method"}


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
    grant_types = fields.get("grant_types", list(GRANT_TYPES))
    if not isinstance(grant_types, list) or not grant_types or set(grant_types) - set(GRANT_TYPES):
        raise MetadataError(
            "grant_types: this server issues tokens to clients with client_credentials only"
        )
    method = _string(fields, "token_endpoint_auth_method") or AuthMethod.CLIENT_SECRET_BASIC.value
    try:
        auth_method = AuthMethod.parse(method)
    except Exception:
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
    )


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
        "grant_types": list(GRANT_TYPES),
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
