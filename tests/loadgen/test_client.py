"""Request bodies, URLs, model discovery and single-request error handling."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from deploytune.loadgen import LoadSpec, ServerUnreachable
from deploytune.loadgen.client import (
    api_url,
    discover_model,
    output_token_count,
    request_body,
    send_request,
)
from deploytune.loadgen.sse import MAX_LINE_BYTES
from tests.loadgen.conftest import StartServer
from tests.loadgen.server_process import free_port


def test_api_url_accepts_a_trailing_v1_or_slash() -> None:
    for base in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"):
        assert api_url(base, "chat/completions") == "http://h:8000/v1/chat/completions"


def test_request_bodies() -> None:
    chat = request_body(LoadSpec(max_tokens=7, temperature=0.5), "m", "hello")
    assert chat == {"model": "m", "messages": [{"role": "user", "content": "hello"}],
                    "max_tokens": 7, "temperature": 0.5, "stream": True,
                    "stream_options": {"include_usage": True}}
    comp = request_body(LoadSpec(endpoint="completions", ignore_eos=True), "m", "hello")
    assert comp["prompt"] == "hello" and "messages" not in comp
    assert comp["ignore_eos"] is True and comp["stream"] is True


async def _discover(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        return await discover_model(session, url)


def test_discover_model_uses_the_first_id(fake_server: StartServer) -> None:
    server = fake_server("--model-id", "my/model-7b")
    assert asyncio.run(_discover(server.url)) == "my/model-7b"
    assert asyncio.run(_discover(server.url + "/v1")) == "my/model-7b"


def test_discover_model_falls_back_to_default_on_503(fake_server: StartServer) -> None:
    server = fake_server(mode="never-healthy")
    assert asyncio.run(_discover(server.url)) == "default"


def test_discover_model_raises_when_nothing_listens() -> None:
    with pytest.raises(ServerUnreachable, match="cannot connect"):
        asyncio.run(_discover(f"http://127.0.0.1:{free_port()}"))


async def _send(url: str, body: dict[str, Any], timeout_s: float = 30.0) -> Any:
    async with aiohttp.ClientSession() as session:
        return await send_request(session, url, body, 0, time.perf_counter(), timeout_s)


def test_send_request_records_tokens_and_usage(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "5", "--token-delay-ms", "1")
    body = request_body(LoadSpec(), "fake-model", "one two three")
    r = asyncio.run(_send(api_url(server.url, "chat/completions"), body))
    assert r.ok, r.error
    assert (r.output_tokens, r.prompt_tokens, len(r.token_times)) == (5, 3, 5)
    assert 0 <= r.start <= r.first_token <= r.end
    assert server.stats()["last_request"] == body


def test_send_request_counts_chunks_without_usage(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "4", "--token-delay-ms", "1")
    body = request_body(LoadSpec(endpoint="completions"), "fake-model", "a b")
    del body["stream_options"]
    r = asyncio.run(_send(api_url(server.url, "completions"), body))
    assert r.ok, r.error
    assert (r.output_tokens, r.prompt_tokens) == (4, None)


def test_send_request_http_error_and_timeout(fake_server: StartServer) -> None:
    server = fake_server("--error-every", "1", mode="errors")
    body = request_body(LoadSpec(), "fake-model", "x")
    r = asyncio.run(_send(api_url(server.url, "chat/completions"), body))
    assert (r.ok, r.error_kind) == (False, "http")
    assert r.error.startswith("HTTP 500") and "internal error" in r.error
    slow = fake_server("--token-delay-ms", "2000", "--tokens", "5", mode="slow-stream")
    t = time.monotonic()
    r = asyncio.run(_send(api_url(slow.url, "chat/completions"), body, timeout_s=0.5))
    assert (r.ok, r.error_kind) == (False, "timeout")
    assert time.monotonic() - t < 10
    assert r.first_token is not None  # the first token came before the timeout


def test_send_request_to_a_closed_port_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    r = asyncio.run(_send(url, {"model": "m"}))
    assert (r.ok, r.error_kind) == (False, "connection")


async def _crafted(events: list[bytes], *, status: int = 200) -> Any:
    """Send one request to an in-process server that answers with ``events`` verbatim."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status)
        await resp.prepare(request)
        for e in events:
            await resp.write(e)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with TestServer(app, host="127.0.0.1") as ts:
        url = str(ts.make_url("/v1/chat/completions"))
        async with aiohttp.ClientSession() as session:
            return await send_request(session, url, {"model": "m"}, 0, time.perf_counter(), 10)


