"""Process thread settings that must hold however a script is written (engine/threads.py)."""
import json
import os
import subprocess
import sys

import pytest

# CPU time the process burns while it sleeps right after a two-thread GEMM: OpenBLAS's worker
# spinning for its thread timeout is the only thread that can run then
_SPIN_PROBE = '''
import numpy as np
import json, resource, time
import engine
from engine.threads import blas_thread_timeouts
engine.set_num_threads(2)
a = np.random.rand(400, 400)
assert np.allclose((a @ a)[0, :5], [a[0] @ a[:, j] for j in range(5)])

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

spent = []
for _ in range(7):
    a @ a
    c0 = cpu()
    time.sleep(0.05)
    spent.append(cpu() - c0)
from threadpoolctl import threadpool_info
print(json.dumps({'spin_s': sorted(spent)[3], 'timeouts': list(blas_thread_timeouts().values()),
                  'threads': [d['num_threads'] for d in threadpool_info() if d['user_api'] == 'blas']}))
'''


def _probe(**env):
    full = {k: v for k, v in os.environ.items() if k not in ('OPENBLAS_THREAD_TIMEOUT', 'ENGINE_NUM_THREADS')}
    full.update(env)
    r = subprocess.run([sys.executable, '-c', _SPIN_PROBE], env=full, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason='needs two cores for a BLAS worker thread')
def test_numpy_imported_first_still_gets_the_short_blas_spin():
    """A script importing numpy before the engine loaded OpenBLAS with its ~0.1 s spin; the engine
    shortens it in place (the LeNet b256 user-style step was 88 ms instead of 54 ms)."""
    fixed = _probe()
    assert fixed['timeouts'] and set(fixed['timeouts']) == {4}
    assert fixed['threads'] and min(fixed['threads']) == 2     # its threads restart, not lost
    assert fixed['spin_s'] < 0.004
    spinning = _probe(OPENBLAS_THREAD_TIMEOUT='0')   # the user's own setting (0: OpenBLAS's default) is kept
    assert set(spinning['timeouts']) == {0}
    assert spinning['spin_s'] > fixed['spin_s']


def test_shorten_blas_spin_keeps_the_users_setting(monkeypatch):
    from engine import threads
    monkeypatch.setenv('OPENBLAS_THREAD_TIMEOUT', '9')
    assert threads.shorten_blas_spin(numpy_was_loaded=True) == []
    assert os.environ['OPENBLAS_THREAD_TIMEOUT'] == '9'


def _import_stderr(code, **env):
    full = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    full.update(env)
    r = subprocess.run([sys.executable, '-W', 'always', '-c', code], env=full, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stderr


def test_a_libgomp_loaded_before_the_engine_is_reported_with_the_fix():
    """torch's libgomp, loaded first, is shared by the C++ extension with its spinning default
    (OMP_WAIT_POLICY is read at load): the user is told to set it or import the engine first."""
    pytest.importorskip('torch')
    msg = 'Set OMP_WAIT_POLICY=PASSIVE'
    assert msg in _import_stderr('import torch; import engine')
    assert msg not in _import_stderr('import torch; import engine', OMP_WAIT_POLICY='PASSIVE')
    assert msg not in _import_stderr('import engine; import torch')


def test_no_libgomp_before_the_engine_no_warning():
    from engine import threads
    assert threads.warn_if_libgomp_spins(False) is False
