"""Second round: the 1-thread cases only, 10 more fresh-process runs each."""
from deploytune.bench.probe import default_cases, run_probe

cases = [c for c in default_cases() if c.config["threads"] == 1]
command = ("python -c 'from deploytune.bench.probe import default_cases, run_probe; "
           "run_probe([c for c in default_cases() if c.config[\"threads\"] == 1], 10, "
           "out_dir=OUT)'")
run_probe(cases, 10, out_dir="/tmp/probe-run/round2", command=command,
          on_run=lambda r, d, t: print(f"[{d}/{t}] {r.case} {r.p95_ms} {r.error} "
                                       f"{r.foreign_cores:.2f}", flush=True))
