"""The ``llm-sim`` instances: model architectures, GPUs, model x node instances and the search
space of vLLM knobs they share (see :mod:`deploybench.llm_sim`).

Architecture numbers are those of the published Llama-3.1 configurations, GPU numbers those of
the data sheets.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploytune.space import Categorical, Space

__all__ = [
    "A10",
    "H100",
    "INSTANCES",
    "LLAMA_8B",
    "LLAMA_70B",
    "QUANTIZATIONS",
    "GPUSpec",
    "LLMInstance",
    "ModelArch",
    "llm_space",
    "resolve_instance",
]

# Knob grids (shared by every instance except the TP sizes).
_UTILIZATION = tuple(round(0.80 + 0.02 * i, 2) for i in range(10))
_MODEL_LEN = (4096, 8192, 16384, 32768, 65536, 131072)
_BATCHED = tuple(2**k for k in range(9, 17))  # 512 .. 65536
_SEQS = tuple(2**k for k in range(4, 11))  # 16 .. 1024
QUANTIZATIONS = ("none", "fp8", "awq")
"""Choices of ``quantization`` (index = the code the performance model uses)."""
_KV_DTYPE = ("auto", "fp8")
_BOOL = (False, True)


@dataclass(frozen=True)
class ModelArch:
    """A dense decoder-only transformer (Llama family).

    Attributes:
        name: Human-readable name.
        layers: Number of layers L.
        hidden: Hidden size h.
        n_q: Attention heads.
        n_kv: KV heads (grouped-query attention).
        head_dim: Head dimension d.
        intermediate: MLP intermediate size I.
        params: Parameter count P (embeddings and LM head included).
        vocab: Vocabulary size.
    """

    name: str
    layers: int
    hidden: int
    n_q: int
    n_kv: int
    head_dim: int
    intermediate: int
    params: float
    vocab: int = 128256

    @property
    def embedding_params(self) -> float:
        """Parameters of the (untied) embedding and LM head, kept in bf16 by quantisation."""
        return 2.0 * self.vocab * self.hidden


@dataclass(frozen=True)
class GPUSpec:
    """One GPU model.

    Attributes:
        name: Human-readable name.
        memory_gib: Total memory as reported by ``torch.cuda.mem_get_info``.
        bandwidth: HBM/GDDR bandwidth, bytes/s.
        flops_bf16: Dense bf16 tensor FLOP/s.
        flops_fp8: Dense fp8 tensor FLOP/s (0 without fp8 tensor cores).
        sm: Compute capability times ten (86, 89, 90).
        p2p_bandwidth: Per-GPU all-reduce link bandwidth, bytes/s.
        p2p_latency_s: Latency of one all-reduce.
        load_gibps: Checkpoint loading speed of the node, GiB/s (all ranks together).
    """

    name: str
    memory_gib: float
    bandwidth: float
    flops_bf16: float
    flops_fp8: float
    sm: int
    p2p_bandwidth: float
    p2p_latency_s: float
    load_gibps: float


@dataclass(frozen=True)
class LLMInstance:
    """A hidden model x node instance with its workload and SLOs.

    Attributes:
        name: Problem name (``llm-sim-...``).
        model: The served model.
        gpu: The GPU model.
        n_gpus: GPUs in the node.
        tp_choices: Offered ``tensor_parallel_size`` values (some invalid on purpose).
        objective: Metric maximised by the problem.
        slo_ttft_ms: p95 TTFT limit (a constraint, and the goodput SLO).
        slo_tpot_ms: p95 TPOT limit (a constraint, and the goodput SLO).
        prompt_tokens: Prompt length of every request.
        output_tokens: Output length of every request.
        shared_prefix: Tokens of the prompt shared by every request (a system prompt).
    """

    name: str
    model: ModelArch
    gpu: GPUSpec
    n_gpus: int
    tp_choices: tuple[int, ...]
    objective: str
    slo_ttft_ms: float
    slo_tpot_ms: float
    prompt_tokens: int = 1024
    output_tokens: int = 256
    shared_prefix: int = 256

    @property
    def constraints(self) -> list[str]:
        """The problem's constraint strings."""
        return [f"ttft_p95_ms <= {self.slo_ttft_ms:g}", f"tpot_p95_ms <= {self.slo_tpot_ms:g}"]


