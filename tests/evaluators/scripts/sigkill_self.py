"""Dies of a SIGKILL nobody in deploytune sent (as if the kernel OOM killer struck)."""

import os
import signal

os.kill(os.getpid(), signal.SIGKILL)
