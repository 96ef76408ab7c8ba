"""Reading OAuth requests strictly: form bodies, repeated parameters, client credentials."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import parse_qsl

from .._jose.compact import CompactJWS, MalformedJWS, parse_compact
from .._protocol.client_assertion import JWT_BEARER
from .._protocol.client_auth import AuthMethod, decode_basic_credentials
from ..errors import InvalidClient, InvalidRequest

__all__ = [
    "ClientAssertion",
    "ClientCredentials",
    "FormParams",
    "client_credentials",
    "parse_form",
]

FormParams = dict[str, list[str]]
_FORM = "application/x-www-form-urlencoded"
# RFC 6749 Appendix A: client_id and client_secret are VSCHAR (printable ASCII and space).
_VSCHAR = re.compile(r"[\x20-\x7e]*")
#: No registered client has a longer id (the store's column); longer ones are refused unread.
MAX_CLIENT_ID_CHARS = 128
#: Longer client assertions are refused unread (ours are well under 1 KiB; RSA-4096 ~ 1.2 KiB).
MAX_ASSERTION_CHARS = 8192


def parse_form(body: bytes, content_type: str | None) -> FormParams:
    """The parameters of a form body; InvalidRequest for anything else."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != _FORM:
        raise InvalidRequest(
            f"the request body must be {_FORM}",
            status_code=400,
            error_description=f"expected {_FORM}",
        )
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest(
            "the body is not valid UTF-8 form data",
            status_code=400,
            error_description="the body is not valid UTF-8 form data",
        ) from None
    params: FormParams = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def single(params: FormParams, name: str) -> str | None:
    """A parameter that may appear once (RFC 6749 §3.2); empty counts as absent."""
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(
            f"repeated parameter {name}", status_code=400, error_description=f"{name} is repeated"
        )
    return values[0] or None


@dataclasses.dataclass(frozen=True, repr=False)
class ClientAssertion:
    """A client assertion as sent: the compact JWT and its decoded, not yet verified, parts."""

    jwt: str
    jws: CompactJWS
    #: From a trusted issuer about a workload (``iss`` is not ``sub``): the client is the
    #: ``client_id`` sent with it, bound to that issuer and subject.
    federated: bool = False

    @property
    def header(self) -> dict[str, Any]:
        return self.jws.header

    @property
    def claims(self) -> dict[str, Any]:
        return self.jws.claims

    def __repr__(self) -> str:
        return f"ClientAssertion(alg={self.header.get('alg')!r}, kid={self.header.get('kid')!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class ClientCredentials:
    """How the client authenticated: its id, its secret or assertion, and the method it used.

    For an assertion the method is what its header claims to be -- ``client_secret_jwt``
    for an HMAC ``alg``, else ``private_key_jwt`` -- and must be the client's method.
    """

    client_id: str
    secret: str | None
    method: AuthMethod
    assertion: ClientAssertion | None = None

    def __repr__(self) -> str:
        return f"ClientCredentials({self.client_id!r}, {self.method.value})"


