"""One pipe of a child process being read: a byte count, a bounded tail, a line splitter.

The child-process runner (:mod:`deploytune.evaluators.process`) feeds each chunk it reads from
a pipe to a :class:`PipeStream`, which keeps only the last bytes (a child printing gigabytes
costs no memory) and hands each complete line, cut at a maximum length, to a callback.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFAULT_LOG_TAIL_BYTES", "LineCallback", "PipeStream"]

DEFAULT_LOG_TAIL_BYTES = 64 * 1024
"""How many bytes of the end of stdout and of stderr are kept, each."""

LineCallback = Callable[[bytes, bool], "bool | None"]
"""Called with each complete line (without its newline) and whether it was truncated. For the
message pipe, a true return marks the final message (see ``linger_s`` of
:func:`~deploytune.evaluators.process.run_child`)."""


class PipeStream:
    """One pipe being read: a byte count, a bounded tail and an optional line splitter.

    Args:
        name: The pipe's name (``stdout``, ``stderr``, ``messages``).
        tail_limit: How many bytes of the end to keep in :attr:`tail` (0: none).
        on_line: Called with each line; ``None`` splits no lines.
        max_line: The longest line handed to ``on_line``; a longer one is cut there and
            flagged as truncated.

    Attributes:
        total: How many bytes were read in all.
        tail: The last ``tail_limit`` bytes.
        on_line: The line callback (set to ``None`` to stop calling it).
        final_seen: ``on_line`` marked a line as the final message.
    """

    def __init__(self, name: str, tail_limit: int, on_line: LineCallback | None = None,
                 max_line: int = DEFAULT_LOG_TAIL_BYTES):
        self.name = name
        self.total = 0
        self.tail = bytearray()
        self._tail_limit = tail_limit
        self.on_line = on_line
        self._max_line = max(1, max_line)
        self._partial = bytearray()
        self._overflow = False
        self.final_seen = False

    def feed(self, data: bytes) -> None:
        """Take one chunk read from the pipe: count it, keep its tail, split its lines."""
        self.total += len(data)
        if self._tail_limit > 0:
            self.tail += data
            excess = len(self.tail) - self._tail_limit
            if excess > 0:
                del self.tail[:excess]
        if self.on_line is None:
            return
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._add(data[start:])
                return
            self._add(data[start:nl])
            self._emit()
            start = nl + 1

    def finish(self) -> None:
        """Hand the unterminated last line, if any, to the callback (at EOF)."""
        if self.on_line is not None and (self._partial or self._overflow):
            self._emit()

    def _add(self, piece: bytes) -> None:
        if self._overflow or not piece:
            return
        room = self._max_line - len(self._partial)
        if len(piece) > room:
            self._partial += piece[:room]
            self._overflow = True
        else:
            self._partial += piece

    def _emit(self) -> None:
        line, truncated = bytes(self._partial), self._overflow
        self._partial.clear()
        self._overflow = False
        if self.on_line is not None and self.on_line(line, truncated):
            self.final_seen = True
