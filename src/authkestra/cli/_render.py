"""How the management commands print records: ``--format table`` for people, ``json`` for scripts.

Tables are plain aligned text (no box drawing: they are grepped and piped as often
as read), values written as people write them -- lists as ``a b c``, nothing as
``-``, never a Python repr.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from . import Environment

__all__ = [
    "FORMATS",
    "ListFormatOption",
    "check_format",
    "check_text_or_json",
    "print_record",
    "print_records",
]

#: What ``--format`` takes; ``text`` is the older name of ``table``.
FORMATS = ("table", "json", "text")

ListFormatOption = Annotated[
    str, typer.Option("--format", help="table (for people) or json (for scripts).")
]


def check_format(env: Environment, value: str) -> None:
    """One line and exit 2 for a format that is not one of :data:`FORMATS`."""
    from ._store_options import fail

    if value not in FORMATS:
        raise fail(env, f"--format must be table or json, not {value!r}", 2)


def check_text_or_json(env: Environment, value: str) -> None:
    """One line and exit 2 unless ``value`` is ``text`` or ``json`` (the ``--format`` of
    commands that print one result, not a list)."""
    from ._store_options import fail

    if value not in ("text", "json"):
        raise fail(env, "--format must be text or json", 2)


def cell(value: object) -> str:
    """A value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return " ".join(cell(v) for v in value) or "-"
    return str(value)


def print_records(
    env: Environment, output: str, records: Sequence[Mapping[str, object]], columns: Sequence[str]
) -> None:
    """``records`` as JSON (every member), or a table of ``columns`` with a header row."""
    if output == "json":
        _json(env, list(records))
        return
    rows = [[name.upper() for name in columns]]
    rows += [[cell(record.get(name)) for name in columns] for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        line = "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
        env.stdout.write(line.rstrip() + "\n")
    env.stdout.flush()


def print_record(env: Environment, output: str, record: Mapping[str, object]) -> None:
    """One record as JSON, or one ``name: value`` line per member (lists of records one per
    line below their name)."""
    if output == "json":
        _json(env, record)
        return
    width = max((len(name) for name in record), default=0) + 2
    for name, value in record.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            env.stdout.write(f"{name}:\n")
            for item in value:
                env.stdout.write(f"  - {cell(item)}\n")
            continue
        env.stdout.write(f"{(name + ':').ljust(width)}{cell(value)}\n")
    env.stdout.flush()


def _json(env: Environment, document: object) -> None:
    env.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    env.stdout.flush()
