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
