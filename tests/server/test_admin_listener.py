"""``authkestra serve --admin-port``: the admin API on a listener of its own, for real."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.redis_server import free_port


@pytest.fixture(scope="module")
def server() -> AuthkestraServer:
    started = AuthkestraServer(admin=True)
    yield started  # type: ignore[misc]
    started.stop()


def test_the_admin_api_is_not_on_the_public_port(server: AuthkestraServer) -> None:
    token = server.admin_token()
    public = httpx.get(
        f"{server.issuer}/admin/clients", headers={"Authorization": f"Bearer {token}"}
    )
    assert public.status_code == 404
    assert server.admin_request("GET", "/admin/clients", token).status_code == 200


def test_a_client_made_through_the_admin_api_gets_tokens_at_once(
    server: AuthkestraServer,
) -> None:
    token = server.admin_token()
    made = server.admin_request(
        "POST", "/admin/clients", token, json={"client_id": "from-admin", "scope": "read"}
    )
    assert made.status_code == 201, made.text
    answer = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=("from-admin", made.json()["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    listed = cli("clients", "list", "--format", "json", "--db", server.db).stdout
    assert "from-admin" in listed  # one store, whichever door


def test_metrics_need_a_token_and_count_what_happened(server: AuthkestraServer) -> None:
    assert httpx.get(f"{server.admin_url}/metrics").status_code == 401
    token = server.admin_token("authkestra:metrics")
    text = server.admin_request("GET", "/metrics", token).text
    assert "authkestra_token_requests_total" in text
    assert "authkestra_signing_key_age_seconds" in text


def test_an_admin_port_in_use_is_one_line() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = cli(
            "serve", "--port", str(free_port()), "--admin-port", str(port),
            "--db", "sqlite:///" + str(_tmp_db()), check=False,
        )  # fmt: skip
    assert result.returncode == 3, result.stderr  # ExitCode.CONFIG, as for --port
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert re.fullmatch(
        rf"authkestra: error: --admin-host/--admin-port: 127\.0\.0\.1:{port} is in use .*"
        r"give another --admin-port",
        line,
    ), line
    assert "Traceback" not in result.stderr


def test_the_admin_port_cannot_be_the_public_one() -> None:
    port = str(free_port())
    result = cli(
        "serve", "--port", port, "--admin-port", port, "--db", "sqlite:///" + str(_tmp_db()),
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().endswith("--admin-port: give the admin API a port of its own")


def _tmp_db() -> str:
    import tempfile

    return f"{tempfile.mkdtemp(prefix='authkestra-admin-')}/authkestra.db"


def test_metrics_add_up_every_worker(tmp_path: Path) -> None:
    """Under --workers 2 each worker counts in its own file; a scrape adds them up."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    server = AuthkestraServer(
        workers=2, admin=True, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    )
    try:
        client_id, secret = server.create_client("counted", "--scope", "read")
        issued = 0
        # A new connection each time: the kernel hands them to both workers. Until each
        # worker has issued some (its own file says so), or an implausible number.
        while issued < 20 or (len(_issued_by_process(directory)) < 2 and issued < 500):
            with httpx.Client() as fresh:
                answer = fresh.post(
                    server.token_url,
                    data={"grant_type": "client_credentials"},
                    auth=(client_id, secret),
                )
            assert answer.status_code == 200
            issued += 1
        per_process = _issued_by_process(directory)
        assert len(per_process) == 2, per_process
        token = server.admin_token("authkestra:metrics")
        text = server.admin_request("GET", "/metrics", token).text
        match = re.search(
            r'authkestra_token_requests_total\{client_id="counted",outcome="issued"\} (\S+)', text
        )
        assert match is not None, text[:2000]
        assert float(match.group(1)) == issued == sum(per_process.values())
    finally:
        server.stop()


def _issued_by_process(directory: Path) -> dict[str, float]:
    """Tokens issued to "counted", by the process whose metrics file counted them."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in directory.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if "authkestra_token_requests" in key and '"counted"' in key and value:
                counts[path.name] = counts.get(path.name, 0.0) + value
    return counts
