"""Incremental decoding of a server-sent-events body into its ``data:`` payloads."""

from __future__ import annotations

__all__ = ["DONE", "SSEDecoder"]

DONE = "[DONE]"
"""The payload an OpenAI-compatible stream ends with."""


class SSEDecoder:
    """Splits bytes as they arrive into the payloads of ``data:`` lines.

    Comments (``:``), ``event:``/``id:``/``retry:`` lines and blank lines are skipped; a line
    may arrive split across network reads and several lines in one read.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The payloads of the complete ``data:`` lines now available."""
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [p for line in lines if (p := self._payload(line)) is not None]

    def flush(self) -> list[str]:
        """The payload of a last line that had no newline (at the end of the body)."""
        line, self._buffer = self._buffer, b""
        payload = self._payload(line)
        return [] if payload is None else [payload]

    @staticmethod
    def _payload(line: bytes) -> str | None:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        if not text.startswith("data:"):
            return None
        payload = text[5:].strip()
        return payload or None
