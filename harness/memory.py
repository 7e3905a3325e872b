"""Process memory on CPUs: hand freed heap memory back to the OS (glibc keeps it for reuse otherwise).

`release_memory()` once, after a big object is dropped (e.g. the frozen model that generated RaDis
rationales, before training starts); `returned_memory(True)` around a phase whose mix of tensor sizes
fragments the heap (a training loop), so that peak RSS tracks what is really allocated.
"""

from __future__ import annotations

import contextlib
import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise), so that a
    model dropped before training does not count towards the training peak RSS."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


@contextlib.contextmanager
def returned_memory(enabled: bool):
    """glibc keeps freed heap memory for reuse, and the training loop's mix of tensor sizes fragments it:
    peak RSS ends up hundreds of MB above what is allocated. Inside this context tensors of 64 KiB and more
    are mmap-ed (unmapped on free) and the heap is trimmed on every free; afterwards the thresholds are set
    to what glibc's dynamic tuning converges to (32 MiB / 64 MiB), so generation afterwards stays fast."""
    libc = None
    if enabled:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
            libc.mallopt(M_TRIM_THRESHOLD, 0)
        except (OSError, AttributeError):  # not glibc
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)
            libc.mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024)
