"""Seeded prompt order and Poisson arrivals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deploytune.loadgen import poisson_arrivals, poisson_offsets, prompt_order


def test_poisson_offsets_are_deterministic_given_the_seed() -> None:
    a = poisson_offsets(10.0, 50, seed=3)
    assert a == poisson_offsets(10.0, 50, seed=3)
    assert a != poisson_offsets(10.0, 50, seed=4)
    assert a[0] == 0.0
    assert all(x < y for x, y in itertools.pairwise(a))


def test_poisson_offsets_have_the_requested_rate() -> None:
    offsets = poisson_offsets(20.0, 4001, seed=0)
    gaps = np.diff(offsets)
    assert gaps.mean() == pytest.approx(1 / 20.0, rel=0.1)
    assert gaps.std() == pytest.approx(1 / 20.0, rel=0.15)  # exponential: std == mean


def test_poisson_arrivals_reject_a_bad_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        next(poisson_arrivals(0.0, 0))


def test_prompt_order_is_a_seeded_permutation() -> None:
    order = prompt_order(32, seed=1)
    assert sorted(order) == list(range(32))
    assert order == prompt_order(32, seed=1)
    assert order != prompt_order(32, seed=2)
