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
from deploytune.loadgen.sse import DONE, SSEDecoder

__all__ = ["ServerUnreachable", "api_url", "discover_model", "request_body", "send_request"]

MODELS_TIMEOUT_S = 10.0
"""Longest wait for ``GET /v1/models``."""
FALLBACK_MODEL = "default"
"""The model name sent when the server does not list one."""


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
            data = await resp.json(content_type=None)
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


class _Stream:
    """The state of one response stream while its events are parsed."""

    def __init__(self, record: RequestRecord, t0: float):
        self.record = record
        self.t0 = t0
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
                t = now - self.t0
                if self.record.first_token is None:
                    self.record.first_token = t
                self.record.token_times.append(t)
                self.chunks += 1
            if choice.get("finish_reason"):
                self.finished = True
        return None

    def close(self) -> None:
        """Fill in the token counts once the stream ended."""
        usage = self.usage or {}
        completion = usage.get("completion_tokens")
        if isinstance(completion, int) and not isinstance(completion, bool):
            self.record.output_tokens = completion
        else:
            self.record.output_tokens = self.chunks
        prompt = usage.get("prompt_tokens")
        if isinstance(prompt, int) and not isinstance(prompt, bool):
            self.record.prompt_tokens = prompt


def _fail(record: RequestRecord, kind: str, message: str) -> None:
    record.error_kind = kind
    record.error = message


async def send_request(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                       index: int, t0: float, timeout_s: float) -> RequestRecord:
    """Send one streamed request and time it; never raises for a failed request (the record's
    ``error`` says why), only for cancellation.

    Args:
        session: The client session.
        url: The full endpoint URL.
        body: The JSON body (see :func:`request_body`).
        index: The request's number in the run.
        t0: ``time.perf_counter()`` at the start of the run (record times are relative to it).
        timeout_s: The whole request, stream included, must finish within this.
    """
    record = RequestRecord(index=index, start=time.perf_counter() - t0)
    stream = _Stream(record, t0)
    try:
        async with asyncio.timeout(timeout_s), session.post(url, json=body) as resp:
            if resp.status != 200:
                text = (await resp.text(errors="replace")).strip().replace("\n", " ")
                _fail(record, "http", f"HTTP {resp.status}: {text[:200]}")
            else:
                decoder = SSEDecoder()
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    for payload in decoder.feed(chunk):
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
