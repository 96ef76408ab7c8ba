"""joserfc, set up once for authkestra: a JWS registry per algorithm.

joserfc warns on every use of ``EdDSA`` that RFC 9864 deprecates it in favour
of ``Ed25519``. ``EdDSA`` is what issuers and verifiers use today and what the
operator chose, so that warning (a failure where warnings are errors) is
silenced here, for exactly the algorithm asked for and nothing else.
"""

from __future__ import annotations

import copy
import threading

from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

__all__ = ["jws_registry"]

_lock = threading.Lock()
_registries: dict[str, JWSRegistry] = {}


def _quiet(alg: JWSAlgModel) -> JWSAlgModel:
    alg = copy.copy(alg)
    alg.security_warning = None
    return alg


class _SingleAlgorithm(JWSRegistry):
    def __init__(self, alg: str) -> None:
        super().__init__(algorithms=[alg])
        self.algorithms = {alg: _quiet(JWSRegistry.algorithms[alg])}


def jws_registry(alg: str) -> JWSRegistry:
    """The registry that signs and verifies with exactly ``alg`` (KeyError if joserfc lacks it)."""
    registry = _registries.get(alg)
    if registry is None:
        with _lock:
            registry = _registries.setdefault(alg, _SingleAlgorithm(alg))
    return registry
