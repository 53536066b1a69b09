"""A fake OpenAI-compatible LLM server that misbehaves on demand, for tests.

Run as ``python tests/fake_openai_server.py --port P --mode MODE [...]``. It serves streamed
``POST /v1/chat/completions`` and ``POST /v1/completions`` (SSE ``data: {...}`` events, a
``finish_reason`` chunk, a usage chunk when ``stream_options.include_usage`` is set, then
``data: [DONE]``; non-streamed JSON when ``stream`` is false), ``GET /v1/models``,
``GET /health``, and for the tests ``GET /stats`` (requests received, requests in flight, the
most ever in flight, the last request body) and ``POST /stats/reset``. It prints
``listening on PORT`` to stderr once serving.

Modes:

* ``ok``: behaves.
* ``never-healthy``: every endpoint answers 503, forever.
* ``die-mid-load``: serves ``--die-after`` requests; when the next one arrives it prints a line
  to stderr and exits with ``os._exit(3)``, cutting the streams in flight.
* ``errors``: every ``--error-every``-th request answers HTTP 500 with a JSON error.
* ``slow-stream``: like ``ok`` with a long delay between tokens (``--token-delay-ms``, default
  1000 in this mode).
* ``crash-on-start``: after the start-up delay, prints ``--crash-message`` to stderr and exits
  with ``--exit-code`` without ever listening.
* ``sse-garbage``: a streamed request gets ``200 text/event-stream`` and then ``data: xxx...``
  without any newline, ``--garbage-mb`` MiB of it (or until the client goes away).
* ``endless-error``: a streamed request gets HTTP 500 with a body of ``--garbage-mb`` MiB
  (or until the client goes away).

Hostile options (any mode): ``--claim-tokens N`` reports ``usage.completion_tokens = N``
whatever was streamed; ``--log-line-mb M`` prints, at start, one stdout line of M MiB
(``LONGLINE 7 xxx...``) followed by ``after the long line: 8``; ``--pid-file PATH`` writes the
process id there at start.

``--spawn-child`` leaves a sleeping child process in the server's process group (a
worker, as vLLM's engine core or an inductor compile worker would be).

Each streamed token is the word ``tokN`` (N from 0); the prompt's token count is its number of
whitespace-separated words.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from aiohttp import web

MODES = ("ok", "never-healthy", "die-mid-load", "errors", "slow-stream", "crash-on-start",
         "sse-garbage", "endless-error")
"""The accepted ``--mode`` values."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mode", choices=MODES, default="ok")
    p.add_argument("--token-delay-ms", type=float, default=None,
                   help="time between streamed tokens (default 5; 1000 in slow-stream mode)")
    p.add_argument("--ttft-ms", type=float, default=0.0, help="time before the first token")
    p.add_argument("--tokens", type=int, default=None,
                   help="tokens per response (default: the request's max_tokens)")
    p.add_argument("--die-after", type=int, default=4,
                   help="die-mid-load: requests served before the process dies")
    p.add_argument("--error-every", type=int, default=3,
                   help="errors: every K-th request answers HTTP 500")
    p.add_argument("--startup-delay-s", type=float, default=0.0,
                   help="seconds before listening (or crashing, in crash-on-start mode)")
    p.add_argument("--print-startup-line", action="append", default=[], metavar="TEXT",
                   help="print TEXT to stderr at start (repeatable)")
    p.add_argument("--exit-code", type=int, default=1, help="crash-on-start: the exit status")
    p.add_argument("--crash-message", default="RuntimeError: CUDA out of memory (fake)",
                   help="crash-on-start: printed to stderr before exiting")
    p.add_argument("--spawn-child", action="store_true",
                   help="start a child process that sleeps forever (it stays in the process "
                        "group: the evaluator must kill it too)")
    p.add_argument("--model-id", default="fake-model", help="the id GET /v1/models lists")
    p.add_argument("--garbage-mb", type=float, default=300.0,
                   help="sse-garbage, endless-error: MiB of body to send at most")
    p.add_argument("--claim-tokens", type=int, default=None,
                   help="report this usage.completion_tokens whatever was streamed")
    p.add_argument("--log-line-mb", type=float, default=0.0,
                   help="print one stdout line of this many MiB at start")
    p.add_argument("--pid-file", default=None, help="write the process id to this file at start")
    args = p.parse_args(argv)
    if args.token_delay_ms is None:
        args.token_delay_ms = 1000.0 if args.mode == "slow-stream" else 5.0
    return args


def log(text: str) -> None:
    """Print one line to stderr at once."""
    print(text, file=sys.stderr, flush=True)


