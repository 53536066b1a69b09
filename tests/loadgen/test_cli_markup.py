"""``deploytune load`` prints what a server sent (its model name, its error texts) as plain
text: a hostile server cannot make rich read it as markup (issue 16, item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadgen.server_process import start_fake_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_model_name_that_looks_like_markup_is_printed_as_it_is() -> None:
    server = start_fake_server("--model-id", "[/INST] [bold]evil[/bold] :smile:",
                               "--error-every", "2", mode="errors")
    try:
        proc = subprocess.run([sys.executable, "-m", "deploytune.cli", "load", server.url,
                               "--requests", "4", "--concurrency", "2", "--max-tokens", "4"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        server.stop()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "[/INST] [bold]evil[/bold] :smile:" in proc.stdout, proc.stdout
