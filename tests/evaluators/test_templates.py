"""The template engine shared by the command and server evaluators."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from deploytune.evaluators.templates import (
    CONFIG_JSON,
    ArgvTemplate,
    Template,
    check_placeholders,
    config_json_of,
    format_value,
)
from deploytune.setting_error import SettingError
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


def test_a_template_error_carries_its_path_and_where() -> None:
    with pytest.raises(SettingError) as info:
        Template("{}", "env['X']", ("env", "X"))
    assert info.value.path == ("env", "X") and str(info.value).startswith("env['X']: '{}' ")


def test_argv_template_renders_groups_and_env_and_names_its_mistakes() -> None:
    command = ArgvTemplate(["prog", "--bs={batch_size}", ["--lr", "{lr}"], "{config_json}"],
                           env={"BS": "{batch_size}", "LR": "{lr}"})
    assert command.render({"batch_size": 4}) == (["prog", "--bs=4", '{"batch_size": 4}'],
                                                 {"BS": "4"})
    assert command.render({"batch_size": 4}, config_json_of({"a": 1}))[0][-1] == '{"a": 1}'
    assert [t.where for t in command.templates()] == [
        "argv[0]", "argv[1]", "argv[2][0]", "argv[2][1]", "argv[3]", "env['BS']", "env['LR']"]
    assert command.line(12) == "prog --bs..."
    with pytest.raises(ValueError, match="argv\\[0\\] '\\{p\\}' refers to a parameter"):
        ArgvTemplate(["{p}"]).render({})
    for argv, env, path in [("prog x", None, ("argv",)), (["prog", []], None, ("argv", 1)),
                            (["prog"], {"A=B": "1"}, ("env", "A=B")),
                            (["prog", ["a", "{"]], None, ("argv", 1, 1))]:
        with pytest.raises(SettingError) as info:
            ArgvTemplate(argv, env)  # type: ignore[arg-type]
        assert info.value.path == path


def test_check_placeholders_names_the_unknown_and_the_reserved() -> None:
    ok = [Template("{batch_size}", "argv[1]"), Template("{port}", "argv[2]")]
    check_placeholders(ok, SPACE, extra=("port",))
    with pytest.raises(ValueError, match=r"^argv\[2\]: unknown placeholder \{port\}"):
        check_placeholders(ok, SPACE)
    reserved = Space.from_dict({"python": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(ValueError, match="reserved"):
        check_placeholders([], reserved)


def test_check_placeholders_words_the_spec_s_messages() -> None:
    """The spec's checks are these (tests/test_spec.py): a close name is suggested, the
    reserved name is refused at ``space.<name>`` saying what its placeholder is."""
    with pytest.raises(SettingError) as info:
        check_placeholders([Template("{bach_size}", "argv[1]", ("argv", 1))], SPACE)
    assert info.value.path == ("argv", 1)
    assert info.value.message == (
        "unknown placeholder {bach_size} (did you mean 'batch_size'?); placeholders must "
        "name a parameter of space (batch_size, lr) or be {config_json} or {python} (the "
        "tuner's interpreter); write {{ and }} for literal braces")
    port = Space.from_dict({"port": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(SettingError) as info:
        check_placeholders([], port, {"port": "the trial's port"}, kind="server")
    assert info.value.path == ("space", "port")
    assert info.value.message == (
        "the name 'port' is reserved: {port} in the server evaluator's templates is the "
        "trial's port; rename the parameter (e.g. port_value)")


def test_templates_are_built_and_checked_one_at_a_time() -> None:
    """A lazy iterable's malformed template is found after the unknown placeholder before
    it, and after the reserved names (the order of the spec's errors)."""
    def lazy(*texts: str) -> Iterator[Template]:
        return (Template(t, f"argv[{i}]", ("argv", i)) for i, t in enumerate(texts))

    with pytest.raises(SettingError, match=r"unknown placeholder \{nope\}"):
        check_placeholders(lazy("{nope}", "{}"), SPACE)
    with pytest.raises(SettingError, match="empty placeholder"):
        check_placeholders(lazy("{}", "{nope}"), SPACE)
    reserved = Space.from_dict({"python": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(SettingError, match="reserved"):
        check_placeholders(lazy("{}"), reserved)


def test_any_name_leaves_odd_field_names_to_the_space_check() -> None:
    with pytest.raises(SettingError, match="is not a placeholder"):
        Template("{0}", "argv[1]")
    assert Template("{0}", "argv[1]", any_name=True).names == ("0",)
    with pytest.raises(SettingError, match=r"^argv\[1\]: unknown placeholder \{0\}"):
        check_placeholders([Template("{0}", "argv[1]", any_name=True)], SPACE)
    with pytest.raises(SettingError, match="the conversion !r is not supported"):
        Template("{0!r}", "argv[1]", any_name=True)
