"""Fixtures of the load generator's tests: fake OpenAI-compatible servers as subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.loadgen.server_process import FakeServerProcess, start_fake_server

StartServer = Callable[..., FakeServerProcess]


@pytest.fixture
def fake_server() -> Iterator[StartServer]:
    """``fake_server(*options, mode="ok")`` starts a listening fake server; every server
    started is killed (its whole process group) at teardown."""
    started: list[FakeServerProcess] = []

    def start(*args: str, mode: str = "ok") -> FakeServerProcess:
        server = start_fake_server(*args, mode=mode)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
