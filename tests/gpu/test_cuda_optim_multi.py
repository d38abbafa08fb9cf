"""The CUDA multi-tensor optimizer kernels (kernels/cuda/optim.py *_multi) against their CPU twins:
bit-identical, as the single-tensor updates (optim.cu is compiled without FMA contraction).
Marked `gpu`; with ENGINE_CUDA_EMULATE=1 they run on the host emulator instead."""
import os

import numpy as np
import pytest

EMULATE = os.environ.get("ENGINE_CUDA_EMULATE") == "1"
pytestmark = [] if EMULATE else [pytest.mark.gpu]

CASES = [  # kernel, states, per-parameter arrays, shared scalars
    ("sgd_update_multi", 0, 2, (0.5, 0.3)),
    ("sgd_mom_update_multi", 1, 2, (0.9, 0.5, -1.0)),
    ("nag_mom_update_multi", 1, 2, (0.9, 0.5, 0.2)),
    ("adam_update_multi", 2, 2, (0.9, 0.999, 1e-8, 1.0, -1.0)),
    ("adamw_update_multi", 2, 3, (0.9, 0.999, 1e-8, 1.0, 0.5)),
]
SIZES = (1001, 3, 64, 517)   # longer than the emulator's capped grid: its loops iterate


@pytest.fixture(scope="module")
def xp():
    from kernels.cuda import _runtime
    if EMULATE:
        from kernels.cuda import _emulator
        _runtime.set_backend(_emulator.EmulatorBackend())
        yield np
        _runtime.set_backend(None)
    else:
        import cupy
        yield cupy


def _address(xp, a):
    return a.ctypes.data if xp is np else a.data.ptr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_multi_update_bit_identical_to_the_cpu(xp, dtype, case):
    from kernels.cpu import optim as coptim
    from kernels.cuda import optim as goptim
    name, nstates, nper, scalars = case
    rng = np.random.RandomState(1)
    host = [[rng.randn(n).astype(dtype) for _ in range(2 + nstates)] for n in SIZES]
    for row in host:
        if nstates == 2:
            row[3] = np.abs(row[3])          # Adam's variance is non-negative
    host[0][1][3] = np.nan                   # a NaN gradient passes through, as on the CPU
    dev = [[xp.array(a) for a in row] for row in host]
    per = [rng.uniform(0.01, 0.1, len(SIZES)) for _ in range(nper)]
    sizes = np.array(SIZES, np.int64)
    ctable = np.array([[a.ctypes.data for a in row] for row in host], np.int64)
    gtable = np.array([[_address(xp, a) for a in row] for row in dev], np.int64)
    for _ in range(3):
        assert getattr(goptim, name)(gtable, sizes, dev[0][0], *per, *scalars) is None
        getattr(coptim, name)(ctable, sizes, np.empty(1, dtype), *per, *scalars)
    for hrow, drow in zip(host, dev):
        for h, d in zip(hrow, drow):
            np.testing.assert_array_equal(d if xp is np else d.get(), h)


def test_multi_update_refuses_a_table_without_a_row_per_size(xp):
    from kernels.cuda import optim as goptim
    with pytest.raises(ValueError, match=r"sgd_update_multi: table has shape \(2, 2\); expected one row"):
        goptim.sgd_update_multi(np.zeros((2, 2), np.int64), np.ones(3, np.int64), np.empty(1, np.float32),
                                np.ones(3), np.ones(3), 1.0, -1.0)
