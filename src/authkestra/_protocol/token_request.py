"""Building the Client Credentials token request (RFC 6749 §4.4.2)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from .actions import HttpRequest
from .client_auth import AuthMethod, basic_credentials

__all__ = ["TokenRequestSpec", "build_token_request"]

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

    def form_fields(self) -> list[tuple[str, str]]:
        """The grant's form fields, without client authentication."""
        fields = [("grant_type", "client_credentials")]
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
) -> HttpRequest:
    """The POST to send, with exactly one client authentication method applied."""
    fields = spec.form_fields()
    headers = [
        ("Content-Type", FORM),
        ("Accept", "application/json"),
        ("User-Agent", user_agent),
        # The response carries a credential: no cache on the way may keep it.
        ("Cache-Control", "no-store"),
    ]
    if spec.auth_method is AuthMethod.CLIENT_SECRET_BASIC:
        assert secret is not None
        headers.append(
            (
                "Authorization",
                basic_credentials(spec.client_id, secret, form_encode=spec.form_encode_basic),
            )
        )
    elif spec.auth_method is AuthMethod.CLIENT_SECRET_POST:
        assert secret is not None
        fields += [("client_id", spec.client_id), ("client_secret", secret)]
    else:
        fields.append(("client_id", spec.client_id))
    return HttpRequest(
        method="POST",
        url=token_url,
        headers=tuple(headers),
        body=urlencode(fields).encode("ascii"),
        deadline=deadline,
        max_body=max_body,
    )
