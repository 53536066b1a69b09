"""One script, many ways to end: the crash zoo driven by ``deploytune tune`` in the CLI tests.

Usage: zoo.py MODE WORKDIR. Prints metrics ``{"score": ..., "p95_ms": ...}`` as JSON on the
last line when it succeeds.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time


def main() -> int:
    mode, workdir = sys.argv[1], sys.argv[2]
    if mode == "ok":
        print(json.dumps({"score": 1.0, "p95_ms": 5.0}))
    elif mode == "infeasible":
        print(json.dumps({"score": 2.0, "p95_ms": 50.0}))
    elif mode == "segfault":
        ctypes.string_at(0)
    elif mode == "hog":
        hog = []
        while True:
            hog.append(bytearray(50 * 1024 * 1024))
    elif mode == "sleep":
        time.sleep(120)
    elif mode == "exit3":
        print("giving up", file=sys.stderr)
        return 3
    elif mode == "garbage":
        print("<html>this is not json</html>")
    elif mode == "flood":
        line = "x" * 1023 + "\n"
        chunk = line * 1024  # 1 MiB
        for _ in range(100):
            sys.stdout.write(chunk)
        print(json.dumps({"score": 0.5, "p95_ms": 6.0}))
    elif mode == "fork":
        pid = os.fork()
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        with open(os.path.join(workdir, "grandchild.pid"), "w") as f:
            f.write(str(pid))
        print(json.dumps({"score": 0.7, "p95_ms": 7.0}))
    elif mode == "transient":
        marker = os.path.join(workdir, "transient.marker")
        if not os.path.exists(marker):
            open(marker, "w").close()
            print("bind: Address already in use", file=sys.stderr)
            return 1
        print(json.dumps({"score": 0.9, "p95_ms": 8.0}))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
