"""Several workers on one study: the study lock, heartbeats, device leases, local workers.

Any number of tuner processes, on one machine or many, may work on one study in a shared
storage (PostgreSQL, or an SQLite / journal file on one machine). They coordinate through the
storage alone, without a coordinator process:

- :mod:`~deploytune.parallel.lock`: a lock per study (a PostgreSQL advisory lock, or a file
  lock beside an SQLite or journal file) held while a worker decides whether the budget allows
  another trial, asks the sampler and writes the proposed configuration. Every worker thus
  sees every proposed configuration before it proposes its own, and a budget is never
  overrun.
- :mod:`~deploytune.parallel.heartbeat`: a running trial's worker beats on it; a trial whose
  beat stops, on any host, is recorded as interrupted and queued again, once.
- :mod:`~deploytune.parallel.leases`: the devices of this machine (GPUs or CPU cores) and how
  many a trial needs; each trial leases that many and its processes see only them.
- :mod:`~deploytune.parallel.launch`: ``deploytune tune --workers N`` starts N worker
  processes on this machine.
"""
