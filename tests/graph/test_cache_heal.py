"""The compiled-graph cache heals itself: a changed network is retraced, and a broken or
unwritable kernel cache is regenerated or bypassed instead of failing every later call."""
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
import pytest

from engine import nd
from engine.gluon import nn
from engine.graph import fusion
from kernels import numba_cache


def _dense(units, **kw):
    d = nn.Dense(units, **kw)
    d.initialize()
    return d


def test_adding_a_layer_to_a_run_hybridized_net_retraces():
    net = nn.HybridSequential()
    net.add(_dense(10, flatten=False))
    net.hybridize()
    x = nd.ones((2, 3, 4))
    assert net(x).shape == (2, 3, 10)
    net.add(_dense(30))
    assert net(x).shape == (2, 30)


def test_replacing_a_nested_child_retraces():
    class Net(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.body = nn.HybridSequential()
            self.body.add(_dense(4))

        def forward(self, x):
            return self.body(x)

    net = Net()
    net.hybridize()
    x = nd.ones((2, 3))
    net(x)
    new = _dense(6)
    net.body.register_child(new, '0')       # same name: replaces the child
    out = net(x)
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out.asnumpy(), new(x).asnumpy(), rtol=1e-6)


# ---- the generated-kernel cache ($ENGINE_CACHE_DIR/fused) ------------------------------------

@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty kernel cache folder, no kernel loaded in this process, no warning given yet."""
    monkeypatch.setenv('ENGINE_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setattr(fusion, '_loaded', {})
    monkeypatch.setattr(numba_cache, '_warned', set())
    return tmp_path / 'cache' / 'fused'


def _run_fused_net(seed=0):
    """A hybridized net with one fused elementwise kernel; returns (output, eager output)."""
    class Net(nn.HybridBlock):
        def forward(self, x):
            return nd.tanh(x * 2.0 + 1.0) * x

    x = nd.array(np.random.RandomState(seed).randn(64, 33).astype('float32'))
    net = Net()
    expected = net(x).asnumpy()
    net.hybridize()
    return net(x).asnumpy(), expected


def test_a_tampered_cached_kernel_is_rewritten_and_never_runs(fresh_cache, tmp_path, monkeypatch):
    _run_fused_net()
    (path,) = fresh_cache.glob('fused_*.py')
    good = path.read_text()
    marker = tmp_path / 'ran'
    path.write_text(good + f'\nopen({str(marker)!r}, "w").close()\n')
    monkeypatch.setattr(fusion, '_loaded', {})               # as in a new process
    out, expected = _run_fused_net()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert not marker.exists() and path.read_text() == good


def test_a_garbage_kernel_file_is_regenerated(fresh_cache, monkeypatch):
    _run_fused_net()
    (path,) = fresh_cache.glob('fused_*.py')
    path.write_text('x = (\n')
    monkeypatch.setattr(fusion, '_loaded', {})
    out, expected = _run_fused_net()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_a_corrupt_numba_cache_entry_is_discarded(fresh_cache, monkeypatch):
    _run_fused_net()
    entries = list((fresh_cache / '__pycache__').iterdir())
    assert entries
    for e in entries:
        e.write_bytes(b'garbage')
    monkeypatch.setattr(fusion, '_loaded', {})
    with pytest.warns(RuntimeWarning, match='corrupt Numba cache entry'):
        out, expected = _run_fused_net()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(fusion, '_loaded', {})               # the rewritten entry loads cleanly
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        _run_fused_net()


def test_an_unwritable_cache_folder_compiles_in_memory_with_one_warning(tmp_path, monkeypatch):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    monkeypatch.setenv('ENGINE_CACHE_DIR', str(blocker / 'cache'))  # cannot be created, even by root
    monkeypatch.setattr(fusion, '_loaded', {})
    monkeypatch.setattr(numba_cache, '_warned', set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for seed in range(2):
            out, expected = _run_fused_net(seed)
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        fusion.compile_numba('@njit(cache=True, parallel=False)\ndef kernel(x0, y0):\n    y0[0] = x0[0]\n')
    assert [str(w.message) for w in caught if 'compiling them in memory' in str(w.message)] != []
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1


# ---- Numba's cache of the library's own kernels (subprocesses: a fresh process loads it) ------

def _python(code, **env):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env)
    env.pop('NUMBA_CACHE_DIR', None)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=env)


def test_a_corrupt_numba_cache_of_a_kernel_module_is_discarded(tmp_path):
    (tmp_path / 'mykernels.py').write_text(textwrap.dedent('''
        from numba import njit

        @njit(cache=True)
        def twice(x):
            return 2 * x
    '''))
    run = f'''
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import kernels, mykernels
        print(mykernels.twice(21))
    '''
    assert _python(run).stdout.strip() == '42'
    for f in (tmp_path / '__pycache__').glob('mykernels.*.nb*'):
        f.write_bytes(b'\x80garbage')
    r = _python(run)
    assert r.returncode == 0 and r.stdout.strip() == '42', r.stderr[-2000:]
    assert 'corrupt Numba cache entry' in r.stderr


# Simulates a read-only install folder: the probe Numba (and the engine) make before using a
# folder is a TemporaryFile in it. $HOME and $ENGINE_CACHE_DIR are really unwritable (/proc).
_READ_ONLY = '''
    import importlib.util, os, tempfile
    read_only = [os.path.dirname(importlib.util.find_spec('kernels').origin)] + EXTRA
    real = tempfile.TemporaryFile
    def probe(*a, dir=None, **k):
        if dir is not None and any(os.path.realpath(dir).startswith(r) for r in read_only):
            raise PermissionError(13, 'read-only file system (simulated)', dir)
        return real(*a, dir=dir, **k)
    tempfile.TemporaryFile = probe
    import numpy as np, numba, engine
    from engine import nd
    from engine.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, activation='relu'), nn.Flatten(), nn.Dense(3, activation='tanh'))
    net.initialize()
    x = nd.ones((2, 3, 8, 8))
    eager = net(x).asnumpy()
    net.hybridize()
    assert np.allclose(net(x).asnumpy(), eager, atol=1e-5)
    print('CACHE_DIR', numba.config.CACHE_DIR)
'''


@pytest.mark.parametrize('temp_writable', [True, False], ids=['temp-writable', 'nothing-writable'])
def test_import_engine_works_when_the_install_folder_and_home_are_not_writable(temp_writable):
    extra = '[]' if temp_writable else '[os.path.realpath(tempfile.gettempdir())]'
    r = _python(_READ_ONLY.replace('EXTRA', extra), HOME='/proc/no-home', ENGINE_CACHE_DIR='/proc/no-cache',
                XDG_CACHE_HOME='/proc/no-cache')
    assert r.returncode == 0, r.stderr[-3000:]
    cache = r.stdout.split('CACHE_DIR', 1)[1].strip()
    if temp_writable:
        assert cache.startswith(tempfile.gettempdir())
    else:
        assert 'no writable folder for Numba' in r.stderr
