"""How many CPU cores this process may use."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS reports one.

    ``os.cpu_count()`` counts the machine's cores even when the process is restricted to
    fewer (``taskset``, a Slurm allocation, a container's cpuset); sizing thread pools
    and worker counts by it then oversubscribes the cores that are really there.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)
