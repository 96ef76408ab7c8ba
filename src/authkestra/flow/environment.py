"""Reading a flow's configuration from ``AUTHKESTRA_*`` environment variables."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from .._protocol.client_auth import AuthMethod
from ..assertions import AssertionFile
from ..errors import ConfigError
from ..secrets import FileSecret, Secret

__all__ = ["CLIENT_VARIABLES", "ENV_PREFIX", "flow_arguments_from_env", "unknown_variables"]

logger = logging.getLogger("authkestra")

ENV_PREFIX = "AUTHKESTRA_"
#: Every variable a client reads (after ``AUTHKESTRA_``): ``from_env`` and ``authkestra
#: token``. The server's have a prefix of their own (``AUTHKESTRA_SERVER_``).
CLIENT_VARIABLES = (
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CLIENT_SECRET_FILE",
    "CLIENT_ASSERTION_FILE",
    "TOKEN_URL",
    "ISSUER",
    "SCOPES",
    "AUTH_METHOD",
    "AUDIENCE",
    "RESOURCE",
    "PRIVATE_KEY_FILE",
    "KEY_ID",
    "SIGNING_ALG",
    "CLIENT_CERT_FILE",
    "CLIENT_KEY_FILE",
    "CA_BUNDLE",
    "DPOP",
    "DPOP_KEY_FILE",
    "TOKEN_CACHE",
)


def _log_warning(message: str) -> None:
    logger.warning("authkestra: %s", message)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """``AUTHKESTRA_*`` names in ``env`` that no client reads (the server's,
    ``AUTHKESTRA_SERVER_*``, aside): a misspelling is silently ignored otherwise."""
    known = {ENV_PREFIX + name for name in CLIENT_VARIABLES}
    return sorted(
        name
        for name in env
        if name.startswith(ENV_PREFIX)
        and not name.startswith(ENV_PREFIX + "SERVER_")
        and name not in known
    )


def unknown_variable_message(name: str) -> str:
    """``AUTHKESTRA_SCOPE is not a variable authkestra reads (AUTHKESTRA_SCOPES?)``."""
    close = difflib.get_close_matches(
        name, [ENV_PREFIX + known for known in CLIENT_VARIABLES], n=1, cutoff=0.75
    )
    guess = f" (did you mean {close[0]}?)" if close else ""
    return f"{name} is not a variable authkestra reads; ignored{guess}"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(ENV_PREFIX + name)
    return value if value and value.strip() else None


def flow_arguments_from_env(
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``ClientCredentialsFlow`` keyword arguments from the environment, then ``overrides``.

    An override of None is ignored, so callers (the CLI) can pass every option.
    ``warn`` is told of ``AUTHKESTRA_*`` variables no client reads (a misspelling);
    by default they are logged as warnings.
    """
    env = os.environ if environ is None else environ
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    args: dict[str, Any] = {}

    client_id = given.pop("client_id", None) or _get(env, "CLIENT_ID")
    if client_id is None:
        raise ConfigError("AUTHKESTRA_CLIENT_ID is not set: it names the client to authenticate as")
    args["client_id"] = client_id

    auth_method = given.pop("auth_method", None)
    if auth_method is None and _get(env, "AUTH_METHOD") is not None:
        auth_method = str(_get(env, "AUTH_METHOD")).strip()
        try:
            AuthMethod.parse(auth_method)
        except ConfigError as exc:
            raise ConfigError(f"AUTHKESTRA_AUTH_METHOD: {exc}") from None
    if isinstance(auth_method, str):
        auth_method = auth_method.strip()
    if auth_method is not None:
        args["auth_method"] = auth_method
    for name in unknown_variables(env):
        (warn or _log_warning)(unknown_variable_message(name))

    args.update(_credential_arguments(env, given, auth_method))

    if "token_url" in given or "issuer" in given or "protected_resource" in given:
        args["token_url"] = given.pop("token_url", None)
        args["issuer"] = given.pop("issuer", None)
    else:
        token_url, issuer = _get(env, "TOKEN_URL"), _get(env, "ISSUER")
        if token_url is None and issuer is None:
            raise ConfigError(
                "AUTHKESTRA_TOKEN_URL (or AUTHKESTRA_ISSUER) is not set:"
                " it says where to get tokens"
            )
        if token_url is not None and issuer is not None:
            raise ConfigError("both AUTHKESTRA_TOKEN_URL and AUTHKESTRA_ISSUER are set: keep one")
        args["token_url"], args["issuer"] = token_url, issuer

    for name, key in (("SCOPES", "scopes"), ("AUDIENCE", "audience")):
        value = _get(env, name)
        if value is not None:
            args[key] = value.strip()
    resource = _get(env, "RESOURCE")
    if resource is not None:
        args["resource"] = resource.split()
    args.update(_key_arguments(env))
    args.update(given)
    return args


