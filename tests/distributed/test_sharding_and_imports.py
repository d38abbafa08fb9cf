"""Per-rank data sharding, and the parts of engine.distributed that need no MPI launch: the NCCL
module imports without CuPy/GPU, and a missing mpi4py is a clear error."""
import sys
import types

import numpy as np
import pytest

import engine as mx
from engine import gluon
from engine.base import MXNetError


def test_split_sampler_parts_are_disjoint_equal_and_cover_the_data():
    parts = [list(gluon.data.SplitSampler(10, num_parts=3, part_index=i)) for i in range(3)]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]         # the remainder is left out
    mx.random.seed(1)
    shuffled = list(gluon.data.SplitSampler(10, 3, 1, shuffle=True))
    assert sorted(shuffled) == [3, 4, 5]
    with pytest.raises(MXNetError, match='part_index'):
        gluon.data.SplitSampler(10, 3, 3)
    with pytest.raises(MXNetError, match='num_parts'):
        gluon.data.SplitSampler(10, 0, 0)


def test_distributed_sampler_shares_one_permutation_per_epoch():
    samplers = [gluon.data.DistributedSampler(11, num_parts=2, part_index=i, seed=7) for i in range(2)]
    first = [list(s) for s in samplers]
    assert len(first[0]) == len(first[1]) == 5 and not set(first[0]) & set(first[1])
    assert first == [list(s) for s in samplers]                       # same epoch, same order
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != first
    assert list(gluon.data.DistributedSampler(4, 2, 1, shuffle=False)) == [1, 3]


def test_dataloader_over_a_split_sampler_yields_one_rank_share():
    x = np.arange(12, dtype=np.float32)[:, None]
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(x), batch_size=2,
                                   sampler=gluon.data.SplitSampler(12, num_parts=2, part_index=1))
    seen = np.concatenate([b.asnumpy().ravel() for b in loader])
    np.testing.assert_array_equal(seen, np.arange(6, 12))


def test_nccl_module_imports_without_a_gpu_and_maps_dtypes():
    from engine.distributed import nccl
    assert isinstance(nccl.usable(), bool)
    fake = types.SimpleNamespace(NCCL_FLOAT32=7, NCCL_FLOAT16=6, NCCL_INT64=4)
    assert nccl.dtype_code(fake, np.float32) == 7 and nccl.dtype_code(fake, 'float16') == 6
    with pytest.raises(MXNetError, match='cannot reduce complex64'):
        nccl.dtype_code(fake, np.complex64)


def test_without_mpi4py_the_error_says_how_to_install(monkeypatch):
    from engine.distributed import _mpi
    monkeypatch.setitem(sys.modules, 'mpi4py', None)
    monkeypatch.setitem(_mpi._state, 'comm', None)
    monkeypatch.setitem(_mpi._state, 'MPI', None)
    with pytest.raises(MXNetError, match=r'pip install "engine\[dist\]"'):
        _mpi.init()
