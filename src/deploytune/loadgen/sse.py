"""Incremental decoding of a server-sent-events body into its ``data:`` payloads."""

from __future__ import annotations

__all__ = ["DONE", "MAX_LINE_BYTES", "SSEDecoder", "SSELineTooLong"]

DONE = "[DONE]"
"""The payload an OpenAI-compatible stream ends with."""

MAX_LINE_BYTES = 1 << 20
"""The longest line (1 MiB) a stream may send; an OpenAI-compatible event is a few hundred
bytes, so a longer line is a broken or hostile server, never a reason to grow the tuner."""


class SSELineTooLong(ValueError):
    """A line of the stream is longer than the decoder's limit."""


class SSEDecoder:
    """Splits bytes as they arrive into the payloads of ``data:`` lines.

    Comments (``:``), ``event:``/``id:``/``retry:`` lines and blank lines are skipped; a line
    may arrive split across network reads and several lines in one read. Memory and work are
    linear in the bytes fed: only the unfinished last line is kept, and it may grow to at most
    ``max_line_bytes``.

    Args:
        max_line_bytes: The longest line accepted; :meth:`feed` raises :class:`SSELineTooLong`
            as soon as a line is known to be longer.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_line_bytes

    def feed(self, chunk: bytes) -> list[str]:
        """The payloads of the complete ``data:`` lines now available.

        Raises:
            SSELineTooLong: A line (complete or not) exceeds ``max_line_bytes``.
        """
        parts = chunk.split(b"\n")
        tail = parts.pop()  # the unfinished line (empty when the chunk ends with a newline)
        out: list[str] = []
        if parts:  # the buffered line ends in this chunk
            self._check(len(self._buffer) + len(parts[0]))
            self._buffer += parts[0]
            parts[0] = bytes(self._buffer)
            self._buffer.clear()
            for line in parts:
                self._check(len(line))
                payload = self._payload(line)
                if payload is not None:
                    out.append(payload)
        self._check(len(self._buffer) + len(tail))
        self._buffer += tail
        return out

    def flush(self) -> list[str]:
        """The payload of a last line that had no newline (at the end of the body)."""
        line = bytes(self._buffer)
        self._buffer.clear()
        payload = self._payload(line)
        return [] if payload is None else [payload]

    def _check(self, length: int) -> None:
        if length > self._max:
            self._buffer.clear()
            raise SSELineTooLong(f"the server sent a stream line longer than {self._max} "
                                 f"bytes")

    @staticmethod
    def _payload(line: bytes) -> str | None:
        if not line.startswith(b"data:"):
            return None
        text = line[5:].decode("utf-8", errors="replace").strip()
        return text or None
