"""Tests of ``deploytune bench record``: the toy workload of :mod:`tests.bench.toy_workload`
recorded for real (every cell a fresh isolated child process under a real time limit and a
real ``RLIMIT_AS`` cap), its table, resuming a killed recording, and the command line."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploybench import recording
from deploybench.recording import (
    FORMAT,
    grid_cells,
    grid_rows,
    record_workload,
    unflatten_windows,
)
from deploytune.cli import app
from deploytune.workloads._profile import flatten_windows
from tests.bench.toy_workload import (
    MEMORY_MB,
    REPO_ROOT,
    TIMEOUT_S,
    nominal_metrics,
    recorded_toy_table,
    toy_workload,
)

BATCHES = (1, 2, 4, 8, 16)


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy recorded once (shared with test_replay when both run in one process)."""
    return recorded_toy_table(tmp_path_factory.mktemp("recorded"))


@pytest.fixture(scope="module")
def table(table_path: Path) -> dict[str, Any]:
    return dict(json.loads(table_path.read_text()))


@pytest.fixture(scope="module")
def cells(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {_key(c["config"]): c for c in table["cells"]}


def cell(cells: Mapping[str, dict[str, Any]], kind: str, batch: int,
         threads: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"kind": kind, "batch_size": batch}
    if threads is not None:
        config["threads"] = threads
    return cells[_key(config)]


def expected_grid() -> list[dict[str, Any]]:
    """The toy's grid written out by hand: threads only exists for ``fast``."""
    out: list[dict[str, Any]] = [{"kind": "fast", "batch_size": b, "threads": t}
                                 for b in BATCHES for t in (1, 2)]
    out += [{"kind": k, "batch_size": b} for k in ("slow", "fat", "bad") for b in BATCHES]
    return out


# ------------------------------------------------------------------------------ grid helpers
def test_grid_cells_and_rows_of_the_toy() -> None:
    workload = toy_workload()
    cells = list(grid_cells(workload))
    assert sorted(map(_key, cells)) == sorted(map(_key, expected_grid()))
    assert len({_key(c) for c in cells}) == len(cells) == 25
    rows = grid_rows(workload)
    assert len(rows) == 5  # fast x2 threads, slow, fat, bad
    for row in rows:
        assert [c["batch_size"] for c in row] == list(BATCHES)
        assert len({_key({k: v for k, v in c.items() if k != "batch_size"}) for c in row}) == 1


@pytest.mark.parametrize("windows", [
    [{"p50_ms": 1.5, "p95_ms": 2.0}],
    [{"p50_ms": 1.5, "p95_ms": 2.0}, {"p50_ms": 1.25, "p95_ms": 3.0},
     {"p50_ms": 1.75, "p95_ms": 2.5}],
])
def test_unflatten_windows_inverts_flatten_windows(windows: list[dict[str, float]]) -> None:
    flat = flatten_windows(windows, 0.75)
    assert flat["p50_ms"] == 1.5 and "extra_windows_s" in flat
    assert unflatten_windows(flat) == (windows, 0.75)


# ------------------------------------------------------------------------------ the recording
@pytest.mark.slow
def test_header_describes_the_recording(table: dict[str, Any]) -> None:
    assert table["format"] == FORMAT
    assert table["workload"] == "toy"
    assert table["command"] == "deploytune bench record toy"
    for stamp in ("recorded_at", "finished_at"):
        dt.datetime.strptime(table[stamp], "%Y-%m-%dT%H:%M:%SZ")
    assert isinstance(table["machine"]["cpu"], str) and table["machine"]["cpu"]
    assert table["machine"]["cores"] == os.cpu_count()
    assert table["machine"]["packages"]["numpy"]
    assert table["timeout_s"] == TIMEOUT_S and table["memory_mb"] == MEMORY_MB
    assert table["windows"] == 3
    assert table["grid"] == {"batch_size": list(BATCHES)}
    assert table["monotone"] == ["batch_size"]
    assert table["record_target"] == "tests.bench.toy_workload:evaluate_windows"
    assert table["recorded_s"] > 0


def test_every_grid_cell_is_recorded_once(table: dict[str, Any]) -> None:
    keys = [_key(c["config"]) for c in table["cells"]]
    assert sorted(keys) == sorted(map(_key, expected_grid()))
    # in grid order: rows one after the other, ascending batch size within a row
    assert keys == [_key(c) for row in grid_rows(toy_workload()) for c in row]


def test_fast_cells_ran_with_three_different_repeats(
        cells: dict[str, dict[str, Any]]) -> None:
    for batch in BATCHES:
        for threads in (1, 2):
            c = cell(cells, "fast", batch, threads)
            assert c["status"] == "ok" and "declared" not in c
            assert 0 < c["seconds"] < TIMEOUT_S
            assert isinstance(c["foreign_cpu_s"], float) and c["foreign_cpu_s"] >= 0
            repeats = c["repeats"]
            assert len(repeats) == 3
            assert len({json.dumps(r, sort_keys=True) for r in repeats}) == 3
            for window, repeat in enumerate(repeats):
                assert repeat == pytest.approx(nominal_metrics(c["config"], window))


def test_bad_cells_crashed_as_invalid_config(cells: dict[str, dict[str, Any]]) -> None:
    for batch in BATCHES:  # never declared: invalid_config does not stop a row
        c = cell(cells, "bad", batch)
        assert c["status"] == "crashed" and c["crash_kind"] == "invalid_config"
        assert f"toy: kind 'bad' cannot run (batch {batch})" in c["error"]
        assert "declared" not in c and c["repeats"] == []


def test_fat_batch_4_really_ran_out_of_memory(cells: dict[str, dict[str, Any]]) -> None:
    for batch in (1, 2):  # 120 and 240 MB fit under the cap
        assert cell(cells, "fat", batch)["status"] == "ok"
    oom = cell(cells, "fat", 4)  # 480 MB does not: numpy's MemoryError in the child
    assert oom["status"] == "crashed" and oom["crash_kind"] == "oom"
    assert "MemoryError" in oom["error"] and "declared" not in oom
    for batch in (8, 16):
        c = cell(cells, "fat", batch)
        assert c["status"] == "crashed" and c["crash_kind"] == "oom"
        assert c["declared"].startswith("oom at batch_size=4")
        assert c["error"] == oom["error"] and c["seconds"] == oom["seconds"]
        assert c["repeats"] == [] and "foreign_cpu_s" not in c  # never ran


def test_slow_batch_4_is_a_timeout_measured_with_the_limit_doubled(
        cells: dict[str, dict[str, Any]]) -> None:
    for batch in (1, 2):
        c = cell(cells, "slow", batch)
        assert c["status"] == "ok" and c["seconds"] < TIMEOUT_S
    timeout = cell(cells, "slow", 4)  # sleeps 3.2 s: over 3 s, within the recorder's 6 s
    assert timeout["status"] == "crashed" and timeout["crash_kind"] == "timeout", timeout
    assert timeout["seconds"] == TIMEOUT_S
    assert f"over the {TIMEOUT_S:g} s limit" in timeout["error"]
    assert len(timeout["repeats"]) == 3 and "declared" not in timeout
    for batch in (8, 16):
        c = cell(cells, "slow", batch)
        assert c["crash_kind"] == "timeout" and c["seconds"] == TIMEOUT_S
        assert c["declared"].startswith("timeout at batch_size=4")


# ------------------------------------------------------------------------------------ resuming
class _Spy:
    """Wraps the recorder's ``_measure``: which configurations really ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.measured: list[dict[str, Any]] = []
        real = recording._measure

        def measure(workload: Any, config: dict[str, Any], windows: int) -> dict[str, Any]:
            self.measured.append(dict(config))
            return real(workload, config, windows)

        monkeypatch.setattr(recording, "_measure", measure)


@pytest.mark.slow
def test_a_killed_recording_resumes_measuring_only_missing_cells(
        table: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    path = tmp_path / "toy.json"
    partial = {k: v for k, v in table.items() if k not in ("recorded_s", "finished_at")}
    partial["recorded_at"] = "2000-01-01T00:00:00Z"
    # killed while measuring the fat row (after batch 2), and one fast cell lost as well
    lost = {"kind": "fast", "batch_size": 4, "threads": 1}
    partial["cells"] = [c for c in table["cells"][:17] if c["config"] != lost]
    assert len(partial["cells"]) == 16
    path.write_text(json.dumps(partial))
    spy = _Spy(monkeypatch)
    seen: list[tuple[int, int, dict[str, Any]]] = []

    record_workload(toy_workload(), out=path, windows=3,
                    on_cell=lambda i, n, c: seen.append((i, n, dict(c))))

    assert spy.measured == [lost, {"kind": "fat", "batch_size": 4},
                            *({"kind": "bad", "batch_size": b} for b in BATCHES)]
    assert [(i, n) for i, n, _ in seen] == [(i, 25) for i in range(1, 26)]
    resumed = json.loads(path.read_text())
    assert resumed["recorded_at"] == "2000-01-01T00:00:00Z" and "finished_at" in resumed
    assert [c for _, _, c in seen] == resumed["cells"]
    kept = {_key(c["config"]): c for c in partial["cells"]}
    original = {_key(c["config"]): c for c in table["cells"]}
    for c in resumed["cells"]:
        key = _key(c["config"])
        if key in kept:  # untouched: identical, down to its foreign CPU and seconds
            assert c == kept[key]
        else:  # measured again (or declared again), with the same outcome
            assert c["status"] == original[key]["status"]
            assert c.get("crash_kind") == original[key].get("crash_kind")
            assert c["repeats"] == original[key]["repeats"]
            assert ("declared" in c) == ("declared" in original[key])
    # fat batch 8 and 16 were declared from the new oom at batch 4, not measured
    fat8 = next(c for c in resumed["cells"] if c["config"] == {"kind": "fat", "batch_size": 8})
    assert fat8["declared"].startswith("oom at batch_size=4")


def test_a_complete_table_is_not_measured_again(
        table_path: Path, table: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "toy.json"
    shutil.copy(table_path, path)
    spy = _Spy(monkeypatch)
    record_workload(toy_workload(), out=path, windows=3)
    assert spy.measured == []
    again = json.loads(path.read_text())
    assert again["cells"] == table["cells"] and again["recorded_at"] == table["recorded_at"]


def test_deleting_a_crash_measures_its_declared_successors_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timeout measured beside a busy process is deleted (as the recording module's doc
    suggests) and measured again, now without crashing: the larger batches that were declared
    from it must not stay declared. ``_measure`` is replaced (no processes)."""
    busy = [True]

    def measure(workload: Any, config: dict[str, Any], windows: int) -> dict[str, Any]:
        if busy[0] and config["kind"] == "slow" and config["batch_size"] >= 4:
            return {"config": config, "status": "crashed", "crash_kind": "timeout",
                    "error": "busy machine", "seconds": TIMEOUT_S, "repeats": []}
        return {"config": config, "status": "ok", "seconds": 0.1,
                "repeats": [nominal_metrics(config, w) for w in range(windows)]}

    monkeypatch.setattr(recording, "_measure", measure)
    path = record_workload(toy_workload(), out=tmp_path / "toy.json", windows=3)
    table = json.loads(path.read_text())
    slow4 = {"kind": "slow", "batch_size": 4}
    table["cells"] = [c for c in table["cells"] if c["config"] != slow4]
    path.write_text(json.dumps(table))
    busy[0] = False
    record_workload(toy_workload(), out=path, windows=3)
    slow = [c for c in json.loads(path.read_text())["cells"] if c["config"]["kind"] == "slow"]
    assert [c["status"] for c in slow] == ["ok"] * 5
    assert not any("declared" in c for c in slow)


class _Stop(Exception):
    pass


def _stop(index: int, total: int, cell: Mapping[str, Any]) -> None:
    raise _Stop


@pytest.mark.parametrize(("memory_mb", "windows"), [(600.0, 3), (MEMORY_MB, 2)])
def test_changed_settings_start_the_table_over(
        memory_mb: float, windows: int, table_path: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    path = tmp_path / "toy.json"
    shutil.copy(table_path, path)
    spy = _Spy(monkeypatch)
    with pytest.raises(_Stop):  # stopped after the first cell, like a killed recording
        record_workload(toy_workload(memory_mb=memory_mb), out=path, windows=windows,
                        on_cell=_stop)
    first = next(iter(grid_cells(toy_workload())))
    assert spy.measured == [first]
    restarted = json.loads(path.read_text())
    assert restarted["memory_mb"] == memory_mb and restarted["windows"] == windows
    assert "finished_at" not in restarted
    [only] = restarted["cells"]
    assert only["config"] == first and only["status"] == "ok"
    assert len(only["repeats"]) == windows  # the recorder's windows reached the child


def test_a_resume_killed_again_keeps_the_cells_it_had_not_reached(
        table: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table written after each cell also holds the kept cells still ahead: killing a
    resume never loses what an earlier recording measured."""
    monkeypatch.chdir(REPO_ROOT)
    cells = table["cells"]
    first, last = cells[0], cells[-1]
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({**table, "cells": cells[1:-1]}))
    spy = _Spy(monkeypatch)
    with pytest.raises(_Stop):  # killed right after re-measuring the first missing cell
        record_workload(toy_workload(), out=path, windows=table["windows"], on_cell=_stop)
    assert spy.measured == [first["config"]]
    kept = json.loads(path.read_text())["cells"]
    assert len(kept) == len(cells) - 1  # only the never-measured last cell is missing
    assert last["config"] not in [c["config"] for c in kept]
    assert [c for c in kept[1:]] == cells[1:-1]


# ----------------------------------------------------------------------------- command line
def test_cli_record_rejects_an_unknown_workload_naming_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "record", "nope", "--table",
                                      str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    for word in ("nope", "effnet", "minilm", "whisper", "WORKLOAD"):
        assert word in result.output
    assert not (tmp_path / "nope.json").exists()
