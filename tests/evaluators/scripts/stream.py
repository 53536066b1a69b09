"""Writes its pid to argv[1], then reports a growing p95 every 0.1 s for 10 s; the report of
step 1 ends the rung "short"."""

import json
import os
import sys
import time

with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
for step in range(100):
    report = {"p95_ms": 50.0 + 30.0 * step, "step": step}
    if step == 1:
        report["rung"] = "short"
    print("DEPLOYTUNE_REPORT " + json.dumps(report), flush=True)
    time.sleep(0.1)
print(json.dumps({"p95_ms": 1.0}))
