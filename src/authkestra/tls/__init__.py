"""Mutual TLS (RFC 8705) pieces shared by the server and resource sides.

- :mod:`.certificate`: a client certificate as an ASGI app sees it, and its
  ``x5t#S256`` thumbprint (what a certificate-bound token's ``cnf`` names);
- :mod:`.uvicorn`: running an ASGI app under uvicorn so that it learns the
  client certificate of each TLS connection (the ASGI TLS extension).
"""

from .certificate import ClientCertificate, certificate_thumbprint, presented_certificate

__all__ = ["ClientCertificate", "certificate_thumbprint", "presented_certificate"]
