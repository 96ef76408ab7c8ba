"""Testing code that uses authkestra, without a running authorization server.

::

    from authkestra.testing import LocalIssuer

    issuer = LocalIssuer()                                   # a key, an issuer, in memory
    token = issuer.token(scopes=["orders:read"], audience="https://orders.test/")
    verifier = issuer.verifier(audience="https://orders.test/")  # a JWTVerifier that accepts it
    flow = issuer.flow("billing-service")                    # a ClientCredentialsFlow it answers

With pytest (the plugin is registered by installing authkestra), the fixtures
``authkestra_issuer`` (a fresh :class:`LocalIssuer`) and ``make_token`` (its
:meth:`LocalIssuer.token`) are there to use; see ``docs/testing.md``.
"""

from .issuer import LocalIssuer

__all__ = ["LocalIssuer"]
