"""Wording of error messages: short reprs, kinds of values, field paths and suggestions."""

from __future__ import annotations

# The words of every setting's errors, used by the spec's sections too.
from deploytune.setting_error import join as join
from deploytune.setting_error import kind_of as kind_of
from deploytune.setting_error import one_line as one_line
from deploytune.setting_error import show as show
from deploytune.setting_error import suggest as suggest
