"""Wording of error messages: short reprs, kinds of values, field paths and suggestions."""

from __future__ import annotations

# The words of every setting's errors, used by the spec's sections too.
from deploytune.setting_error import join as join
from deploytune.setting_error import kind_of as kind_of
from deploytune.setting_error import show as show
from deploytune.setting_error import suggest as suggest


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())
