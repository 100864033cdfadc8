"""The README and .env.example list every setting and every command the code has."""

from __future__ import annotations

from bot import registry
from config import Settings
from tests.conftest import ROOT


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in readme, f"{name} missing from the README settings table"
        assert f"\n{name}=" in example, f"{name} missing from .env.example"


def test_every_command_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in registry.commands(admin=None):
        escaped = command.usage.replace("|", "\\|")  # a pipe inside a Markdown table cell
        assert f"`{command.usage}`" in readme or f"`{escaped}`" in readme, (
            f"{command.usage} missing from the README"
        )


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
