"""Building the token request: Client Credentials (RFC 6749 §4.4.2), token exchange (RFC 8693)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from .actions import HttpRequest
from .client_assertion import JWT_BEARER
from .client_auth import AuthMethod, basic_credentials

__all__ = ["TokenRequestSpec", "build_authenticated_post", "build_token_request"]

FORM = "application/x-www-form-urlencoded"


@dataclasses.dataclass(frozen=True)
class TokenRequestSpec:
    """Everything that goes into one token request except the secret and the URL.

    Also the identity of a token: two requests with equal specs at the same
    endpoint ask for the same token (the secret is deliberately not part of it).
    """

    client_id: str
    auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    resources: tuple[str, ...] = ()
    extra_params: tuple[tuple[str, str], ...] = ()
    form_encode_basic: bool = True
    grant_type: str = "client_credentials"
    #: The grant's own fields (token exchange: the subject token...): never in a repr.
    grant_fields: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)

    def form_fields(self) -> list[tuple[str, str]]:
        """The grant's form fields, without client authentication."""
        fields = [("grant_type", self.grant_type), *self.grant_fields]
        if self.scopes:
            fields.append(("scope", " ".join(self.scopes)))
        if self.audience is not None:
            fields.append(("audience", self.audience))
        fields.extend(("resource", resource) for resource in self.resources)
        fields.extend(self.extra_params)
        return fields


def build_token_request(
    spec: TokenRequestSpec,
    token_url: str,
    secret: str | None,
    *,
    deadline: float,
    max_body: int,
    user_agent: str,
    assertion: str | None = None,
) -> HttpRequest:
    """The POST to send, with exactly one client authentication method applied."""
    return build_authenticated_post(
        token_url,
        spec.form_fields(),
        client_id=spec.client_id,
        secret=secret,
        auth_method=spec.auth_method,
        form_encode_basic=spec.form_encode_basic,
        deadline=deadline,
        max_body=max_body,
        user_agent=user_agent,
        assertion=assertion,
    )


def build_authenticated_post(
    url: str,
    fields: list[tuple[str, str]],
    *,
    client_id: str,
    secret: str | None,
    auth_method: AuthMethod,
    form_encode_basic: bool,
    deadline: float,
    max_body: int,
    user_agent: str,
    assertion: str | None = None,
) -> HttpRequest:
    """A form POST (token, introspection, revocation) with the client authenticated one way."""
    fields = list(fields)
    headers = [
        ("Content-Type", FORM),
        ("Accept", "application/json"),
        ("User-Agent", user_agent),
        # The response may carry a credential: no cache on the way may keep it.
        ("Cache-Control", "no-store"),
    ]
    if auth_method is AuthMethod.CLIENT_SECRET_BASIC:
        assert secret is not None
        headers.append(
            ("Authorization", basic_credentials(client_id, secret, form_encode=form_encode_basic))
        )
    elif auth_method is AuthMethod.CLIENT_SECRET_POST:
        assert secret is not None
        fields += [("client_id", client_id), ("client_secret", secret)]
    elif auth_method.uses_assertion:
        assert assertion is not None
        fields += [
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ]
    else:
        fields.append(("client_id", client_id))
    return HttpRequest(
        method="POST",
        url=url,
        headers=tuple(headers),
        body=urlencode(fields).encode("ascii"),
        deadline=deadline,
        max_body=max_body,
    )
