"""One streamed request to an OpenAI-compatible server, timed chunk by chunk, and the
``GET /v1/models`` look-up of the model name."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from deploytune.loadgen.records import RequestRecord
from deploytune.loadgen.spec import LoadSpec
from deploytune.loadgen.sse import DONE, MAX_LINE_BYTES, SSEDecoder, SSELineTooLong

__all__ = ["ServerUnreachable", "api_url", "discover_model", "output_token_count",
           "request_body", "send_request"]

MODELS_TIMEOUT_S = 10.0
"""Longest wait for ``GET /v1/models``."""
FALLBACK_MODEL = "default"
"""The model name sent when the server does not list one."""
MODELS_MAX_BYTES = MAX_LINE_BYTES
"""The longest ``GET /v1/models`` body read; a longer one counts as no model list."""
ERROR_BODY_BYTES = 4096
"""How much of an error response's body is read (its start goes into the request's error)."""


class ServerUnreachable(ConnectionError):
    """No connection to the server could be opened before the load started."""


def api_url(base_url: str, path: str) -> str:
    """``base_url`` (with or without a trailing ``/v1``) joined with ``/v1/{path}``."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return f"{base}/v1/{path.lstrip('/')}"


def request_body(spec: LoadSpec, model: str, prompt: str) -> dict[str, Any]:
    """The JSON body of one streamed request for ``spec.endpoint``."""
    body: dict[str, Any] = {"model": model}
    if spec.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body.update(max_tokens=spec.max_tokens, temperature=spec.temperature, stream=True,
                stream_options={"include_usage": True})
    if spec.ignore_eos:
        body["ignore_eos"] = True
    return body


