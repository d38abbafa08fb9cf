"""Every kernels/cuda wrapper against its kernels/cpu twin on random float32/float64 inputs.

Marked `gpu`: tests/conftest.py skips them without a CUDA device. With
``ENGINE_CUDA_EMULATE=1`` the same tests run without a GPU on the host emulator
(kernels/cuda/_emulator.py: the CUDA C compiled by g++, every CUDA thread a host thread,
NumPy arrays standing in for device arrays); they are then not marked `gpu`.

Tolerances (relative to the largest expected magnitude): float32 rtol 1e-4 / atol 1e-5
(GEMM, reduction order, and float32 sums that the GPU accumulates in double); float64
rtol 1e-10 / atol 1e-12. Copies and index outputs (im2col, max-pool values and indices,
dropout masks, embedding rows) and the optimizer updates (bit-identical by design, see
optim.cu) must match exactly.
"""
import importlib
import os

import numpy as np
import pytest

EMULATE = os.environ.get("ENGINE_CUDA_EMULATE") == "1"
pytestmark = [] if EMULATE else [pytest.mark.gpu]

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}


# ----------------------------------------------------------------------------- harness

@pytest.fixture(scope="module")
def xp():
    """The device array module: CuPy on a GPU, NumPy under the emulator."""
    from kernels.cuda import _runtime
    if EMULATE:
        from kernels.cuda import _emulator
        _runtime.set_backend(_emulator.EmulatorBackend())
        yield np
        _runtime.set_backend(None)
    else:
        import cupy
        yield cupy


def dev(xp, a):
    """Host array -> a device copy (anything else unchanged)."""
    return xp.array(a) if isinstance(a, np.ndarray) else a


def host(r):
    if isinstance(r, tuple):
        return tuple(host(v) for v in r)
    if r is None or isinstance(r, np.ndarray):
        return r
    return r.get() if hasattr(r, "get") else np.asarray(r)


def pair(xp, name, *args, **kwargs):
    """(CUDA result on the host, CPU result) of ``<module>.<function>`` on the same inputs."""
    mod, fn = name.split(".")
    gpu = getattr(importlib.import_module(f"kernels.cuda.{mod}"), fn)
    cpu = getattr(importlib.import_module(f"kernels.cpu.{mod}"), fn)
    got = gpu(*(dev(xp, a) for a in args), **{k: dev(xp, v) for k, v in kwargs.items()})
    return host(got), cpu(*args, **kwargs)


def close(actual, expected, exact=False):
    """Elementwise agreement within TOL of the expected dtype (scaled by its magnitude)."""
    if isinstance(expected, tuple):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            close(a, e, exact)
        return
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if exact or expected.dtype.kind not in "f":
        np.testing.assert_array_equal(actual, expected)
        return
    rtol, atol = TOL[expected.dtype]
    finite = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


