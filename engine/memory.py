"""Host memory settings applied at import.

A training step allocates the same large arrays every call (activations saved for backward,
gradients, kernel outputs). glibc serves blocks above its mmap threshold with fresh mmaps and
returns freed heap tops to the OS, so each call page-faults its arrays in again: measured here, the
first convolution's forward of LeNet took 752 page faults per call (1.54 ms instead of 0.50 ms).
Raising the mmap threshold to its maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB keeps
that memory in the process for reuse, as the caching allocators of other frameworks do.
Set ENGINE_MALLOC_TUNE=0 to keep glibc's defaults.
"""
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30


def tune_malloc():
    """Returns True when the thresholds were set (glibc on Linux), False otherwise."""
    if os.environ.get('ENGINE_MALLOC_TUNE', '1') == '0' or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
