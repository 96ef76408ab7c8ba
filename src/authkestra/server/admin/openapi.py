"""The OpenAPI 3.1 document of the admin API (served at ``/admin/openapi.json``)."""

from __future__ import annotations

from typing import Any

from .guard import ADMIN_SCOPE, METRICS_SCOPE

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_CLIENT = {"$ref": "#/components/schemas/ClientMetadata"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


_REFUSED = {
    "400": _answer("Refused (invalid_client_metadata or invalid_request)", _ERROR),
    "401": _answer("No valid token of this server"),
    "403": _answer(f"The token lacks the scope {ADMIN_SCOPE}"),
}


def _op(summary: str, ok: dict[str, Any], *, body: dict[str, Any] | None = None,
        status: str = "200", scope: str = ADMIN_SCOPE) -> dict[str, Any]:  # fmt: skip
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"serverToken": [scope]}],
        "responses": {status: ok, **_REFUSED},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def openapi_document(issuer: str) -> dict[str, Any]:
    """The document; ``issuer`` gives the token URL of its security scheme."""
    client_id = {"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}
    kid = {"name": "kid", "in": "path", "required": True, "schema": {"type": "string"}}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    issuer_fields = {
        "type": "object",
        "required": ["name", "issuer"],
        "properties": {
            "name": {"type": "string"},
            "issuer": {"type": "string", "format": "uri"},
            "jwks_url": {"type": "string", "format": "uri"},
            "audience": {"type": "string"},
            "max_lifetime": {"type": "integer"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "authkestra admin API", "version": "1"},
        "paths": {
            "/admin/clients": {
                "get": _op(
                    "List clients",
                    _answer(
                        "The clients",
                        {
                            "type": "object",
                            "properties": {"clients": {"type": "array", "items": _CLIENT}},
                        },
                    ),
                ),
                "post": _op(
                    "Register a client (its secret is in this answer only)",
                    _answer("The client, with client_secret", _CLIENT),
                    body=_CLIENT,
                    status="201",
                ),
            },
            "/admin/clients/{client_id}": {
                "parameters": [client_id],
                "get": _op("One client", _answer("The client", _CLIENT)),
                "patch": _op(
                    "Change scope, audience, lifetime, enabled, introspection, name or keys"
                    " (never the secret or the method)",
                    _answer("The changed client", _CLIENT),
                    body=_CLIENT,
                ),
                "delete": _op("Delete a client", _answer("Deleted"), status="204"),
            },
            "/admin/clients/{client_id}/rotate-secret": {
                "parameters": [client_id],
                "post": _op(
                    "A new secret; the old ones work for grace_period seconds",
                    _answer("The client, with its new client_secret", _CLIENT),
                    body={"type": "object", "properties": {"grace_period": {"type": "integer"}}},
                ),
            },
            "/admin/keys": {"get": _op("Published signing keys", _answer("The keys"))},
            "/admin/keys/rotate": {
                "post": _op(
                    "Publish a new signing key, signing after publish_ahead seconds",
                    _answer("The new key's kid"),
                    body={
                        "type": "object",
                        "properties": {
                            "alg": {"type": "string", "enum": ["ES256", "EdDSA", "RS256"]},
                            "keep_old_for": {"type": "integer"},
                            "publish_ahead": {"type": "integer"},
                        },
                    },
                    status="201",
                )
            },
            "/admin/keys/{kid}": {
                "parameters": [kid],
                "delete": _op(
                    "Withdraw a key from signing and from the JWKS at once",
                    _answer("Withdrawn (and the key signing now, if it was replaced)"),
                ),
            },
            "/admin/issuers": {
                "get": _op("Trusted issuers (federated client authentication)", _answer("They")),
                "post": _op(
                    "Trust an issuer: its tokens authenticate the clients bound to it",
                    _answer("The trusted issuer", issuer_fields),
                    body=issuer_fields,
                    status="201",
                ),
            },
            "/admin/issuers/{name}": {
                "parameters": [name],
                "delete": _op(
                    "Trust an issuer no more (409 while clients are bound to it)",
                    _answer("Removed"),
                    status="204",
                ),
            },
            "/admin/registration-tokens": {
                "post": _op(
                    "An initial access token for dynamic registration (RFC 7591), allowing"
                    " clients with at most its scope and audience",
                    _answer("The token (shown once) and its limits"),
                    body={
                        "type": "object",
                        "properties": {
                            "scope": {"type": "string"},
                            "audience": {"type": "array", "items": {"type": "string"}},
                            "expires_in": {"type": "integer"},
                        },
                    },
                    status="201",
                )
            },
            "/metrics": {
                "get": _op(
                    "Prometheus metrics",
                    {"description": "Prometheus text", "content": {"text/plain": {}}},
                    scope=METRICS_SCOPE,
                )
            },
        },
        "components": {
            "securitySchemes": {
                "serverToken": {
                    "type": "oauth2",
                    "description": "A token of this server (client_credentials) with the scope"
                    f" {ADMIN_SCOPE} ({METRICS_SCOPE} is enough for /metrics).",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": issuer.rstrip("/") + "/token",
                            "scopes": {
                                ADMIN_SCOPE: "manage clients and keys",
                                METRICS_SCOPE: "read the metrics",
                            },
                        }
                    },
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "error_description": {"type": "string"},
                    },
                },
                "ClientMetadata": {
                    "type": "object",
                    "description": "RFC 7591 client metadata and the server's own fields",
                    "properties": {
                        "client_id": {"type": "string"},
                        "client_name": {"type": "string"},
                        "scope": {"type": "string", "description": "space-separated"},
                        "default_scope": {"type": "string"},
                        "grant_types": {"type": "array", "items": {"const": "client_credentials"}},
                        "token_endpoint_auth_method": {"type": "string"},
                        "jwks": {"type": "object"},
                        "jwks_uri": {"type": "string"},
                        "tls_client_auth_subject_dn": {"type": "string"},
                        "tls_client_auth_san_dns": {"type": "string"},
                        "tls_client_auth_san_uri": {"type": "string"},
                        "tls_client_auth_san_ip": {"type": "string"},
                        "tls_client_auth_san_email": {"type": "string"},
                        "audience": {"type": "array", "items": {"type": "string"}},
                        "access_token_lifetime": {"type": ["integer", "null"]},
                        "enabled": {"type": "boolean"},
                        "introspection": {"enum": ["audience", "any", None]},
                        "client_secret": {"type": "string", "readOnly": True},
                    },
                },
            },
        },
    }
