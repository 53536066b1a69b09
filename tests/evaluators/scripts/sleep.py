"""Sleeps for argv[1] seconds, then prints metrics."""

import json
import sys
import time

print("going to sleep", flush=True)
time.sleep(float(sys.argv[1]))
print(json.dumps({"slept": float(sys.argv[1])}))