class FakeServer:
    """The request handlers and the counters behind ``/stats``."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.received = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.last_request: dict[str, Any] | None = None

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/stats/reset", self.reset)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        return app

    def _unavailable(self) -> web.Response | None:
        if self.args.mode == "never-healthy":
            return web.json_response({"error": {"message": "model is still loading",
                                                "type": "unavailable", "code": 503}},
                                     status=503)
        return None

    async def health(self, request: web.Request) -> web.StreamResponse:
        """``GET /health``: 200, or 503 in never-healthy mode."""
        return self._unavailable() or web.Response(text="ok")

    async def models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models``: one model."""
        return self._unavailable() or web.json_response(
            {"object": "list", "data": [{"id": self.args.model_id, "object": "model",
                                         "owned_by": "fake"}]})

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """``GET /stats``: counters for the tests."""
        return web.json_response({"requests": self.received, "in_flight": self.in_flight,
                                  "max_concurrent": self.max_in_flight,
                                  "last_request": self.last_request})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """``POST /stats/reset``: zero the counters (the in-flight count is kept)."""
        self.received = 0
        self.max_in_flight = self.in_flight
        self.last_request = None
        return web.json_response({"reset": True})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions``."""
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        unavailable = self._unavailable()
        if unavailable is not None:
            return unavailable
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        self.received += 1
        number = self.received
        self.last_request = body
        args = self.args
        if args.mode == "die-mid-load" and number > args.die_after:
            log(f"fake server: fatal error after {args.die_after} requests, exiting")
            os._exit(3)
        if args.mode == "errors" and number % args.error_every == 0:
            return web.json_response(
                {"error": {"message": f"internal error on request {number}",
                           "type": "server_error", "code": 500}}, status=500)
        if chat and not isinstance(body.get("messages"), list):
            return web.json_response({"error": {"message": "messages: field required"}},
                                     status=400)
        if not chat and not isinstance(body.get("prompt"), str):
            return web.json_response({"error": {"message": "prompt: field required"}},
                                     status=400)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if args.mode in ("sse-garbage", "endless-error"):
                return await self._garbage(request)
            return await self._respond(request, body, chat=chat)
        except ConnectionError:  # the client went away mid-stream
            return web.Response(status=499)
        finally:
            self.in_flight -= 1

    async def _garbage(self, request: web.Request) -> web.StreamResponse:
        """``--garbage-mb`` MiB without a newline: an SSE line, or an HTTP 500 body."""
        sse = self.args.mode == "sse-garbage"
        resp = web.StreamResponse(status=200 if sse else 500,
                                  headers={"Content-Type": "text/event-stream" if sse
                                           else "text/plain"})
        await resp.prepare(request)
        if sse:
            await resp.write(b"data: ")
        block = b"x" * (1 << 20)
        for _ in range(max(1, int(self.args.garbage_mb))):
            await resp.write(block)
        await resp.write_eof()
        return resp

    async def _respond(self, request: web.Request, body: dict[str, Any], *,
                       chat: bool) -> web.StreamResponse:
        args = self.args
        n_tokens = args.tokens if args.tokens is not None else int(body.get("max_tokens") or 16)
        if chat:
            prompt = " ".join(str(m.get("content", "")) for m in body["messages"]
                              if isinstance(m, dict))
        else:
            prompt = body["prompt"]
        claimed = n_tokens if args.claim_tokens is None else args.claim_tokens
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": claimed,
                 "total_tokens": len(prompt.split()) + claimed}
        rid = f"fake-{self.received}"
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"
        model = body.get("model", args.model_id)

        def chunk(text: str | None, finish: str | None = None) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {} if text is None else {"content": text}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish}
            return {"id": rid, "object": f"{kind}.chunk" if chat else kind,
                    "created": created, "model": model, "choices": [choice]}

        words = [f"tok{i}" for i in range(n_tokens)]
        if not body.get("stream"):
            await asyncio.sleep((args.ttft_ms + args.token_delay_ms * max(n_tokens - 1, 0))
                                / 1000.0)
            text = " ".join(words)
            choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant",
                                                                 "content": text},
                                       "finish_reason": "length"} if chat else
                                      {"index": 0, "text": text, "finish_reason": "length"})
            return web.json_response({"id": rid, "object": kind, "created": created,
                                      "model": model, "choices": [choice], "usage": usage})

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def send(obj: dict[str, Any] | str) -> None:
            data = obj if isinstance(obj, str) else json.dumps(obj)
            await resp.write(f"data: {data}\n\n".encode())

        if chat:  # like vLLM: a first chunk with the role and no content
            first = chunk(None)
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            await send(first)
        await asyncio.sleep(args.ttft_ms / 1000.0)
        for i, word in enumerate(words):
            if i:
                await asyncio.sleep(args.token_delay_ms / 1000.0)
            await send(chunk(word if i == 0 else f" {word}"))
        await send(chunk(None, finish="length"))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            final = chunk(None)
            final["choices"] = []
            final["usage"] = usage
            await send(final)
        await send("[DONE]")
        await resp.write_eof()
        return resp


async def serve(args: argparse.Namespace) -> None:
    """Start listening, print ``listening on PORT`` and serve until killed."""
    runner = web.AppRunner(FakeServer(args).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    log(f"listening on {args.port}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point: start-up lines, start-up delay, then crash or serve."""
    args = parse_args(argv)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(os.getpid()))
    for line in args.print_startup_line:
        log(line)
    if args.log_line_mb > 0:
        out = sys.stdout.buffer
        out.write(b"LONGLINE 7 ")
        block = b"x" * (1 << 20)
        for _ in range(int(args.log_line_mb)):
            out.write(block)
        out.write(b"\nafter the long line: 8\n")
        out.flush()
    if args.spawn_child:
        import subprocess

        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    if args.startup_delay_s > 0:
        time.sleep(args.startup_delay_s)
    if args.mode == "crash-on-start":
        log(args.crash_message)
        return int(args.exit_code)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
