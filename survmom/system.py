"""What this machine gives the process: usable CPU cores and memory (the OS's and a container's limits)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# Memory limits of a container: cgroup v2, then v1 ("max" or a huge number when there is none).
_CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit(cgroup_files: tuple[str, ...] = _CGROUP_MEMORY_FILES) -> int | None:
    """Bytes of memory this process may use: the machine's, or a smaller cgroup (container) limit; None if
    unknown."""
    limits = []
    with contextlib.suppress(AttributeError, ValueError, OSError):  # no sysconf, or no such name (Windows, macOS)
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for cgroup_file in cgroup_files:
        try:
            text = Path(cgroup_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None
