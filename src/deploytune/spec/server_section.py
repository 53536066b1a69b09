"""The ``evaluator.server`` and ``evaluator.load`` sections: an LLM server and its load test.

Example::

    evaluator:
      server:
        argv: ["{python}", -m, llama_cpp.server, --model, model.gguf,
               --n_threads, "{n_threads}", --port, "{port}"]
        health_url: "http://127.0.0.1:{port}/v1/models"
        startup_timeout_s: 120
        metric_patterns: {kv_cache_mib: "KV self size\\\\s*=\\\\s*([\\\\d.]+) MiB"}
      load: {requests: 16, concurrency: 2, max_tokens: 32, slo_ttft_ms: 2000}
      timeout_s: 300
      rules: [{pattern: "Failed to create llama_context", kind: invalid_config}]
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from deploytune.evaluators.server_settings import TIMEOUT_FIELDS, ServerSettings
from deploytune.setting_error import SettingError
from deploytune.spec.checks import as_mapping, as_string, check_keys, is_number
from deploytune.spec.errors import Invalid, invalid_at
from deploytune.spec.messages import join, kind_of, one_line

__all__ = ["LOAD_EXAMPLE", "SERVER_EXAMPLE", "SERVER_KEYS", "parse_load", "parse_server"]

SERVER_KEYS = tuple(f.name for f in fields(ServerSettings))
"""Keys of ``evaluator.server``: the fields of
:class:`~deploytune.evaluators.server.ServerSettings`."""

SERVER_EXAMPLE = ("server: {argv: [\"{python}\", -m, llama_cpp.server, --model, m.gguf, "
                  "--port, \"{port}\"], health_url: \"http://127.0.0.1:{port}/v1/models\"}")
LOAD_EXAMPLE = "load: {requests: 16, concurrency: 2, max_tokens: 32}"
_PATTERNS_EXAMPLE = "metric_patterns: {kv_tokens: \"KV cache size: ([\\\\d,]+) tokens\"}"


def parse_server(raw: Any, argument: Any) -> dict[str, Any]:
    """The validated ``evaluator.server`` mapping, in the keyword form of
    :class:`~deploytune.evaluators.server.ServerSettings` (argv as a tuple of strings and
    groups, the time limits as floats). ``argument`` validates one argv item (the command
    section's rules); the values are checked by building the settings once."""
    path = "evaluator.server"
    d = as_mapping(raw, path, SERVER_EXAMPLE)
    check_keys(d, path, SERVER_KEYS)
    if d.get("argv") is None:
        raise Invalid(join(path, "argv"), f"missing; write e.g. {SERVER_EXAMPLE}")
    argv_raw = d["argv"]
    if isinstance(argv_raw, str):
        raise Invalid(join(path, "argv"), f"expected a list of arguments (never a shell line), "
                      f"got {kind_of(argv_raw)}; write e.g. argv: {argv_raw.split()!r}")
    if not isinstance(argv_raw, list) or not argv_raw:
        raise Invalid(join(path, "argv"), f"expected a non-empty list of arguments, got "
                      f"{kind_of(argv_raw)}")
    argv: list[str | tuple[str, ...]] = []
    for i, item in enumerate(argv_raw):
        at = f"{path}.argv[{i}]"
        if isinstance(item, list) and i > 0:
            if not item:
                raise Invalid(at, "is an empty group; remove it or list its arguments")
            argv.append(tuple(argument(x, f"{at}[{j}]") for j, x in enumerate(item)))
        else:
            argv.append(argument(item, at))
    if not isinstance(argv[0], str) or not argv[0]:
        raise Invalid(f"{path}.argv[0]", "the program to run must be a non-empty string")
    out: dict[str, Any] = {"argv": tuple(argv)}
    if d.get("port") is not None and d["port"] != "auto":
        out["port"] = d["port"]
    for key in ("health_url", "base_url"):
        if d.get(key) is not None:
            out[key] = as_string(d[key], join(path, key), "a URL",
                                 f"{key}: http://127.0.0.1:{{port}}")
    for key in TIMEOUT_FIELDS:
        if d.get(key) is not None:
            out[key] = d[key]
    if d.get("release_check") is not None:
        check = d["release_check"]
        if not isinstance(check, list) or not check:
            raise Invalid(join(path, "release_check"), f"expected an argv list, got "
                          f"{kind_of(check)}; write e.g. release_check: [./gpu_idle.sh]")
        out["release_check"] = tuple(argument(x, f"{path}.release_check[{i}]")
                                     for i, x in enumerate(check))
    if d.get("metric_patterns") is not None:
        out["metric_patterns"] = dict(as_mapping(d["metric_patterns"],
                                                 join(path, "metric_patterns"),
                                                 _PATTERNS_EXAMPLE))
    try:
        ServerSettings(**out)
    except SettingError as exc:
        raise invalid_at(path, exc) from None
    for key in TIMEOUT_FIELDS:
        if key in out:
            out[key] = float(out[key])
    return out


def parse_load(raw: Any) -> dict[str, Any]:
    """The validated ``evaluator.load`` mapping (the keys of
    :class:`~deploytune.loadgen.LoadSpec`)."""
    from deploytune.loadgen import LoadSpec, LoadSpecError

    path = "evaluator.load"
    d = as_mapping(raw if raw is not None else {}, path, LOAD_EXAMPLE)
    for key, value in d.items():
        if is_number(value) and not math.isfinite(float(value)):
            raise Invalid(join(path, key), f"must be a finite number, got {value!r}")
    try:
        spec = LoadSpec.from_dict(dict(d))
    except LoadSpecError as exc:
        raise Invalid(join(path, exc.field), one_line(exc.message)) from None
    except (TypeError, ValueError) as exc:
        raise Invalid(path, one_line(str(exc))) from None
    return dict(spec.to_dict())
