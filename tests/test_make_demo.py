"""``make demo`` installs what the demo needs, not the whole test toolchain."""

from __future__ import annotations

import re
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def recipe(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of ``target`` in the Makefile."""
    lines = MAKEFILE.read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(rf"^{re.escape(target)}:(.*)$", line)
        if match:
            body = []
            for follower in lines[index + 1 :]:
                if not follower.startswith("\t"):
                    break
                body.append(follower.strip())
            return match.group(1).split(), body
    raise AssertionError(f"no target {target} in the Makefile")


def test_make_demo_installs_the_server_and_resource_extras_only() -> None:
    prerequisites, body = recipe("demo")
    assert body == ["$(BIN)/authkestra demo"]
    assert prerequisites == ["$(VENV)/.demo-installed"]
    _, install = recipe("$(VENV)/.demo-installed")
    installs = [line for line in install if "pip install" in line and " -e " in line]
    assert installs == ["$(BIN)/python -m pip install --quiet -e '.[server,resource]'"]
    assert not any("[test]" in line or "npm" in line for line in install)
