"""The worked example in docs/adding-a-lookup.md runs as written."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.commands import registry
from bot.commands.registry import UsageError
from bot.upstream.client import NotFound, Upstream
from config import get_settings
from tests.conftest import ROOT


@pytest.fixture
def example(upstreams: Any) -> Any:
    text = (ROOT / "docs" / "adding-a-lookup.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code, "the worked example is missing"
    namespace: dict[str, Any] = {}
    exec(compile(code[1], "docs/adding-a-lookup.md", "exec"), namespace)
    yield namespace
    registry.REGISTRY.pop("number", None)


def test_the_documented_lookup_registers_parses_and_answers(example: Any, upstreams: Any) -> None:
    command = registry.get("number")
    assert command is not None and command.usage == "/number N" and command.breaker == "numbers"
    assert command.run_parser("042") == {"n": 42}
    with pytest.raises(UsageError):
        command.run_parser("forty-two")
    settings = get_settings().model_copy(update={})
    object.__setattr__(settings, "NUMBERS_API_URL", upstreams.url("numbers"))  # the doc's step 2
    upstream = Upstream(settings)
    assert example["number"]({"n": 42}, upstream) == "42 is the number of the test."
    with pytest.raises(NotFound, match=r"Nothing is known about 404\."):
        example["number"]({"n": 404}, upstream)
