"""run_load against real fake-server processes: metrics, loops, modes, interim abort.

Timing bounds are generous: the machine running the tests may be small and shared.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from deploytune.evaluators.base import AbortTrial
from deploytune.loadgen import (
    METRIC_NAMES,
    LoadSpec,
    poisson_offsets,
    run_load,
    run_load_sync,
)
from tests.loadgen.conftest import StartServer
from tests.loadgen.server_process import FakeServerProcess


def wait_idle(server: FakeServerProcess, timeout_s: float = 5.0) -> float:
    """Seconds until the server has no request in flight (fails after timeout_s)."""
    t = time.monotonic()
    while server.stats()["in_flight"]:
        assert time.monotonic() - t < timeout_s, "requests still in flight on the server"
        time.sleep(0.05)
    return time.monotonic() - t


def test_metrics_match_the_servers_delays(fake_server: StartServer) -> None:
    server = fake_server("--ttft-ms", "100", "--token-delay-ms", "40", "--tokens", "6")
    result = run_load_sync(server.url, LoadSpec(requests=4, concurrency=1))
    m = result.metrics()
    assert (m["completed"], m["failed"], m["error_rate"]) == (4.0, 0.0, 0.0)
    assert result.model == "fake-model"
    assert m["output_tokens_mean"] == 6.0
    assert m["prompt_tokens_mean"] > 0
    assert 90 <= m["ttft_p50_ms"] <= 800  # the role-only first chunk is not a token
    assert 35 <= m["itl_p50_ms"] <= 400
    assert 35 <= m["tpot_p50_ms"] <= 400
    assert 290 <= m["e2e_p50_ms"] <= 3000  # 100 + 5 x 40
    assert m["requests_per_s"] == pytest.approx(4 / m["duration_s"])
    assert m["output_tokens_per_s"] == pytest.approx(24 / m["duration_s"])
    assert set(m) <= set(METRIC_NAMES)
    for r in result.records:
        assert len(r.token_times) == 6 and r.output_tokens == 6
        assert r.tpot_ms == pytest.approx((r.e2e_ms - r.ttft_ms) / 5)  # type: ignore[operator]
    assert [r.index for r in result.records] == [0, 1, 2, 3]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(result.records, result.records[1:],
                                                        strict=False))  # one at a time


def test_closed_loop_keeps_concurrency_requests_in_flight(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "30", "--tokens", "5")
    result = run_load_sync(server.url, LoadSpec(requests=12, concurrency=3))
    stats = server.stats()
    assert stats["requests"] == 12
    assert 2 <= stats["max_concurrent"] <= 3
    assert result.metrics()["completed"] == 12


def test_open_loop_follows_the_seeded_poisson_arrivals(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "2")
    spec = LoadSpec(requests=10, rate=20.0, seed=5)
    result = run_load_sync(server.url, spec)
    expected = poisson_offsets(20.0, 10, seed=5)
    assert [r.scheduled for r in result.records] == expected
    for r in result.records:
        assert r.scheduled is not None
        assert r.scheduled - 0.01 <= r.start <= r.scheduled + 1.0
    assert result.metrics()["completed"] == 10
    other = run_load_sync(server.url, LoadSpec(requests=10, rate=20.0, seed=6))
    assert [r.scheduled for r in other.records] != expected


def test_open_loop_concurrency_caps_in_flight(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "40", "--tokens", "4")
    result = run_load_sync(server.url, LoadSpec(requests=8, rate=500.0, concurrency=2))
    assert server.stats()["max_concurrent"] <= 2
    assert result.metrics()["completed"] == 8
    # arrivals held back by the cap start late
    assert any(r.start - r.scheduled > 0.05 for r in result.records)  # type: ignore[operator]


def test_duration_mode_stops_issuing_at_the_deadline(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "20", "--tokens", "5")
    t = time.monotonic()
    result = run_load_sync(server.url, LoadSpec(duration_s=1.0, concurrency=2))
    elapsed = time.monotonic() - t
    m = result.metrics()
    assert m["completed"] >= 4
    assert all(r.start < 1.3 for r in result.records)
    assert max(r.end for r in result.records) >= 1.0  # in-flight ones were waited for
    assert 1.0 <= m["duration_s"] <= elapsed
    assert elapsed < 10


def test_open_loop_duration_mode(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "2")
    result = run_load_sync(server.url, LoadSpec(duration_s=1.0, rate=10.0, seed=1))
    offsets = [t for t in poisson_offsets(10.0, 200, seed=1) if t < 1.0]
    assert [r.scheduled for r in result.records] == offsets


def test_errors_count_in_error_rate_and_as_goodput_violations(
        fake_server: StartServer) -> None:
    server = fake_server("--error-every", "3", "--token-delay-ms", "1", "--tokens", "3",
                         mode="errors")
    result = run_load_sync(server.url, LoadSpec(requests=9, slo_e2e_ms=60_000))
    m = result.metrics()
    assert (m["completed"], m["failed"]) == (6.0, 3.0)
    assert m["error_rate"] == pytest.approx(1 / 3)
    assert m["goodput_fraction"] == pytest.approx(2 / 3)
    assert m["goodput"] == pytest.approx(6 / m["duration_s"])
    assert result.error_counts() == {"http": 3}
    assert [r.ok for r in result.records] == [True, True, False] * 3
    assert "HTTP 500" in (result.first_error() or "")


def test_tight_slo_gives_zero_goodput(fake_server: StartServer) -> None:
    server = fake_server("--ttft-ms", "50", "--token-delay-ms", "1", "--tokens", "3")
    m = run_load_sync(server.url, LoadSpec(requests=3, slo_ttft_ms=1.0)).metrics()
    assert m["completed"] == 3 and m["goodput"] == 0.0 and m["goodput_fraction"] == 0.0


def test_server_dying_mid_load_fails_the_rest_without_hanging(
        fake_server: StartServer) -> None:
    server = fake_server("--die-after", "5", "--token-delay-ms", "20", "--tokens", "10",
                         mode="die-mid-load")
    t = time.monotonic()
    result = run_load_sync(server.url, LoadSpec(requests=20, concurrency=2,
                                                request_timeout_s=20))
    assert time.monotonic() - t < 30
    m = result.metrics()
    assert m["completed"] <= 5
    assert m["failed"] >= 15
    assert len(result.records) == 20
    assert set(result.error_counts()) <= {"connection", "incomplete"}
    assert server.proc.wait(timeout=10) == 3
    assert "fatal error after 5 requests" in server.stderr


def test_never_healthy_server_fails_every_request(fake_server: StartServer) -> None:
    server = fake_server(mode="never-healthy")
    result = run_load_sync(server.url, LoadSpec(requests=3))
    m = result.metrics()
    assert result.model == "default"
    assert m["error_rate"] == 1.0 and m["completed"] == 0.0
    assert not any(k.endswith("_ms") for k in m)
    assert result.error_counts() == {"http": 3}


@pytest.mark.slow
def test_slow_stream_requests_time_out(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "10", mode="slow-stream")  # 1 s between tokens
    t = time.monotonic()
    result = run_load_sync(server.url, LoadSpec(requests=2, concurrency=2,
                                                request_timeout_s=1.5))
    assert time.monotonic() - t < 10
    assert result.error_counts() == {"timeout": 2}
    wait_idle(server)


def test_interim_metrics_every_report_every_requests(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "3")
    seen: list[dict[str, float]] = []
    run_load_sync(server.url, LoadSpec(requests=10, concurrency=2, report_every=3),
                  on_interim=seen.append)
    assert [m["requests"] for m in seen] == [3.0, 6.0, 9.0]
    assert all(m["completed"] + m["failed"] == m["requests"] for m in seen)
    assert all(set(m) <= set(METRIC_NAMES) and "ttft_p50_ms" in m for m in seen)


def test_raising_on_interim_cancels_in_flight_requests(fake_server: StartServer) -> None:
    # requests 1-3 stream for ~10 s each; whichever arrives 4th fails at once
    server = fake_server("--error-every", "4", "--token-delay-ms", "500", "--tokens", "20",
                         mode="errors")
    abort = AbortTrial("hopeless")
    seen: list[dict[str, float]] = []

    def on_interim(metrics: dict[str, float]) -> None:
        seen.append(metrics)
        raise abort

    t = time.monotonic()
    with pytest.raises(AbortTrial) as info:
        run_load_sync(server.url, LoadSpec(requests=8, concurrency=4, report_every=1),
                      on_interim=on_interim)
    elapsed = time.monotonic() - t
    assert info.value is abort
    assert elapsed < 5  # a full run takes > 20 s
    assert len(seen) == 1 and seen[0]["failed"] == 1
    wait_idle(server, timeout_s=5)  # the server saw the streams go away
    assert server.stats()["requests"] <= 5  # the freed worker may have sent one more


def test_keyboard_interrupt_in_on_interim_propagates_and_cancels(
        fake_server: StartServer) -> None:
    server = fake_server("--error-every", "2", "--token-delay-ms", "500", "--tokens", "20",
                         mode="errors")

    def on_interim(metrics: dict[str, float]) -> None:
        raise KeyboardInterrupt

    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_load_sync(server.url, LoadSpec(requests=6, concurrency=2, report_every=1),
                      on_interim=on_interim)
    assert time.monotonic() - t < 5
    wait_idle(server)


def test_cancelling_run_load_cancels_in_flight_requests(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "20", mode="slow-stream")

    async def main() -> float:
        task = asyncio.create_task(run_load(server.url, LoadSpec(requests=4, concurrency=2)))
        deadline = time.monotonic() + 10
        while (await asyncio.to_thread(server.stats))["in_flight"] < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        t = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t

    assert asyncio.run(main()) < 2
    wait_idle(server)


def test_completions_endpoint_model_and_ignore_eos(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "3")
    result = run_load_sync(server.url, LoadSpec(requests=2, endpoint="completions",
                                                model="other", ignore_eos=True, max_tokens=9))
    assert result.metrics()["completed"] == 2 and result.model == "other"
    body = server.stats()["last_request"]
    assert body["model"] == "other" and body["ignore_eos"] is True
    assert isinstance(body["prompt"], str) and body["max_tokens"] == 9
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_warmup_requests_are_sent_but_not_measured(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "2")
    result = run_load_sync(server.url, LoadSpec(requests=4, warmup_requests=3))
    assert len(result.records) == 4
    assert server.stats()["requests"] == 7


def test_tokens_default_to_max_tokens(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1")
    m = run_load_sync(server.url, LoadSpec(requests=2, max_tokens=7)).metrics()
    assert m["output_tokens_mean"] == 7.0


@pytest.mark.parametrize(("name", "text", "endpoint"), [
    ("p.txt", "only this prompt here\n", "chat"),
    ("p.jsonl", '{"prompt": "only this prompt here"}\n', "completions"),
])
def test_user_prompt_files_are_sent(fake_server: StartServer, tmp_path: Path, name: str,
                                    text: str, endpoint: str) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "2")
    path = tmp_path / name
    path.write_text(text)
    result = run_load_sync(server.url, LoadSpec(requests=2, prompts=str(path),
                                                endpoint=endpoint))
    body = server.stats()["last_request"]
    sent = body["messages"][0]["content"] if endpoint == "chat" else body["prompt"]
    assert sent == "only this prompt here"
    assert result.metrics()["prompt_tokens_mean"] == 4.0


def test_run_load_sync_works_inside_a_running_event_loop(fake_server: StartServer) -> None:
    server = fake_server("--token-delay-ms", "1", "--tokens", "2")

    async def main() -> float:
        return run_load_sync(server.url, LoadSpec(requests=2)).metrics()["completed"]

    assert asyncio.run(main()) == 2.0
