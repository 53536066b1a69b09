"""A load generator for OpenAI-compatible LLM servers (vLLM, llama.cpp, TGI, SGLang, ...).

:func:`run_load` (or :func:`run_load_sync`) sends the streamed requests a :class:`LoadSpec`
describes (a closed loop of ``concurrency`` requests in flight, or Poisson arrivals at ``rate``)
and returns a :class:`LoadResult` whose :meth:`~LoadResult.metrics` are TTFT / TPOT / ITL / E2E
percentiles, throughput, error rate and SLO goodput. Interim metrics stream to ``on_interim``,
which may raise (the tuner's ``AbortTrial``) to stop a hopeless run at once.

Example::

    from deploytune.loadgen import LoadSpec, run_load_sync

    result = run_load_sync("http://127.0.0.1:8000", LoadSpec(requests=64, concurrency=8))
    print(result.metrics()["ttft_p95_ms"])
"""

from deploytune.loadgen.client import ServerUnreachable
from deploytune.loadgen.prompts import builtin_prompts, load_prompts, read_prompt_file
from deploytune.loadgen.records import ERROR_KINDS, LoadResult, RequestRecord
from deploytune.loadgen.runner import InterimCallback, run_load, run_load_sync
from deploytune.loadgen.schedule import poisson_arrivals, poisson_offsets, prompt_order
from deploytune.loadgen.spec import LoadSpec, LoadSpecError
from deploytune.loadgen.stats import METRIC_NAMES, compute_metrics, meets_slos

__all__ = [
    "ERROR_KINDS",
    "METRIC_NAMES",
    "InterimCallback",
    "LoadResult",
    "LoadSpec",
    "LoadSpecError",
    "RequestRecord",
    "ServerUnreachable",
    "builtin_prompts",
    "compute_metrics",
    "load_prompts",
    "meets_slos",
    "poisson_arrivals",
    "poisson_offsets",
    "prompt_order",
    "read_prompt_file",
    "run_load",
    "run_load_sync",
]
