"""The body of ``deploytune load URL``: build the spec from the options, run it with interim
lines, print the metrics table (or one JSON object)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from deploytune.loadgen.client import ServerUnreachable
from deploytune.loadgen.prompts import load_prompts
from deploytune.loadgen.records import LoadResult
from deploytune.loadgen.runner import run_load_sync
from deploytune.loadgen.spec import LoadSpec, LoadSpecError
from deploytune.loadgen.stats import METRIC_NAMES

__all__ = ["OPTION_OF_FIELD", "build_spec", "format_interim", "load_command"]

OPTION_OF_FIELD = {
    "requests": "--requests", "duration_s": "--duration", "concurrency": "--concurrency",
    "rate": "--rate", "prompts": "--prompts", "max_tokens": "--max-tokens",
    "endpoint": "--endpoint", "model": "--model", "seed": "--seed",
    "slo_ttft_ms": "--slo-ttft-ms", "slo_tpot_ms": "--slo-tpot-ms",
    "slo_e2e_ms": "--slo-e2e-ms", "request_timeout_s": "--timeout",
    "warmup_requests": "--warmup", "temperature": "--temperature",
    "ignore_eos": "--ignore-eos",
}
"""The ``deploytune load`` option of each :class:`LoadSpec` field it exposes."""


def build_spec(**options: Any) -> LoadSpec:
    """The :class:`LoadSpec` of the command line's options (``None``: not given), its prompt
    file checked; bad input raises :class:`typer.BadParameter` naming the option."""
    if options.get("requests") is not None and options.get("duration_s") is not None:
        raise typer.BadParameter("give either --requests or --duration, not both",
                                 param_hint="'--requests' / '--duration'")
    given = {k: v for k, v in options.items() if v is not None}
    try:
        spec = LoadSpec(**given)
        load_prompts(spec.prompts)
    except LoadSpecError as exc:
        option = OPTION_OF_FIELD.get(exc.field, exc.field)
        raise typer.BadParameter(exc.message, param_hint=f"'{option}'") from None
    return spec


def format_interim(metrics: dict[str, float]) -> str:
    """One progress line, e.g. ``[8 done] ok 8 failed 0 | ttft p50 51.8 ms p95 60.1 ms |
    tpot p50 20.8 ms | 72.8 tok/s``."""
    parts = [f"[{metrics.get('requests', 0):.0f} done] ok {metrics.get('completed', 0):.0f} "
             f"failed {metrics.get('failed', 0):.0f}"]
    if "ttft_p50_ms" in metrics:
        parts.append(f"ttft p50 {metrics['ttft_p50_ms']:.1f} ms p95 "
                     f"{metrics['ttft_p95_ms']:.1f} ms")
    if "tpot_p50_ms" in metrics:
        parts.append(f"tpot p50 {metrics['tpot_p50_ms']:.1f} ms")
    parts.append(f"{metrics.get('output_tokens_per_s', 0.0):.1f} tok/s")
    return " | ".join(parts)


def _format_value(name: str, value: float) -> str:
    if name in ("completed", "failed", "requests"):
        return f"{value:.0f}"
    if name in ("error_rate", "goodput_fraction"):
        return f"{value:.3f}"
    return f"{value:.2f}"


def _describe(spec: LoadSpec, model: str) -> str:
    amount = (f"{spec.requests} requests" if spec.requests is not None
              else f"{spec.duration_s:g} s")
    if spec.rate is not None:
        cap = f", at most {spec.concurrency} in flight" if spec.concurrency else ""
        loop = f"Poisson arrivals at {spec.rate:g}/s{cap}"
    else:
        loop = f"concurrency {spec.concurrency}"
    return f"model {model}, {spec.endpoint} endpoint, {amount}, {loop}"


def _table(result: LoadResult) -> Table:
    metrics = result.metrics()
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in METRIC_NAMES:
        if name in metrics:
            table.add_row(name, _format_value(name, metrics[name]))
    return table


def load_command(url: str, *, json_out: bool = False, **options: Any) -> None:
    """Run ``deploytune load URL``: exit 2 for bad options, 1 when the server cannot be
    reached or every request failed, 130 on Ctrl-C."""
    spec = build_spec(**options)
    console = Console()
    progress = Console(stderr=True) if json_out else console

    def on_interim(metrics: dict[str, float]) -> None:
        progress.print(format_interim(metrics), highlight=False, soft_wrap=True)

    try:
        result = run_load_sync(url, spec, on_interim=on_interim)
    except ServerUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        typer.echo("stopped by Ctrl-C; in-flight requests were cancelled", err=True)
        raise typer.Exit(code=130) from None
    metrics = result.metrics()
    if result.records and all(r.error_kind == "connection" for r in result.records):
        typer.echo(f"error: cannot connect to {url}: {result.first_error()}", err=True)
        raise typer.Exit(code=1)
    if json_out:
        typer.echo(json.dumps({"url": url, "model": result.model, "spec": spec.to_dict(),
                               "metrics": metrics, "errors": result.error_counts(),
                               "first_error": result.first_error()}))
    else:
        console.print(Text(_describe(spec, result.model)), highlight=False, soft_wrap=True)
        console.print(_table(result))
        if result.failed:
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.error_counts().items()))
            console.print(Text(f"failed requests: {counts}; first: {result.first_error()}"),
                          highlight=False)
    if metrics["completed"] == 0:
        typer.echo(f"error: all {len(result.records)} requests to {url} failed; first: "
                   f"{result.first_error()}", err=True)
        raise typer.Exit(code=1)
