"""mTLS options and their refusals: the flow's, the CLI's, and hostile certificate input."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from authkestra import ClientCredentialsFlow, ConfigError
from authkestra.server.mtls import MutualTLS, TLSSubject
from authkestra.server.store import ClientRecord
from authkestra.tls import ClientCertificate, presented_certificate
from tests.support.authkestra_server import cli
from tests.support.certificates import Issued, TestPKI, self_signed
from tests.support.stores import made_store

TOKEN_URL = "https://as.example/token"


@pytest.fixture(scope="module")
def local_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("options-pki"))


@pytest.fixture(scope="module")
def leaf(local_pki: TestPKI) -> Issued:
    return local_pki.issue("leaf", "leaf", dns=("leaf.example",))


# -- the flow ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_a_tls_method_needs_a_certificate(method: str) -> None:
    with pytest.raises(ConfigError, match="client_cert"):
        ClientCredentialsFlow("svc", token_url=TOKEN_URL, auth_method=method)


def test_a_tls_method_sends_no_secret(leaf: Issued) -> None:
    with pytest.raises(ConfigError, match="sends no secret"):
        ClientCredentialsFlow(
            "svc",
            "s3cret-value",
            TOKEN_URL,
            auth_method="tls_client_auth",
            client_cert=(leaf.cert_path, leaf.key_path),
        )


def test_an_injected_client_brings_its_own_certificate(leaf: Issued) -> None:
    with httpx.Client() as client:
        with pytest.raises(ConfigError, match="http_client"):
            ClientCredentialsFlow(
                "svc",
                token_url=TOKEN_URL,
                auth_method="tls_client_auth",
                client_cert=(leaf.cert_path, leaf.key_path),
                http_client=client,
            )
        # ... and is enough on its own.
        ClientCredentialsFlow(
            "svc", token_url=TOKEN_URL, auth_method="tls_client_auth", http_client=client
        )


def test_a_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="could not be loaded"):
        ClientCredentialsFlow(
            "svc",
            token_url=TOKEN_URL,
            auth_method="tls_client_auth",
            client_cert=tmp_path / "absent.pem",
        )


def test_a_key_of_another_certificate_is_a_config_error(leaf: Issued, local_pki: TestPKI) -> None:
    other = local_pki.issue("other-leaf", "other")
    with pytest.raises(ConfigError) as caught:
        ClientCredentialsFlow(
            "svc",
            token_url=TOKEN_URL,
            auth_method="tls_client_auth",
            client_cert=(leaf.cert_path, other.key_path),
        )
    # the reason, never the key
    assert "PRIVATE KEY" not in str(caught.value)


@pytest.mark.parametrize("value", [(), ("a", "b", "c", "d"), (1, 2)])
def test_a_malformed_client_cert_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="client_cert"):
        ClientCredentialsFlow(
            "svc",
            token_url=TOKEN_URL,
            auth_method="tls_client_auth",
            client_cert=value,  # type: ignore[arg-type]
        )


def test_a_bad_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="ca_bundle"):
        ClientCredentialsFlow("svc", "s3cret-value", TOKEN_URL, ca_bundle=junk)


def test_the_flow_repr_shows_no_certificate_paths_or_keys(leaf: Issued) -> None:
    flow = ClientCredentialsFlow(
        "svc",
        token_url=TOKEN_URL,
        auth_method="tls_client_auth",
        client_cert=(leaf.cert_path, leaf.key_path),
    )
    assert "key" not in repr(flow).replace("auth_method", "")


# -- reading the certificate from the scope --------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {"extensions": None},
        {"extensions": {"tls": None}},
        {"extensions": {"tls": {"client_cert_chain": []}}},
        {"extensions": {"tls": {"client_cert_chain": [b"bytes"]}}},
        {"extensions": {"tls": {"client_cert_chain": ["-----BEGIN CERTIFICATE-----\n!!\n"]}}},
        {"extensions": {"tls": {"client_cert_chain": ["garbage"]}}},
    ],
)
def test_no_or_broken_certificate_in_the_scope_is_none(scope: dict[str, object]) -> None:
    assert presented_certificate(scope) is None


def test_the_certificate_is_read_from_the_scope(leaf: Issued) -> None:
    scope = {"extensions": {"tls": {"client_cert_chain": [leaf.pem]}}}
    first = presented_certificate(scope)
    assert first is not None and first.der == leaf.der
    assert presented_certificate(scope) is first  # parsed once per request


# -- the server's checks on hostile registrations ----------------------------------------


def _record(method: str, **extra: object) -> ClientRecord:
    from datetime import datetime, timezone

    return ClientRecord(
        client_id="c",
        auth_method=method,
        scopes=(),
        default_scopes=None,
        audiences=(),
        token_ttl=None,
        enabled=True,
        created_at=datetime.now(timezone.utc),
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "stored", ["", "[]", '{"subject_dn": 1}', '{"a": "b"}', '{"san_dns": "x", "san_uri": "y"}']
)
def test_a_broken_stored_subject_authenticates_nobody(
    stored: str, leaf: Issued, local_pki: TestPKI
) -> None:
    from authkestra.server.mtls import ClientCAs

    mtls = MutualTLS(ClientCAs.from_file(local_pki.ca.cert_path), bind_tokens=True)
    record = _record("tls_client_auth", tls_client_auth=stored)
    assert mtls.authenticates(record, ClientCertificate(leaf.der)) is False


def test_without_client_cas_tls_client_auth_authenticates_nobody(leaf: Issued) -> None:
    record = _record(
        "tls_client_auth", tls_client_auth=TLSSubject("san_dns", "leaf.example").to_json()
    )
    assert (
        MutualTLS(None, bind_tokens=True).authenticates(record, ClientCertificate(leaf.der))
        is False
    )


@pytest.mark.parametrize(
    ("kind", "value"),
    [("subject_dn", "no equals sign"), ("san_ip", "999.1.1.1"), ("nope", "x"), ("san_dns", "")],
)
def test_invalid_subjects_are_refused(kind: str, value: str) -> None:
    with pytest.raises(ValueError):
        TLSSubject(kind, value)


# -- the CLI ---------------------------------------------------------------------------


def _create(tmp_path: Path, *args: str) -> tuple[int, str]:
    db = f"sqlite:///{tmp_path}/s.db"
    if not (tmp_path / "s.db").exists():
        made_store(tmp_path / "s.db")
    out = cli("clients", "create", "c1", *args, "--db", db, check=False)
    return out.returncode, out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth-method", "tls_client_auth"], "exactly one"),
        (
            ["--auth-method", "tls_client_auth", "--tls-san-dns", "a", "--tls-san-uri", "b"],
            "exactly one",
        ),
        (["--auth-method", "tls_client_auth", "--tls-subject-dn", "garbage"], "RFC 4514"),
        (["--auth-method", "tls_client_auth", "--tls-san-ip", "1.2.3"], "--tls-san-ip"),
        (["--tls-san-dns", "a.example"], "go with --auth-method tls_client_auth"),
        (["--auth-method", "self_signed_tls_client_auth"], "needs the client's certificate"),
    ],
)
def test_cli_refuses_bad_certificate_registrations(
    tmp_path: Path, args: list[str], message: str
) -> None:
    code, stderr = _create(tmp_path, *args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr


def test_cli_refuses_a_file_that_is_no_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    code, stderr = _create(
        tmp_path, "--auth-method", "self_signed_tls_client_auth", "--cert", str(junk)
    )
    assert code == 2 and "--cert" in stderr and "Traceback" not in stderr
    code, stderr = _create(tmp_path, "--cert", str(junk))
    assert code == 2 and "self_signed_tls_client_auth" in stderr


def test_cli_refuses_an_x5c_for_another_key(tmp_path: Path) -> None:
    one, two = self_signed(tmp_path, "one", "one"), self_signed(tmp_path, "two", "two")
    from authkestra.server.mtls import jwks_for_certificates

    document = jwks_for_certificates([one.pem])
    document["keys"][0]["x5c"] = jwks_for_certificates([two.pem])["keys"][0]["x5c"]
    code, stderr = _create(
        tmp_path, "--auth-method", "self_signed_tls_client_auth", "--jwks", json.dumps(document)
    )
    assert code == 2 and "not for the key" in stderr


def test_cli_shows_what_a_certificate_client_is_known_by(tmp_path: Path) -> None:
    db = made_store(tmp_path / "s.db")
    cli(
        "clients",
        "create",
        "dn",
        "--auth-method",
        "tls_client_auth",
        "--tls-subject-dn",
        "CN=svc,O=Example",
        "--db",
        db,
    )
    shown = json.loads(cli("clients", "show", "dn", "--format", "json", "--db", db).stdout)
    assert shown["tls_client_auth"] == {"subject_dn": "CN=svc,O=Example"}
    assert "secrets" not in shown  # it has none
    cert = self_signed(tmp_path, "s", "s")
    created = json.loads(
        cli(
            "clients",
            "create",
            "ss",
            "--auth-method",
            "self_signed_tls_client_auth",
            "--cert",
            str(cert.cert_path),
            "--format",
            "json",
            "--db",
            db,
        ).stdout
    )
    from authkestra.tls import certificate_thumbprint

    assert created["key_ids"] == [certificate_thumbprint(cert.der)]


def test_serve_refuses_tls_options_without_a_certificate(tmp_path: Path) -> None:
    out = cli(
        "serve",
        "--tls-client-ca",
        str(tmp_path / "ca.pem"),
        "--db",
        f"sqlite:///{tmp_path}/s.db",
        check=False,
    )
    assert out.returncode == 2
    assert "--tls-cert" in out.stderr


def test_uvicorn_options_need_a_ca_to_require_certificates(leaf: Issued) -> None:
    from authkestra.tls.uvicorn import uvicorn_tls_options

    with pytest.raises(ConfigError):
        uvicorn_tls_options(leaf.cert_path, leaf.key_path, require_client_certificate=True)
    options = uvicorn_tls_options(leaf.cert_path, leaf.key_path, client_ca=leaf.cert_path)
    assert options["ssl_cert_reqs"] == ssl.CERT_OPTIONAL


def test_serve_refuses_unreadable_tls_files(tmp_path: Path, leaf: Issued) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    for args in (
        ["--tls-cert", str(tmp_path / "absent.pem")],
        ["--tls-cert", str(leaf.cert_path), "--tls-key", str(junk)],
        [
            "--tls-cert",
            str(leaf.cert_path),
            "--tls-key",
            str(leaf.key_path),
            "--tls-client-ca",
            str(junk),
        ],
    ):
        out = cli("serve", *args, "--db", f"sqlite:///{tmp_path}/s.db", check=False)
        assert out.returncode == 2, out.stderr
        assert "TLS: cannot load" in out.stderr and "Traceback" not in out.stderr


def test_a_bad_trust_entry_is_skipped_not_fatal(local_pki: TestPKI, tmp_path: Path) -> None:
    from authkestra.server.tls_server import ServerSSLContext

    server = local_pki.server("trust-server")
    good = self_signed(tmp_path, "good", "good")
    junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    context = ServerSSLContext(str(server.cert_path), str(server.key_path), None).build(
        (junk, good.pem)
    )
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "good"),),)]


def test_an_encrypted_server_key_is_refused_not_prompted_for(
    local_pki: TestPKI, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    from authkestra.server.tls_server import ServerSSLContext

    server = local_pki.server("locked-server")
    locked = tmp_path / "locked-key.pem"
    locked.write_bytes(
        server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(ValueError, match="encrypted"):
        ServerSSLContext(str(server.cert_path), str(locked), None).build(())


def test_an_encrypted_client_key_needs_its_password(leaf: Issued, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    locked = tmp_path / "client-locked.pem"
    locked.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted"):
        ClientCredentialsFlow(
            "svc",
            token_url=TOKEN_URL,
            auth_method="tls_client_auth",
            client_cert=(leaf.cert_path, locked),
        )
    ClientCredentialsFlow(
        "svc",
        token_url=TOKEN_URL,
        auth_method="tls_client_auth",
        client_cert=(leaf.cert_path, locked, "open sesame"),
    )


def test_a_certificate_the_server_reports_unverified_is_not_used(leaf: Issued) -> None:
    scope = {"extensions": {"tls": {"client_cert_chain": [leaf.pem], "client_cert_error": "x"}}}
    assert presented_certificate(scope) is None


@pytest.mark.parametrize("value", [5, "", None, ["a"]])
def test_a_malformed_certificate_binding_is_refused(value: object) -> None:
    from datetime import datetime, timezone

    from authkestra import InvalidToken
    from authkestra.resource import AccessToken
    from authkestra.resource.presentation import certificate_thumbprint_bound

    access = AccessToken(
        subject="s",
        client_id="c",
        scopes=(),
        audience=("a",),
        expires_at=datetime.now(timezone.utc),
        jwt_id="j",
        issuer="i",
        claims={"cnf": {"x5t#S256": value}},
    )
    with pytest.raises(InvalidToken):
        certificate_thumbprint_bound(access)


def test_a_subject_dn_only_certificate_verifies(local_pki: TestPKI) -> None:
    # No SAN, no authority key identifier, no purposes: what `openssl x509 -req` makes.
    from cryptography.hazmat.primitives.asymmetric import ec

    from authkestra.server.mtls import ClientCAs
    from tests.support.certificates import _builder, _name, write_issued

    key = ec.generate_private_key(ec.SECP256R1())
    bare = _builder(_name("bare", "Example"), local_pki.ca.certificate.subject, key, 1)
    from cryptography.hazmat.primitives import hashes

    issued = write_issued(
        local_pki.directory, "bare", bare.sign(local_pki.ca.key, hashes.SHA256()), key
    )
    cas = ClientCAs.from_file(local_pki.ca.cert_path)
    assert cas.verifies(ClientCertificate(issued.der)) is True
    assert TLSSubject("subject_dn", "CN=bare,O=Example").matches(issued.certificate)
    # ... and the check still refuses what another CA signed
    stranger = TestPKI(local_pki.directory / "stranger", name="stranger CA").issue("s", "bare")
    assert cas.verifies(ClientCertificate(stranger.der)) is False


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("san_dns", "\u212aey.example"),
        ("san_email", "k\u00e9@example.org"),
        ("san_email", "nobody"),
        ("san_uri", "spiffe://x/\n"),
    ],
)
def test_subjects_are_ascii(kind: str, value: str) -> None:
    with pytest.raises(ValueError):
        TLSSubject(kind, value)


def test_email_local_part_is_exact_domain_is_not(local_pki: TestPKI) -> None:
    cert = local_pki.issue("mail", "mail", emails=("Ops.Team@Example.ORG",)).certificate
    assert TLSSubject("san_email", "Ops.Team@example.org").matches(cert)
    assert not TLSSubject("san_email", "ops.team@example.org").matches(cert)


def test_cli_changes_what_a_certificate_client_is_known_by(tmp_path: Path) -> None:
    from authkestra.tls import certificate_thumbprint

    db = made_store(tmp_path / "s.db")
    old, new = self_signed(tmp_path, "old", "old"), self_signed(tmp_path, "new", "new")
    cli(
        "clients",
        "create",
        "ss",
        "--auth-method",
        "self_signed_tls_client_auth",
        "--cert",
        str(old.cert_path),
        "--db",
        db,
    )
    both = json.loads(
        cli(
            "clients",
            "set-keys",
            "ss",
            "--cert",
            str(old.cert_path),
            "--cert",
            str(new.cert_path),
            "--format",
            "json",
            "--db",
            db,
        ).stdout
    )
    assert both["key_ids"] == [certificate_thumbprint(old.der), certificate_thumbprint(new.der)]
    cli(
        "clients",
        "create",
        "dn",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "a.example",
        "--db",
        db,
    )
    cli("clients", "set-keys", "dn", "--tls-subject-dn", "CN=b,O=Example", "--db", db)
    shown = json.loads(cli("clients", "show", "dn", "--format", "json", "--db", db).stdout)
    assert shown["tls_client_auth"] == {"subject_dn": "CN=b,O=Example"}
    for args, message in (
        (["set-keys", "dn", "--cert", str(new.cert_path)], "one --tls-* option"),
        (["set-keys", "ss", "--tls-san-dns", "x.example"], "--tls-* options go with"),
        (["rotate-secret", "dn"], "not a secret"),
        (["rotate-secret", "ss"], "not a secret"),
    ):
        out = cli("clients", *args, "--db", db, check=False)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
    cli("clients", "create", "plain", "--db", db)
    out = cli("clients", "set-keys", "plain", "--cert", str(new.cert_path), "--db", db, check=False)
    assert out.returncode == 2 and "has no keys" in out.stderr
