"""Starts worker processes as an inference server does, then becomes the fake OpenAI server.

``python server_with_workers.py PID_FILE PORT FAKE_SERVER ARGS...``: forks a sleeping worker
(as vLLM's engine core: a plain child) and a daemon (double fork + ``setsid``) that, once the
server has been listening on PORT, grabs it as soon as it is free again and holds it; writes
both pids to PID_FILE, then execs ``python FAKE_SERVER ARGS...``. A daemon that outlived its
trial would hold a fixed port and make the next trial fail to start.
"""

import os
import socket
import sys
import time

pid_file, port, fake, *rest = sys.argv[1:]
worker = os.fork()
if worker == 0:
    time.sleep(120)
    os._exit(0)
r, w = os.pipe()
middle = os.fork()
if middle == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, f"{os.getpid()}\n".encode())
        server_seen = False  # grab the port only once the server has had it
        give_up = time.monotonic() + 120  # a survivor ends by itself, eventually
        while time.monotonic() < give_up:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", int(port)))
            except OSError:
                server_seen = True
                s.close()
                time.sleep(0.02)
                continue
            if server_seen:
                s.listen()
                time.sleep(max(0.0, give_up - time.monotonic()))
            s.close()
            time.sleep(0.02)
        os._exit(0)
    os._exit(0)
os.close(w)
os.waitpid(middle, 0)
daemon = int(os.read(r, 64).decode())
with open(pid_file, "w") as f:
    f.write(f"{worker} {daemon}")
os.execv(sys.executable, [sys.executable, fake, *rest])
