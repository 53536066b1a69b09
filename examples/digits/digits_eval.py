"""Serve a real scikit-learn classifier on the digits dataset (ships inside scikit-learn).

The evaluation function trains the configured model, then measures what a deployment cares
about: accuracy on held-out data, per-request p95 latency at the configured batch size, peak
memory and throughput. It streams p95 after every measurement pass, so deploytune can stop a
hopeless configuration early.
"""

from __future__ import annotations

import resource
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def _build(config: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    kind = config["model"]
    if kind == "logreg":
        return LogisticRegression(C=config["C"], max_iter=300)
    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=config["n_estimators"],
                                      max_depth=config["max_depth"], n_jobs=config["threads"],
                                      random_state=0)
    if kind == "knn":
        return KNeighborsClassifier(n_neighbors=config["n_neighbors"], n_jobs=config["threads"])
    return MLPClassifier(hidden_layer_sizes=(config["hidden"],), max_iter=60, random_state=0)


def evaluate(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Train, then measure accuracy, p95 latency per batch, memory and throughput."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.3,
                                                        random_state=0)
    model = _build(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence warnings
        model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    batch = config["batch_size"]
    rng = np.random.default_rng(0)
    latencies: list[float] = []
    for step in range(3):
        for _ in range(20):
            idx = rng.integers(0, len(x_test), size=batch)
            t0 = time.perf_counter()
            model.predict(x_test[idx])
            latencies.append((time.perf_counter() - t0) * 1000)
        report({"p95_ms": float(np.percentile(latencies, 95)), "progress": (step + 1) / 3},
               step=step)
    p95 = float(np.percentile(latencies, 95))
    return {
        "accuracy": accuracy,
        "p95_ms": p95,
        "throughput": batch / (float(np.median(latencies)) / 1000),
        "memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
