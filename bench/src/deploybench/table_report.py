"""``deploytune bench tables``: the recorded tables as markdown (what each backend, precision
and batch size costs on the machine they were recorded on)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploybench._markdown import markdown_table
from deploybench.replay import RecordedTable

__all__ = ["QUALITY_METRICS", "THROUGHPUT_METRICS", "table_markdown", "tables_markdown"]

QUALITY_METRICS: dict[str, tuple[str, ...]] = {
    "effnet": ("top1_agreement", "top1_vs_lite2", "weight_bits"),
    "minilm": ("cosine_min", "nn_agreement", "weight_bits"),
    "whisper": ("wer",),
}
"""Quality metrics shown per row, by workload."""

THROUGHPUT_METRICS = ("images_per_s", "sentences_per_s", "audio_s_per_s")
"""Throughput metric names (the first one a cell has is shown)."""

_CRASH_LABEL = {"oom": "OOM", "timeout": "timeout", "invalid_config": "invalid",
                "runtime_error": "error", "transient": "transient"}


def _cell_text(cell: Mapping[str, Any]) -> str:
    if cell["status"] != "ok":
        label = _CRASH_LABEL.get(cell["crash_kind"], cell["crash_kind"])
        return f"{label}*" if cell.get("declared") else label
    repeats = cell["repeats"]
    p50 = float(np.median([r["p50_ms"] for r in repeats]))
    p95 = float(np.median([r["p95_ms"] for r in repeats]))
    return f"{_ms(p50)} ({_ms(p95)})"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _summary(cells: Sequence[Mapping[str, Any]], workload: str) -> list[str]:
    ran = [c for c in cells if c["status"] == "ok"]
    if not ran:
        return ["", "", ""]
    best = 0.0
    for c in ran:
        for name in THROUGHPUT_METRICS:
            if name in c["repeats"][0]:
                best = max(best, float(np.median([r[name] for r in c["repeats"]])))
                break
    memory = max(float(np.max([r["memory_mb"] for r in c["repeats"]])) for c in ran)
    quality = []
    for name in QUALITY_METRICS.get(workload, ()):
        values = [r[name] for c in ran for r in c["repeats"] if name in r]
        if values:
            quality.append(f"{name} {float(np.mean(values)):.3g}")
    return [f"{best:.3g}", f"{memory:.0f}", ", ".join(quality)]


def table_markdown(table: RecordedTable) -> str:
    """One recorded table as markdown: a row per setting of every parameter but the batch
    size, a column per recorded batch size with ``p50 (p95)`` ms per request or batch (median
    over the repeats) or the crash, plus the best throughput, the peak memory and the quality
    of the row."""
    header = table.header
    workload = str(header.get("workload"))
    monotone = [m for m in header.get("monotone", []) if m in table.space]
    batch_name = monotone[0] if monotone else None
    batches = sorted({c["config"][batch_name] for c in table.cells
                      if batch_name and batch_name in c["config"]})
    rows: dict[tuple[tuple[str, Any], ...], dict[Any, Mapping[str, Any]]] = {}
    for cell in table.cells:
        config = cell["config"]
        key = tuple((k, v) for k, v in config.items() if k != batch_name)
        rows.setdefault(key, {})[config.get(batch_name, None)] = cell
    names = [k for k, _ in next(iter(rows))] if rows else []
    columns = [f"{batch_name} {b}" for b in batches] if batches else []
    has_unbatched = any(None in r for r in rows.values())
    head = [*names, *columns, *(["per request"] if has_unbatched else []),
            "best items/s", "peak MB", "quality"]
    body: list[list[str]] = []
    for key, by_batch in rows.items():
        cells = [by_batch[b] for b in [*batches, None] if b in by_batch]
        body.append([str(v) for _, v in key]
                    + [_cell_text(by_batch[b]) if b in by_batch else "" for b in batches]
                    + ([_cell_text(by_batch[None]) if None in by_batch else ""]
                       if has_unbatched else [])
                    + _summary(cells, workload))
    machine = header.get("machine", {})
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    lines = [
        f"### {workload}: recorded {header.get('recorded_at')}",
        "",
        "```bash",
        str(header.get("command")),
        "```",
        "",
        f"{machine.get('cpu')} ({machine.get('cores')} cores), Python {machine.get('python')}, "
        f"{packages}. Every cell ran isolated under a {header.get('timeout_s'):g} s time limit "
        f"and a {header.get('memory_mb'):g} MB address-space cap; {table.windows} timed "
        f"windows per cell; recording took {float(header.get('recorded_s', 0)) / 60:.0f} min. "
        f"Cells: `p50 (p95)` ms per batch (per request for unbatched rows), median over the "
        f"windows; `OOM`, `timeout`, `invalid`, `error` are the recorded crashes; `*` marks "
        f"a crash declared from a smaller batch of the same row, not measured.",
        "",
        *markdown_table(head, body),
    ]
    return "\n".join(lines) + "\n"


def tables_markdown(paths: Iterable[Path]) -> str:
    """:func:`table_markdown` of every table file in ``paths``, one after another."""
    return "\n".join(table_markdown(RecordedTable.load(p)) for p in paths)
