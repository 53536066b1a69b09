"""Reaching a server over the network: free ports and a bounded health probe.

:func:`free_port` picks a port for a trial, :func:`port_is_free` tells when the previous trial's
server let go of it, and :func:`healthy` asks the health URL whether the server is up, within a
deadline that holds whatever the server does (a server answering one byte a second included).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.parse

__all__ = ["HEALTH_PROBE_S", "free_port", "healthy", "port_is_free"]

HEALTH_PROBE_S = 2.0
"""The longest one health probe may take, all of it together (seconds)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a new listener could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def healthy(url: str, timeout_s: float = HEALTH_PROBE_S) -> bool:
    """Whether ``GET url`` answers 200 within ``timeout_s`` seconds, all of it together.

    A per-operation socket timeout would not do: a server answering one byte a second never
    trips it. The probe runs in a daemon thread; when ``timeout_s`` has passed its socket is
    shut down, which ends a blocked read at once, and the probe counts as failed. No proxy is
    used (the server is the tuner's own, as for the load generator); https verifies the
    certificate as ``urllib`` does.
    """
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    if timeout_s <= 0 or not parts.hostname or parts.scheme not in ("http", "https"):
        return False
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    probe = _HealthProbe(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                         parts.scheme == "https", target, timeout_s)
    return probe.run()


class _HealthProbe:
    """One health request that can be abandoned at a deadline (see :func:`healthy`)."""

    def __init__(self, host: str, port: int, tls: bool, target: str, timeout_s: float):
        self._host = host
        self._port = port
        self._tls = tls
        self._target = target
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._abandoned = False
        self._ok = False
        self._done = threading.Event()

    def run(self) -> bool:
        """Probe; ``False`` when it failed or did not finish within its time."""
        threading.Thread(target=self._probe, name="server-health", daemon=True).start()
        if self._done.wait(self._timeout_s):
            return self._ok
        with self._lock:
            self._abandoned = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    # the plain socket's shutdown, also under TLS: it wakes the reader
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        return False

    def _hold(self, sock: socket.socket) -> bool:
        """Make ``sock`` the one to shut down on abandon; ``False`` if already abandoned."""
        with self._lock:
            if self._abandoned:
                return False
            self._sock = sock
            return True

    def _probe(self) -> None:
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
            if not self._hold(sock):
                return
            if self._tls:
                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=self._host, do_handshake_on_connect=False)
                if not self._hold(sock):
                    return
                sock.do_handshake()
            conn = http.client.HTTPConnection(self._host, self._port)
            conn.sock = sock  # http.client reads at most 100 header lines of 64 KiB each
            conn.request("GET", self._target, headers={"Connection": "close"})
            response = conn.getresponse()
            self._ok = response.status == 200
        except Exception:  # any failure (refused, reset, TLS, garbage): not healthy yet
            self._ok = False
        finally:
            with self._lock:
                self._sock = None
                if sock is not None:
                    sock.close()
            self._done.set()
