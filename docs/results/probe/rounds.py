"""Rounds 2 and 3: the 1-thread cases only, RUNS more fresh-process runs each.

Usage: python docs/results/probe/rounds.py RUNS OUT_DIR
  round 2: python docs/results/probe/rounds.py 10 /tmp/probe-run/round2
  round 3: python docs/results/probe/rounds.py 15 /tmp/probe-run/round3
"""
import sys

from deploybench.probe import default_cases, run_probe

runs, out_dir = int(sys.argv[1]), sys.argv[2]
cases = [c for c in default_cases() if c.config["threads"] == 1]
command = ("python -c 'from deploybench.probe import default_cases, run_probe; "
           "run_probe([c for c in default_cases() if c.config[\"threads\"] == 1], "
           f"{runs}, out_dir=OUT)'")
run_probe(cases, runs, out_dir=out_dir, command=command,
          on_run=lambda r, d, t: print(f"[{d}/{t}] {r.case} {r.p95_ms} {r.error} "
                                       f"{r.foreign_cores:.2f}", flush=True))
