"""The spec's ``evaluator.server`` and ``evaluator.load`` sections: valid forms and clear errors."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from deploytune.evaluators.server import ServerEvaluator
from deploytune.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "space": {"n_threads": {"type": "int", "low": 1, "high": 2}},
    "objective": {"metric": "output_tokens_per_s", "direction": "maximize"},
    "constraints": ["ttft_p95_ms <= 2000"],
    "evaluator": {
        "server": {"argv": ["{python}", "-m", "my_server", "--threads", "{n_threads}",
                            "--port", "{port}"],
                   "health_url": "http://127.0.0.1:{port}/v1/models",
                   "startup_timeout_s": 60,
                   "metric_patterns": {"kv_mib": r"KV size = ([\d.]+) MiB"}},
        "load": {"requests": 8, "concurrency": 2, "max_tokens": 16, "slo_ttft_ms": 2000},
        "timeout_s": 300,
    },
    "budget": 5,
}


def _with(path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = d
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return d


def _error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data, base_dir=ROOT, source="spec.yaml")
    return info.value


def test_server_spec_builds_a_server_evaluator_and_round_trips() -> None:
    spec = parse_spec(BASE, base_dir=ROOT, source="spec.yaml")
    assert spec.evaluator.kind == "server"
    evaluator = spec.build_evaluator()
    assert isinstance(evaluator, ServerEvaluator)
    assert evaluator.settings.startup_timeout_s == 60
    assert evaluator.settings.metric_patterns == {"kv_mib": r"KV size = ([\d.]+) MiB"}
    assert evaluator.load.requests == 8 and evaluator.load.slo_ttft_ms == 2000
    assert evaluator.timeout_s == 300
    again = parse_spec(spec.to_dict(), base_dir=ROOT, source="spec.yaml")
    assert again == spec
    argv, _ = evaluator.command.render({"n_threads": 2, "port": 8123})
    assert argv[-4:] == ["--threads", "2", "--port", "8123"]
    assert argv[0] == sys.executable
    assert spec.to_dict()["evaluator"]["server"]["startup_timeout_s"] == 60.0
    assert isinstance(spec.evaluator.server["startup_timeout_s"], float)
    auto = parse_spec(_with("evaluator.server.port", "auto"), base_dir=ROOT, source="s.yaml")
    assert auto.build_evaluator().settings.port is None


@pytest.mark.parametrize(("path", "value", "where", "fragment"), [
    ("evaluator.server.argv", ..., "evaluator.server.argv", "missing"),
    ("evaluator.server.argv", "vllm serve x", "evaluator.server.argv", "never a shell line"),
    ("evaluator.server.port", 0, "evaluator.server.port", "1-65535"),
    ("evaluator.server.health_url", "localhost:8000", "evaluator.server.health_url",
     "not an http(s) URL"),
    ("evaluator.server.startup_timeout_s", -1, "evaluator.server.startup_timeout_s", ""),
    ("evaluator.server.startup_timeout_s", "x", "evaluator.server.startup_timeout_s",
     "expected a number of seconds"),
    ("evaluator.server.stop_timeout_s", float("inf"), "evaluator.server.stop_timeout_s",
     "must be a finite number of seconds > 0"),
    ("evaluator.server.port", True, "evaluator.server.port", "got the boolean true"),
    ("evaluator.server.base_url", "ftp://x", "evaluator.server.base_url", "http(s) URL"),
    ("evaluator.server.metric_patterns", {"a b": "(x)"},
     "evaluator.server.metric_patterns['a b']", "metric names must be identifiers"),
    ("evaluator.server.metric_patterns", {"kv": 3},
     "evaluator.server.metric_patterns.kv", "expected a regular expression string"),
    ("evaluator.server.argv", ["./no-such-server.sh"], "evaluator.server.argv[0]",
     "does not exist"),
    ("evaluator.env", {"X": "{nope}"}, "evaluator.env.X", "unknown placeholder {nope}"),
    ("evaluator.server.metric_patterns", {"kv": "no group"},
     "evaluator.server.metric_patterns.kv", "has no (group)"),
    ("evaluator.server.metric_patterns", {"kv": "(unclosed"},
     "evaluator.server.metric_patterns.kv", "not a valid regular expression"),
    ("evaluator.server.helth_url", "http://x", "evaluator.server.helth_url",
     "did you mean 'health_url'"),
    ("evaluator.load.requests", 0, "evaluator.load.requests", "integer >= 1, got 0"),
    ("evaluator.load.concurrency", "many", "evaluator.load.concurrency", "got 'many'"),
    ("evaluator.load.burst", 3, "evaluator.load.burst", "burst"),
    ("evaluator.isolate", True, "evaluator.isolate", "python evaluators only"),
])
def test_bad_server_input_names_the_field(path: str, value: Any, where: str,
                                          fragment: str) -> None:
    err = _error(_with(path, value))
    assert err.field_path == where, (err.field_path, err.message)
    assert fragment in err.message


def test_unknown_placeholder_in_server_argv_is_named() -> None:
    data = _with("evaluator.server.argv", ["{python}", "-m", "srv", "--t", "{threads}"])
    err = _error(data)
    assert err.field_path == "evaluator.server.argv[4]"
    assert "unknown placeholder {threads}" in err.message


def test_port_placeholder_is_allowed_in_urls_and_argv_only_for_servers() -> None:
    data = copy.deepcopy(BASE)
    data["evaluator"] = {"command": ["{python}", "-c", "print(1)", "{port}"]}
    err = _error(data)
    assert "unknown placeholder {port}" in err.message


def test_load_needs_a_server_and_only_one_evaluator_kind() -> None:
    data = copy.deepcopy(BASE)
    data["evaluator"] = {"python": "tests.toy:evaluate", "load": {"requests": 2}}
    err = _error(data)
    assert err.field_path == "evaluator.load" and "server evaluators only" in err.message
    data = copy.deepcopy(BASE)
    data["evaluator"]["command"] = ["echo"]
    err = _error(data)
    assert "gives command and server; keep exactly one" in err.message


def test_a_parameter_named_port_is_refused() -> None:
    """Issue 16, item 10: a parameter named port was silently overridden by the trial's
    port."""
    d = copy.deepcopy(BASE)
    d["space"]["port"] = {"type": "int", "low": 8000, "high": 8010}
    err = _error(d)
    assert err.field_path == "space.port" and "the name 'port' is reserved" in err.message


def test_a_setting_error_of_server_settings_is_shown_at_its_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: ServerSettings' own path goes after evaluator.server."""
    from deploytune.evaluators import server
    from deploytune.setting_error import SettingError

    def refuse(**settings: Any) -> None:
        raise SettingError(("metric_patterns", "kv_mib"), "needs one (group)")

    monkeypatch.setattr(server, "ServerSettings", refuse)
    err = _error(copy.deepcopy(BASE))
    assert (err.field_path, err.message) == ("evaluator.server.metric_patterns.kv_mib",
                                             "needs one (group)")
