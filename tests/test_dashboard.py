"""The study written by ``deploytune`` opens in optuna-dashboard (its real WSGI app)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna_dashboard

import deploytune


def _get(app: Any, path: str) -> tuple[str, Any]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET",
                               "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)

    body = b"".join(app(environ, start_response))
    return status[0], json.loads(body) if body.startswith((b"{", b"[")) else body


def test_study_opens_in_optuna_dashboard(tmp_path: Path) -> None:
    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        if config["batch_size"] > 32:
            raise MemoryError("out of memory")
        return {"accuracy": config["batch_size"] / 64, "p95_ms": config["batch_size"] * 1.0}

    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"batch_size": {"type": "int", "low": 1, "high": 64, "log": True}}
    deploytune.optimize(evaluate, space, objective="accuracy", constraints=["p95_ms <= 20"],
                        budget=8, sampler="random", seed=0, storage=url, study_name="dash")
    app = optuna_dashboard.wsgi(url)
    status, studies = _get(app, "/api/studies")
    assert status.startswith("200"), studies
    [summary] = studies["study_summaries"]
    assert summary["study_name"] == "dash"
    status, detail = _get(app, f"/api/studies/{summary['study_id']}")
    assert status.startswith("200"), detail
    assert len(detail["trials"]) == 8
    states = {t["state"] for t in detail["trials"]}
    assert "Complete" in states and "Fail" in states
