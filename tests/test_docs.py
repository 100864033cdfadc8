"""The docs keep up with the code: every setting in docs/configuration.md and .env.example,
every command in the README, a README a newcomer reads in minutes, and links that resolve."""

from __future__ import annotations

import re

from bot.commands import registry
from config import Settings
from tests.conftest import ROOT

README_MAX_BYTES = 12_000


def test_every_setting_is_documented() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in table, f"{name} missing from the settings table in docs/configuration.md"
        assert f"\n{name}=" in example, f"{name} missing from .env.example"


def test_every_command_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in registry.commands(admin=None):
        escaped = command.usage.replace("|", "\\|")  # a pipe inside a Markdown table cell
        assert f"`{command.usage}`" in readme or f"`{escaped}`" in readme, (
            f"{command.usage} missing from the README"
        )


def test_the_readme_stays_short() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/"


def test_relative_links_in_the_docs_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
