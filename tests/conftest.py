"""Shared fixtures."""

from __future__ import annotations

import warnings

import optuna
import pytest

import deploytune
from tests.toy import FORBIDDEN, SPACE_DICT

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@pytest.fixture
def space() -> deploytune.Space:
    """The conformance space (conditional, log-int, float, one forbidden combination)."""
    return deploytune.Space.from_dict(SPACE_DICT, forbidden=FORBIDDEN)