async def _read_prefix(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most the first ``limit`` bytes of the body, and whether that is the whole body (the
    rest of a longer one is not read: the connection is closed when the response is)."""
    buf = bytearray()
    async for chunk in resp.content.iter_any():
        buf += chunk
        if len(buf) > limit:
            return bytes(buf[:limit]), False
    return bytes(buf), True


async def discover_model(session: aiohttp.ClientSession, base_url: str) -> str:
    """The first model id of ``GET /v1/models``, or ``"default"`` when the server answers
    without one (an error status, a body that is not a model list, a slow answer).

    Raises:
        ServerUnreachable: The connection itself failed (nothing listens at ``base_url``).
    """
    url = api_url(base_url, "models")
    try:
        async with asyncio.timeout(MODELS_TIMEOUT_S), session.get(url) as resp:
            if resp.status != 200:
                return FALLBACK_MODEL
            raw, complete = await _read_prefix(resp, MODELS_MAX_BYTES)
            if not complete:
                return FALLBACK_MODEL
            data = json.loads(raw)
    except aiohttp.ClientConnectorError as exc:
        raise ServerUnreachable(f"cannot connect to {base_url}: {exc.os_error or exc}") from exc
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return FALLBACK_MODEL
    try:
        model = data["data"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return FALLBACK_MODEL
    return model if isinstance(model, str) and model else FALLBACK_MODEL


def _error_text(obj: dict[str, Any]) -> str:
    err = obj.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)
    if err:
        return str(err)
    return str(obj.get("message") or obj)


def _count(value: Any) -> int | None:
    """``value`` when it is a non-negative int (not a bool), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def output_token_count(chunks: int, claimed: Any, max_tokens: int | None) -> int:
    """The output tokens credited to a request: the server's claim, checked.

    A server's ``usage.completion_tokens`` is not trusted blindly (a server claiming 10⁹
    tokens would otherwise win every throughput objective):

    * every streamed content chunk carries at least one token, so the count is at least
      ``chunks``;
    * a server cannot generate more than the request's ``max_tokens``, so the count is at most
      ``max_tokens`` (when the request set one);
    * without a usable claim (absent, not a non-negative integer) the count is ``chunks``.

    Args:
        chunks: Content chunks actually received.
        claimed: ``usage.completion_tokens`` as the server sent it (any JSON value).
        max_tokens: The request's ``max_tokens``; ``None``: no upper bound.
    """
    count = _count(claimed)
    tokens = chunks if count is None else max(count, chunks)
    return tokens if max_tokens is None else min(tokens, max_tokens)


class _Stream:
    """The state of one response stream while its events are parsed."""

    def __init__(self, record: RequestRecord, t0: float, max_tokens: int | None = None):
        self.record = record
        self.t0 = t0
        self.max_tokens = max_tokens
        self.chunks = 0
        self.done = False
        self.finished = False
        self.usage: dict[str, Any] | None = None

    def event(self, payload: str, now: float) -> str | None:
        """Handle one ``data:`` payload; return an error message when it reports one."""
        if payload == DONE:
            self.done = True
            return None
        try:
            obj = json.loads(payload)
        except json.JSONDecodeError:
            return f"malformed stream event {payload[:80]!r}"
        if not isinstance(obj, dict):
            return f"malformed stream event {payload[:80]!r}"
        if obj.get("error") or obj.get("object") == "error":
            return f"error in stream: {_error_text(obj)}"
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text = delta.get("content") or delta.get("reasoning_content")
            else:
                text = choice.get("text")
            if text:
                if self.max_tokens is not None and self.chunks >= self.max_tokens:
                    return (f"the server streamed more content chunks than max_tokens "
                            f"({self.max_tokens}): it does not honour max_tokens")
                t = now - self.t0
                if self.record.first_token is None:
                    self.record.first_token = t
                self.record.token_times.append(t)
                self.chunks += 1
            if choice.get("finish_reason"):
                self.finished = True
        return None

    def close(self) -> None:
        """Fill in the token counts once the stream ended (:func:`output_token_count`)."""
        usage = self.usage or {}
        self.record.output_tokens = output_token_count(
            self.chunks, usage.get("completion_tokens"), self.max_tokens)
        prompt = _count(usage.get("prompt_tokens"))
        if prompt is not None:
            self.record.prompt_tokens = prompt


def _fail(record: RequestRecord, kind: str, message: str) -> None:
    record.error_kind = kind
    record.error = message


async def send_request(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                       index: int, t0: float, timeout_s: float) -> RequestRecord:
    """Send one streamed request and time it; never raises for a failed request (the record's
    ``error`` says why), only for cancellation.

    What a misbehaving server can make the tuner hold is bounded: a stream line longer than
    :data:`~deploytune.loadgen.sse.MAX_LINE_BYTES`, or more content chunks than the body's
    ``max_tokens``, fail the request (``stream``); of an error response only the first
    :data:`ERROR_BODY_BYTES` are read. The output tokens credited are the server's
    ``usage.completion_tokens`` checked by :func:`output_token_count`.

    Args:
        session: The client session.
        url: The full endpoint URL.
        body: The JSON body (see :func:`request_body`).
        index: The request's number in the run.
        t0: ``time.perf_counter()`` at the start of the run (record times are relative to it).
        timeout_s: The whole request, stream included, must finish within this.
    """
    record = RequestRecord(index=index, start=time.perf_counter() - t0)
    stream = _Stream(record, t0, _count(body.get("max_tokens")) or None)
    try:
        async with asyncio.timeout(timeout_s), session.post(url, json=body) as resp:
            if resp.status != 200:
                raw, _ = await _read_prefix(resp, ERROR_BODY_BYTES)
                text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
                _fail(record, "http", f"HTTP {resp.status}: {text[:200]}")
            else:
                decoder = SSEDecoder()
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    try:
                        payloads = decoder.feed(chunk)
                    except SSELineTooLong as exc:
                        _fail(record, "stream", str(exc))
                        break
                    for payload in payloads:
                        error = stream.event(payload, now)
                        if error is not None:
                            _fail(record, "stream", error)
                            break
                    if record.error is not None or stream.done:
                        break
                else:
                    for payload in decoder.flush():
                        error = stream.event(payload, time.perf_counter())
                        if error is not None:
                            _fail(record, "stream", error)
                if record.error is None and not (stream.done or stream.finished):
                    _fail(record, "incomplete",
                          "the stream ended before [DONE] or a finish_reason")
    except TimeoutError:
        _fail(record, "timeout", f"timed out after {timeout_s:g} s")
    except aiohttp.ClientError as exc:
        _fail(record, "connection", f"{type(exc).__name__}: {exc}".rstrip(": "))
    except OSError as exc:  # a reset surfacing outside aiohttp's wrappers
        _fail(record, "connection", f"{type(exc).__name__}: {exc}")
    record.end = time.perf_counter() - t0
    stream.close()
    return record
