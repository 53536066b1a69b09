"""Reading a spec: the file, its YAML (a duplicated key is an error), then the parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deploytune.spec.errors import STRING_SOURCE, SpecError
from deploytune.spec.messages import one_line, show
from deploytune.spec.model import Spec
from deploytune.spec.parser import parse_spec


def load_spec(path: str | Path, *, check_evaluator: bool = True) -> Spec:
    """Read and validate the spec file at ``path``.

    Relative paths inside the spec (``evaluator.cwd``, sqlite storage) are resolved against the
    file's folder; the study name and the storage file default to the file's stem.

    Args:
        path: The spec file.
        check_evaluator: Import the Python target / look up the command's executable. Turn it
            off to read a spec only for its study (``deploytune show``): nothing is imported
            or run then, and every other check still applies.

    Raises:
        SpecError: for anything wrong, the file's absence included; never anything else.
    """
    source = str(path)
    try:
        file = Path(path).expanduser()
        data = file.read_bytes()
        base_dir = file.resolve().parent
    except FileNotFoundError:
        raise SpecError("", "file not found; check the path (relative paths start from "
                        f"{_cwd_text()})", source) from None
    except IsADirectoryError:
        raise SpecError("", "is a folder, not a file; give the path of the .yaml spec file",
                        source) from None
    except PermissionError:
        raise SpecError("", "permission denied; make the file readable", source) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise SpecError("", f"cannot read the file ({exc}); check the path", source) from None
    return parse_spec_text(data, base_dir=base_dir, source=source,
                           check_evaluator=check_evaluator)


def parse_spec_text(text: str | bytes, *, base_dir: str | Path, source: str = STRING_SOURCE,
                    check_evaluator: bool = True) -> Spec:
    """Parse YAML ``text`` (a spec file's content) and validate it.

    Args:
        text: The YAML document (``bytes`` are decoded as UTF-8 / UTF-16 with a BOM).
        base_dir: The folder relative paths are resolved against.
        source: Shown in error messages; a file path also gives the default study name.
        check_evaluator: As for :func:`load_spec`.

    Raises:
        SpecError: naming the line and column of a YAML syntax error, or the field at fault.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise SpecError("", _yaml_message(exc), source) from None
    except yaml.YAMLError as exc:
        raise SpecError("", f"invalid YAML: {one_line(str(exc))}; fix the file's syntax",
                        source) from None
    except RecursionError:
        raise SpecError("", "invalid YAML: nested too deeply; flatten the document",
                        source) from None
    except Exception as exc:  # e.g. a date such as 2024-13-45, an integer with 5000 digits
        raise SpecError("", f"invalid YAML: a value cannot be read ({one_line(str(exc))}); "
                        f"quote it to make it a string", source) from None
    return parse_spec(data, base_dir=base_dir, source=source, check_evaluator=check_evaluator)


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Loader(_SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable: the base class reports it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found the key {show(key)} twice; keep only one of them",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """A YAML syntax error's message, with the line and column it is at."""
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = exc.problem or exc.context or "syntax error"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return (f"invalid YAML{where}: {one_line(problem)}{one_line(context)}; fix the syntax "
            f"there (check indentation, colons and quotes)")


def _cwd_text() -> str:
    """The current folder for a message, or a description where it is gone."""
    try:
        return str(Path.cwd())
    except OSError:
        return "the current folder"
