"""The template engine shared by the command and server evaluators."""

from __future__ import annotations

import sys

import pytest

from deploytune.evaluators.templates import (
    CONFIG_JSON,
    Template,
    check_placeholders,
    format_value,
)
from deploytune.space import Space

SPACE = Space.from_dict({"batch_size": {"type": "int", "low": 1, "high": 64},
                         "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True}})


def test_render_formats_values_and_drops_inactive_ones() -> None:
    def no_json() -> str:
        raise AssertionError("config_json rendered without being asked for")

    assert Template("--batch={batch_size}", "argv[1]").render({"batch_size": 16}, no_json) \
        == "--batch=16"
    assert Template("{lr:.1e}", "argv[2]").render({"lr": 0.001}, no_json) == "1.0e-03"
    assert Template("{python}", "argv[0]").render({}, no_json) == sys.executable
    assert Template("{batch_size}", "argv[1]").render({}, no_json) is None
    assert Template(f"{{{CONFIG_JSON}}}", "argv[1]").render({"a": 1}, lambda: '{"a": 1}') \
        == '{"a": 1}'
    assert format_value(True, "") == "true" and format_value(0.1, "") == "0.1"


@pytest.mark.parametrize(("text", "fix"), [
    ("--batch={batch", "literal braces"),
    ("{}", "put a parameter name"),
    ("{lr!r}", "is not supported"),
    ('{"x": 1}', "is not a placeholder"),
])
def test_a_malformed_template_names_where_and_the_fix(text: str, fix: str) -> None:
    with pytest.raises(ValueError, match=r"argv\[3\]") as info:
        Template(text, "argv[3]")
    assert fix in str(info.value)


def test_check_placeholders_names_the_unknown_and_the_reserved() -> None:
    ok = [Template("{batch_size}", "argv[1]"), Template("{port}", "argv[2]")]
    check_placeholders(ok, SPACE, extra=("port",))
    with pytest.raises(ValueError, match=r"unknown placeholder \{port\} in argv\[2\]"):
        check_placeholders(ok, SPACE)
    reserved = Space.from_dict({"python": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(ValueError, match="reserved"):
        check_placeholders([], reserved)
