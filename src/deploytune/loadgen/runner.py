"""Run a :class:`~deploytune.loadgen.spec.LoadSpec` against a server: :func:`run_load` and
its blocking twin :func:`run_load_sync`.

The measured phase has one producer (closed loop: ``concurrency`` workers sending back to back;
open loop: a dispatcher sleeping until each Poisson arrival) that puts every finished request's
record on a queue; the coroutine of :func:`run_load` consumes the queue and calls ``on_interim``
itself, so an exception raised there (the tuner's ``AbortTrial``) cancels the producer, and with
it every in-flight request, before it propagates unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from deploytune.loadgen.client import api_url, discover_model, request_body, send_request
from deploytune.loadgen.prompts import load_prompts
from deploytune.loadgen.records import LoadResult, RequestRecord
from deploytune.loadgen.schedule import poisson_arrivals, prompt_order
from deploytune.loadgen.spec import LoadSpec
from deploytune.loadgen.stats import compute_metrics

__all__ = ["InterimCallback", "run_load", "run_load_sync"]

InterimCallback = Callable[[dict[str, float]], None]
"""Receives the metrics so far (the names of :meth:`LoadResult.metrics`); raising any exception
stops the run."""

CANCEL_GRACE_S = 2.0
"""Longest wait for cancelled requests to unwind."""
CONNECT_TIMEOUT_S = 10.0
"""Longest wait for a TCP connection (further bounded by the request timeout)."""


async def _cancel_all(tasks: set[asyncio.Task[Any]] | list[asyncio.Task[Any]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE_S)


class _Run:
    """The measured phase of one run."""

    def __init__(self, session: aiohttp.ClientSession, url: str, spec: LoadSpec, model: str,
                 prompts: list[str], on_interim: InterimCallback | None):
        self.session = session
        self.url = url
        self.spec = spec
        self.model = model
        self.prompts = prompts
        self.order = prompt_order(len(prompts), spec.seed)
        self.on_interim = on_interim
        self.queue: asyncio.Queue[RequestRecord] = asyncio.Queue()
        self.records: list[RequestRecord] = []
        self.issued = 0
        self.t0 = 0.0

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _may_issue(self) -> bool:
        if self.spec.duration_s is not None:
            return self._elapsed() < self.spec.duration_s
        return self.issued < (self.spec.requests or 0)

    async def _send(self, index: int, scheduled: float | None = None) -> None:
        prompt = self.prompts[self.order[index % len(self.order)]]
        body = request_body(self.spec, self.model, prompt)
        record = await send_request(self.session, self.url, body, index, self.t0,
                                    self.spec.request_timeout_s)
        record.scheduled = scheduled
        self.queue.put_nowait(record)

    async def _worker(self) -> None:
        while self._may_issue():
            index = self.issued
            self.issued += 1
            await self._send(index)

    async def _closed_loop(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.spec.concurrency or 1)]
        try:
            await asyncio.gather(*workers)
        finally:
            await _cancel_all(workers)

    async def _capped_send(self, index: int, scheduled: float,
                           cap: asyncio.Semaphore | None) -> None:
        try:
            await self._send(index, scheduled)
        finally:
            if cap is not None:
                cap.release()

    async def _open_loop(self) -> None:
        assert self.spec.rate is not None
        cap = asyncio.Semaphore(self.spec.concurrency) if self.spec.concurrency else None
        duration = self.spec.duration_s
        tasks: set[asyncio.Task[None]] = set()
        try:
            for offset in poisson_arrivals(self.spec.rate, self.spec.seed):
                if duration is None and self.issued >= (self.spec.requests or 0):
                    break
                if duration is not None and offset >= duration:
                    break
                delay = offset - self._elapsed()
                if delay > 0:
                    await asyncio.sleep(delay)
                if cap is not None:
                    await cap.acquire()
                    if duration is not None and self._elapsed() >= duration:
                        cap.release()  # the cap held this arrival past the deadline
                        break
                index = self.issued
                self.issued += 1
                task = asyncio.create_task(self._capped_send(index, offset, cap))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:  # no new ones: wait for those in flight
                await asyncio.gather(*list(tasks))
        finally:
            await _cancel_all(list(tasks))

    def _take(self, record: RequestRecord) -> None:
        self.records.append(record)
        every = self.spec.report_every
        if self.on_interim is not None and len(self.records) % every == 0:
            self.on_interim(compute_metrics(self.records, self._elapsed(), self.spec.slos))

    async def measure(self) -> LoadResult:
        """Send the measured requests; ``on_interim`` exceptions propagate after every
        in-flight request was cancelled."""
        self.t0 = time.perf_counter()
        producer = asyncio.create_task(
            self._open_loop() if self.spec.open_loop else self._closed_loop())
        getter: asyncio.Task[RequestRecord] | None = None
        try:
            while True:
                getter = asyncio.create_task(self.queue.get())
                done, _ = await asyncio.wait({getter, producer},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    break
                self._take(getter.result())
            while not self.queue.empty():
                self._take(self.queue.get_nowait())
            producer.result()  # an unexpected error of the producer
        finally:
            await _cancel_all([t for t in (getter, producer) if t is not None])
        duration = self._elapsed()
        self.records.sort(key=lambda r: r.index)
        return LoadResult(records=self.records, duration_s=duration, spec=self.spec,
                          model=self.model)


async def _warm_up(session: aiohttp.ClientSession, url: str, spec: LoadSpec, model: str,
                   prompts: list[str]) -> None:
    """Send ``spec.warmup_requests`` requests (closed loop, results discarded)."""
    t0 = time.perf_counter()
    order = prompt_order(len(prompts), spec.seed + 1)
    pending = iter(range(spec.warmup_requests))

    async def worker() -> None:
        for i in pending:
            body = request_body(spec, model, prompts[order[i % len(order)]])
            await send_request(session, url, body, i, t0, spec.request_timeout_s)

    workers = [asyncio.create_task(worker())
               for _ in range(min(spec.concurrency or 1, spec.warmup_requests))]
    try:
        await asyncio.gather(*workers)
    finally:
        await _cancel_all(workers)


async def run_load(base_url: str, spec: LoadSpec,
                   on_interim: InterimCallback | None = None) -> LoadResult:
    """Send ``spec``'s load to the OpenAI-compatible server at ``base_url`` and measure it.

    Args:
        base_url: The server's root, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is
            accepted).
        spec: What to send.
        on_interim: Called with the metrics so far after every ``spec.report_every`` finished
            requests (successful or failed). Any exception it raises cancels every in-flight
            request, closes the session and propagates unchanged.

    Returns:
        The measured requests; failed requests are records with an ``error``, never exceptions.

    Raises:
        LoadSpecError: The prompt file is missing or malformed.
        ServerUnreachable: ``spec.model`` is None and ``GET /v1/models`` could not connect.
    """
    prompts = load_prompts(spec.prompts)
    connector = aiohttp.TCPConnector(limit=spec.concurrency or 0)
    timeout = aiohttp.ClientTimeout(total=None,
                                    sock_connect=min(CONNECT_TIMEOUT_S, spec.request_timeout_s))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        model = spec.model if spec.model is not None else await discover_model(session, base_url)
        url = api_url(base_url, "chat/completions" if spec.endpoint == "chat" else "completions")
        if spec.warmup_requests:
            await _warm_up(session, url, spec, model, prompts)
        return await _Run(session, url, spec, model, prompts, on_interim).measure()


def run_load_sync(base_url: str, spec: LoadSpec,
                  on_interim: InterimCallback | None = None) -> LoadResult:
    """:func:`run_load` from synchronous code (a fresh event loop; Ctrl-C cancels the run
    cleanly and raises ``KeyboardInterrupt``). Called from inside a running event loop, it runs
    in a helper thread, where ``on_interim`` is then called."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_load(base_url, spec, on_interim))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(run_load(base_url, spec, on_interim))).result()
