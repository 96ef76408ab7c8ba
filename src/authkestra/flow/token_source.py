"""``TokenSource``: a flow's token for one set of parameters, as HTTP integrations use it."""

from __future__ import annotations

from .._clock import Clock
from .._protocol.dpop import DPoPState
from ..token import Token
from ._token_manager import TokenManager

__all__ = ["TokenSource"]


class TokenSource:
    """The token a flow holds for one set of parameters (scopes, audience, resources).

    Made by :meth:`ClientCredentialsFlow.token_source`; what the httpx and requests
    adapters (and your own integrations) need of a flow:

    - :meth:`current` -- the token while it needs nothing (a lookup, no I/O), else None;
    - :meth:`get_sync` / :meth:`get_async` -- the token, fetched if need be;
    - :meth:`renew_sync` / :meth:`renew_async` -- after the API refused a token: drop
      it and get a fresh one (the same one if nobody has a newer one);
    - :meth:`proves`, :meth:`proof`, :meth:`observe` -- DPoP (RFC 9449): whether a
      token is bound to the flow's key, a proof for one request, the API's nonces.

    The parameters are resolved once, here: each call costs a lookup, not a resolve.
    """

    def __init__(
        self,
        manager: TokenManager,
        key: str,
        scopes: tuple[str, ...],
        *,
        clock: Clock,
        dpop: DPoPState | None,
    ) -> None:
        self._manager = manager
        self._key = key
        self._slot = manager.register_slot(key)
        self._monotonic = clock.monotonic
        self._now = clock.now
        self._dpop = dpop
        #: No event hook to tell about each use: :meth:`current` may answer on its own.
        self._quiet = manager.on_event is None
        self.scopes = scopes

    def current(self) -> Token | None:
        """The held token while it is fresh (not due for renewal), else None."""
        entry = self._slot.entry
        if entry is not None and self._quiet and self._monotonic() < entry.refresh_at:
            return entry.value
        return None

    def get_sync(self) -> Token:
        """The token (from the cache, or fetched), blocking."""
        manager, key = self._manager, self._key
        return manager.cached(key, in_async=False) or manager.get_sync(key)

    async def get_async(self) -> Token:
        """The token (from the cache, or fetched)."""
        manager, key = self._manager, self._key
        return manager.cached(key, in_async=True) or await manager.get_async(key)

    def renew_sync(self, stale: Token) -> Token:
        """Drop ``stale`` (the API refused it) and give a fresh token, blocking."""
        self._manager.invalidate(self._key, stale)
        return self.get_sync()

    async def renew_async(self, stale: Token) -> Token:
        """Drop ``stale`` (the API refused it) and give a fresh token."""
        self._manager.invalidate(self._key, stale)
        return await self.get_async()

    # -- DPoP ------------------------------------------------------------------------------

    @property
    def can_prove(self) -> bool:
        """Whether the flow holds a DPoP key: without one, no token of it ever needs a proof."""
        return self._dpop is not None

    def proves(self, token: Token) -> bool:
        """Whether ``token`` is bound to the flow's DPoP key (then every request needs a proof)."""
        return self._dpop is not None and token.token_type == "DPoP"

    def proof(self, method: str, url: str, token: Token) -> str:
        """A DPoP proof for one request with ``token``, carrying the nonce of ``url``'s origin."""
        assert self._dpop is not None
        return self._dpop.proof(
            method, url, now=int(self._now().timestamp()), access_token=token.access_token
        )

    def observe(self, url: str, nonce: str | None) -> bool:
        """Remember a ``DPoP-Nonce`` from ``url``'s origin; True when there was a valid one."""
        return self._dpop is not None and self._dpop.nonces.remember(url, nonce)

    def __repr__(self) -> str:
        return f"TokenSource(scopes={self.scopes!r})"
