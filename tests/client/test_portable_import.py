"""authkestra imports, and its caches work, where there is no ``fcntl`` (Windows)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

WITHOUT_FCNTL = 'import sys\nsys.modules["fcntl"] = None  # what "import fcntl" finds on Windows\n'


def _run(code: str, cwd: Path, *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, *flags, "-c", WITHOUT_FCNTL + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_package_imports_without_fcntl(tmp_path: Path) -> None:
    out = _run(
        """
        import authkestra, authkestra.cache, authkestra.flow, authkestra.resource
        import authkestra.server, authkestra.cli
        from authkestra.cache import FileCache, MemoryCache, RedisCache
        import fcntl
        """.replace("import fcntl", "print('fcntl' in sys.modules and sys.modules['fcntl'])"),
        tmp_path,
        "-W",
        "error",
    )
    assert out.strip() == "None"


def test_the_caches_work_without_fcntl(tmp_path: Path) -> None:
    out = _run(
        """
        import time
        from authkestra import Token
        from authkestra.cache import CachedToken, FileCache, MemoryCache
        now = time.time()
        record = CachedToken(Token("tok-1"), now, now + 60, now + 100)
        for cache in (MemoryCache(), FileCache("tokens/cache.json")):
            cache.save("k", record)
            assert cache.load("k").token.access_token == "tok-1"
            with cache.lock("k", 5) as held:
                assert held
            cache.delete("k")
            assert cache.load("k") is None
        print("ok")
        """,
        tmp_path,
    )
    assert out.strip() == "ok"
