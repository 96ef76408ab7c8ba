"""Signing keys: ``authkestra keys rotate`` and ``keys list`` against a running (in-process) server."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from authkestra.cli import Environment, main
from authkestra.server.keys import KeyRing
from tests.server.conftest import MakeServer
from tests.server.harness import InProcessServer, jose_part, poll, verify_with_jwks
from tests.support.stores import made_store


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(environ={}, stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def rotate(server: InProcessServer, *args: str) -> str:
    code, out, err = run("keys", "rotate", "--db", server.db, *args)
    assert code == 0, err
    match = re.match(r"new signing key (\S+) \((\w+)\)", out)
    assert match, out
    return match.group(1)


def kids(server: InProcessServer) -> list[str]:
    return [key["kid"] for key in server.jwks()["keys"]]


def test_rotation_publishes_the_new_key_before_it_signs(server: InProcessServer) -> None:
    """By default the new key is in the JWKS 120 s before its first token, so every API
    (ours, or one that refetches keys at most every 30 s) has it when that token comes."""
    client = server.add_client()
    old_kid = jose_part(server.access_token(client), 0)["kid"]
    new_kid = rotate(server)
    assert set(kids(server)) == {old_kid, new_kid}
    assert jose_part(server.access_token(client), 0)["kid"] == old_kid  # still the old one
    code, out, err = run("keys", "list", "--db", server.db, "--format", "json")
    assert code == 0, err
    listed = {key["kid"]: key for key in json.loads(out)}
    assert (listed[old_kid]["signing"], listed[new_kid]["signing"]) == (True, False)
    signs_until = datetime.fromisoformat(listed[old_kid]["signs_until"])
    ahead = (signs_until - datetime.now(timezone.utc)).total_seconds()
    assert 60 < ahead <= 120
    assert listed[new_kid]["signs_until"] is None
    # The old key is published past its last token's lifetime.
    published_until = datetime.fromisoformat(listed[old_kid]["published_until"])
    assert published_until - signs_until >= timedelta(hours=1)


def test_key_ring_switches_when_the_new_key_has_been_published_long_enough(
    tmp_path: Path,
) -> None:
    from authkestra.server.context import build_context
    from authkestra.server.settings import ServerSettings

    ctx = build_context(ServerSettings(db=f"sqlite:///{tmp_path}/ring.db", cache_seconds=0))
    now = [datetime.now(timezone.utc)]
    ring = KeyRing(ctx.store, alg="ES256", cache_seconds=0, now=lambda: now[0])
    try:
        first = ring.signing_key()[0]
        second = ring.rotate(keep_old_for=timedelta(hours=1), publish_ahead=timedelta(minutes=2))
        assert ring.signing_key()[0] == first
        now[0] += timedelta(seconds=119)
        assert ring.signing_key()[0] == first
        # A second rotation within the window: the first key's end is not moved.
        third = ring.rotate(keep_old_for=timedelta(hours=1), publish_ahead=timedelta(minutes=2))
        now[0] += timedelta(seconds=1)
        assert ring.signing_key()[0] == second
        now[0] += timedelta(seconds=119)
        assert ring.signing_key()[0] == third
        # A key to replace now (compromised): no wait, whatever was planned.
        fourth = ring.rotate(keep_old_for=timedelta(0), publish_ahead=timedelta(0))
        assert ring.signing_key()[0] == fourth
        assert {k["kid"] for k in ring.jwks()["keys"]} >= {first, second, third, fourth}
    finally:
        ctx.close()


def test_rotation_with_publish_ahead_0_signs_with_the_new_key_at_once(
    server: InProcessServer,
) -> None:
    client = server.add_client()
    old_token = server.access_token(client)
    old_kid = jose_part(old_token, 0)["kid"]
    assert kids(server) == [old_kid]

    new_kid = rotate(server, "--publish-ahead", "0")
    assert new_kid != old_kid
    assert set(kids(server)) == {old_kid, new_kid}

    new_token = server.access_token(client)  # cache_seconds=0: the next token already
    assert jose_part(new_token, 0)["kid"] == new_kid
    jwks = server.jwks()
    assert verify_with_jwks(new_token, jwks)["client_id"] == client[0]
    assert verify_with_jwks(old_token, jwks)["client_id"] == client[0]
    # Tokens signed by the retired key stay valid while it is published.
    assert server.introspect(old_token, client)["active"] is True
    assert server.introspect(new_token, client)["active"] is True


def test_keys_list_shows_which_key_signs(server: InProcessServer) -> None:
    old_kid = kids(server)[0]
    new_kid = rotate(server, "--keep-old-for", "600", "--publish-ahead", "0")
    code, out, err = run("keys", "list", "--db", server.db, "--format", "json")
    assert code == 0, err
    listed = {key["kid"]: key for key in json.loads(out)}
    assert listed[new_kid]["signing"] is True
    assert listed[new_kid]["published_until"] is None
    assert listed[old_kid]["signing"] is False
    assert listed[old_kid]["published_until"] is not None
    assert "private" not in out and '"d"' not in out


def test_old_key_leaves_the_jwks_after_keep_old_for(server: InProcessServer) -> None:
    client = server.add_client()
    old_token = server.access_token(client)
    old_kid = jose_part(old_token, 0)["kid"]
    new_kid = rotate(server, "--keep-old-for", "1", "--publish-ahead", "0")
    assert new_kid != old_kid
    assert new_kid in kids(server)
    poll(lambda: kids(server) == [new_kid], timeout=10, interval=0.2)
    # Its tokens are no longer ours to vouch for.
    assert server.introspect(old_token, client) == {"active": False}
    assert server.introspect(server.access_token(client), client)["active"] is True


def test_rotate_to_another_algorithm(server: InProcessServer) -> None:
    client = server.add_client()
    new_kid = rotate(server, "--alg", "EdDSA", "--publish-ahead", "0")
    token = server.access_token(client)
    header = jose_part(token, 0)
    assert (header["kid"], header["alg"]) == (new_kid, "EdDSA")
    assert verify_with_jwks(token, server.jwks())["sub"] == client[0]
    assert server.introspect(token, client)["active"] is True


def test_rotate_refuses_an_unknown_algorithm(server: InProcessServer) -> None:
    before = kids(server)
    code, out, err = run("keys", "rotate", "--db", server.db, "--alg", "HS256")
    assert code == 2
    assert out == ""
    assert "ES256, EdDSA, RS256" in err
    assert kids(server) == before


def test_rotate_on_a_fresh_store_keeps_the_first_key_published(tmp_path: Path) -> None:
    db = made_store(tmp_path / "fresh.db")
    code, _, err = run("keys", "rotate", "--db", db, "--keep-old-for", "600")
    assert code == 0, err
    code, out, _ = run("keys", "list", "--db", db, "--format", "json")
    listed = json.loads(out)
    assert len(listed) == 2
    assert [k["signing"] for k in listed] == [False, True]  # newest first; not signing yet
    code, _, err = run("keys", "rotate", "--db", db, "--publish-ahead", "0")
    assert code == 0, err
    listed = json.loads(run("keys", "list", "--db", db, "--format", "json")[1])
    assert [k["signing"] for k in listed] == [True, False, False]


def test_rotation_reaches_a_server_that_caches_keys(make_server: MakeServer) -> None:
    """With cache_seconds, the server picks the new key up once its cache expires."""
    server = make_server(cache_seconds=0.5)
    client = server.add_client()
    old_kid = jose_part(server.access_token(client), 0)["kid"]
    new_kid = rotate(server, "--publish-ahead", "0")
    assert new_kid != old_kid
    poll(lambda: jose_part(server.access_token(client), 0)["kid"] == new_kid, timeout=10)
    # A token signed by a key this instance has not loaded yet is still verified:
    # an unknown kid makes it re-read the store.
    assert set(kids(server)) == {old_kid, new_kid}


def test_unknown_kid_makes_the_server_reread_the_store(make_server: MakeServer) -> None:
    server = make_server(cache_seconds=3600)
    client = server.add_client()
    server.access_token(client)  # keys loaded and cached for an hour
    # Another instance (here: a key ring of its own) rotates and signs.
    other = KeyRing(server.ctx.store, alg="ES256", cache_seconds=0)
    other.rotate(keep_old_for=timedelta(hours=1))
    token = other.sign(server.claims_for(client[0]))
    assert server.introspect(token, client)["active"] is True


def test_metadata_lists_the_algorithms_of_published_keys(tmp_path: Path) -> None:
    from authkestra.server.context import build_context
    from authkestra.server.endpoints.discovery import metadata
    from authkestra.server.settings import ServerSettings

    ctx = build_context(ServerSettings(db=f"sqlite:///{tmp_path}/s.db", cache_seconds=0))
    try:
        assert metadata(ctx)["access_token_signing_alg_values_supported"] == ["ES256"]
        ctx.keys.rotate(keep_old_for=timedelta(hours=1), alg="RS256")
        assert metadata(ctx)["access_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    finally:
        ctx.close()


def test_unknown_kids_reread_the_store_at_most_once_a_second(tmp_path: Path) -> None:
    from authkestra.server.context import build_context
    from authkestra.server.settings import ServerSettings

    ctx = build_context(ServerSettings(db=f"sqlite:///{tmp_path}/s.db", cache_seconds=60))
    reads = 0
    original = ctx.store.signing_keys

    def counting() -> list:  # type: ignore[type-arg]
        nonlocal reads
        reads += 1
        return original()

    ctx.store.signing_keys = counting  # type: ignore[method-assign]
    try:
        for n in range(50):
            assert ctx.keys.verification_key(f"garbage-{n}") is None
        assert reads <= 1
    finally:
        ctx.close()


def test_keys_list_reads_and_never_writes(tmp_path: Path) -> None:
    """Listing the keys of a store that has none makes none (it may be a read-only login)."""
    db = made_store(tmp_path / "empty.db")
    for _ in range(2):
        code, out, err = run("keys", "list", "--db", db, "--format", "json")
        assert code == 0, err
        assert json.loads(out) == []


def test_no_key_id_looks_like_an_option() -> None:
    """A kid is given to ``keys withdraw KID`` on the command line: one starting with "-"
    would be taken for an option (it did, once in 64 keys)."""
    from authkestra.server.keys import new_kid

    kids = [new_kid() for _ in range(5000)]
    assert not any(kid.startswith("-") for kid in kids)
    assert len(set(kids)) == len(kids) and all(len(kid) == 16 for kid in kids)
