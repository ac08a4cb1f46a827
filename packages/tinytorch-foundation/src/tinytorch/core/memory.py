"""Keep freed memory for the next step: glibc ``malloc`` settings for training loops (given code).

A training step allocates and frees the same large temporaries every time:
activations, gradients, the im2col columns of a convolution. NumPy gets that
memory from the C library's ``malloc``. glibc's ``malloc`` serves a block
larger than its *mmap threshold* (128 KiB at start) with fresh pages from the
kernel and unmaps them when the block is freed, and it hands free memory at
the top of its heap back to the kernel once there is more than its *trim
threshold*. Either way the next step asks the kernel again, and touching a
fresh page costs a page fault: for a small CNN the faults cost more than the
arithmetic (a LeNet step on one core: ~20 ms with the defaults, ~9 ms with the
settings below). glibc raises the thresholds by itself as it sees blocks come
and go, but only after many steps, so every fresh process starts slow.

Importing ``tinytorch.core.tensor`` therefore sets both thresholds once, high
enough that a training step's blocks are kept and reused: the process keeps
up to a few hundred MiB of freed memory instead of returning it. Module 14
measures memory and Module 18 measures this effect (first steps versus steady
state). ``TINYTORCH_MALLOC=default`` in the environment keeps glibc's defaults;
other C libraries (macOS, Windows, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["keep_freed_memory", "allocator_settings"]

# mallopt() parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20  # blocks up to 256 MiB come from the heap, reusable after free
TRIM_THRESHOLD = 512 << 20  # keep up to 512 MiB of free heap instead of returning it

_settings: dict = {"tuned": False, "reason": "not attempted"}


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); True when they were set.

    Returns False, changing nothing, when ``TINYTORCH_MALLOC=default`` is set or the C
    library is not glibc.
    """
    if os.environ.get("TINYTORCH_MALLOC", "").strip().lower() == "default":
        _settings.update(tuned=False, reason="TINYTORCH_MALLOC=default")
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _settings.update(tuned=False, reason="the C library is not glibc")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _settings.update(tuned=False, reason="mallopt is not available")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(M_TRIM_THRESHOLD, int(trim_threshold))
    )
    _settings.update(
        tuned=ok,
        reason="set" if ok else "mallopt refused the values",
        mmap_threshold=int(mmap_threshold),
        trim_threshold=int(trim_threshold),
    )
    return ok


def allocator_settings() -> dict:
    """What :func:`keep_freed_memory` did in this process (``tuned``, ``reason``, the thresholds)."""
    return dict(_settings)
