"""What the CPU offers the step loops: model name, cache sizes, transparent huge pages.

Shared by ``vocoder doctor`` and the benchmarks, which record it with every result.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_caches() -> dict[str, str]:
    """Cache sizes of CPU 0 by level and type, e.g. {"L1d": "48K", "L2": "2048K"}; empty
    where the OS does not say (not Linux)."""
    out = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (d / "level").read_text().strip()
            kind = (d / "type").read_text().strip()
            size = (d / "size").read_text().strip()
        except OSError:
            continue
        out[f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")] = size
    return out


def huge_pages() -> str | None:
    """Linux's transparent huge page mode ("always", "madvise" or "never"), or None where
    there is none. The native backend asks for them (madvise) for its weights."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return None
