"""One vocabulary: auth methods as AuthMethod, one scope grammar, one place for each."""

from __future__ import annotations

import ast
import pathlib

from authkestra import AuthMethod
from authkestra._protocol.scope import is_scope_token, split_scope

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "authkestra"
#: "none" is also a JWS algorithm (the one every reader refuses): not looked for.
METHOD_NAMES = {m.value for m in AuthMethod} - {"none"}


def _code_strings(path: pathlib.Path) -> list[tuple[int, str]]:
    """The string values a module compares, stores or passes: not docstrings, nor names of
    JSON members (dict keys, subscripts), which may share a method's name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            skipped.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            skipped.add(id(node.slice))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
    ]


def test_the_server_names_auth_methods_only_through_auth_method() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line} {value!r}"
        for folder in ("server", "cli", "demo")
        for path in (SRC / folder).rglob("*.py")
        if "migrations" not in path.parts
        for line, value in _code_strings(path)
        if value in METHOD_NAMES
    ]
    assert offenders == []


def test_one_scope_grammar() -> None:
    grammar = r"[\x21\x23-\x5b\x5d-\x7e]+"  # (a DPoP nonce has the same characters, 1024 at most)
    holders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if grammar in path.read_text(encoding="utf-8")
    ]
    assert holders == ["_protocol/scope.py"]


def test_the_grammar() -> None:
    assert is_scope_token("reports:read") and is_scope_token("a!#[]~")
    for bad in ("", "a b", 'say"hi', "back\\slash", "caf\u00e9", "tab\t", 5):
        assert not is_scope_token(bad)
    assert split_scope("read  write ") == ("read", "write")
    assert split_scope("read\u00a0admin") == ("read\u00a0admin",)  # one (invalid) token
    assert split_scope("read\tadmin") == ("read\tadmin",)
