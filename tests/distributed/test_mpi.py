"""`mpiexec -n 2` runs of tests/distributed/dist_worker.py: two ranks train as one process with the
whole batch, the initial broadcast makes the ranks equal, and faults stop every rank in bounded
time. Skipped only when mpi4py or mpiexec is missing (pip install "engine[dist]")."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name('dist_worker.py')


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    beside = Path(sys.executable).with_name('mpiexec')    # the mpich wheel's, in this environment
    return str(beside) if beside.exists() else shutil.which('mpiexec')


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason='needs mpi4py and mpiexec (pip install "engine[dist]")')


def _run(scenario, tmp_path, timeout=120, **env):
    full = dict(os.environ, ENGINE_NUM_THREADS='1', OMP_NUM_THREADS='1', **env)
    t0 = time.monotonic()
    proc = subprocess.run([MPIEXEC, '-n', '2', sys.executable, str(WORKER), scenario, str(tmp_path)],
                          capture_output=True, text=True, timeout=timeout, env=full)
    return proc, proc.stdout + proc.stderr, time.monotonic() - t0


def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    proc, out, _ = _run('train', tmp_path)
    assert proc.returncode == 0, out
    for name in ('dist_trainer', 'kv_horovod'):
        # rank 1 started elsewhere; the broadcast made both equal to rank 0
        assert f'RANK 1 {name} broadcast: changed=True ranks_equal=True' in out, out
        assert f'RANK 0 {name} broadcast: changed=False ranks_equal=True' in out, out
        diff, moved = map(float, re.search(rf'RANK 0 {name} max_diff_vs_one_process=(\S+) moved=(\S+)', out).groups())
        assert diff <= 1e-5 and moved > 0.05, out      # equal to the 1-process run, and it trained
        for r in (0, 1):
            assert f'RANK {r} {name} final ranks_equal=True' in out, out
        assert (tmp_path / f'{name}.params').stat().st_size > 0
        assert (tmp_path / f'{name}.states').stat().st_size > 0
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]     # atomic, nothing left over


def test_collectives_over_two_ranks(tmp_path):
    proc, out, _ = _run('collectives', tmp_path, timeout=60, ENGINE_DIST_BUCKET_MB='0.0005')
    assert proc.returncode == 0, out
    assert 'RANK 0 collectives OK' in out and 'RANK 1 collectives OK' in out, out


def test_different_parameter_shapes_are_a_clear_error_on_every_rank(tmp_path):
    proc, out, _ = _run('shapes', tmp_path, timeout=60)
    assert proc.returncode == 0, out
    for r in (0, 1):
        assert re.search(rf'RANK {r} MXNetError: .*rank 1 has dense\d+_weight of shape \(48, 64\)', out), out


@pytest.mark.parametrize('fault, expect', [
    ('raise', 'rank 1/2 stopped with ValueError: a bug in rank 1'),
    ('kill', 'signal 9'),
    ('hang', 'rank 0/2 waited more than 3 s'),
])
def test_a_failing_rank_stops_every_rank_in_bounded_time(tmp_path, fault, expect):
    proc, out, elapsed = _run(fault, tmp_path, timeout=90, ENGINE_DIST_TIMEOUT='3')
    assert proc.returncode != 0, out
    assert expect in out, out
    assert 'RANK 0 finished' not in out
    assert elapsed < 60, f'took {elapsed:.1f} s'


def test_distributed_example_trains_on_digits(tmp_path):
    example = Path(__file__).resolve().parents[2] / 'examples' / 'distributed_mnist.py'
    ckpt = tmp_path / 'lenet.params'
    full = dict(os.environ, ENGINE_NUM_THREADS='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([MPIEXEC, '-n', '2', sys.executable, str(example), '--data', 'digits', '--epochs', '6',
                           '--checkpoint', str(ckpt)], capture_output=True, text=True, timeout=120, env=full)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count('epoch ') == 6, out                       # rank 0 alone reports
    acc = float(re.findall(r'test accuracy ([\d.]+)%', out)[-1])
    assert acc > 60, out
    assert ckpt.stat().st_size > 0