def _credential_arguments(
    env: Mapping[str, str], given: dict[str, Any], auth_method: Any
) -> dict[str, Any]:
    """The client's secret, or the platform's assertion: from ``given``, else the environment.

    Takes what it uses out of ``given``.
    """
    if "client_secret" in given:
        return {"client_secret": given.pop("client_secret")}
    if "client_assertion" in given:
        return {}  # the platform's assertion authenticates the client
    secret, secret_file = _get(env, "CLIENT_SECRET"), _get(env, "CLIENT_SECRET_FILE")
    assertion_file = _get(env, "CLIENT_ASSERTION_FILE")
    if assertion_file is not None:
        if secret is not None or secret_file is not None:
            raise ConfigError(
                "AUTHKESTRA_CLIENT_ASSERTION_FILE and a client secret are both set: keep one"
            )
        assertion = AssertionFile(assertion_file.strip())
        assertion.read()  # fail now, naming the file, rather than at the first request
        return {"client_assertion": assertion}
    if secret is not None and secret_file is not None:
        raise ConfigError(
            "both AUTHKESTRA_CLIENT_SECRET and AUTHKESTRA_CLIENT_SECRET_FILE are set: keep one"
        )
    if secret_file is not None:
        source = FileSecret(secret_file)
        source.read()  # fail now, naming the file, rather than at the first request
        return {"client_secret": source}
    if secret is not None:
        return {"client_secret": Secret(secret)}
    if _needs_secret(auth_method, signs="private_key" in given or _get(env, "PRIVATE_KEY_FILE")):
        raise ConfigError(
            "AUTHKESTRA_CLIENT_SECRET (or AUTHKESTRA_CLIENT_SECRET_FILE, or"
            " AUTHKESTRA_CLIENT_ASSERTION_FILE) is not set: it holds the client's credential"
        )
    return {}


def _needs_secret(auth_method: Any, *, signs: object) -> bool:
    if auth_method is None:
        return not signs  # a private key implies private_key_jwt
    try:
        return AuthMethod.parse(auth_method).needs_secret
    except ConfigError:
        return True  # the flow names the unknown method


def _key_arguments(env: Mapping[str, str]) -> dict[str, Any]:
    """Keys and certificates, by file path: private_key_jwt, mutual TLS, DPoP."""
    args: dict[str, Any] = {}
    for name, key in (
        ("PRIVATE_KEY_FILE", "private_key"),
        ("KEY_ID", "key_id"),
        ("SIGNING_ALG", "signing_alg"),
        ("CA_BUNDLE", "ca_bundle"),
        ("DPOP_KEY_FILE", "dpop_key"),
    ):
        value = _get(env, name)
        if value is not None:
            args[key] = value.strip()
    cert, cert_key = _get(env, "CLIENT_CERT_FILE"), _get(env, "CLIENT_KEY_FILE")
    if cert_key is not None and cert is None:
        raise ConfigError("AUTHKESTRA_CLIENT_KEY_FILE goes with AUTHKESTRA_CLIENT_CERT_FILE")
    if cert is not None:
        args["client_cert"] = (cert.strip(), cert_key.strip()) if cert_key else cert.strip()
    dpop = _get(env, "DPOP")
    if dpop is not None:
        lowered = dpop.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError("AUTHKESTRA_DPOP is true or false")
        args["dpop"] = lowered in ("true", "1", "yes")
    return args
