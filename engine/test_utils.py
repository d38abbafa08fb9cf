"""Helpers for tests: finite-difference gradient checks and array comparisons."""
import numpy as np

from . import autograd
from .ndarray import NDArray, array


def assert_almost_equal(a, b, rtol=1e-5, atol=1e-7, names=('a', 'b')):
    a = a.asnumpy() if isinstance(a, NDArray) else np.asarray(a)
    b = b.asnumpy() if isinstance(b, NDArray) else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f'{names[0]} vs {names[1]}')


def numeric_gradient(fn, arrays, heads, eps=1e-6, which=None):
    """Central differences of sum(fn(*arrays) * heads) w.r.t. the float64 inputs in `which`."""
    grads = {}
    for k in (range(len(arrays)) if which is None else which):
        x = arrays[k]
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):  # index x itself: reshape(-1) copies a non-contiguous array
            old = x[i]
            x[i] = old + eps
            up = _scalar_objective(fn, arrays, heads)
            x[i] = old - eps
            down = _scalar_objective(fn, arrays, heads)
            x[i] = old
            g[i] = (up - down) / (2 * eps)
        grads[k] = g
    return grads


def _outputs(fn, arrays):
    out = fn(*[array(a, dtype=a.dtype) for a in arrays])
    return [out] if isinstance(out, NDArray) else list(out)


def _scalar_objective(fn, arrays, heads):
    return sum(float(np.sum(o.asnumpy().astype(np.float64) * h)) for o, h in zip(_outputs(fn, arrays), heads))


def check_numeric_gradient(fn, inputs, grad_inputs=None, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Compare autograd gradients of `fn` with central finite differences, in float64.

    fn: takes NDArrays, returns an NDArray or a tuple of them. inputs: NumPy arrays (cast to
    float64). grad_inputs: indices of the inputs to differentiate (default: all float ones).
    A random head gradient weights the outputs so every output element matters."""
    rng = np.random.default_rng(seed)
    arrays = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == 'f' else np.array(x)
              for x in inputs]
    idx = [i for i, a in enumerate(arrays) if a.dtype.kind == 'f'] if grad_inputs is None else list(grad_inputs)
    heads = [rng.standard_normal(o.shape) for o in _outputs(fn, arrays)]
    nds = [array(a, dtype=a.dtype) for a in arrays]
    for i in idx:
        nds[i].attach_grad()
    with autograd.record():
        out = fn(*nds)
    outs = [out] if isinstance(out, NDArray) else list(out)
    autograd.backward(outs, [array(h, dtype=np.float64) for h in heads])
    numeric = numeric_gradient(fn, arrays, heads, eps, idx)
    for i in idx:
        np.testing.assert_allclose(nds[i].grad.asnumpy(), numeric[i], rtol=rtol, atol=atol,
                                   err_msg=f'gradient of input {i}: autograd vs finite differences')
