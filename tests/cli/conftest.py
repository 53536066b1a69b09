"""Fixtures of the command tests: the load generator's fake servers (tests/loadgen)."""

from tests.loadgen.conftest import fake_server

__all__ = ["fake_server"]
