"""Pooling kernels against a plain NumPy float64 reference (and PyTorch when present)."""
import itertools

import numpy as np
import pytest

from kernels.cpu import pool

RNG = np.random.default_rng(0)
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ----------------------------------------------------------------------------- reference

def ref_pool2d(x, kernel, stride, pad, pool_type, ceil_mode=False, count_include_pad=True):
    """Returns y and, for max, the flat argmax index (first max in row-major order)."""
    x = x.astype(np.float64)
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    OH = pool.pool_output_size(H, kh, sh, ph, ceil_mode)
    OW = pool.pool_output_size(W, kw, sw, pw, ceil_mode)
    y = np.zeros((N, C, OH, OW))
    idx = np.full((N, C, OH, OW), -1, np.int64)
    for oh, ow in itertools.product(range(OH), range(OW)):
        hs, ws = oh * sh - ph, ow * sw - pw
        he, we = min(hs + kh, H + ph), min(ws + kw, W + pw)
        h0, h1, w0, w1 = max(hs, 0), min(he, H), max(ws, 0), min(we, W)
        win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
        if pool_type == "max":
            k = win.argmax(-1)
            y[:, :, oh, ow] = win.max(-1)
            idx[:, :, oh, ow] = (h0 + k // (w1 - w0)) * W + w0 + k % (w1 - w0)
        else:
            div = (he - hs) * (we - ws) if count_include_pad else (h1 - h0) * (w1 - w0)
            y[:, :, oh, ow] = win.sum(-1) / div
    return y, idx


def ref_adaptive_avg(x, out_size):
    N, C, H, W = x.shape
    OH, OW = out_size
    y = np.zeros((N, C, OH, OW))
    for oh, ow in itertools.product(range(OH), range(OW)):
        h0, h1 = (oh * H) // OH, -(-((oh + 1) * H) // OH)
        w0, w1 = (ow * W) // OW, -(-((ow + 1) * W) // OW)
        y[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].mean((-1, -2))
    return y


# (shape, kernel, stride, pad): batch 1, odd sizes, stride > kernel, non-square, padding
CONFIGS = [
    ((1, 1, 5, 5), (2, 2), (2, 2), (0, 0)),
    ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1)),
    ((2, 2, 9, 8), (2, 2), (3, 3), (0, 0)),
    ((1, 2, 6, 9), (2, 3), (1, 2), (1, 1)),
    ((2, 1, 8, 5), (3, 1), (2, 1), (1, 0)),
    ((1, 3, 4, 4), (4, 4), (1, 1), (2, 2)),
]


@pytest.mark.parametrize("shape,kernel,stride,pad", CONFIGS)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_forward(shape, kernel, stride, pad, ceil_mode, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    y, idx = pool.max_pool2d_forward(x, kernel, stride, pad, ceil_mode)
    y_ref, idx_ref = ref_pool2d(x, kernel, stride, pad, "max", ceil_mode)
    assert y.dtype == dtype and idx.dtype == np.int32
    np.testing.assert_array_equal(y, y_ref.astype(dtype))
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(pool.pool2d_forward(x, kernel, stride, pad, "max", ceil_mode), y)


@pytest.mark.parametrize("shape,kernel,stride,pad", CONFIGS)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_forward(shape, kernel, stride, pad, ceil_mode, count_include_pad, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    y = pool.avg_pool2d_forward(x, kernel, stride, pad, ceil_mode, count_include_pad)
    y_ref, _ = ref_pool2d(x, kernel, stride, pad, "avg", ceil_mode, count_include_pad)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])


@pytest.mark.parametrize("shape,kernel,stride,pad", CONFIGS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_backward_fd(shape, kernel, stride, pad, ceil_mode, numgrad):
    x = RNG.standard_normal(shape)  # distinct values: no ties, so max is differentiable
    y, idx = pool.max_pool2d_forward(x, kernel, stride, pad, ceil_mode)
    w = RNG.standard_normal(y.shape)
    dx = pool.max_pool2d_backward(w, idx, x.shape)
    f = lambda v: np.sum(w * pool.max_pool2d_forward(v, kernel, stride, pad, ceil_mode)[0])
    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape,kernel,stride,pad", CONFIGS)
@pytest.mark.parametrize("ceil_mode,count_include_pad", [(False, True), (True, False), (True, True)])
def test_avg_pool_backward_fd(shape, kernel, stride, pad, ceil_mode, count_include_pad, numgrad):
    x = RNG.standard_normal(shape)
    args = (kernel, stride, pad, ceil_mode, count_include_pad)
    y = pool.avg_pool2d_forward(x, *args)
    w = RNG.standard_normal(y.shape)
    dx = pool.avg_pool2d_backward(w, x.shape, *args)
    f = lambda v: np.sum(w * pool.avg_pool2d_forward(v, *args))
    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-6, atol=1e-8)


