"""On a GPU machine: a GPU and a CPU context train as one context (the 'device' store reduces on
the GPU, 'local' on the host), and under `mpiexec -n 1` the gradients go through NCCL."""
import pytest

import numpy as np

import engine as mx
from test_mpi import MPIEXEC, _run
from test_multi_context import OPTIMIZERS, _copies, _train

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize('kvstore', ['device', 'local'])
@pytest.mark.parametrize('update_on_kvstore', [True, False])
@pytest.mark.parametrize('optimizer', [OPTIMIZERS[1], OPTIMIZERS[3]], ids=['sgd_mom', 'adam'])
def test_gpu_and_cpu_contexts_equal_one_context(kvstore, update_on_kvstore, optimizer):
    one = _copies(_train([mx.cpu(0)], optimizer, steps=10))
    two = _copies(_train([mx.gpu(0), mx.cpu(0)], optimizer, steps=10, kvstore=kvstore,
                         update_on_kvstore=update_on_kvstore))
    for (ref,), copies in zip(one, two):
        for c in copies:
            np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(copies[0], copies[1], rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(MPIEXEC is None, reason='needs mpi4py and mpiexec')
def test_nccl_gradient_path_under_mpiexec(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    worker = Path(__file__).with_name('dist_worker.py')
    proc = subprocess.run([MPIEXEC, '-n', '1', sys.executable, str(worker), 'gpu', str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert 'RANK 0 gpu OK' in out, out
