"""A tuner to be killed: ``python tiny_tuner.py command|command-slow|isolated|server [PID_FILE]``.

``command`` / ``isolated``: ``deploytune.optimize`` over many short trials of
``tests/evaluators/lifetime_targets.py`` (each leaves a worker and a daemon behind, some of
which ignore SIGTERM), run by the command or the isolated evaluator; ``command-slow``: the
same with trials of 2-3 s. ``server``: evaluates the server evaluator over
``server_with_workers.py`` in a loop (its workers' pids go to PID_FILE). Run from the
repository root.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import deploytune  # noqa: E402
from deploytune.evaluators.command import CommandEvaluator  # noqa: E402
from deploytune.evaluators.isolated import IsolatedEvaluator  # noqa: E402

mode = sys.argv[1]
if mode == "server":
    from deploytune.evaluators.base import Monitor
    from deploytune.evaluators.server import ServerEvaluator, ServerSettings
    from deploytune.loadgen import LoadSpec

    here = Path(__file__).resolve().parent
    argv = (sys.executable, str(here / "server_with_workers.py"), sys.argv[2], "{port}",
            str(ROOT / "tests" / "fake_openai_server.py"), "--port", "{port}",
            "--token-delay-ms", "200")
    ev = ServerEvaluator(ServerSettings(argv, startup_timeout_s=20.0),
                         LoadSpec(requests=50, concurrency=2, max_tokens=50))
    while True:
        ev.evaluate({}, Monitor())

low, high = (2.0, 3.0) if mode == "command-slow" else (0.02, 0.3)
space = {"seconds": {"type": "float", "low": low, "high": high},
         "stubborn": {"type": "int", "low": 0, "high": 2}}  # 1: the daemon ignores SIGTERM
if mode.startswith("command"):
    evaluator: object = CommandEvaluator(
        [sys.executable, str(ROOT / "tests" / "evaluators" / "lifetime_targets.py"), "-",
         "{seconds}", "{stubborn}"])
else:
    evaluator = IsolatedEvaluator("tests.evaluators.lifetime_targets:tree", sys_path=[ROOT])
deploytune.optimize(evaluator, space, objective="x", budget=100000,  # type: ignore[arg-type]
                    sampler="random")
