"""Complains on stderr and exits with code argv[1]."""

import sys

print("some output", flush=True)
print("fatal: the engine refused the configuration", file=sys.stderr)
sys.exit(int(sys.argv[1]))
