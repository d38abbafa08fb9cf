"""The op library's 'gpu' kernels and the optimizers' GPU path call the CUDA twins with the right
arguments, checked without a GPU: kernels/cuda's host emulator runs the twins' CUDA C on NumPy
arrays (kernels/cuda/_emulator.py), so `op.kernel('gpu')` can be compared with `op.kernel('cpu')`
on every kernel call the op tests make. Tolerance: rtol 1e-4 / atol 1e-5 (float32 GEMM and reduction order),
1e-9 / 1e-11 for float64."""
import importlib

import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.optimizer import optimizer as opt_module

from cudakit import CXX, load_op_cases

pytestmark = pytest.mark.skipif(CXX is None, reason='g++ is not installed (the emulator needs it)')
TOL = {'float32': (1e-4, 1e-5), 'float64': (1e-9, 1e-11)}
RANDOM_OPS = {'dropout_mask', 'random_normal_like'}


@pytest.fixture
def emulated():
    """kernels/cuda running on the host for the duration of a test."""
    runtime = importlib.import_module('kernels.cuda._runtime')
    emulator = importlib.import_module('kernels.cuda._emulator')
    runtime.set_backend(emulator.EmulatorBackend())
    yield
    runtime.set_backend(None)


def _device_specific_calls():
    """One call per (op, input shapes/dtypes, attrs) of the ops with per-device kernels."""
    seen, calls = set(), []
    for op, arrays, attrs in load_op_cases()._kernel_calls():
        if 'gpu' not in op.kernels:
            continue
        key = (op.name, tuple((a.shape, a.dtype.str) for a in arrays), repr(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            calls.append((op, [np.array(a, copy=True) for a in arrays], attrs))
    return calls


def _close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    rtol, atol = TOL.get(want.dtype.name, (0, 0))
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                               err_msg=what)


def test_gpu_kernels_match_cpu_kernels_under_the_emulator(emulated):
    for op, arrays, attrs in _device_specific_calls():
        where = f'{op.name} on {[(a.shape, a.dtype.name) for a in arrays]} with {attrs}'
        want = op.kernel('cpu')(*[a.copy() for a in arrays], **attrs)
        got = op.kernel('gpu')(*[a.copy() for a in arrays], **attrs)
        wants, gots = (want, got) if op.multi_output else ((want,), (got,))
        for w, g in zip(wants, gots):
            assert g.shape == w.shape and g.dtype == w.dtype, f'{where}: got {g.shape} {g.dtype}'
            if op.name not in RANDOM_OPS:
                _close(g, w, f'{where}: gpu kernel (emulated) vs cpu kernel')


OPTIMIZERS = [('sgd', {'momentum': 0.9, 'wd': 1e-3}), ('sgd', {}), ('nag', {'momentum': 0.9}),
              ('adam', {'wd': 1e-3, 'clip_gradient': 0.5}), ('adamw', {}), ('rmsprop', {}),
              ('rmsprop', {'centered': True, 'clip_weights': 1.0}), ('adagrad', {})]


@pytest.mark.parametrize('name,opts', OPTIMIZERS, ids=[f'{n}-{i}' for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizer_gpu_path_matches_cpu_under_the_emulator(name, opts, emulated, monkeypatch):
    """What _run_kernel does for a weight on a GPU (the CUDA twin named like the CPU kernel, on
    flat buffers), run on host arrays through the emulator."""
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((3, 5, 7)).astype(np.float32)
    results = []
    for via_twin in (False, True):
        if via_twin:
            monkeypatch.setattr(opt_module, '_run_kernel', lambda kernel, bufs, scalars: opt_module._run_flat(
                opt_module._cuda_twin(kernel), bufs, scalars, np))
        updater = mx.optimizer.get_updater(mx.optimizer.create(name, learning_rate=0.05, **opts))
        w = nd.array(w0)
        for g in grads:
            updater(0, nd.array(g), w)
        results.append(w.asnumpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6,
                               err_msg=f'{name} {opts}: CUDA twin (emulated) vs CPU kernel')
