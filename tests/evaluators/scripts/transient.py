"""Fails once with "Address already in use" (marker file argv[1]), then succeeds."""

import json
import os
import sys

if not os.path.exists(sys.argv[1]):
    open(sys.argv[1], "w").close()
    print("OSError: [Errno 98] Address already in use", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"x": 1}))
