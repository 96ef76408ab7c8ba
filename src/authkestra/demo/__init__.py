"""``authkestra demo`` / ``make demo``: the whole job end to end, on loopback.

1. start the authorization server on a fresh SQLite store;
2. register a client for a service;
3. the service obtains a token with :class:`~authkestra.ClientCredentialsFlow`;
4. it calls a small protected API, which verifies the token with
   :class:`~authkestra.resource.JWTVerifier` and answers;
5. everything stops.
"""

from .run import run_demo

__all__ = ["run_demo"]
