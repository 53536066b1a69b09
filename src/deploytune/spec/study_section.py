"""Naming and keeping the study: the ``study`` name and the ``storage`` URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deploytune.spec.checks import as_string, is_dir
from deploytune.spec.errors import Invalid
from deploytune.spec.schema import MAX_STUDY_NAME, SCHEME_RE


def parse_study(raw: Any, stem: str) -> str:
    """The study name; ``stem`` (the spec file's) when not given."""
    if raw is None:
        return stem
    name = as_string(raw, "study", "a study name", "study: resnet-serving")
    if len(name) > MAX_STUDY_NAME:
        raise Invalid("study", f"is {len(name)} characters long; keep it to "
                      f"{MAX_STUDY_NAME} (it names the report folder)")
    if any(c in name for c in "/\\") or name in (".", ".."):
        raise Invalid("study", f"{name!r} cannot be used in a file name; use letters, "
                      f"digits, '-' and '_' (no slashes)")
    return name


def parse_storage(raw: Any, base_dir: Path, stem: str) -> str:
    """The storage URL (default: ``<stem>.db`` in ``base_dir``); sqlite and journal paths made
    absolute.

    A relative sqlite or journal path is resolved against ``base_dir``; its folder must exist.
    """
    if raw is None:
        return f"sqlite:///{base_dir / (stem + '.db')}"
    example = "storage: sqlite:///study.db or storage: postgresql://user@host/db"
    url = as_string(raw, "storage", "a storage URL", example)
    m = SCHEME_RE.match(url)
    if m is None:
        db = re.sub(r"^sqlite:/*", "", url)
        hint = f"sqlite:///{db}" if db.endswith((".db", ".sqlite", ".sqlite3")) else None
        raise Invalid("storage", f"{url!r} is not a storage URL; "
                      + (f"write {hint}" if hint else f"write e.g. {example}"))
    scheme = m["scheme"].lower()
    if scheme not in ("sqlite", "journal"):
        return url
    rest = m["rest"]
    if not rest and scheme == "sqlite":
        return url  # sqlite:// is an in-memory database
    example_file = "study.db" if scheme == "sqlite" else "study.log"
    if not rest.startswith("/"):
        raise Invalid("storage", f"a {scheme} URL has three slashes before a relative path "
                      f"({scheme}:///{example_file}) and four before an absolute one; got "
                      f"{url!r}")
    db, sep, query = rest[1:].partition("?")
    if scheme == "sqlite" and (not db or db == ":memory:"):
        return url
    if scheme == "journal" and (not db or query):
        raise Invalid("storage", f"a journal storage names its file, e.g. "
                      f"journal:///{example_file}; got {url!r}")
    try:
        file = (base_dir / Path(db).expanduser()).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise Invalid("storage", f"cannot resolve the {scheme} path {db!r} ({exc})") \
            from None
    if is_dir(file):
        raise Invalid("storage", f"{str(file)!r} is a folder; name a file inside it, e.g. "
                      f"{scheme}:///{db.rstrip('/')}/{example_file}")
    if not is_dir(file.parent):
        raise Invalid("storage", f"the folder {str(file.parent)!r} does not exist; create "
                      f"it or fix the path (relative paths start from the spec's folder)")
    return f"{scheme}:///{file}{sep}{query}"
