"""Does what a C++ program does on an uncaught std::bad_alloc: says so, then abort()s."""

import os
import resource
import sys

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
sys.stderr.write("terminate called after throwing an instance of 'std::bad_alloc'\n"
                 "  what():  std::bad_alloc\n")
sys.stderr.flush()
os.abort()
