"""Watching a running server: its output (a bounded tail and the pattern metrics) and the peak
resident memory of its processes.

Both run in daemon threads for the length of one trial: :class:`ServerLog` reads the server's
merged stdout and stderr, :class:`MemorySampler` samples the memory of every process of the
trial (the supervisor's descendants, wherever they moved).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import deque
from collections.abc import Mapping
from typing import IO

from deploytune.evaluators.lifetime import trial_processes

__all__ = ["LOG_LINES", "MemorySampler", "ServerLog", "high_water_kib"]

LOG_LINES = 400
"""How many lines of the end of the server's output are kept."""

_RSS_POLL_S = 0.25
_LINE_BYTES = 4096  # the head kept of a longer line of the server's output
_DISCARD_BYTES = 1 << 16  # the piece size in which the rest of a long line is dropped


def high_water_kib(pid: int) -> int:
    """``VmHWM`` (peak resident set) of ``pid`` in KiB; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class ServerLog:
    """Reads the server's merged output in a daemon thread: a bounded tail and the pattern
    metrics.

    Args:
        stream: The server's output, a binary file object read line by line.
        patterns: Metric name -> regular expression whose first group is the number; searched
            in every line, the last match wins.
    """

    def __init__(self, stream: IO[bytes], patterns: Mapping[str, str]):
        self._stream = stream
        self._patterns = {name: re.compile(p) for name, p in patterns.items()}
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.metrics: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="server-log", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            # at most _LINE_BYTES of a line are ever held: the head of a longer line is kept
            # and the rest is read and dropped in bounded pieces until its newline
            raw = self._stream.readline(_LINE_BYTES)
            if not raw:
                break
            if not raw.endswith(b"\n"):
                while piece := self._stream.readline(_DISCARD_BYTES):
                    if piece.endswith(b"\n"):
                        break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                self.lines.append(line)
                for name, pattern in self._patterns.items():
                    m = pattern.search(line)
                    if m is None:
                        continue
                    with contextlib.suppress(ValueError, IndexError):
                        self.metrics[name] = float(m.group(1).replace(",", ""))

    def join(self, timeout_s: float) -> None:
        """Wait (bounded) until the stream is drained."""
        self._thread.join(timeout_s)

    def tail(self, n: int = LOG_LINES) -> str:
        """The last ``n`` lines."""
        with self._lock:
            return "\n".join(list(self.lines)[-n:])

    def pattern_metrics(self) -> dict[str, float]:
        """The numbers parsed so far."""
        with self._lock:
            return dict(self.metrics)


class MemorySampler:
    """Samples the peak resident memory of the server's processes (the descendants of its
    supervisor ``pgid``, whatever group they moved to) until stopped."""

    def __init__(self, pgid: int):
        self._pgid = pgid
        self._peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(_RSS_POLL_S)

    def sample(self) -> None:
        """Record the high-water mark of every live member now."""
        for pid in trial_processes(self._pgid):
            hwm = high_water_kib(pid)
            if hwm > self._peaks.get(pid, 0):
                self._peaks[pid] = hwm

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(2.0)

    @property
    def peak_mb(self) -> float:
        """Sum over the server's processes of their peak resident memory, MiB."""
        return sum(self._peaks.values()) / 1024.0
