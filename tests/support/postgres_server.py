"""Runs a real PostgreSQL server on loopback for the tests.

``initdb`` refuses to run as root, and CI runs as root: then the cluster is
created and run by the ``postgres`` system user (``runuser``), in a temporary
directory that user owns. As any other user, the cluster runs as that user.
The server listens on 127.0.0.1 only (and on a unix socket in the temporary
directory), trusts loopback connections, and is thrown away at ``stop()``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.redis_server import free_port

__all__ = ["PostgresServer", "find_bindir"]

#: The system user that runs the cluster when the tests run as root.
SERVICE_USER = "postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MISSING = (
    "the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed:"
    " run 'make test' (it installs them) or apt-get install postgresql"
)


def find_bindir() -> Path:
    """The directory with initdb, pg_ctl, postgres and pg_isready."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))

    # Debian: /usr/lib/postgresql/<major>/bin, newest major first.
    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else -1

    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    candidates += [Path(p) for p in versioned]
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise RuntimeError(_MISSING)


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1; ``url`` is a SQLAlchemy URL of its database.

    ``user`` is the cluster's superuser (trust authentication on loopback, no
    password); ``create_database()`` makes more databases for tests that need
    a fresh one.
    """

    def __init__(
        self, *, user: str = "authkestra", database: str = "authkestra", timeout: float = 60.0
    ) -> None:
        for name in (user, database):
            if not _NAME.fullmatch(name):
                raise ValueError(f"not a plain PostgreSQL name: {name!r}")
        self.user = user
        self.database = database
        self.bindir = find_bindir()
        self._as_service_user = os.geteuid() == 0
        self._tmp = Path(tempfile.mkdtemp(prefix="authkestra-pg-", dir=self._base_dir()))
        self.data_dir = self._tmp / "data"
        self.socket_dir = self._tmp
        self.log_path = self._tmp / "postgres.log"
        self.port = 0
        self._started = False
        try:
            if self._as_service_user:
                self._hand_over(self._tmp)
            self._initdb()
            self._start(timeout)
            self.create_database(database)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    # -- lifecycle -----------------------------------------------------------------------

    def _base_dir(self) -> str | None:
        # The service user must reach the directory: a TMPDIR under /root would not do.
        if not self._as_service_user:
            return None
        base = Path(tempfile.gettempdir()).resolve()
        for part in (base, *base.parents):
            if not part.stat().st_mode & 0o001:
                return "/tmp"
        return str(base)

    def _hand_over(self, path: Path) -> None:
        try:
            account = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {SERVICE_USER!r} user to run PostgreSQL"
                " (initdb refuses root): install the postgresql package"
            ) from None
        os.chown(path, account.pw_uid, account.pw_gid)
        path.chmod(0o700)

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        if self._as_service_user:
            runuser = shutil.which("runuser")
            if runuser is not None:
                return [runuser, "-u", SERVICE_USER, "--", *command]
            return ["su", SERVICE_USER, "-s", "/bin/sh", "-c", _shell_join(command)]
        return command

    def _run(
        self, program: str, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # PG* variables of the calling environment (PGPORT, PGDATA, ...) must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC"})
        result = subprocess.run(
            self._command(program, *args),
            cwd=self._tmp,  # the service user may not be able to enter ours
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stdout}{result.stderr}"
                f"{self._log_tail()}"
            )
        return result

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            self.user,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
            timeout=120,
        )

    def _start(self, timeout: float) -> None:
        # A free port can be taken between choosing it and binding it: then try another.
        for _attempt in range(3):
            self.port = free_port()
            options = _shell_join(
                [
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={self.port}",
                    "-c",
                    f"unix_socket_directories={self.socket_dir}",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            )
            started = self._run(
                "pg_ctl",
                "start",
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_path),
                "--options",
                options,
                "--wait",
                "--timeout",
                str(int(timeout)),
                timeout=timeout + 10,
                check=False,
            )
            if started.returncode == 0:
                self._started = True
                self._wait_ready(timeout)
                return
            if "already in use" not in self._log_tail():
                break
        raise RuntimeError(
            f"PostgreSQL did not start: {started.stdout}{started.stderr}{self._log_tail()}"
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = self._run(
                "pg_isready",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--username",
                self.user,
                "--dbname",
                "postgres",
                "--timeout",
                "2",
                timeout=10,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL is not ready: {ready.stdout}{self._log_tail()}")
            time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            return "\n" + self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut the cluster down (fast: sessions are cut) and delete its files."""
        if self._started:
            self._started = False
            stopped = self._run(
                "pg_ctl",
                "stop",
                "--pgdata",
                str(self.data_dir),
                "--mode",
                "fast",
                "--wait",
                "--timeout",
                "30",
                timeout=40,
                check=False,
            )
            if stopped.returncode != 0:
                self._run(
                    "pg_ctl",
                    "stop",
                    "--pgdata",
                    str(self.data_dir),
                    "--mode",
                    "immediate",
                    "--wait",
                    "--timeout",
                    "30",
                    timeout=40,
                    check=False,
                )
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- databases -----------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database; its SQLAlchemy URL."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain PostgreSQL name: {name!r}")
        self.execute("postgres", f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def execute(
        self, database: str, sql: str, params: Sequence[object] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) in ``database``; the rows it returned."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []


def _shell_join(words: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(word) for word in words)
