"""Prints argv[1] MB of 1000-byte lines on stdout, then (unless argv[2] == "nojson") metrics."""

import json
import sys

line = ("y" * 999 + "\n").encode()
block = line * 1000  # 1 MB
out = sys.stdout.buffer
for _ in range(int(sys.argv[1])):
    out.write(block)
if sys.argv[2:] != ["nojson"]:
    out.write((json.dumps({"x": 1}) + "\n").encode())
out.flush()
