"""The spec's errors: :class:`SpecError` for callers, :class:`Invalid` inside the parser."""

from __future__ import annotations

from deploytune.setting_error import SettingError, format_path

STRING_SOURCE = "<string>"
"""The ``source`` of a spec that was not read from a file."""


class SpecError(Exception):
    """A mistake in a spec file: which field, what is wrong and how to fix it.

    ``str(error)`` is ``"<source>: <field_path>: <message>"`` (the field part is left out for
    mistakes of the file as a whole, such as malformed YAML).

    Args:
        field_path: Where the mistake is, e.g. ``"evaluator.command.argv[2]"``,
            ``"space.threads.low"`` or ``"constraints[1]"``; empty for the whole file.
        message: What is wrong and how to fix it.
        source: The spec file's path, or ``"<string>"``.

    Attributes:
        field_path: As given.
        message: As given.
        source: As given.
    """

    def __init__(self, field_path: str, message: str, source: str = STRING_SOURCE):
        super().__init__(field_path, message, source)
        self.field_path = field_path
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if self.field_path:
            return f"{self.source}: {self.field_path}: {self.message}"
        return f"{self.source}: {self.message}"


class Invalid(Exception):
    """Raised inside the parser; turned into a :class:`SpecError` carrying the source."""

    def __init__(self, path: str, message: str):
        super().__init__(path, message)
        self.path = path
        self.message = message


def invalid_at(prefix: str, error: SettingError) -> Invalid:
    """The parser's error for ``error``, raised by a class given the settings found at the
    field path ``prefix`` (``""`` for the top level): the error's own path goes after it."""
    return Invalid(format_path(error.path, prefix), error.message)
