"""``deploytune load``: JSON and table output, option errors (exit 2), unreachable servers
(exit 1, one line), Ctrl-C (exit 130)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploytune.cli import app
from deploytune.cli.load import format_interim
from tests.loadgen.conftest import StartServer
from tests.loadgen.server_process import free_port

runner = CliRunner()


def test_load_json(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "3")
    result = runner.invoke(app, ["load", server.url, "-n", "4", "-c", "2", "--seed", "3",
                                 "--slo-ttft-ms", "60000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "fake-model" and data["url"] == server.url
    assert data["metrics"]["completed"] == 4 and data["metrics"]["goodput_fraction"] == 1.0
    assert data["spec"]["concurrency"] == 2 and data["spec"]["seed"] == 3
    assert data["spec"]["slo_ttft_ms"] == 60000
    assert data["errors"] == {} and data["first_error"] is None
    assert "[4 done]" in result.stderr  # interim lines go to stderr


def test_load_table_with_interim_lines_and_errors(fake_server: StartServer,
                                                  tmp_path: Path) -> None:
    server = fake_server("--error-every", "2", "--token-delay-ms", "1", "--tokens", "3",
                         mode="errors")
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello there\n")
    result = runner.invoke(app, ["load", server.url + "/v1", "--requests", "4",
                                 "--endpoint", "completions", "--model", "m", "--prompts",
                                 str(prompts), "--max-tokens", "5", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "[4 done] ok 2 failed 2" in out
    assert "model m, completions endpoint, 4 requests, concurrency 1" in out
    for name in ("ttft_p50_ms", "tpot_p95_ms", "itl_p99_ms", "e2e_mean_ms", "error_rate",
                 "goodput", "output_tokens_per_s"):
        assert name in out
    assert "failed requests: 2 http" in out


@pytest.mark.parametrize(("args", "option"), [
    (["-n", "0"], "--requests"),
    (["-n", "2", "--duration", "1"], "--duration"),
    (["--duration", "0"], "--duration"),
    (["-c", "0"], "--concurrency"),
    (["--rate", "-1"], "--rate"),
    (["--endpoint", "embeddings"], "--endpoint"),
    (["--prompts", "missing.txt"], "--prompts"),
    (["--prompts", "prompts.csv"], "--prompts"),
    (["--max-tokens", "0"], "--max-tokens"),
    (["--slo-ttft-ms", "0"], "--slo-ttft-ms"),
    (["--timeout", "0"], "--timeout"),
    (["--warmup", "-2"], "--warmup"),
])
def test_bad_options_exit_2_naming_the_option(args: list[str], option: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["load", url, *args])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("extra", [[], ["--model", "m"], ["--json"]])
def test_unreachable_server_is_one_line_exit_1(extra: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["load", url, "-n", "2", *extra])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot connect to {url}")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_every_request_failing_exits_1(fake_server: StartServer) -> None:
    server = fake_server(mode="never-healthy")
    result = runner.invoke(app, ["load", server.url, "-n", "2"])
    assert result.exit_code == 1
    assert "error: all 2 requests" in result.stderr and "HTTP 503" in result.stderr
    assert "error_rate" in result.stdout


@pytest.mark.slow
def test_ctrl_c_exits_130_promptly(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "30", mode="slow-stream")
    proc = subprocess.Popen([sys.executable, "-m", "deploytune.cli", "load", server.url,
                             "-n", "4", "-c", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while server.stats()["in_flight"] < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - t < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "stopped" in err and "Traceback" not in err


def test_format_interim() -> None:
    line = format_interim({"requests": 8, "completed": 7, "failed": 1, "ttft_p50_ms": 51.84,
                           "ttft_p95_ms": 60.06, "tpot_p50_ms": 20.8,
                           "output_tokens_per_s": 72.77})
    assert line == ("[8 done] ok 7 failed 1 | ttft p50 51.8 ms p95 60.1 ms | tpot p50 20.8 ms "
                    "| 72.8 tok/s")
    assert format_interim({"requests": 2, "completed": 0, "failed": 2}) == (
        "[2 done] ok 0 failed 2 | 0.0 tok/s")