def chunk(text: str | None = None, finish: str | None = None) -> bytes:
    """One SSE chat chunk with optional content and finish_reason."""
    delta = "{}" if text is None else f'{{"content": "{text}"}}'
    fin = "null" if finish is None else f'"{finish}"'
    return f'data: {{"choices": [{{"delta": {delta}, "finish_reason": {fin}}}]}}\n\n'.encode()


@pytest.mark.parametrize(("events", "kind", "words"), [
    ([chunk("a"), b'data: {"error": {"message": "CUDA out of memory"}}\n\n'], "stream",
     "CUDA out of memory"),
    ([chunk("a"), b'data: {"object": "error", "message": "bad"}\n\n'], "stream", "bad"),
    ([chunk("a"), chunk("b")], "incomplete", "[DONE]"),
    ([chunk("a"), b"data: {nope\n\n"], "stream", "malformed"),
])
def test_stream_errors(events: list[bytes], kind: str, words: str) -> None:
    r = asyncio.run(_crafted(events))
    assert (r.ok, r.error_kind) == (False, kind)
    assert words in r.error


def test_finish_reason_without_done_or_done_without_newline_is_success() -> None:
    r = asyncio.run(_crafted([chunk("a"), chunk(" b"), chunk(finish="stop")]))
    assert r.ok, r.error
    assert r.output_tokens == 2
    r = asyncio.run(_crafted([chunk("a"), b"data: [DONE]"]))
    assert r.ok, r.error
    assert r.output_tokens == 1


def test_output_token_count_checks_the_claim() -> None:
    assert output_token_count(5, 5, 8) == 5
    assert output_token_count(5, 10**9, 8) == 8  # never above max_tokens
    assert output_token_count(5, 1, 8) == 5  # never below the chunks received
    assert output_token_count(5, None, 8) == 5
    for junk in (-3, True, 2.5, "7", [7]):
        assert output_token_count(4, junk, 8) == 4
    assert output_token_count(3, 10**9, None) == 10**9  # no max_tokens: no cap


def test_a_server_claiming_a_billion_tokens_is_credited_at_most_max_tokens(
        fake_server: StartServer) -> None:
    liar = fake_server("--tokens", "5", "--token-delay-ms", "1", "--claim-tokens", "1000000000")
    url = api_url(liar.url, "chat/completions")
    r = asyncio.run(_send(url, request_body(LoadSpec(max_tokens=8), "fake-model", "a b")))
    assert r.ok, r.error
    assert r.output_tokens == 8
    modest = fake_server("--tokens", "5", "--token-delay-ms", "1", "--claim-tokens", "1")
    url = api_url(modest.url, "chat/completions")
    r = asyncio.run(_send(url, request_body(LoadSpec(max_tokens=8), "fake-model", "a b")))
    assert r.ok, r.error
    assert r.output_tokens == 5  # five content chunks were streamed


def test_more_content_chunks_than_max_tokens_fail_the_request(fake_server: StartServer) -> None:
    server = fake_server("--tokens", "40", "--token-delay-ms", "1")
    url = api_url(server.url, "chat/completions")
    r = asyncio.run(_send(url, request_body(LoadSpec(max_tokens=6), "fake-model", "a")))
    assert (r.ok, r.error_kind) == (False, "stream")
    assert "max_tokens (6)" in r.error
    assert len(r.token_times) == 6


def test_a_stream_without_newlines_fails_the_request(fake_server: StartServer) -> None:
    server = fake_server("--garbage-mb", "200", mode="sse-garbage")
    url = api_url(server.url, "chat/completions")
    r = asyncio.run(_send(url, request_body(LoadSpec(), "fake-model", "a"), timeout_s=20.0))
    assert (r.ok, r.error_kind) == (False, "stream"), r.error
    assert f"longer than {MAX_LINE_BYTES} bytes" in r.error


def test_only_the_start_of_a_huge_error_body_is_read(fake_server: StartServer) -> None:
    server = fake_server("--garbage-mb", "64", mode="endless-error")
    url = api_url(server.url, "chat/completions")
    r = asyncio.run(_send(url, request_body(LoadSpec(), "fake-model", "a")))
    assert (r.ok, r.error_kind) == (False, "http")
    assert r.error.startswith("HTTP 500: xxx") and len(r.error) < 300
