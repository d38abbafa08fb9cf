"""Compute kernels: plain functions on arrays, no framework logic (never imports ``engine``)."""
import os

# OpenBLAS (GEMMs) and libgomp (the C++ extension and Numba's "omp" threading layer) take turns on
# the same cores. libgomp's default is to spin ~300k iterations after each parallel region, which
# steals the cores from the next BLAS call; never spinning (OMP_WAIT_POLICY=PASSIVE) makes every
# region pay a sleep/wake-up (~60 us per launch here). A short spin keeps back-to-back kernels cheap
# and frees the cores quickly (measured, hybridized LeNet b32 training step: 6.4 ms with Numba's
# workqueue layer, 3.3 ms with the omp layer at this spin count, 3.6 ms at 200000, with PyTorch in
# the same process slowed 2x at 200000). Read when libgomp loads; the user's own settings win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
