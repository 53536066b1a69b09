"""LoadSpec: defaults, validation messages naming the field, to_dict / from_dict."""

from __future__ import annotations

from typing import Any

import pytest

from deploytune.loadgen import LoadSpec, LoadSpecError


def test_defaults_closed_loop_of_16_requests_at_concurrency_1() -> None:
    spec = LoadSpec()
    assert (spec.requests, spec.duration_s, spec.concurrency, spec.rate) == (16, None, 1, None)
    assert not spec.open_loop
    assert spec.slos == {}


def test_duration_mode_has_no_request_count() -> None:
    spec = LoadSpec(duration_s=2.5)
    assert spec.requests is None and spec.duration_s == 2.5


def test_open_loop_is_uncapped_unless_concurrency_is_given() -> None:
    assert LoadSpec(rate=4.0).concurrency is None
    assert LoadSpec(rate=4.0, concurrency=3).concurrency == 3
    assert LoadSpec(rate=4.0).open_loop


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"requests": 5, "duration_s": 1.0}, "requests", "not both"),
    ({"requests": 0}, "requests", ">= 1"),
    ({"requests": True}, "requests", "integer"),
    ({"duration_s": -1.0}, "duration_s", "> 0"),
    ({"concurrency": 0}, "concurrency", ">= 1"),
    ({"rate": 0.0}, "rate", "> 0"),
    ({"rate": float("inf")}, "rate", "> 0"),
    ({"prompts": "prompts.csv"}, "prompts", ".jsonl"),
    ({"prompts": ""}, "prompts", "builtin"),
    ({"max_tokens": 0}, "max_tokens", ">= 1"),
    ({"endpoint": "embeddings"}, "endpoint", "'chat' or 'completions'"),
    ({"model": ""}, "model", "model name"),
    ({"seed": 1.5}, "seed", "integer"),
    ({"slo_ttft_ms": 0}, "slo_ttft_ms", "None for no SLO"),
    ({"slo_tpot_ms": -3}, "slo_tpot_ms", "> 0"),
    ({"slo_e2e_ms": "fast"}, "slo_e2e_ms", "> 0"),
    ({"request_timeout_s": 0}, "request_timeout_s", "> 0"),
    ({"warmup_requests": -1}, "warmup_requests", ">= 0"),
    ({"report_every": 0}, "report_every", ">= 1"),
    ({"temperature": -0.5}, "temperature", ">= 0"),
    ({"ignore_eos": "yes"}, "ignore_eos", "true or false"),
])
def test_invalid_fields_are_named_with_the_fix(kwargs: dict[str, Any], field: str,
                                               words: str) -> None:
    with pytest.raises(LoadSpecError) as info:
        LoadSpec(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert words in str(info.value)


def test_to_dict_from_dict_round_trip() -> None:
    spec = LoadSpec(duration_s=3.0, rate=2.5, concurrency=4, prompts="p.jsonl", max_tokens=8,
                    endpoint="completions", model="m", seed=7, slo_ttft_ms=200.0,
                    slo_tpot_ms=50.0, slo_e2e_ms=2000.0, warmup_requests=2, ignore_eos=True)
    assert LoadSpec.from_dict(spec.to_dict()) == spec
    assert LoadSpec.from_dict(LoadSpec().to_dict()) == LoadSpec()
    assert spec.slos == {"slo_ttft_ms": 200.0, "slo_tpot_ms": 50.0, "slo_e2e_ms": 2000.0}


def test_from_dict_names_an_unknown_key() -> None:
    with pytest.raises(LoadSpecError, match="unknown load option 'concurency'") as info:
        LoadSpec.from_dict({"concurency": 4})
    assert info.value.field == "concurency"
    with pytest.raises(LoadSpecError, match="mapping"):
        LoadSpec.from_dict([("requests", 4)])  # type: ignore[arg-type]


def test_spec_is_frozen() -> None:
    spec = LoadSpec()
    with pytest.raises(AttributeError):
        spec.requests = 3  # type: ignore[misc]
