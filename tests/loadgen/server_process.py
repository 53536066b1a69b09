"""Start ``tests/fake_openai_server.py`` as a real subprocess for the load generator's tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "fake_openai_server.py"
"""The fake server script."""


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeServerProcess:
    """One fake server process (its own process group); :meth:`stop` kills the group.

    Attributes:
        port: The port it listens on.
        url: ``http://127.0.0.1:PORT``.
        proc: The process.
    """

    def __init__(self, *args: str, mode: str = "ok", port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stderr = tempfile.NamedTemporaryFile(prefix="fake-server-", suffix=".log",  # noqa: SIM115
                                                   delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--port", str(self.port), "--mode", mode, *args],
            stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True)

    @property
    def stderr(self) -> str:
        """Everything the server printed to stderr so far."""
        return Path(self._stderr.name).read_text(errors="replace")

    def wait_listening(self, timeout_s: float = 20.0) -> None:
        """Block until the server prints ``listening on PORT``; fail if it exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if f"listening on {self.port}" in self.stderr:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake server exited {self.proc.returncode}: {self.stderr}")
            time.sleep(0.05)
        raise TimeoutError(f"fake server not listening after {timeout_s} s: {self.stderr}")

    def get(self, path: str) -> Any:
        """``GET path`` as decoded JSON."""
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        """The server's ``/stats`` counters."""
        return dict(self.get("/stats"))

    def stop(self) -> None:
        """Kill the process group and remove the log."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._stderr.close()
        Path(self._stderr.name).unlink(missing_ok=True)


def start_fake_server(*args: str, mode: str = "ok", attempts: int = 3) -> FakeServerProcess:
    """A listening fake server; a new port is tried when another process took the first."""
    last: Exception | None = None
    for _ in range(attempts):
        server = FakeServerProcess(*args, mode=mode)
        try:
            server.wait_listening()
            return server
        except (RuntimeError, TimeoutError) as exc:
            server.stop()
            last = exc
    raise RuntimeError(f"could not start the fake server: {last}")
