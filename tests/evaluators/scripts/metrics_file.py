"""Writes metrics to the file argv[1] (unless argv[2] == "skip") and prints other things."""

import json
import sys

print("not the metrics")
if sys.argv[2:] != ["skip"]:
    with open(sys.argv[1], "w") as f:
        json.dump({"from_file": 1.5}, f)