def test_output_size_ceil_rule():
    # floor vs ceil; ceil drops a window that would start in the right padding (PyTorch)
    assert pool.pool_output_size(5, 2, 2, 0) == 2
    assert pool.pool_output_size(5, 2, 2, 0, ceil_mode=True) == 3
    assert pool.pool_output_size(6, 2, 2, 1, ceil_mode=True) == 4  # start 5 < 6: kept
    assert pool.pool_output_size(5, 3, 2, 1, ceil_mode=True) == 3  # would start at 5: dropped


# ----------------------------------------------------------------------------- 2x2 fast path

@pytest.mark.parametrize("H,W", [(28, 28), (7, 9), (2, 2), (1, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_fast_path(H, W, dtype):
    x = RNG.standard_normal((3, 2, H, W)).astype(dtype)
    for ceil_mode in (False, True):  # ceil with odd sizes takes the general kernel
        y, idx = pool.max_pool2d_forward(x, 2, 2, 0, ceil_mode)
        y_ref, idx_ref = ref_pool2d(x, (2, 2), (2, 2), (0, 0), "max", ceil_mode)
        np.testing.assert_array_equal(y, y_ref.astype(dtype))
        np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("kernel,stride", [((2, 2), (2, 2)), ((3, 3), (1, 1))])
def test_max_pool_ties_and_nan(kernel, stride):
    x = np.zeros((1, 1, 4, 4), np.float32)  # all ties: the first element of each window
    y, idx = pool.max_pool2d_forward(x, kernel, stride)
    _, idx_ref = ref_pool2d(x, kernel, stride, (0, 0), "max")
    np.testing.assert_array_equal(idx, idx_ref)
    x[0, 0, 1, 1] = np.nan  # NaN propagates, like PyTorch
    y, idx = pool.max_pool2d_forward(x, kernel, stride)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5


def test_max_pool_backward_overlapping_windows_accumulate():
    x = np.array([[[[0.0, 1.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]]])
    y, idx = pool.max_pool2d_forward(x, 2, 1)
    dx = pool.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    assert dx[0, 0, 1, 1] == 4 and dx.sum() == 4


def test_out_buffers_are_used():
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y, idx = np.empty((2, 3, 4, 4), np.float32), np.empty((2, 3, 4, 4), np.int32)
    ry, ridx = pool.max_pool2d_forward(x, 2, 2, out=y, out_index=idx)
    assert ry is y and ridx is idx
    dx = np.full_like(x, 7.0)  # stale contents must be overwritten
    assert pool.max_pool2d_backward(y, idx, x.shape, out=dx) is dx
    np.testing.assert_array_equal(dx, pool.max_pool2d_backward(y, idx, x.shape))
    ya = np.empty((2, 3, 4, 4), np.float32)
    assert pool.avg_pool2d_forward(x, 2, 2, out=ya) is ya
    assert pool.avg_pool2d_backward(ya, x.shape, 2, 2, out=dx) is dx


# ----------------------------------------------------------------------------- adaptive

@pytest.mark.parametrize("shape,out_size", [((2, 3, 7, 5), (3, 2)), ((1, 2, 4, 4), (4, 4)),
                                            ((1, 1, 5, 9), (1, 1)), ((2, 1, 3, 3), (5, 4))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_avg_pool(shape, out_size, dtype, numgrad):
    x = RNG.standard_normal(shape).astype(dtype)
    y = pool.adaptive_avg_pool2d_forward(x, out_size)
    np.testing.assert_allclose(y, ref_adaptive_avg(x.astype(np.float64), out_size), **TOL[dtype])
    x64 = x.astype(np.float64)
    w = RNG.standard_normal(y.shape)
    dx = pool.adaptive_avg_pool2d_backward(w, x.shape)
    f = lambda v: np.sum(w * pool.adaptive_avg_pool2d_forward(v, out_size))
    np.testing.assert_allclose(dx, numgrad(f, x64), rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- PyTorch

@pytest.mark.torch
@pytest.mark.parametrize("shape,kernel,stride,pad", CONFIGS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_against_torch(shape, kernel, stride, pad, ceil_mode):
    """Bit-exact max pooling and indices; avg within 1e-6 (float32) both divisor modes."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x)
    ty, tidx = F.max_pool2d(tx, kernel, stride, pad, ceil_mode=ceil_mode, return_indices=True)
    y, idx = pool.max_pool2d_forward(x, kernel, stride, pad, ceil_mode)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    for cip in (True, False):
        ta = F.avg_pool2d(tx, kernel, stride, pad, ceil_mode=ceil_mode, count_include_pad=cip)
        np.testing.assert_allclose(pool.avg_pool2d_forward(x, kernel, stride, pad, ceil_mode, cip),
                                   ta.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("shape,out_size", [((2, 3, 7, 5), (3, 2)), ((1, 2, 10, 13), (4, 5))])
def test_adaptive_against_torch(shape, out_size):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, out_size)
    w = RNG.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.from_numpy(w))
    y = pool.adaptive_avg_pool2d_forward(x, out_size)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pool.adaptive_avg_pool2d_backward(w, x.shape), tx.grad.numpy(),
                               rtol=1e-6, atol=1e-6)
