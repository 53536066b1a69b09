"""A real CPU benchmark that really crashes in part of its space (deploytune example).

Multiplies a batch of n x n matrices with NumPy and measures per-batch latency. Like a real
inference runtime, some configurations fail:

* ``--dtype float16 --algo einsum``: rejected as unsupported (exit code 2, "unsupported");
* a batch whose buffers exceed the memory cap: ``MemoryError`` (out of memory);
* ``--algo unsafe --threads 4``: a native-library bug, a real segmentation fault;
* ``--layout strided`` with ``n >= 1024``: a deadlock, the process hangs (time limit);
* ``--algo blocked`` is a pure-Python blocked product: correct but very slow for large n.

It streams ``DEPLOYTUNE_REPORT {"p95_ms": ...}`` lines (an estimate from the first matrix, then
the p95 after every measurement pass) so the tuner can abort hopeless configurations early, and
prints the final metrics as one JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
import time

import numpy as np


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--dtype", choices=["float16", "float32", "float64"], required=True)
    p.add_argument("--algo", choices=["numpy", "einsum", "blocked", "unsafe"], required=True)
    p.add_argument("--layout", choices=["contiguous", "strided"], default="contiguous")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--passes", type=int, default=5)
    return p.parse_args()


def blocked_matmul(a: np.ndarray, b: np.ndarray, block: int = 32) -> np.ndarray:
    """A slow blocked product (Python loops over tiles)."""
    n = a.shape[0]
    out = np.zeros_like(a)
    for i in range(0, n, block):
        for j in range(0, n, block):
            for k in range(0, n, block):
                out[i:i + block, j:j + block] += a[i:i + block, k:k + block] @ \
                    b[k:k + block, j:j + block]
    return out


def main() -> int:
    args = parse()
    if args.dtype == "float16" and args.algo == "einsum":
        print("error: einsum kernel unsupported for float16", file=sys.stderr)
        return 2
    if args.algo == "unsafe" and args.threads >= 4:
        ctypes.string_at(0)  # the "native library" dereferences NULL: SIGSEGV
    if args.layout == "strided" and args.n >= 1024:
        while True:  # a deadlock in the "runtime"
            time.sleep(1)
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    a = rng.standard_normal((args.batch, args.n, args.n)).astype(dtype)  # may raise MemoryError
    b = rng.standard_normal((args.batch, args.n, args.n)).astype(dtype)
    if args.layout == "strided":
        a, b = a.transpose(0, 2, 1), b.transpose(0, 2, 1)
    if args.algo in ("numpy", "unsafe"):
        _ = a[0] @ b[0]  # untimed warm-up: BLAS thread-pool start-up is not serving latency
    latencies: list[float] = []
    for step in range(args.passes):
        t0 = time.perf_counter()
        for i in range(args.batch):
            if args.algo in ("numpy", "unsafe"):
                c = a[i] @ b[i]
            elif args.algo == "einsum":
                c = np.einsum("ij,jk->ik", a[i], b[i])
            else:
                c = blocked_matmul(a[i], b[i])
            if step == 0 and i == 0 and args.batch > 1:
                # warm-up estimate of the batch latency from its first matrix, as a runtime's
                # first measurements would show: lets the tuner stop a hopeless run at once
                first_ms = (time.perf_counter() - t0) * 1000
                print("DEPLOYTUNE_REPORT " + json.dumps({
                    "p95_ms": first_ms * args.batch,
                    "progress": 1 / (args.passes * args.batch)}), flush=True)
        latencies.append((time.perf_counter() - t0) * 1000)
        p95 = float(np.percentile(latencies, 95))
        print("DEPLOYTUNE_REPORT " + json.dumps({"p95_ms": p95, "progress": (step + 1)
                                                 / args.passes}), flush=True)
    assert c.shape == (args.n, args.n)
    p95 = float(np.percentile(latencies, 95))
    gflops = 2 * args.batch * args.n ** 3 / (np.median(latencies) / 1000) / 1e9
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"gflops": gflops, "p95_ms": p95, "memory_mb": rss_mb,
                      "threads_env": os.environ.get("OMP_NUM_THREADS")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
