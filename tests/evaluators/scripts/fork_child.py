"""Forks a child that keeps running (its pid goes to the file argv[1]), prints metrics, exits."""

import json
import os
import sys
import time

pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
with open(sys.argv[1], "w") as f:
    f.write(str(pid))
print(json.dumps({"x": 1}), flush=True)
