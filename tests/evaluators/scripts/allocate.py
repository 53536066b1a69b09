"""Allocates 50 MB blocks until the memory cap stops it (MemoryError: a traceback, exit 1)."""

import json

blocks = []
for _ in range(40):  # 2 GB at most, should the cap not apply
    blocks.append(bytearray(50 * 1024 * 1024))
print(json.dumps({"allocated_mb": 50 * len(blocks)}))