def rand(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ----------------------------------------------------------------------------- im2col

IM2COL_CASES = [  # x shape, kernel, stride, pad, dilate
    ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 2, 8, 7), (2, 3), (2, 3), (1, 2), (2, 1)),
    ((1, 4, 5, 5), (5, 5), (1, 1), (0, 0), (1, 1)),
    ((2, 1, 6, 11), (1, 3), (1, 2), (0, 3), (1, 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", IM2COL_CASES)
@pytest.mark.parametrize("merged", [False, True])
def test_im2col_col2im(xp, rng, dtype, case, merged):
    shape, k, s, p, d = case
    x = rand(rng, shape, dtype)
    got, want = pair(xp, "im2col.im2col", x, k, s, p, d, merged=merged)
    close(got, want, exact=True)
    close(*pair(xp, "im2col.col2im", want, shape, k, s, p, d))


# ----------------------------------------------------------------------------- conv2d

CONV_CASES = {  # x shape, w shape, stride, pad, dilate, groups
    "3x3_pad1": ((2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    "odd_stride_dilate": ((3, 4, 8, 7), (6, 4, 2, 3), (2, 3), (1, 2), (2, 1), 1),
    "groups2": ((2, 4, 6, 5), (6, 2, 3, 3), (2, 1), (1, 1), (1, 2), 2),
    "depthwise": ((2, 4, 6, 6), (4, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4),
    "depthwise_x2_stride2_dilate2": ((2, 3, 9, 8), (6, 1, 3, 3), (2, 2), (1, 1), (2, 2), 3),
    "1x1": ((3, 5, 4, 6), (7, 5, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    "1x1_stride2": ((2, 3, 5, 5), (4, 3, 1, 1), (2, 2), (0, 0), (1, 1), 1),
    "kernel_fills_input": ((2, 2, 3, 3), (3, 2, 3, 3), (1, 1), (0, 0), (1, 1), 1),
}


def _conv_inputs(rng, case, dtype):
    xs, ws, s, p, d, g = case
    return rand(rng, xs, dtype), rand(rng, ws, dtype), rand(rng, ws[0], dtype), s, p, d, g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv2d_forward(xp, rng, dtype, name):
    x, w, b, s, p, d, g = _conv_inputs(rng, CONV_CASES[name], dtype)
    for bias, act in [(None, None), (b, None), (b, "relu")]:
        close(*pair(xp, "conv.conv2d_forward", x, w, bias, s, p, d, g, act=act))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv2d_backward(xp, rng, dtype, name):
    x, w, _, s, p, d, g = _conv_inputs(rng, CONV_CASES[name], dtype)
    from kernels.cpu import conv
    dy = rand(rng, conv.conv2d_forward(x, w, None, s, p, d, g).shape, dtype)
    close(*pair(xp, "conv.conv2d_backward_data", dy, w, x.shape, s, p, d, g))
    close(*pair(xp, "conv.conv2d_backward_weight", dy, x, w.shape, s, p, d, g))
    close(*pair(xp, "conv.conv2d_backward_bias", dy))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["odd_stride_dilate", "groups2", "1x1"])
@pytest.mark.parametrize("samples_per_chunk", [1, 2])
def test_conv2d_chunked(xp, rng, dtype, name, samples_per_chunk):
    """Batches split into chunks of samples (N=5: chunks 2+2+1 or 1+1+1+1+1)."""
    from kernels.cpu import conv as cconv
    from kernels.cuda import conv as gconv
    xs, ws, s, p, d, g = CONV_CASES[name]
    xs = (5,) + xs[1:]
    x, w, b = rand(rng, xs, dtype), rand(rng, ws, dtype), rand(rng, ws[0], dtype)
    plan = {op: gconv.plan_conv(op, xs, ws, s, p, d, g, dtype)._replace(chunk=samples_per_chunk)
            for op in ("forward", "data", "weight")}
    assert plan["forward"].algo in ("gemm", "1x1")
    y = cconv.conv2d_forward(x, w, b, s, p, d, g, act="relu")
    close(host(gconv.conv2d_forward(dev(xp, x), dev(xp, w), dev(xp, b), s, p, d, g, act="relu",
                                    plan=plan["forward"])), y)
    dy = rand(rng, y.shape, dtype)
    close(host(gconv.conv2d_backward_data(dev(xp, dy), dev(xp, w), xs, s, p, d, g,
                                          plan=plan["data"])),
          cconv.conv2d_backward_data(dy, w, xs, s, p, d, g))
    close(host(gconv.conv2d_backward_weight(dev(xp, dy), dev(xp, x), ws, s, p, d, g,
                                            plan=plan["weight"])),
          cconv.conv2d_backward_weight(dy, x, ws, s, p, d, g))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_out_buffers(xp, rng, dtype):
    from kernels.cuda import conv as gconv
    from kernels.cpu import conv as cconv
    x, w, b, s, p, d, g = _conv_inputs(rng, CONV_CASES["groups2"], dtype)
    want = cconv.conv2d_forward(x, w, b, s, p, d, g)
    out = xp.empty(want.shape, dtype)
    assert gconv.conv2d_forward(dev(xp, x), dev(xp, w), dev(xp, b), s, p, d, g, out=out) is out
    close(host(out), want)
    strided = xp.empty(want.shape[::-1], dtype).T  # non-contiguous: computed aside, copied in
    res = gconv.conv2d_forward(dev(xp, x), dev(xp, w), dev(xp, b), s, p, d, g, out=strided)
    assert res is strided
    close(host(strided), want)


# x shape, w shape (C_in, C_out // groups, kh, kw), stride, pad, dilate, adj, groups
TRANSPOSE_CASES = {
    "stride2": ((2, 4, 3, 4), (4, 3, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1),
    "groups2_dilate": ((2, 4, 4, 3), (4, 2, 3, 2), (1, 2), (1, 0), (2, 1), (0, 1), 2),
    "adj_ge_stride": ((1, 2, 3, 3), (2, 3, 2, 2), (1, 1), (0, 0), (1, 1), (1, 1), 1),
    "depthwise": ((2, 3, 4, 4), (3, 1, 3, 3), (2, 2), (1, 1), (1, 1), (0, 0), 3),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(TRANSPOSE_CASES))
def test_conv2d_transpose(xp, rng, dtype, name):
    xs, ws, s, p, d, adj, g = TRANSPOSE_CASES[name]
    x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
    b = rand(rng, ws[1] * g, dtype)
    y, want = pair(xp, "conv.conv2d_transpose_forward", x, w, b, s, p, d, adj, g)
    close(y, want)
    dy = rand(rng, want.shape, dtype)
    close(*pair(xp, "conv.conv2d_transpose_backward_data", dy, w, xs, s, p, d, g))
    close(*pair(xp, "conv.conv2d_transpose_backward_weight", dy, x, ws, s, p, d, g))
    close(*pair(xp, "conv.conv2d_transpose_backward_bias", dy))


# ----------------------------------------------------------------------------- pooling

POOL_CASES = [  # x shape, kernel, stride, pad, ceil_mode
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), False),
    ((2, 3, 7, 9), (3, 2), (2, 3), (1, 1), True),
    ((2, 2, 8, 8), (2, 2), (2, 2), (0, 0), False),   # the CPU's unrolled 2x2 path
    ((1, 2, 5, 6), (4, 4), (1, 1), (2, 2), True),    # pad = kernel/2: windows in the padding
    ((2, 1, 6, 7), (3, 3), (3, 3), (0, 0), True),    # ceil mode: a partial last window
    ((1, 2, 9, 5), (5, 1), (1, 2), (2, 0), False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d(xp, rng, dtype, case):
    shape, k, s, p, ceil = case
    x = rand(rng, shape, dtype)
    got, want = pair(xp, "pool.max_pool2d_forward", x, k, s, p, ceil)
    close(got, want, exact=True)
    close(*pair(xp, "pool.pool2d_forward", x, k, s, p, "max", ceil), exact=True)
    dy = rand(rng, want[0].shape, dtype)
    close(*pair(xp, "pool.max_pool2d_backward", dy, want[1], shape))


def test_max_pool2d_nan_rule(xp):
    """A NaN wins its window; with two NaNs the last one (row-major) is the index."""
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    got, want = pair(xp, "pool.max_pool2d_forward", x, (2, 2), (2, 2), 0)
    close(got, want, exact=True)
    assert np.isnan(got[0][0, 0, 0, 0]) and got[1][0, 0, 0, 0] == 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool2d(xp, rng, dtype, case, include_pad):
    shape, k, s, p, ceil = case
    x = rand(rng, shape, dtype)
    y, want = pair(xp, "pool.avg_pool2d_forward", x, k, s, p, ceil, include_pad)
    close(y, want)
    close(*pair(xp, "pool.pool2d_forward", x, k, s, p, "avg", ceil, include_pad))
    dy = rand(rng, want.shape, dtype)
    close(*pair(xp, "pool.avg_pool2d_backward", dy, shape, k, s, p, ceil, include_pad))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_size", [(3, 4), (7, 10), (1, 1), (5, 3), (9, 12)])
def test_adaptive_avg_pool2d(xp, rng, dtype, out_size):
    x = rand(rng, (2, 3, 7, 10), dtype)
    y, want = pair(xp, "pool.adaptive_avg_pool2d_forward", x, out_size)
    close(y, want)
    dy = rand(rng, want.shape, dtype)
    close(*pair(xp, "pool.adaptive_avg_pool2d_backward", dy, x.shape))


# ----------------------------------------------------------------------------- softmax family

SOFTMAX_CASES = [  # shape, axis: long rows (block per row), short rows, inner > 1, axis 0
    ((5, 300), -1), ((7, 10), -1), ((3, 4, 5, 6), 1), ((4, 9), 0), ((2, 3, 70), 2),
    ((6, 1), -1), ((2, 1000), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SOFTMAX_CASES)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax(xp, rng, dtype, case, fn):
    shape, axis = case
    x = rand(rng, shape, dtype, scale=3.0)
    y, want = pair(xp, f"softmax.{fn}", x, axis)
    close(y, want)
    dy = rand(rng, shape, dtype)
    close(*pair(xp, f"softmax.{fn}_backward", dy, want, axis))


def test_softmax_nan_row(xp):
    x = np.zeros((2, 100))
    x[0, 5] = np.nan
    y = pair(xp, "softmax.softmax", x)[0]
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()


def _labels(rng, shape, axis):
    ax = axis % len(shape)
    return rng.integers(0, shape[ax], shape[:ax] + shape[ax + 1:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SOFTMAX_CASES)
def test_cross_entropy_sparse(xp, rng, dtype, case):
    shape, axis = case
    x = rand(rng, shape, dtype, scale=3.0)
    lab = _labels(rng, shape, axis)
    for labels in (lab, lab.astype(dtype), lab.astype(np.int32)):
        got, want = pair(xp, "softmax.softmax_cross_entropy_forward", x, labels, axis)
        close(got, want)
    prob = want[1]
    dloss = rand(rng, want[0].shape, dtype)
    close(*pair(xp, "softmax.softmax_cross_entropy_backward", dloss, prob, lab, axis))
    close(*pair(xp, "softmax.softmax_cross_entropy_backward", 1.5, prob, lab, axis))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SOFTMAX_CASES)
def test_cross_entropy_dense(xp, rng, dtype, case):
    shape, axis = case
    x = rand(rng, shape, dtype, scale=3.0)
    label = rng.random(shape).astype(dtype)  # rows need not sum to one
    got, want = pair(xp, "softmax.softmax_cross_entropy_forward", x, label, axis, False)
    close(got, want)
    dloss = rand(rng, want[0].shape, dtype)
    close(*pair(xp, "softmax.softmax_cross_entropy_backward", dloss, want[1], label, axis, False))


def test_cross_entropy_large_logits(xp):
    """(m - x[label]) + log(s) keeps the loss exact next to logits of 1e4."""
    x = np.array([[1e4, 1e4 - 1.0, 0.0]], np.float32)
    got, want = pair(xp, "softmax.softmax_cross_entropy_forward", x, np.array([0]))
    close(got, want)
    assert abs(got[0][0] - np.log1p(np.exp(-1.0))) < 1e-6


def test_check_labels(xp):
    for lab, k in [(np.array([0, 1, 2.5, 7]), 3), (np.array([0, 1, 2]), 3),
                   (np.array([[0, 5], [2, -1]]), 3), (np.array([0.0, np.nan]), 3)]:
        got, want = pair(xp, "softmax.check_labels", lab, k)
        assert got == want or (np.isnan(got) and np.isnan(want))


# ----------------------------------------------------------------------------- normalization

BN_CASES = [((4, 3, 5, 6), 1), ((70, 37), 1), ((5, 6, 7), 2), ((3, 40), 0), ((2, 5, 3), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", BN_CASES)
def test_batch_norm(xp, rng, dtype, case):
    shape, axis = case
    C = shape[axis]
    x = rand(rng, shape, dtype, scale=2.0, shift=1.0)
    gamma, beta = rand(rng, C, dtype), rand(rng, C, dtype)
    got, want = pair(xp, "norm.batch_norm_train_forward", x, gamma, beta, 1e-5, axis)
    close(got, want)
    close(*pair(xp, "norm.batch_norm_train_forward", x, None, None, 1e-3, axis))
    rm, rv = rand(rng, C, dtype), (rng.random(C) + 0.5).astype(dtype)
    close(*pair(xp, "norm.batch_norm_infer_forward", x, gamma, beta, rm, rv, 1e-3, axis))
    _, mean, invstd = want
    dy = rand(rng, shape, dtype)
    close(*pair(xp, "norm.batch_norm_backward", dy, x, gamma, mean, invstd, axis))
    close(*pair(xp, "norm.batch_norm_backward", dy, x, None, mean, invstd, axis))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_update_running(xp, rng, dtype):
    from kernels.cpu import norm as cnorm
    from kernels.cuda import norm as gnorm
    rm, rv = rand(rng, 9, dtype), (rng.random(9) + 0.5).astype(dtype)
    mean, invstd = rand(rng, 9, dtype), (rng.random(9) + 0.5).astype(dtype)
    grm, grv = dev(xp, rm), dev(xp, rv)
    res = gnorm.batch_norm_update_running(grm, grv, dev(xp, mean), dev(xp, invstd), 1e-5, 0.9)
    assert res[0] is grm and res[1] is grv
    cnorm.batch_norm_update_running(rm, rv, mean, invstd, 1e-5, 0.9)
    close(host(grm), rm)
    close(host(grv), rv)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [((4, 3, 5, 6), -1), ((4, 3, 5, 6), 1), ((33, 300), -1),
                                  ((5, 7), 0), ((64, 40), 1)])
def test_layer_norm(xp, rng, dtype, case):
    shape, axis = case
    K = shape[axis]
    x = rand(rng, shape, dtype, scale=2.0, shift=1.0)
    gamma, beta = rand(rng, K, dtype), rand(rng, K, dtype)
    got, want = pair(xp, "norm.layer_norm_forward", x, gamma, beta, axis, 1e-5)
    close(got, want)
    dy = rand(rng, shape, dtype)
    close(*pair(xp, "norm.layer_norm_backward", dy, x, gamma, want[1], want[2], axis))
    close(*pair(xp, "norm.layer_norm_forward", x, None, None, axis, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (3, 4, 7), (2, 3, 1)])
def test_instance_norm(xp, rng, dtype, shape):
    x = rand(rng, shape, dtype, scale=2.0, shift=1.0)
    gamma, beta = rand(rng, shape[1], dtype), rand(rng, shape[1], dtype)
    got, want = pair(xp, "norm.instance_norm_forward", x, gamma, beta, 1e-5)
    close(got, want)
    dy = rand(rng, shape, dtype)
    close(*pair(xp, "norm.instance_norm_backward", dy, x, gamma, want[1], want[2]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_out_buffers(xp, rng, dtype):
    from kernels.cuda import norm as gnorm
    x = rand(rng, (3, 4, 5), dtype)
    outs = (xp.empty((3, 4, 5), dtype), xp.empty((3, 4), dtype), xp.empty((3, 4), dtype))
    res = gnorm.layer_norm_forward(dev(xp, x), None, None, -1, 1e-5, out=outs)
    assert all(r is o for r, o in zip(res, outs))
    outs = (xp.empty((3, 4, 5), dtype), xp.empty((4,), dtype), xp.empty((4,), dtype))
    res = gnorm.batch_norm_train_forward(dev(xp, x), None, None, 1e-5, 1, out=outs)
    assert all(r is o for r, o in zip(res, outs))


# ----------------------------------------------------------------------------- dropout / embedding

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_dropout_mask_matches_cpu_for_a_seed(xp, dtype, p):
    from kernels.cpu import misc as cmisc
    from kernels.cuda import misc as gmisc
    got = gmisc.dropout_mask((37, 29), p, np.random.default_rng(7), dtype)
    want = cmisc.dropout_mask((37, 29), p, np.random.default_rng(7), dtype)
    close(host(got), want, exact=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(xp, rng, dtype):
    w = rand(rng, (11, 4), dtype)
    idx = np.array([[0, 3, -1], [3, 3, 10]])  # repeated and negative indices
    for ii in (idx, idx.astype(np.float32), idx.astype(np.int32)):
        close(*pair(xp, "misc.embedding_forward", ii, w), exact=True)
    dy = rand(rng, (2, 3, 4), dtype)
    close(*pair(xp, "misc.embedding_backward", dy, idx, 11))


# ----------------------------------------------------------------------------- optimizers

OPTIM_CASES = [  # kernel, number of states, scalars
    ("sgd_update", 0, (0.1, 0.01, 0.5, 0.3)),
    ("sgd_mom_update", 1, (0.1, 0.9, 0.01, 0.5, -1.0)),
    ("nag_mom_update", 1, (0.1, 0.9, 0.01, 0.5, 0.2)),
    ("adam_update", 2, (0.01, 0.9, 0.999, 1e-8, 0.01, 1.0, -1.0)),
    ("adamw_update", 2, (0.01, 0.9, 0.999, 1e-8, 0.01, 1.0, 0.5, 0.7)),
    ("rmsprop_update", 1, (0.01, 0.9, 1e-8, 0.01, 1.0, -1.0, 0.8)),
    ("rmspropalex_update", 3, (0.01, 0.9, 0.9, 1e-8, 0.01, 1.0, -1.0, -1.0)),
    ("adagrad_update", 1, (0.01, 1e-7, 0.01, 1.0, 0.4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIM_CASES, ids=[c[0] for c in OPTIM_CASES])
def test_optimizer_update_bit_identical(xp, rng, dtype, case):
    from kernels.cpu import optim as coptim
    from kernels.cuda import optim as goptim
    name, nstates, scalars = case
    bufs = [rand(rng, 1001, dtype) for _ in range(2 + nstates)]
    if nstates:
        bufs[2] = np.abs(bufs[2])  # squared-gradient histories are non-negative
    bufs[1][3] = np.nan  # a NaN gradient passes through clipping, as on the CPU
    gbufs = [dev(xp, b) for b in bufs]
    for _ in range(3):
        assert getattr(goptim, name)(*gbufs, *scalars) is None
        getattr(coptim, name)(*bufs, *scalars)
    for g, c in zip(gbufs, bufs):
        np.testing.assert_array_equal(host(g), c)


def test_optimizer_takes_any_contiguous_shape(xp, rng):
    from kernels.cuda import optim as goptim
    w, g = rand(rng, (3, 4), np.float32), rand(rng, (3, 4), np.float32)
    gw = dev(xp, w)
    goptim.sgd_update(gw, dev(xp, g), 0.1, 0.0, 1.0, -1.0)
    close(host(gw), w - np.float32(0.1) * g)


# ----------------------------------------------------------------------------- bad input

def test_clear_errors(xp):
    from kernels.cuda import conv, optim, pool, softmax
    x = xp.zeros((1, 2, 3, 3), np.int32)
    with pytest.raises(ValueError, match=r"conv2d_forward: x has dtype int32 \(shape \(1, 2, 3, 3"):
        conv.conv2d_forward(x, xp.zeros((1, 2, 1, 1)), None, (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"conv2d_backward_data: dy has shape \(1, 2, 3, 3\)"):
        conv.conv2d_backward_data(xp.zeros((1, 2, 3, 3)), xp.zeros((1, 2, 1, 1)), (1, 2, 3, 3),
                                  (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"conv2d_transpose_forward: bias has shape \(3,\), "
                                         r"expected \(4,\)"):
        conv.conv2d_transpose_forward(xp.zeros((1, 2, 3, 3)), xp.zeros((2, 4, 3, 3)), xp.zeros(3),
                                      (1, 1), (0, 0), (1, 1), (0, 0), 1)
    with pytest.raises(ValueError, match=r"conv2d_forward: plan algorithm '1x1' needs a 1x1"):
        conv.conv2d_forward(xp.zeros((1, 2, 3, 3)), xp.zeros((1, 2, 3, 3)), None, (1, 1), (0, 0),
                            (1, 1), 1, plan=conv.ConvPlan("1x1"))
    with pytest.raises(ValueError, match=r"softmax: out \(shape \(2, 3\)\) must be C-contiguous"):
        softmax.softmax(xp.zeros((2, 3)), out=xp.zeros((3, 2)).T)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: idx has shape"):
        pool.max_pool2d_backward(xp.zeros((1, 1, 2, 2)), xp.zeros((1, 1, 2, 2)), (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"adam_update: var \(shape \(4,\)\) must be C-contiguous"):
        w = xp.zeros(4)
        optim.adam_update(w, w.copy(), w.copy(), xp.zeros(8)[::2], 0.1, 0.9, 0.99, 1e-8, 0, 1, -1)
    if not EMULATE:
        with pytest.raises(ValueError, match=r"softmax: x must be a CuPy array on the GPU"):
            softmax.softmax(np.zeros((2, 3), np.float32))
