"""The fake OpenAI-compatible server itself: start-up behaviour and endpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.loadgen.conftest import StartServer
from tests.loadgen.server_process import SCRIPT, FakeServerProcess, free_port


def test_crash_on_start_prints_the_message_and_exits_with_the_code() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", str(free_port()), "--mode", "crash-on-start",
         "--exit-code", "7", "--crash-message", "torch.OutOfMemoryError: boom",
         "--print-startup-line", "model weights: 13.5 GiB", "--startup-delay-s", "0.2"],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7
    lines = proc.stderr.splitlines()
    assert lines == ["model weights: 13.5 GiB", "torch.OutOfMemoryError: boom"]


def test_startup_delay_and_startup_lines() -> None:
    server = FakeServerProcess("--startup-delay-s", "1.0", "--print-startup-line", "hello 1",
                               "--print-startup-line", "kv cache: 42 blocks")
    try:
        t = time.monotonic()
        server.wait_listening()
        assert time.monotonic() - t >= 0.9
        assert server.stderr.splitlines()[:3] == ["hello 1", "kv cache: 42 blocks",
                                                  f"listening on {server.port}"]
    finally:
        server.stop()


def test_never_healthy_answers_503(fake_server: StartServer) -> None:
    server = fake_server(mode="never-healthy")
    for path in ("/health", "/v1/models"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert info.value.code == 503


def test_health_models_stats_reset_and_non_streamed(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "3", "--token-delay-ms", "1")
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        assert resp.status == 200
    assert server.get("/v1/models")["data"][0]["id"] == "fake-model"
    req = urllib.request.Request(
        server.url + "/v1/completions", data=json.dumps({"prompt": "a b c"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["choices"][0]["text"] == "tok0 tok1 tok2"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert server.stats()["requests"] == 1
    urllib.request.urlopen(urllib.request.Request(server.url + "/stats/reset", method="POST"),
                           timeout=10).close()
    assert server.stats() == {"requests": 0, "in_flight": 0, "max_concurrent": 0,
                              "last_request": None}