LLAMA_8B = ModelArch("Llama-3.1-8B", 32, 4096, 32, 8, 128, 14336, 8.03e9)
LLAMA_70B = ModelArch("Llama-3.1-70B", 80, 8192, 64, 8, 128, 28672, 70.6e9)
A10 = GPUSpec("A10-24GB", 22.49, 600e9, 125e12, 0.0, 86, 20e9, 25e-6, 1.2)
H100 = GPUSpec("H100-SXM-80GB", 79.19, 3.35e12, 989e12, 1979e12, 90, 450e9, 10e-6, 1.5)
"""The architectures (published Llama-3.1 configurations) and GPUs (data sheets; A10 without fp8
tensor cores, PCIe all-reduce; H100 SXM with NVLink)."""

INSTANCES: dict[str, LLMInstance] = {
    "llm-sim-8b-24gb": LLMInstance("llm-sim-8b-24gb", LLAMA_8B, A10, 4, (1, 2, 4),
                                   "output_tokens_per_s", 500.0, 80.0),
    "llm-sim-70b-2xh100": LLMInstance("llm-sim-70b-2xh100", LLAMA_70B, H100, 2, (1, 2, 4),
                                      "output_tokens_per_s", 1000.0, 100.0,
                                      prompt_tokens=2048),
    "llm-sim-70b-4xh100": LLMInstance("llm-sim-70b-4xh100", LLAMA_70B, H100, 4,
                                      (1, 2, 3, 4), "goodput", 500.0, 35.0),
    "llm-sim-70b-8xh100": LLMInstance("llm-sim-70b-8xh100", LLAMA_70B, H100, 8,
                                      (1, 2, 4, 8), "output_tokens_per_s_per_gpu",
                                      300.0, 60.0, prompt_tokens=3072, output_tokens=512),
}
"""The instances, by problem name."""


def resolve_instance(instance: LLMInstance | str) -> LLMInstance:
    """The instance itself, or the one named ``instance`` (a key of :data:`INSTANCES`)."""
    return INSTANCES[instance] if isinstance(instance, str) else instance


def llm_space(instance: LLMInstance | str) -> Space:
    """The search space of an instance: ten vLLM knobs, all categorical (enumerable).

    ``tensor_parallel_size`` offers the instance's :attr:`LLMInstance.tp_choices` (3 always, so
    the heads-divisibility check is reachable); the other knobs are shared:
    ``gpu_memory_utilization`` 0.80..0.98 by 0.02, ``max_model_len`` 4k..128k,
    ``max_num_batched_tokens`` 512..65536 and ``max_num_seqs`` 16..1024 (powers of two),
    ``enable_chunked_prefill``, ``enable_prefix_caching``, ``kv_cache_dtype`` (auto, fp8),
    ``quantization`` (none = bf16, fp8, awq) and ``enforce_eager``. ``max_model_len``,
    ``max_num_batched_tokens`` and ``max_num_seqs`` are declared ``memory: increasing`` (KV
    cache per request, the activation peak, CUDA graphs and sampler buffers only grow with
    them); ``gpu_memory_utilization`` is not (too high fails the startup snapshot, too low
    leaves no KV cache).
    """
    inst = resolve_instance(instance)
    return Space([
        Categorical("tensor_parallel_size", choices=inst.tp_choices),
        Categorical("gpu_memory_utilization", choices=_UTILIZATION),
        Categorical("max_model_len", choices=_MODEL_LEN, memory="increasing"),
        Categorical("max_num_batched_tokens", choices=_BATCHED, memory="increasing"),
        Categorical("max_num_seqs", choices=_SEQS, memory="increasing"),
        Categorical("enable_chunked_prefill", choices=_BOOL),
        Categorical("enable_prefix_caching", choices=_BOOL),
        Categorical("kv_cache_dtype", choices=_KV_DTYPE),
        Categorical("quantization", choices=QUANTIZATIONS),
        Categorical("enforce_eager", choices=_BOOL),
    ])
