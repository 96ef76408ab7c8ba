"""docs/server-settings.md documents every server setting, with its default."""

from __future__ import annotations

from pathlib import Path

import pytest

from authkestra.cli._store_options import FLAGS
from authkestra.server.settings import ENV_PREFIX, ServerSettings

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "server-settings.md"


def rows() -> dict[str, str]:
    found = {}
    for line in REFERENCE.read_text().splitlines():
        if line.startswith(f"| `{ENV_PREFIX}"):
            found[line.split("`")[1]] = line
    return found


@pytest.mark.parametrize("name", list(ServerSettings.model_fields))
def test_every_setting_has_a_row_with_its_flag_default_and_description(name: str) -> None:
    field = ServerSettings.model_fields[name]
    assert field.description, f"{name} has no description"
    row = rows().get(f"{ENV_PREFIX}{name.upper()}")
    assert row is not None, f"{name} is not in {REFERENCE.name}"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    flag, default, description = cells[1], cells[2], cells[3]
    assert description == field.description
    assert flag == (f"`--{name.replace('_', '-')}`" if name in FLAGS else "")
    if field.default in (None, ""):
        assert default == "—"
    elif isinstance(field.default, bool):
        assert default == f"`{str(field.default).lower()}`"
    else:
        assert default == f"`{field.default}`"


def test_no_row_names_a_setting_there_is_not() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in ServerSettings.model_fields}
    assert set(rows()) <= known
