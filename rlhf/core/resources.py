"""Peak resident memory of this process per stage: the kernel's high-water mark (VmHWM), which Linux lets a
process reset (`5` into /proc/self/clear_refs), so stages that run one after another in one process each get
their own peak. Elsewhere the peak since the process started (getrusage) is all there is."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Start a new peak at the current RSS; False where the platform cannot."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """The peak RSS since the last reset_peak_rss (or since the process started)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024   # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024   # bytes on macOS, kB on Linux