def client_credentials(authorization: str | None, params: FormParams) -> ClientCredentials:
    """The client's credentials from the Authorization header or the body, exactly one way.

    Two credentials, or a body ``client_id`` that differs from the header's, are
    an ``invalid_request``; no credentials at all is ``invalid_client``. A client
    assertion (RFC 7523 §2.2) that is malformed or names another client than the
    ``client_id`` sent with it is an ``invalid_client``.
    """
    body_id = single(params, "client_id")
    body_secret = single(params, "client_secret")
    basic = authorization is not None and authorization.split(" ", 1)[0].lower() == "basic"
    assertion_type = single(params, "client_assertion_type")
    assertion = single(params, "client_assertion")
    if assertion_type is not None or assertion is not None:
        if basic or body_secret is not None:
            raise InvalidRequest(
                "two client credentials",
                status_code=400,
                error_description=(
                    "use one client authentication method: a client assertion, Basic"
                    " or client_secret"
                ),
            )
        return _assertion_credentials(assertion_type, assertion, body_id)
    if authorization is not None and authorization.split(" ", 1)[0].lower() == "basic":
        if body_secret is not None:
            raise InvalidRequest(
                "two client credentials",
                status_code=400,
                error_description="use one client authentication method: Basic or client_secret",
            )
        try:
            client_id, secret = decode_basic_credentials(authorization)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(
                "malformed Basic credentials",
                status_code=400,
                error_description="the Authorization header is not valid Basic credentials",
            ) from None
        if body_id is not None and body_id != client_id:
            raise InvalidRequest(
                "client_id mismatch",
                status_code=400,
                error_description="client_id in the body differs from the Authorization header",
            )
        _check_chars(client_id, secret)
        return ClientCredentials(client_id, secret, AuthMethod.CLIENT_SECRET_BASIC)
    if body_id is None:
        raise InvalidClient(
            "no client authentication",
            status_code=401,
            error_description="client authentication is required",
        )
    _check_chars(body_id, body_secret or "")
    if body_secret is not None:
        return ClientCredentials(body_id, body_secret, AuthMethod.CLIENT_SECRET_POST)
    return ClientCredentials(body_id, None, AuthMethod.NONE)


def _assertion_failed(description: str) -> InvalidClient:
    return InvalidClient("invalid client assertion", status_code=401, error_description=description)


def _assertion_credentials(
    assertion_type: str | None, assertion: str | None, body_id: str | None
) -> ClientCredentials:
    if assertion_type is None or assertion is None:
        raise InvalidRequest(
            "incomplete client assertion",
            status_code=400,
            error_description="client_assertion and client_assertion_type go together",
        )
    if assertion_type != JWT_BEARER:
        raise _assertion_failed(f"unsupported client_assertion_type; use {JWT_BEARER}")
    try:
        jws = parse_compact(assertion, max_length=MAX_ASSERTION_CHARS)
    except MalformedJWS as exc:
        reason = exc.describe("it", "its")
        raise _assertion_failed(f"the client assertion is not a signed JWT: {reason}") from None
    if not jws.signature:
        raise _assertion_failed("the client assertion is not a signed JWT")
    header, claims = jws.header, jws.claims
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise _assertion_failed("the client assertion must be signed")
    issuer, subject = claims.get("iss"), claims.get("sub")
    if (
        isinstance(issuer, str)
        and isinstance(subject, str)
        and issuer
        and subject
        and issuer != subject
        and body_id is not None
    ):
        # A trusted issuer's token about a workload (federated client authentication).
        _check_chars(body_id, "")
        federated = ClientAssertion(assertion, jws, federated=True)
        return ClientCredentials(body_id, None, AuthMethod.PRIVATE_KEY_JWT, federated)
    if not isinstance(issuer, str) or not issuer or issuer != subject:
        raise _assertion_failed(
            "the client assertion's iss and sub must both be the client id (or, for a"
            " trusted issuer's assertion, the client_id parameter must name the client)"
        )
    if body_id is not None and body_id != issuer:
        raise _assertion_failed("the client assertion was made for another client")
    _check_chars(issuer, "")
    method = (
        AuthMethod.CLIENT_SECRET_JWT if alg.upper().startswith("HS") else AuthMethod.PRIVATE_KEY_JWT
    )
    return ClientCredentials(issuer, None, method, ClientAssertion(assertion, jws))


def _check_chars(client_id: str, secret: str) -> None:
    if (
        not client_id
        or len(client_id) > MAX_CLIENT_ID_CHARS
        or not _VSCHAR.fullmatch(client_id)
        or not _VSCHAR.fullmatch(secret)
    ):
        raise InvalidClient(
            "invalid client credentials",
            status_code=401,
            error_description="client authentication failed",
        )
