"""Dies of SIGSEGV: reads address 0."""

import ctypes
import resource

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
ctypes.string_at(0)
