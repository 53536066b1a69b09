"""The ``evaluator`` section: python or command, its settings and crash rules."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploytune.evaluators.classify import Rule
from deploytune.outcome import CrashKind
from deploytune.setting_error import SettingError
from deploytune.space import Space
from deploytune.spec.checks import (
    as_mapping,
    as_string,
    check_keys,
    int_at_least,
    is_dir,
    is_number,
    positive_number,
    safe_float,
)
from deploytune.spec.errors import Invalid, invalid_at
from deploytune.spec.evaluator import check_placeholders, probe_evaluator
from deploytune.spec.messages import join, kind_of, one_line, show, suggest
from deploytune.spec.model import EvaluatorSpec
from deploytune.spec.schema import COMMAND_KEYS, EVALUATOR_KEYS, RULE_KEYS, TARGET_RE
from deploytune.spec.server_section import parse_load, parse_server


def parse_evaluator(raw: Any, space: Space, base_dir: Path,
                    check_evaluator: bool) -> tuple[EvaluatorSpec, int, tuple[Rule, ...]]:
    """``(evaluator, retries, rules)`` of the ``evaluator`` section.

    The command's placeholders are checked against ``space``; with ``check_evaluator`` the
    Python target is imported or the command's executable looked up as well.
    """
    d = as_mapping(raw, "evaluator", "evaluator: {python: my_package.bench:evaluate}")
    check_keys(d, "evaluator", EVALUATOR_KEYS)
    has_python = d.get("python") is not None
    has_command = d.get("command") is not None
    has_server = d.get("server") is not None
    given = [k for k, v in (("python", has_python), ("command", has_command),
                            ("server", has_server)) if v]
    if len(given) > 1:
        raise Invalid("evaluator", f"gives {' and '.join(given)}; keep exactly one")
    if not given:
        raise Invalid("evaluator", "needs python, command or server; add e.g. python: "
                      "my_package.bench:evaluate or command: {argv: [python, bench.py, "
                      "--batch, \"{batch_size}\"]}")
    if d.get("load") is not None and not has_server:
        raise Invalid("evaluator.load", "applies to server evaluators only; remove it or add "
                      "evaluator.server")
    cwd = _cwd(d.get("cwd"), base_dir)
    env = _env(d.get("env"), "evaluator.env")
    timeout_s = None if d.get("timeout_s") is None else positive_number(
        d["timeout_s"], "evaluator.timeout_s", "seconds")
    memory_mb = None if d.get("memory_mb") is None else int_at_least(
        d["memory_mb"], "evaluator.memory_mb", 1, 2**40, 2048)
    retries = 2 if d.get("retries") is None else int_at_least(
        d["retries"], "evaluator.retries", 0, 1000, 2)
    rules = _rules(d.get("rules"))
    estimate = None if d.get("estimate") is None else _target(
        d["estimate"], "evaluator.estimate", "estimate: my_package.model:predict")
    if has_server:
        if d.get("isolate") is not None:
            raise Invalid("evaluator.isolate", "applies to python evaluators only (a server "
                          "always runs in its own process group); remove it")
        server = parse_server(d["server"], _argument)
        load = parse_load(d.get("load"))
        spec = EvaluatorSpec("server", None, server["argv"], env, cwd, timeout_s, memory_mb,
                             None, True, server=server, load=load, estimate=estimate)
        check_placeholders(spec, space)
        if check_evaluator:
            probe_evaluator(spec, base_dir, space)
        return spec, retries, rules
    if has_python:
        isolate = d.get("isolate")
        if isolate is None:
            isolate = True
        if not isinstance(isolate, bool):
            raise Invalid("evaluator.isolate", f"expected true or false, got "
                          f"{kind_of(isolate)}")
        target = _target(d["python"], "evaluator.python", "python: my_package.bench:evaluate")
        if not isolate:
            for key in ("timeout_s", "memory_mb", "env", "cwd"):
                if d.get(key) is not None:
                    raise Invalid(f"evaluator.{key}", "an in-process evaluator (isolate: "
                                  "false) cannot apply it; remove it or set isolate: true")
        spec = EvaluatorSpec("python", target, (), env, cwd, timeout_s, memory_mb, None,
                             isolate, estimate=estimate)
    else:
        if d.get("isolate") is not None:
            raise Invalid("evaluator.isolate", "applies to python evaluators only (a "
                          "command always runs in its own process); remove it")
        argv, cmd_env, metrics_file = _command(d["command"])
        if cmd_env is not None and env is not None:
            raise Invalid("evaluator.command.env", "env is given twice (also as "
                          "evaluator.env); keep one of them")
        spec = EvaluatorSpec("command", None, argv, cmd_env if cmd_env is not None else env,
                             cwd, timeout_s, memory_mb, metrics_file, True, estimate=estimate)
    if spec.kind == "command":
        check_placeholders(spec, space)
    if check_evaluator:
        probe_evaluator(spec, base_dir, space)
    return spec, retries, rules


def _target(raw: Any, at: str, example: str) -> str:
    """A ``package.module:function`` target at the field ``at``."""
    target = as_string(raw, at, "'module:function'", example)
    if not TARGET_RE.match(target):
        raise Invalid(at, f"{target!r} is not of the form package.module:function; write "
                      f"e.g. {example} (a dotted module path relative to the spec's folder, "
                      f"not a file path)")
    return target


def _cwd(raw: Any, base_dir: Path) -> Path:
    """The evaluation's absolute working folder (default: ``base_dir``), which must exist."""
    if raw is None:
        folder = base_dir
    else:
        text = as_string(raw, "evaluator.cwd", "a folder", "cwd: .")
        try:
            folder = (base_dir / Path(text).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise Invalid("evaluator.cwd", f"cannot resolve {text!r} ({exc})") from None
    if not is_dir(folder):
        raise Invalid("evaluator.cwd", f"the folder {str(folder)!r} does not exist; "
                      f"create it or fix the path (relative to the spec's folder)")
    return folder


def _env(raw: Any, path: str) -> dict[str, str] | None:
    """Extra environment variables at ``path``: names to string values."""
    if raw is None:
        return None
    d = as_mapping(raw, path, "env: {OMP_NUM_THREADS: \"{threads}\", CUDA_VISIBLE_DEVICES: \"0\"}")
    out: dict[str, str] = {}
    for key, value in d.items():
        at = join(path, key)
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise Invalid(at, f"environment variable names must be non-empty strings without "
                          f"'=', got {kind_of(key)}")
        if isinstance(value, str):
            text = value
        elif is_number(value) and math.isfinite(safe_float(value)):
            text = str(value)
        else:
            raise Invalid(at, f"expected a string value, got {kind_of(value)}; quote it, "
                          f"e.g. {key}: \"1\"")
        if "\x00" in text:
            raise Invalid(at, "contains a NUL character; remove it")
        out[key] = text
    return out


def _rules(raw: Any) -> tuple[Rule, ...]:
    """The crash classification rules of ``evaluator.rules``."""
    if raw is None:
        return ()
    example = "rules: [{pattern: \"CUDA out of memory\", kind: oom}]"
    if not isinstance(raw, list):
        raise Invalid("evaluator.rules", f"expected a list of rules, got {kind_of(raw)}; "
                      f"write e.g. {example}")
    kinds = [k.value for k in CrashKind]
    out: list[Rule] = []
    for i, r in enumerate(raw):
        at = f"evaluator.rules[{i}]"
        d = as_mapping(r, at, "{pattern: \"CUDA out of memory\", kind: oom}")
        check_keys(d, at, RULE_KEYS)
        for key in ("pattern", "kind"):
            if d.get(key) is None:
                raise Invalid(f"{at}.{key}", "missing; a rule needs pattern and kind, e.g. "
                              "{pattern: \"CUDA out of memory\", kind: oom}")
        pattern = d["pattern"]
        if not isinstance(pattern, str) or not pattern:
            raise Invalid(f"{at}.pattern", f"expected a non-empty regular expression string, "
                          f"got {kind_of(pattern)}; quote it")
        kind = d["kind"]
        if not isinstance(kind, str) or kind not in kinds:
            raise Invalid(f"{at}.kind", f"unknown crash kind {show(kind)}"
                          f"{suggest(kind, kinds)}; use one of {', '.join(kinds)}")
        ignore_case = d.get("ignore_case")
        if ignore_case is None:
            ignore_case = False
        if not isinstance(ignore_case, bool):
            raise Invalid(f"{at}.ignore_case", f"expected true or false, got "
                          f"{kind_of(ignore_case)}")
        try:
            out.append(Rule(pattern, CrashKind(kind), ignore_case))
        except Exception as exc:  # re.error, OverflowError for huge repeats, ...
            raise Invalid(f"{at}.pattern", f"{pattern!r} is not a valid regular expression "
                          f"({one_line(str(exc))}); escape special characters such as "
                          f"( [ . * + ? with a backslash") from None
    return tuple(out)


def _command(raw: Any) -> tuple[tuple[str | tuple[str, ...], ...], dict[str, str] | None,
                                str | None]:
    """``evaluator.command``: an argv list, or a mapping {argv, env, metrics_file}."""
    path = "evaluator.command"
    example = "command: {argv: [python, bench.py, --batch, \"{batch_size}\"]}"
    if isinstance(raw, list):
        d: Mapping[Any, Any] = {"argv": raw}
        argv_path = path
    else:
        d = as_mapping(raw, path, example)
        check_keys(d, path, COMMAND_KEYS)
        argv_path = f"{path}.argv"
        if d.get("argv") is None:
            raise Invalid(argv_path, f"missing; write e.g. {example}")
    argv_raw = d["argv"]
    if isinstance(argv_raw, str):
        raise Invalid(argv_path, f"expected a list of arguments (never a shell line), got "
                      f"{kind_of(argv_raw)}; write e.g. argv: {argv_raw.split()!r}")
    if not isinstance(argv_raw, list) or not argv_raw:
        raise Invalid(argv_path, f"expected a non-empty list of arguments, got "
                      f"{kind_of(argv_raw)}; write e.g. {example}")
    argv: list[str | tuple[str, ...]] = []
    for i, item in enumerate(argv_raw):
        at = f"{argv_path}[{i}]"
        if i == 0 and not isinstance(item, str):
            raise Invalid(at, f"the program to run must be a non-empty string, got "
                          f"{kind_of(item)}; write e.g. python or ./bench.sh")
        if isinstance(item, list):
            if not item:
                raise Invalid(at, "is an empty group; remove it or list its arguments, e.g. "
                              "[\"--threads\", \"{threads}\"]")
            group = tuple(_argument(x, f"{at}[{j}]") for j, x in enumerate(item))
            argv.append(group)
        else:
            argv.append(_argument(item, at))
    if not isinstance(argv[0], str) or not argv[0]:
        raise Invalid(f"{argv_path}[0]", "the program to run must be a non-empty string, "
                      "e.g. python or ./bench.sh")
    env = _env(d.get("env"), f"{path}.env")
    metrics_file = None
    if d.get("metrics_file") is not None:
        metrics_file = as_string(d["metrics_file"], f"{path}.metrics_file", "a file name",
                                 "metrics_file: metrics.json")
        from deploytune.evaluators.command import check_metrics_file

        try:
            check_metrics_file(metrics_file)
        except SettingError as exc:
            raise invalid_at(path, exc) from None
    return tuple(argv), env, metrics_file


def _argument(item: Any, path: str) -> str:
    """One argument of the argv: a string, or a number written as one."""
    if isinstance(item, str):
        if "\x00" in item:
            raise Invalid(path, "contains a NUL character; remove it")
        return item
    if is_number(item) and math.isfinite(safe_float(item)):
        return str(item)
    raise Invalid(path, f"expected a string, got {kind_of(item)}; quote the argument, "
                  f"e.g. \"--batch\" or \"{{batch_size}}\"")
