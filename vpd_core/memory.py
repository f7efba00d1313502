"""Process memory: peak resident memory per stage, and glibc tuned to give freed tensors back."""

from __future__ import annotations

from pathlib import Path


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmHWM, VmRSS) in MB; None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory since the last reset (Linux VmHWM), in MB."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now (Linux VmRSS), in MB; nan where /proc is missing."""
    rss = _status_mb("VmRSS")
    return float("nan") if rss is None else rss


def reset_peak_rss() -> None:
    """Start a new peak (writing 5 to clear_refs resets VmHWM); without it the peak is the process's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def return_freed_memory() -> None:
    """glibc keeps freed blocks below its mmap threshold in the heap, and the threshold grows with
    every large free, so a training process's resident memory climbs to a fragmented high-water
    mark. A fixed 1 MB threshold maps every tensor of 1 MB or more on its own and gives it back
    to the system when it is freed (docs/benchmarks.md: memory)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass
