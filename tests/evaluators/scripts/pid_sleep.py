"""Writes its pid to argv[1], then sleeps 30 s without a word (no pipe error can end it)."""

import os
import sys
import time

with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
time.sleep(30)
