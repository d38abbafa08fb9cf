"""Compute kernels: plain functions on arrays, no framework logic (never imports ``engine``)."""
import os

# OpenBLAS (GEMMs) and libgomp (the C++ im2col extension and Numba's "omp"
# threading layer share the system libgomp) take turns on the same cores.
# libgomp's default is to spin for a while after each parallel region, which
# steals the cores from the next BLAS call (measured: a 4.2 ms GEMM took 7.5 ms
# right after an im2col). Sleeping idle threads cost only a few microseconds
# of wake-up per region. Must be set before libgomp is loaded; a value the user
# set explicitly wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Before any kernel is decorated: a cache folder that can be written, and corrupt cache entries
# treated as misses (kernels/numba_cache.py).
from . import numba_cache as _numba_cache  # noqa: E402

_numba_cache.ensure_cache_location()
_numba_cache.heal_corrupt_entries()
