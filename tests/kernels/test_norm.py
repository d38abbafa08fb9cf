"""Batch / layer / instance norm kernels against NumPy float64 references."""
import numpy as np
import pytest

from kernels.cpu import norm

RNG = np.random.default_rng(2)
EPS = 1e-5
TOL = {np.float32: dict(rtol=1e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


# ----------------------------------------------------------------------------- references

def ref_norm(x, gamma, beta, axes, param_shape, eps=EPS):
    """Normalize over `axes` (biased variance); gamma/beta reshaped to param_shape."""
    x = x.astype(np.float64)
    mu = x.mean(axes, keepdims=True)
    inv = 1.0 / np.sqrt(x.var(axes, keepdims=True) + eps)
    y = (x - mu) * inv * gamma.reshape(param_shape) + beta.reshape(param_shape)
    return y, mu, inv


def bn_axes(ndim, axis):
    axis %= ndim
    shape = [1] * ndim
    return tuple(i for i in range(ndim) if i != axis), shape


BN_CASES = [((4, 3, 5, 6), 1), ((1, 2, 3, 3), 1), ((7, 5), 1), ((9, 130), 1),
            ((2, 3, 4), -1), ((3, 4, 5), 0), ((2, 6, 7), 1)]


# ----------------------------------------------------------------------------- batch norm

@pytest.mark.parametrize("shape,axis", BN_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_train_forward(shape, axis, dtype):
    x = (RNG.standard_normal(shape) * 3 + 2).astype(dtype)
    C = shape[axis]
    gamma, beta = RNG.standard_normal(C).astype(dtype), RNG.standard_normal(C).astype(dtype)
    y, mean, invstd = norm.batch_norm_train_forward(x, gamma, beta, EPS, axis)
    axes, pshape = bn_axes(x.ndim, axis)
    pshape[axis] = C
    y_ref, mu, inv = ref_norm(x, gamma.astype(np.float64), beta.astype(np.float64), axes, pshape)
    assert y.dtype == mean.dtype == invstd.dtype == dtype and mean.shape == (C,)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    np.testing.assert_allclose(mean, mu.reshape(C), **TOL[dtype])
    np.testing.assert_allclose(invstd, inv.reshape(C), **TOL[dtype])


def test_batch_norm_float32_large_mean():
    x = (RNG.standard_normal((8, 2, 10, 10)) + 1000).astype(np.float32)
    y, _, _ = norm.batch_norm_train_forward(x, None, None, EPS)
    y_ref, _, _ = ref_norm(x, np.ones(2), np.zeros(2), (0, 2, 3), (1, 2, 1, 1))
    np.testing.assert_allclose(y, y_ref, atol=2e-4)


@pytest.mark.parametrize("shape,axis", BN_CASES)
def test_batch_norm_backward_fd(shape, axis, numgrad):
    if np.prod(shape) > 300:
        return  # big shapes are covered by the forward test; FD costs O(size^2)
    x = RNG.standard_normal(shape)
    C = shape[axis]
    gamma, beta = RNG.standard_normal(C), RNG.standard_normal(C)
    w = RNG.standard_normal(shape)
    y, mean, invstd = norm.batch_norm_train_forward(x, gamma, beta, EPS, axis)
    dx, dgamma, dbeta = norm.batch_norm_backward(w, x, gamma, mean, invstd, axis)
    f = lambda xx, g=gamma, b=beta: np.sum(w * norm.batch_norm_train_forward(xx, g, b, EPS, axis)[0])
    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numgrad(lambda g: f(x, g=g), gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, numgrad(lambda b: f(x, b=b), beta), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape,axis", [((16, 8, 6, 6), 1), ((64, 100), 1)])
def test_batch_norm_backward_float32_matches_float64(shape, axis):
    x = RNG.standard_normal(shape)
    C = shape[axis]
    gamma, w = RNG.standard_normal(C), RNG.standard_normal(shape)
    ref = norm.batch_norm_backward(w, x, gamma, *norm.batch_norm_train_forward(x, gamma, None, EPS, axis)[1:], axis)
    x32, g32, w32 = x.astype(np.float32), gamma.astype(np.float32), w.astype(np.float32)
    _, m, s = norm.batch_norm_train_forward(x32, g32, None, EPS, axis)
    got = norm.batch_norm_backward(w32, x32, g32, m, s, axis)
    for a, b in zip(got, ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,axis", [((4, 3, 5, 6), 1), ((7, 5), 1), ((2, 3, 4), -1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_infer(shape, axis, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    C = shape[axis]
    gamma, beta = RNG.standard_normal(C), RNG.standard_normal(C)
    rm, rv = RNG.standard_normal(C), RNG.random(C) + 0.5
    pshape = [1] * x.ndim
    pshape[axis] = C
    ref = (x - rm.reshape(pshape)) / np.sqrt(rv.reshape(pshape) + EPS) * gamma.reshape(pshape) \
        + beta.reshape(pshape)
    y = norm.batch_norm_infer_forward(x, gamma.astype(dtype), beta.astype(dtype), rm, rv, EPS, axis)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref, **TOL[dtype])


def test_batch_norm_update_running_mxnet_formula():
    x = RNG.standard_normal((32, 3))
    _, mean, invstd = norm.batch_norm_train_forward(x, None, None, EPS, 1)
    rm, rv = np.zeros(3), np.ones(3)
    norm.batch_norm_update_running(rm, rv, mean, invstd, EPS, momentum=0.9)
    np.testing.assert_allclose(rm, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(0), rtol=1e-10)  # biased variance


def test_batch_norm_out_buffers():
    x = RNG.standard_normal((4, 3, 5, 5)).astype(np.float32)
    bufs = (np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32))
    got = norm.batch_norm_train_forward(x, None, None, EPS, out=bufs)
    assert all(a is b for a, b in zip(got, bufs))
    gbufs = (np.full_like(x, np.nan), np.empty(3, np.float32), np.empty(3, np.float32))
    got = norm.batch_norm_backward(x, x, None, bufs[1], bufs[2], out=gbufs)
    assert all(a is b for a, b in zip(got, gbufs)) and np.all(np.isfinite(gbufs[0]))


# ----------------------------------------------------------------------------- layer norm

@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((2, 3, 16), -1), ((3, 5, 4), 1),
                                        ((1, 300), -1), ((5, 1), -1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_forward(shape, axis, dtype):
    x = (RNG.standard_normal(shape) * 2 + 1).astype(dtype)
    K = shape[axis]
    gamma, beta = RNG.standard_normal(K).astype(dtype), RNG.standard_normal(K).astype(dtype)
    y, mean, invstd = norm.layer_norm_forward(x, gamma, beta, axis, EPS)
    pshape = [1] * x.ndim
    pshape[axis] = K
    y_ref, mu, inv = ref_norm(x, gamma.astype(np.float64), beta.astype(np.float64), axis, pshape)
    ax = axis % x.ndim
    assert mean.shape == shape[:ax] + shape[ax + 1:] and y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    np.testing.assert_allclose(mean, mu.squeeze(ax), **TOL[dtype])
    np.testing.assert_allclose(invstd, inv.squeeze(ax), **TOL[dtype])


@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((2, 3, 5), -1), ((3, 5, 4), 1), ((6, 2), 0)])
def test_layer_norm_backward_fd(shape, axis, numgrad):
    x = RNG.standard_normal(shape)
    K = shape[axis]
    gamma, beta, w = RNG.standard_normal(K), RNG.standard_normal(K), RNG.standard_normal(shape)
    y, mean, invstd = norm.layer_norm_forward(x, gamma, beta, axis, EPS)
    dx, dgamma, dbeta = norm.layer_norm_backward(w, x, gamma, mean, invstd, axis)
    f = lambda xx, g=gamma, b=beta: np.sum(w * norm.layer_norm_forward(xx, g, b, axis, EPS)[0])
    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numgrad(lambda g: f(x, g=g), gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, numgrad(lambda b: f(x, b=b), beta), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("axis", [1, -1])
def test_layer_norm_out_buffers(axis):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    stat = (3, 5) if axis == 1 else (3, 4)
    bufs = (np.empty_like(x), np.empty(stat, np.float32), np.empty(stat, np.float32))
    got = norm.layer_norm_forward(x, None, None, axis, EPS, out=bufs)
    assert all(a is b for a, b in zip(got, bufs))
    np.testing.assert_allclose(bufs[0].mean(axis), 0, atol=1e-6)
    gbufs = (np.full_like(x, np.nan), np.empty(x.shape[axis], np.float32),
             np.empty(x.shape[axis], np.float32))
    got = norm.layer_norm_backward(x, x, None, bufs[1], bufs[2], axis, out=gbufs)
    assert all(a is b for a, b in zip(got, gbufs))
    ref = norm.layer_norm_backward(x, x, None, bufs[1], bufs[2], axis)
    for a, b in zip(gbufs, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- instance norm

@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 7), (3, 1, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_instance_norm_forward(shape, dtype):
    x = (RNG.standard_normal(shape) * 2 - 1).astype(dtype)
    C = shape[1]
    gamma, beta = RNG.standard_normal(C).astype(dtype), RNG.standard_normal(C).astype(dtype)
    y, mean, invstd = norm.instance_norm_forward(x, gamma, beta, EPS)
    axes = tuple(range(2, x.ndim))
    pshape = (1, C) + (1,) * (x.ndim - 2)
    y_ref, mu, inv = ref_norm(x, gamma.astype(np.float64), beta.astype(np.float64), axes, pshape)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    np.testing.assert_allclose(mean, mu.reshape(shape[:2]), **TOL[dtype])
    np.testing.assert_allclose(invstd, inv.reshape(shape[:2]), **TOL[dtype])


@pytest.mark.parametrize("shape", [(2, 3, 2, 3), (3, 2, 5)])
def test_instance_norm_backward_fd(shape, numgrad):
    x = RNG.standard_normal(shape)
    C = shape[1]
    gamma, beta, w = RNG.standard_normal(C), RNG.standard_normal(C), RNG.standard_normal(shape)
    _, mean, invstd = norm.instance_norm_forward(x, gamma, beta, EPS)
    dx, dgamma, dbeta = norm.instance_norm_backward(w, x, gamma, mean, invstd)
    f = lambda xx, g=gamma, b=beta: np.sum(w * norm.instance_norm_forward(xx, g, b, EPS)[0])
    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numgrad(lambda g: f(x, g=g), gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, numgrad(lambda b: f(x, b=b), beta), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- PyTorch

@pytest.mark.torch
@pytest.mark.parametrize("shape", [(8, 4, 6, 6), (16, 10), (4, 3, 7)])
def test_batch_norm_against_torch(shape):
    """Training-mode output and all three gradients within 1e-4 (float32)."""
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal(shape).astype(np.float32)
    C = shape[1]
    g, b = RNG.standard_normal(C).astype(np.float32), RNG.standard_normal(C).astype(np.float32)
    w = RNG.standard_normal(shape).astype(np.float32)
    tx, tg, tb = (torch.from_numpy(a).requires_grad_() for a in (x, g, b))
    rm, rv = torch.zeros(C), torch.ones(C)
    ty = torch.nn.functional.batch_norm(tx, rm, rv, tg, tb, training=True, momentum=0.1, eps=EPS)
    ty.backward(torch.from_numpy(w))
    y, mean, invstd = norm.batch_norm_train_forward(x, g, b, EPS)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for got, ref in zip(norm.batch_norm_backward(w, x, g, mean, invstd), (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mean * 0.1, rm.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_layer_and_instance_norm_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.standard_normal((4, 5, 32)).astype(np.float32)
    g, b = RNG.standard_normal(32).astype(np.float32), RNG.standard_normal(32).astype(np.float32)
    w = RNG.standard_normal(x.shape).astype(np.float32)
    tx, tg, tb = (torch.from_numpy(a).requires_grad_() for a in (x, g, b))
    ty = F.layer_norm(tx, (32,), tg, tb, eps=EPS)
    ty.backward(torch.from_numpy(w))
    y, mean, invstd = norm.layer_norm_forward(x, g, b, -1, EPS)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    for got, ref in zip(norm.layer_norm_backward(w, x, g, mean, invstd, -1), (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-4)
    xi = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    gi, bi = RNG.standard_normal(3).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
    ti = F.instance_norm(torch.from_numpy(xi), weight=torch.from_numpy(gi), bias=torch.from_numpy(bi), eps=EPS)
    np.testing.assert_allclose(norm.instance_norm_forward(xi, gi, bi, EPS)[0], ti.numpy(), rtol=1e-4, atol=1e-5)
