"""Every bad flag or setting of ``serve`` (and ``init``) is one line and a documented exit code.

In-process through ``main``: each case fails before the server would listen. One case
runs the console script, to see the same from a real process.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from authkestra.cli import Environment, main
from authkestra.server.master_key import MasterKey
from tests.support.authkestra_server import BIN
from tests.support.redis_server import free_port

CONFIG, NETWORK, USAGE = 3, 4, 2


def run(*args: str, environ: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(environ=dict(environ or {}), stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def the_error(err: str) -> str:
    """The one error line (lines before it may say a master key was made)."""
    errors = [line for line in err.splitlines() if line.startswith("authkestra: error: ")]
    assert len(errors) == 1, err
    assert err.endswith(errors[0] + "\n"), err  # and it is the last thing said
    assert "Traceback" not in err
    return errors[0].removeprefix("authkestra: error: ")


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run in an empty directory: the default store must not land in the checkout."""
    before = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(before)


# -- the store ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://db.example/authkestra", "unsupported store 'mysql': give sqlite:///PATH or"),
        ("notaurl", "not a store URL: give sqlite:///PATH or postgresql://USER@HOST/NAME"),
        ("redis://127.0.0.1/0", "unsupported store 'redis'"),
    ],
)
def test_a_store_url_that_is_not_one_is_named(in_tmp: Path, url: str, said: str) -> None:
    for command in (("serve",), ("init",), ("clients", "list")):
        code, out, err = run(*command, "--db", url)
        assert code == CONFIG, err
        assert out == ""
        assert the_error(err).startswith("--db (AUTHKESTRA_SERVER_DB): ")
        assert said in the_error(err)
    assert list(in_tmp.iterdir()) == []


def test_a_store_path_that_cannot_be_made_is_named(in_tmp: Path) -> None:
    (in_tmp / "a-file").write_text("")
    url = f"sqlite:///{in_tmp}/a-file/authkestra.db"
    code, _, err = run("serve", "--db", url)
    assert code == CONFIG
    assert the_error(err) == (
        f"--db {url}: cannot make the store there (Not a directory): give a directory this"
        " user may write"
    )


def test_an_unreachable_postgresql_is_a_network_error(in_tmp: Path) -> None:
    url = f"postgresql://authkestra@127.0.0.1:{free_port()}/authkestra"
    key = in_tmp / "kek"
    MasterKey.generate(key)
    code, _, err = run("serve", "--db", url, "--master-key-file", str(key))
    assert code == NETWORK
    message = the_error(err)
    assert message.startswith(f"--db {url}: cannot reach PostgreSQL (")
    assert message.endswith(
        "check that it runs and that the URL's host, port, user and database are right"
    )


def test_a_missing_postgresql_driver_names_the_extra(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    key = in_tmp / "kek"
    MasterKey.generate(key)
    code, _, err = run(
        "serve", "--master-key-file", str(key),
        environ={"AUTHKESTRA_SERVER_DB": "postgresql://authkestra@127.0.0.1/authkestra"},
    )  # fmt: skip
    assert code == CONFIG
    assert the_error(err).endswith(
        "the PostgreSQL driver (psycopg) is not installed: pip install 'authkestra[postgres]'"
    )


def test_a_url_in_a_file_is_read_and_must_be_private(in_tmp: Path) -> None:
    url_file = in_tmp / "db-url"
    url_file.write_text(f"sqlite:///{in_tmp}/from-file.db\n")
    url_file.chmod(0o644)
    code, _, err = run("init", environ={"AUTHKESTRA_SERVER_DB_FILE": str(url_file)})
    assert code == CONFIG
    assert the_error(err) == (
        f"the store URL file {url_file} may be read by others (mode 0644): chmod 600 {url_file}"
    )
    url_file.chmod(0o600)
    code, out, err = run("init", environ={"AUTHKESTRA_SERVER_DB_FILE": str(url_file)})
    assert code == 0, err
    assert out == f"store sqlite:///{in_tmp}/from-file.db made\n"
    code, _, err = run(
        "init", "--db", "sqlite:///other.db", environ={"AUTHKESTRA_SERVER_DB_FILE": str(url_file)}
    )
    assert code == CONFIG
    assert the_error(err) == "give the store's URL once: db or db_file, not both"


# -- Redis, the address, the log level, the issuer ----------------------------------------------


def test_an_unreachable_redis_is_a_network_error(in_tmp: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = run("serve", "--redis", url)
    assert code == NETWORK
    message = the_error(err)
    assert message.startswith(f"--redis {url}: Redis does not answer (")
    assert message.endswith("check that it runs and the URL")


def test_a_redis_url_that_is_not_one_is_named(in_tmp: Path) -> None:
    code, _, err = run("serve", "--redis", "http://127.0.0.1:6379")
    assert code == CONFIG
    assert the_error(err).startswith("--redis http://127.0.0.1:6379: not a Redis URL (")


def test_a_port_in_use_is_named(in_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run("serve", "--port", str(port))
    assert code == CONFIG
    assert the_error(err) == (
        f"--host/--port: 127.0.0.1:{port} is in use (another server?): give another --port"
    )


def test_a_host_that_is_not_here_is_named(in_tmp: Path) -> None:
    code, _, err = run("serve", "--host", "192.0.2.1", "--issuer", "https://auth.example.com")
    assert code == CONFIG
    assert the_error(err) == (
        "--host/--port: 192.0.2.1 is not an address of this machine: give another --host"
    )


def test_an_unknown_log_level_is_named(in_tmp: Path) -> None:
    code, _, err = run("serve", "--log-level", "loud")
    assert code == CONFIG
    message = the_error(err)
    assert message.startswith("--log-level (AUTHKESTRA_SERVER_LOG_LEVEL): Input should be ")
    for level in ("'critical'", "'error'", "'warning'", "'info'", "'debug'", "'trace'"):
        assert level in message
    assert list(in_tmp.iterdir()) == []  # checked before any store is made


@pytest.mark.parametrize(
    ("issuer", "said"),
    [
        ("ftp://auth.example.com", "the issuer is not an absolute https URL"),
        ("auth.example.com", "the issuer is not an absolute https URL"),
        ("http://auth.example.com", "the issuer is plain http on a host that is not loopback"),
        ("https://auth.example.com/?a=1", "the issuer has a query or fragment"),
    ],
)
def test_an_issuer_that_is_not_https_is_refused(in_tmp: Path, issuer: str, said: str) -> None:
    code, _, err = run("serve", "--issuer", issuer)
    assert code == CONFIG
    assert the_error(err).startswith(f"--issuer (AUTHKESTRA_SERVER_ISSUER): {said}")


def test_listening_everywhere_needs_an_issuer(in_tmp: Path) -> None:
    code, _, err = run("serve", "--host", "0.0.0.0")
    assert code == CONFIG
    assert the_error(err) == (
        "the default issuer http://0.0.0.0:8080 (from --host and --port) is plain http on a"
        " host that is not loopback: give --issuer with the https URL clients use"
    )


def test_tls_options_without_a_certificate_are_a_usage_error(in_tmp: Path) -> None:
    code, _, err = run("serve", "--tls-key", "key.pem")
    assert code == USAGE
    assert the_error(err) == "--tls-key and --tls-client-ca go with --tls-cert"


# -- the console script ------------------------------------------------------------------------


def test_the_real_command_fails_in_one_line_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN), "serve", "--port", str(port), "--db", f"sqlite:///{tmp_path}/a.db"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert result.returncode == CONFIG
    assert result.stdout == ""
    assert the_error(result.stderr).endswith("is in use (another server?): give another --port")
