"""docs/workload-identity.md: its manifests, commands and code agree with each other and
with what authkestra reads (a cluster is not at hand; everything short of one is checked)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from authkestra.flow.environment import CLIENT_VARIABLES, ENV_PREFIX

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "workload-identity.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def manifests() -> list[dict[str, Any]]:
    return [doc for block in blocks("yaml") for doc in yaml.safe_load_all(block) if doc]


def kubernetes() -> tuple[dict[str, Any], dict[str, Any]]:
    kinds = {doc.get("kind"): doc for doc in manifests()}
    return kinds["ServiceAccount"], kinds["Deployment"]


def commands() -> list[list[str]]:
    found = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("authkestra "):
                found.append(shlex.split(line))
    return found


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_deployment_sets_only_variables_the_flow_reads() -> None:
    _account, deployment = kubernetes()
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    names = {item["name"].removeprefix(ENV_PREFIX) for item in env}
    assert names <= set(CLIENT_VARIABLES)


def test_the_assertion_file_is_where_the_projected_token_is_mounted() -> None:
    _account, deployment = kubernetes()
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    mount = container["volumeMounts"][0]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    projected = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert env["AUTHKESTRA_CLIENT_ASSERTION_FILE"] == f"{mount['mountPath']}/{projected['path']}"
    # The token is for the authorization server: its audience is the server's issuer ...
    assert projected["audience"] == env["AUTHKESTRA_ISSUER"]
    # ... and lives no longer than the server's default maximum (one hour).
    assert projected["expirationSeconds"] <= 3600


def test_the_client_is_bound_to_the_pods_service_account() -> None:
    account, deployment = kubernetes()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    namespace = deployment["metadata"]["namespace"]
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"]}
    create = next(c for c in commands() if c[1:3] == ["clients", "create"] and c[3] == "reporter")
    assert env["AUTHKESTRA_CLIENT_ID"] == create[3]
    assert (
        option(create, "--subject")
        == f"system:serviceaccount:{namespace}:{pod['serviceAccountName']}"
    )
    trusted = option(create, "--trusted-issuer")
    assert any(c[1:4] == ["issuers", "add", trusted] for c in commands())


def test_the_commands_are_commands_of_the_cli() -> None:
    from typer.testing import CliRunner

    from authkestra.cli import app

    runner = CliRunner()
    for argv in commands():
        # --help after the words: parses every option given, runs nothing.
        words = [w for w in argv[1:] if not w.startswith("-")][:2]
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (argv, result.output)
        for flag in (w for w in argv[1:] if w.startswith("--")):
            assert flag in result.output, (argv, flag)


def test_the_python_examples_compile() -> None:
    for block in blocks("python"):
        compile(block, str(GUIDE), "exec")
