"""Where ``authkestra clients``, ``keys``, ``issuers`` and ``registration-tokens`` act: the
store itself (``--db``) or a server's admin API (``--server URL``), with one interface so every
command works either way.

Through ``--server`` the command authenticates as a client of that server, read from
the environment like ``authkestra token`` (``AUTHKESTRA_CLIENT_ID``,
``AUTHKESTRA_CLIENT_SECRET`` or ``..._FILE``, ``AUTHKESTRA_ISSUER``...), asking for
the scope ``authkestra:admin``: an operator needs no database credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from ._store_options import fail, open_store
from .exit_codes import ExitCode

if TYPE_CHECKING:
    import httpx

    from ..server.registration import ClientChanges, ClientSpec, IssuedClient
    from ..server.store import ClientRecord
    from . import Environment

__all__ = ["ADMIN_SCOPE", "Management", "management"]

ADMIN_SCOPE = "authkestra:admin"


class Management(Protocol):
    """What the management commands do, wherever the clients and keys are."""

    def list_clients(self) -> list[ClientRecord]: ...
    def get_client(self, client_id: str) -> ClientRecord: ...
    def create(self, spec: ClientSpec) -> IssuedClient: ...
    def update(
        self, client_id: str, changes: ClientChanges, *, keys: Mapping[str, Any] | None = None
    ) -> ClientRecord: ...
    def set_keys(self, client_id: str, **keys: Any) -> IssuedClient: ...
    def rotate_secret(self, client_id: str, grace: timedelta | None = None) -> IssuedClient: ...
    def delete(self, client_id: str) -> None: ...
    def list_keys(self) -> list[dict[str, Any]]: ...
    def rotate_keys(
        self, *, alg: str | None, keep_old_for: int | None, publish_ahead: int
    ) -> dict[str, Any]: ...
    def withdraw_key(self, kid: str) -> dict[str, Any]: ...
    def create_registration_token(
        self, *, scope: str, audience: list[str], expires_in: int
    ) -> dict[str, Any]: ...
    def list_issuers(self) -> list[dict[str, Any]]: ...
    def add_issuer(self, name: str, **fields: Any) -> dict[str, Any]: ...
    def remove_issuer(self, name: str) -> None: ...


class _Store:
    """The store itself, through the registration rules."""

    def __init__(self, settings: Any, store: Any) -> None:
        from ..server.registration import Registry

        self.settings = settings
        self.store = store
        self.registry = Registry(store, settings)

    def list_clients(self) -> list[ClientRecord]:
        return list(self.store.list_clients())

    def get_client(self, client_id: str) -> ClientRecord:
        record: ClientRecord = self.store.get_client(client_id)
        return record

    def create(self, spec: ClientSpec) -> IssuedClient:
        return self.registry.create(spec)

    def update(
        self, client_id: str, changes: ClientChanges, *, keys: Mapping[str, Any] | None = None
    ) -> ClientRecord:
        return self.registry.update(client_id, changes, keys=keys)

    def set_keys(self, client_id: str, **keys: Any) -> IssuedClient:
        return self.registry.set_keys(client_id, **keys)

    def rotate_secret(self, client_id: str, grace: timedelta | None = None) -> IssuedClient:
        return self.registry.rotate_secret(client_id, grace)

    def delete(self, client_id: str) -> None:
        self.registry.delete(client_id)

    def list_keys(self) -> list[dict[str, Any]]:
        from ..server.keys import key_listing

        return key_listing(self.store.signing_keys(private=False))

    def rotate_keys(
        self, *, alg: str | None, keep_old_for: int | None, publish_ahead: int
    ) -> dict[str, Any]:
        from ..server.keys import KeyRing, rotate_keys

        ring = KeyRing(self.store, alg=alg or self.settings.signing_alg, cache_seconds=0)
        return rotate_keys(
            ring, self.settings, alg=alg, keep_old_for=keep_old_for,
            publish_ahead=publish_ahead, door="cli",
        )  # fmt: skip

    def withdraw_key(self, kid: str) -> dict[str, Any]:
        from ..server.keys import KeyRing, withdraw_key

        ring = KeyRing(self.store, alg=self.settings.signing_alg, cache_seconds=0)
        return withdraw_key(ring, self.settings, kid, door="cli")

    def create_registration_token(
        self, *, scope: str, audience: list[str], expires_in: int
    ) -> dict[str, Any]:
        from ..server.admin.registration import issue_initial_token
        from ..server.keys import KeyRing

        ring = KeyRing(self.store, alg=self.settings.signing_alg, cache_seconds=0)
        try:
            return issue_initial_token(
                ring, self.settings, scope=scope, audience=audience, expires_in=expires_in
            )
        except ValueError as exc:
            raise AdminApiError(400, "invalid_request", str(exc)) from None

    def list_issuers(self) -> list[dict[str, Any]]:
        from ..server.issuers import issuer_document

        return [issuer_document(record) for record in self.store.issuers()]

    def add_issuer(self, name: str, **fields: Any) -> dict[str, Any]:
        from ..server.issuers import IssuerRegistry, issuer_document

        return issuer_document(IssuerRegistry(self.store, self.settings).add(name, **fields))

    def remove_issuer(self, name: str) -> None:
        from ..server.issuers import IssuerRegistry

        IssuerRegistry(self.store, self.settings).remove(name)


class AdminApiError(Exception):
    """The admin API refused (``status``, its error code and description)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class _AdminApi:
    """A server's admin API, with a token of that server for the client of the environment."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _call(self, method: str, path: str, body: object = None) -> Any:
        import httpx

        from ..server.client_metadata import MetadataError

        try:
            answer = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AdminApiError(0, "network", f"no answer ({type(exc).__name__})") from None
        if answer.status_code == 204:
            return None
        try:
            document = answer.json()
        except ValueError:
            document = {}
        if answer.status_code >= 400:
            if not isinstance(document, dict):
                document = {}
            raise AdminApiError(
                answer.status_code,
                str(document.get("error", f"HTTP {answer.status_code}")),
                str(document.get("error_description", answer.reason_phrase))[:300],
            )
        if not isinstance(document, (dict, list)):
            raise MetadataError("the admin API answered something that is not JSON")
        return document

    def _issued(self, document: dict[str, Any]) -> IssuedClient:
        from ..server.client_keys import jwks_kids
        from ..server.client_metadata import record_from_metadata
        from ..server.registration import IssuedClient

        record = record_from_metadata(document)
        subject = {
            name.removeprefix("tls_client_auth_"): value
            for name, value in document.items()
            if name.startswith("tls_client_auth_")
        }
        previous = document.get("previous_secrets_expire_at")
        return IssuedClient(
            record,
            document.get("client_secret"),
            tuple(jwks_kids(record.jwks)) if record.jwks else (),
            subject or None,
            datetime.fromtimestamp(previous, timezone.utc) if previous else None,
        )

    def list_clients(self) -> list[ClientRecord]:
        from ..server.client_metadata import record_from_metadata

        return [record_from_metadata(c) for c in self._call("GET", "/admin/clients")["clients"]]

    def get_client(self, client_id: str) -> ClientRecord:
        from ..server.client_metadata import record_from_metadata

        return record_from_metadata(self._call("GET", _client_path(client_id)))

    def create(self, spec: ClientSpec) -> IssuedClient:
        from ..server.client_metadata import metadata_from_spec

        return self._issued(self._call("POST", "/admin/clients", metadata_from_spec(spec)))

    def update(
        self, client_id: str, changes: ClientChanges, *, keys: Mapping[str, Any] | None = None
    ) -> ClientRecord:
        from ..server.client_metadata import metadata_from_changes, record_from_metadata

        document = metadata_from_changes(changes, keys)
        return record_from_metadata(self._call("PATCH", _client_path(client_id), document))

    def set_keys(self, client_id: str, **keys: Any) -> IssuedClient:
        from ..server.client_metadata import metadata_from_changes
        from ..server.registration import ClientChanges

        document = metadata_from_changes(ClientChanges(), keys)
        return self._issued(self._call("PATCH", _client_path(client_id), document))

    def rotate_secret(self, client_id: str, grace: timedelta | None = None) -> IssuedClient:
        body = {"grace_period": int(grace.total_seconds())} if grace is not None else {}
        return self._issued(self._call("POST", _client_path(client_id) + "/rotate-secret", body))

    def delete(self, client_id: str) -> None:
        self._call("DELETE", _client_path(client_id))

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/keys")["keys"])

    def rotate_keys(
        self, *, alg: str | None, keep_old_for: int | None, publish_ahead: int
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"publish_ahead": publish_ahead}
        if alg is not None:
            body["alg"] = alg
        if keep_old_for is not None:
            body["keep_old_for"] = keep_old_for
        return dict(self._call("POST", "/admin/keys/rotate", body))

    def create_registration_token(
        self, *, scope: str, audience: list[str], expires_in: int
    ) -> dict[str, Any]:
        body = {"scope": scope, "audience": audience, "expires_in": expires_in}
        return dict(self._call("POST", "/admin/registration-tokens", body))

    def withdraw_key(self, kid: str) -> dict[str, Any]:
        try:
            return dict(self._call("DELETE", f"/admin/keys/{quote(kid, safe='')}"))
        except AdminApiError as exc:
            if exc.status == 404:
                raise KeyError(kid) from None
            raise

    def list_issuers(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/issuers")["issuers"])

    def add_issuer(self, name: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
        return dict(self._call("POST", "/admin/issuers", body))

    def remove_issuer(self, name: str) -> None:
        from ..server.store import UnknownIssuer

        try:
            self._call("DELETE", f"/admin/issuers/{quote(name, safe='')}")
        except AdminApiError as exc:
            if exc.status == 404:
                raise UnknownIssuer(name) from None
            raise


def _client_path(client_id: str) -> str:
    return f"/admin/clients/{quote(client_id, safe='')}"


@contextlib.contextmanager
def management(
    env: Environment,
    *,
    server: str | None,
    db: str | None,
    master_key_file: Path | None,
    client_id: str | None = None,
    field_spelling: Any = None,
) -> Iterator[Management]:
    """The store (``--db``) or the admin API at ``server``; every refusal one line.

    ``client_id``: the client the command is about, named in "no such client" lines.
    ``field_spelling``: how a registration refusal names its fields (the CLI's flags).
    """
    from ..server.client_metadata import MetadataError
    from ..server.issuers import IssuerError
    from ..server.registration import RegistrationError
    from ..server.store import ClientExists, UnknownClient, UnknownIssuer

    if server is not None and db is not None:
        raise fail(env, "--server and --db name two places: give one", ExitCode.USAGE)
    try:
        if server is None:
            settings, store = open_store(env, db, master_key_file)
            try:
                with _audit_lines_to(env):
                    yield _Store(settings, store)
            finally:
                store.close()
        else:
            with _admin_http(env, server) as http:
                yield _AdminApi(http)
    except RegistrationError as exc:
        message = exc.describe(field_spelling) if field_spelling else str(exc)
        raise fail(env, message, ExitCode.USAGE) from None
    except (MetadataError, IssuerError) as exc:
        raise fail(env, str(exc), ExitCode.USAGE) from None
    except UnknownIssuer as exc:
        raise fail(env, f"no trusted issuer {exc.args[0]!r}") from None
    except ClientExists:
        raise fail(env, f"a client {client_id!r} already exists") from None
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    except AdminApiError as exc:
        raise fail(env, *_admin_refusal(exc, server or "", client_id)) from None


@contextlib.contextmanager
def _audit_lines_to(env: Environment) -> Iterator[None]:
    """The audit line of each change this command makes, on its stderr (a change made
    through ``--server`` is audited by that server, with door ``admin``)."""
    import logging

    from ..server.logs import AUDIT, TextFormatter

    handler = logging.StreamHandler(env.stderr)
    handler.setFormatter(TextFormatter())
    level = AUDIT.level
    AUDIT.addHandler(handler)
    AUDIT.setLevel(logging.INFO)
    try:
        yield
    finally:
        AUDIT.removeHandler(handler)
        AUDIT.setLevel(level)


def _admin_refusal(exc: AdminApiError, server: str, client_id: str | None) -> tuple[str, int]:
    if exc.status == 0:
        return f"--server {server}: {exc.description}", ExitCode.NETWORK
    if exc.status == 401:
        return (
            f"--server {server}: the admin API refused the token ({exc.description}): is"
            " AUTHKESTRA_CLIENT_ID a client of that server?",
            ExitCode.INVALID_CLIENT,
        )
    if exc.status == 403:
        return (
            f"--server {server}: the client may not use the admin API: give it the scope"
            f" {ADMIN_SCOPE}",
            ExitCode.INVALID_SCOPE,
        )
    if exc.status == 404 and exc.error == "not_found":
        return f"no client {client_id!r}" if client_id else exc.description, ExitCode.CONFIG
    if exc.status == 409:
        return f"a client {client_id!r} already exists", ExitCode.CONFIG
    if exc.status == 400:
        return exc.description, ExitCode.USAGE
    return f"--server {server}: {exc.error}: {exc.description}", ExitCode.PROVIDER_ERROR


@contextlib.contextmanager
def _admin_http(env: Environment, server: str) -> Iterator[httpx.Client]:
    """An HTTP client for ``server`` that sends a token of the environment's client."""
    import httpx

    from .._protocol.urls import check_endpoint_url
    from ..errors import AuthError
    from ..flow.client_credentials import ClientCredentialsFlow
    from ..flow.environment import flow_arguments_from_env

    try:
        check_endpoint_url(server, what="--server", allow_insecure_http=False)
        flow = ClientCredentialsFlow(**flow_arguments_from_env(env.environ))
        flow.get_token_sync([ADMIN_SCOPE])  # a refused client is said now, in its words
    except AuthError as exc:
        from .exit_codes import exit_code_for

        raise fail(env, f"--server {server}: {exc}", exit_code_for(exc)) from None
    env.stderr.write(f"authkestra: admin API {server} as {flow.client_id}\n")
    with httpx.Client(
        base_url=server.rstrip("/"), auth=flow.auth([ADMIN_SCOPE]), timeout=30
    ) as http:
        yield http
