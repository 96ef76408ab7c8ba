"""What the framework integrations share: a request's token verified (its holder too),
and the RFC 6750 refusal naming the API's realm and RFC 9728 metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import AuthError
from .access_token import AccessToken
from .dpop import DPoPChecker
from .presentation import Presentation, check_holder, check_holder_async
from .protected_resource import ResourceMetadata, metadata_for
from .rfc6750 import challenge, refusal

__all__ = ["Guard"]


class Guard:
    """One API's verifier, DPoP checker, realm and resource metadata."""

    def __init__(
        self,
        verifier: Any,
        *,
        realm: str | None = None,
        dpop: DPoPChecker | None = None,
        resource_metadata: ResourceMetadata | bool | None = None,
    ) -> None:
        self.verifier = verifier
        self.realm = realm
        self.dpop = dpop or DPoPChecker()
        self.metadata = metadata_for(verifier, resource_metadata)

    @staticmethod
    def presentation(scope: Mapping[str, Any]) -> Presentation | None:
        """The request's token as sent (None without one); MalformedAuthorization."""
        return Presentation.from_scope(scope)

    def verify_sync(self, presentation: Presentation) -> AccessToken:
        """The verified token, its holder checked (DPoP proof, certificate); AuthError."""
        access: AccessToken = self.verifier.verify_sync(presentation.token)
        check_holder(access, presentation, self.dpop)
        return access

    async def verify_async(self, presentation: Presentation) -> AccessToken:
        """:meth:`verify_sync` for coroutines."""
        access: AccessToken = await self.verifier.verify(presentation.token)
        await check_holder_async(access, presentation, self.dpop)
        return access

    def refusal(
        self, error: AuthError | None, required: tuple[str, ...] = (), scheme: str = "Bearer"
    ) -> tuple[int, dict[str, str], dict[str, str]]:
        """(status, JSON body, headers) refusing ``error`` (None: no token was sent)."""
        return refusal(
            error,
            realm=self.realm,
            required_scopes=required,
            scheme=scheme,
            resource_metadata=self.metadata.url if self.metadata else None,
        )

    def challenge(self, error: AuthError | None, required: tuple[str, ...] = ()) -> str:
        """The ``WWW-Authenticate`` value alone (for frameworks that set it themselves)."""
        return challenge(
            error,
            realm=self.realm,
            required_scopes=required,
            resource_metadata=self.metadata.url if self.metadata else None,
        )
