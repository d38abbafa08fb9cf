"""Convolution kernels against a plain NumPy (float64) reference, adjoint identities and torch."""
import numpy as np
import pytest

from kernels.composed.conv_plan import is_1x1
from kernels.cpu import conv, winograd

# ------------------------------------------------------------------ reference


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _taps(x_shape, w_shape, stride, pad, dilate):
    """Yield (i, j, row slice, col slice) selecting, in the padded input, the
    pixels that kernel tap (i, j) multiplies for every output position."""
    _, _, H, W = x_shape
    kh, kw = w_shape[2:]
    (sh, sw), (dh, dw) = stride, dilate
    OH, OW = _out(H, kh, sh, pad[0], dh), _out(W, kw, sw, pad[1], dw)
    for i in range(kh):
        for j in range(kw):
            yield (i, j, slice(i * dh, i * dh + sh * (OH - 1) + 1, sh),
                   slice(j * dw, j * dw + sw * (OW - 1) + 1, sw))


def _pad(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))


def ref_conv(x, w, b, stride, pad, dilate, groups, relu=False):
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg = w.shape[:2]
    Kg = K // groups
    xp = _pad(x, pad)
    OH = _out(H, w.shape[2], stride[0], pad[0], dilate[0])
    OW = _out(W, w.shape[3], stride[1], pad[1], dilate[1])
    y = np.zeros((N, K, OH, OW))
    for g in range(groups):
        xg, wg = xp[:, g * Cg:(g + 1) * Cg], w[g * Kg:(g + 1) * Kg]
        for i, j, rs, cs in _taps(x.shape, w.shape, stride, pad, dilate):
            y[:, g * Kg:(g + 1) * Kg] += np.einsum("nchw,kc->nkhw", xg[:, :, rs, cs],
                                                   wg[:, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return np.maximum(y, 0) if relu else y


def ref_conv_backward_data(dy, w, x_shape, stride, pad, dilate, groups):
    dy, w = dy.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x_shape
    K, Cg = w.shape[:2]
    Kg = K // groups
    dxp = np.zeros((N, C, H + 2 * pad[0], W + 2 * pad[1]))
    for g in range(groups):
        dyg, wg = dy[:, g * Kg:(g + 1) * Kg], w[g * Kg:(g + 1) * Kg]
        for i, j, rs, cs in _taps(x_shape, w.shape, stride, pad, dilate):
            dxp[:, g * Cg:(g + 1) * Cg, rs, cs] += np.einsum("nkhw,kc->nchw", dyg, wg[:, :, i, j])
    return dxp[:, :, pad[0]:pad[0] + H, pad[1]:pad[1] + W]


def ref_conv_backward_weight(dy, x, w_shape, stride, pad, dilate, groups):
    dy, x = dy.astype(np.float64), x.astype(np.float64)
    K, Cg = w_shape[:2]
    Kg = K // groups
    xp = _pad(x, pad)
    dw = np.zeros(w_shape)
    for g in range(groups):
        dyg, xg = dy[:, g * Kg:(g + 1) * Kg], xp[:, g * Cg:(g + 1) * Cg]
        for i, j, rs, cs in _taps(x.shape, w_shape, stride, pad, dilate):
            dw[g * Kg:(g + 1) * Kg, :, i, j] = np.einsum("nkhw,nchw->kc", dyg, xg[:, :, rs, cs])
    return dw


# -------------------------------------------------------------------- cases

# (N, C, H, W, K, kernel, stride, pad, dilate, groups)
CASES = [
    (2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # odd sizes
    (1, 4, 8, 8, 6, (3, 3), (1, 1), (0, 0), (1, 1), 1),  # batch 1
    (2, 3, 9, 11, 5, (3, 2), (2, 3), (1, 0), (2, 1), 1),  # stride, dilation, non-square
    (2, 2, 8, 8, 3, (2, 2), (3, 3), (0, 0), (1, 1), 1),  # stride > kernel
    (1, 2, 5, 6, 3, (3, 3), (1, 2), (4, 3), (1, 1), 1),  # padding larger than the kernel
    (2, 4, 7, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2),  # groups = 2
    (2, 4, 9, 8, 4, (3, 3), (2, 2), (1, 1), (1, 1), 4),  # depthwise, stride 2
    (2, 3, 7, 7, 6, (5, 5), (1, 1), (2, 2), (2, 2), 3),  # depthwise x2 multiplier, dilated
    (2, 6, 5, 7, 4, (1, 1), (1, 1), (0, 0), (1, 1), 2),  # 1x1, grouped
    (3, 5, 4, 4, 7, (1, 1), (1, 1), (0, 0), (1, 1), 1),  # 1x1
    (2, 1, 10, 10, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # single input channel
    (2, 8, 12, 12, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # GEMM-sized
]
CASE_IDS = ["N{}C{}{}x{}K{}k{}s{}p{}d{}g{}".format(*c).replace(" ", "") for c in CASES]


def _algos_for(case):
    kernel, stride, pad, dilate, groups = case[5:10]
    algos = ["gemm", "direct"]
    if is_1x1(kernel, stride, pad):
        algos.append("1x1")
    if winograd.applicable((case[4], case[1] // groups) + kernel, stride, dilate, groups):
        algos.append("winograd")  # the weight gradient falls back to "direct"
    return algos


PARAMS = [pytest.param(c, a, id=f"{i}-{a}") for c, i in zip(CASES, CASE_IDS) for a in _algos_for(c)]

TOL = {np.float32: 2e-4, np.float64: 1e-10}


def _make(case, dtype, seed=0):
    N, C, H, W, K, kernel, stride, pad, dilate, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups) + kernel).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, (stride, pad, dilate, groups)


def _close(got, expected, dtype):
    # Scale by the largest magnitude so float32 sums of many terms compare fairly.
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def _plan(op, x_shape, w_shape, attrs, dtype, **fields):
    """plan_conv's plan for the pass with ``fields`` replaced (an algorithm or kernel forced)."""
    return conv.plan_conv(op, x_shape, w_shape, *attrs, dtype)._replace(**fields)


def _forced(x, w, attrs, algo, **fields):
    """Plans of the three passes forcing ``algo`` (Winograd has no weight gradient: "direct")."""
    return {op: _plan(op, x.shape, w.shape, attrs, x.dtype,
                      algo="direct" if op == "weight" and algo == "winograd" else algo, **fields)
            for op in ("forward", "data", "weight")}


# --------------------------------------------------------------------- conv2d


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case,algo", PARAMS)
def test_forward(case, algo, dtype):
    x, w, b, attrs = _make(case, dtype)
    plan = _forced(x, w, attrs, algo)["forward"]
    for bias, act in [(None, None), (b, None), (b, "relu"), (None, "relu")]:
        y = conv.conv2d_forward(x, w, bias, *attrs, act=act, plan=plan)
        assert y.dtype == dtype
        _close(y, ref_conv(x, w, bias, *attrs, relu=act == "relu"), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case,algo", PARAMS)
def test_backward(case, algo, dtype):
    x, w, b, attrs = _make(case, dtype)
    plans = _forced(x, w, attrs, algo)
    dy = np.random.default_rng(1).standard_normal(ref_conv(x, w, None, *attrs).shape).astype(dtype)
    dx = conv.conv2d_backward_data(dy, w, x.shape, *attrs, plan=plans["data"])
    dw = conv.conv2d_backward_weight(dy, x, w.shape, *attrs, plan=plans["weight"])
    db = conv.conv2d_backward_bias(dy)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    _close(dx, ref_conv_backward_data(dy, w, x.shape, *attrs), dtype)
    _close(dw, ref_conv_backward_weight(dy, x, w.shape, *attrs), dtype)
    _close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), dtype)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_adjoint_identities(case):
    """conv is linear in x and in w: <conv(x; w), dy> = <x, dX(dy)> = <w, dW(dy, x)>."""
    x, w, _, attrs = _make(case, np.float64)
    y = conv.conv2d_forward(x, w, None, *attrs)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    lhs = np.vdot(y, dy)
    assert np.vdot(x, conv.conv2d_backward_data(dy, w, x.shape, *attrs)) == pytest.approx(lhs)
    assert np.vdot(w, conv.conv2d_backward_weight(dy, x, w.shape, *attrs)) == pytest.approx(lhs)


def test_reference_against_finite_differences():
    """The test's own reference gradients, checked once by central differences."""
    case = CASES[2]
    x, w, b, attrs = _make(case, np.float64)
    dy = np.random.default_rng(3).standard_normal(ref_conv(x, w, b, *attrs).shape)
    loss = lambda x_, w_: np.vdot(ref_conv(x_, w_, b, *attrs), dy)  # noqa: E731
    dx = ref_conv_backward_data(dy, w, x.shape, *attrs)
    dw = ref_conv_backward_weight(dy, x, w.shape, *attrs)
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 4, 5), (0, 1, 8, 10)]:
        e = np.zeros_like(x)
        e[idx] = eps
        assert (loss(x + e, w) - loss(x - e, w)) / (2 * eps) == pytest.approx(dx[idx], abs=1e-6)
    for idx in [(0, 0, 0, 0), (4, 2, 2, 1)]:
        e = np.zeros_like(w)
        e[idx] = eps
        assert (loss(x, w + e) - loss(x, w - e)) / (2 * eps) == pytest.approx(dw[idx], abs=1e-6)


@pytest.mark.parametrize("chunk", [1, 2])
def test_chunked_gemm_path(chunk):
    """Several chunks of samples per GEMM (5 = 1+1+1+1+1 or 2+2+1, and the per-chunk
    accumulation of dw) agree with the reference."""
    case = (5, 3, 9, 9, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    x, w, b, attrs = _make(case, np.float64)
    dy = np.random.default_rng(4).standard_normal((5, 4, 9, 9))
    for algo in ["gemm", "1x1"]:
        ww = w[:, :, :1, :1].copy() if algo == "1x1" else w
        p = (0, 0) if algo == "1x1" else (1, 1)
        a = ((1, 1), p, (1, 1), 1)
        plans = _forced(x, ww, a, algo, chunk=chunk)
        _close(conv.conv2d_forward(x, ww, b, *a, act="relu", plan=plans["forward"]),
               ref_conv(x, ww, b, *a, relu=True), np.float64)
        _close(conv.conv2d_backward_data(dy, ww, x.shape, *a, plan=plans["data"]),
               ref_conv_backward_data(dy, ww, x.shape, *a), np.float64)
        _close(conv.conv2d_backward_weight(dy, x, ww.shape, *a, plan=plans["weight"]),
               ref_conv_backward_weight(dy, x, ww.shape, *a), np.float64)


def test_out_buffers():
    x, w, b, attrs = _make(CASES[0], np.float32)
    y = np.empty((2, 4, 7, 9), np.float32)
    assert conv.conv2d_forward(x, w, b, *attrs, out=y) is y
    _close(y, ref_conv(x, w, b, *attrs), np.float32)
    # A non-contiguous out is filled too.
    big = np.zeros((2, 4, 7, 18), np.float32)
    res = conv.conv2d_forward(x, w, b, *attrs, out=big[..., ::2])
    assert np.shares_memory(res, big)
    _close(big[..., ::2], y, np.float32)
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty(4, np.float32)
    assert conv.conv2d_backward_data(y, w, x.shape, *attrs, out=dx) is dx
    assert conv.conv2d_backward_weight(y, x, w.shape, *attrs, out=dw) is dw
    assert conv.conv2d_backward_bias(y, out=db) is db


def test_unknown_activation():
    x, w, b, attrs = _make(CASES[0], np.float32)
    with pytest.raises(ValueError, match="activation"):
        conv.conv2d_forward(x, w, b, *attrs, act="gelu")


def test_algo_choice():
    def algo(x_shape, w_shape, pad, groups, op="forward", stride=(1, 1)):
        return conv.plan_conv(op, x_shape, w_shape, stride, pad, (1, 1), groups).algo

    assert algo((8, 16, 8, 8), (32, 16, 1, 1), (0, 0), 1) == "1x1"
    assert algo((8, 16, 8, 8), (16, 1, 3, 3), (1, 1), 16) == "direct"  # depthwise
    assert algo((8, 1, 28, 28), (32, 1, 3, 3), (1, 1), 1) == "direct"  # one input channel
    # strided backward-data: col2im unless the columns are tiny
    assert algo((8, 64, 8, 8), (64, 64, 3, 3), (1, 1), 1, "data", (2, 2)) == "gemm"
    if conv._cext() is None:
        assert algo((8, 64, 8, 8), (64, 64, 3, 3), (1, 1), 1) == "gemm"
    else:
        assert algo((8, 64, 8, 8), (64, 64, 3, 3), (1, 1), 1) == "direct"
        # a big weight gradient (per-thread partial sums) goes to GEMM
        assert algo((8, 512, 7, 7), (512, 512, 3, 3), (1, 1), 1, "weight") == "gemm"
        # a few output pixels per sample and long columns (ResNet's last stage): one GEMM
        assert algo((16, 512, 2, 2), (512, 512, 3, 3), (1, 1), 1) == "gemm"
        assert algo((16, 512, 2, 2), (512, 512, 3, 3), (1, 1), 1, "data") == "gemm"
        assert algo((16, 256, 4, 4), (512, 256, 3, 3), (1, 1), 1, "forward", (2, 2)) == "gemm"
        assert algo((16, 256, 4, 4), (256, 256, 3, 3), (1, 1), 1) == "direct"
        assert algo((16, 128, 7, 7), (256, 128, 3, 3), (1, 1), 1, "weight", (2, 2)) == "gemm"
        assert algo((16, 128, 7, 7), (128, 128, 3, 3), (1, 1), 1, "weight") == "direct"


@pytest.mark.skipif(conv._cext() is None, reason="needs the C++ extension")
def test_direct_impl_choice():
    def impl(op, x_shape, w_shape, stride=(1, 1), pad=(1, 1), groups=1):
        return conv.plan_conv(op, x_shape, w_shape, stride, pad, (1, 1), groups).impl

    assert impl("forward", (8, 1, 28, 28), (32, 1, 3, 3)) == "vw"  # short reduction
    assert impl("forward", (8, 32, 14, 14), (32, 32, 5, 5), pad=(0, 0)) == "vk"
    assert impl("forward", (8, 3, 64, 64), (64, 3, 7, 7), (2, 2)) == "vk"  # strided
    assert impl("forward", (8, 16, 28, 28), (1, 16, 3, 3)) == "numba"  # one output channel
    assert impl("data", (8, 1, 28, 28), (32, 1, 3, 3)) == "numba"  # dx has one channel
    assert impl("data", (8, 32, 14, 14), (32, 32, 5, 5), pad=(0, 0)) == "vk"
    assert impl("data", (8, 32, 14, 14), (32, 32, 5, 5), (2, 2)) == "numba"
    assert impl("weight", (8, 64, 28, 28), (64, 4, 3, 3), groups=16) == "vw"  # 4 channels/group
    assert impl("forward", (8, 16, 8, 8), (16, 1, 3, 3), groups=16) == "numba"  # depthwise


# ------------------------------------------------------------ transposed conv

# (N, C_in, H, W, C_out, kernel, stride, pad, dilate, output_padding, groups)
TCASES = [
    (2, 3, 4, 5, 4, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 5, 5, 6, (4, 4), (2, 2), (1, 1), (1, 1), (0, 0), 2),
    (2, 2, 3, 4, 3, (3, 2), (1, 3), (0, 1), (2, 1), (0, 2), 1),
    (2, 4, 6, 6, 4, (3, 3), (1, 1), (1, 1), (2, 2), (1, 1), 4),  # output_padding >= stride
    (2, 2, 5, 5, 3, (1, 1), (1, 1), (0, 0), (1, 1), (0, 0), 1),
]
TCASE_IDS = [f"t{i}" for i in range(len(TCASES))]


def _make_t(case, dtype, seed=0):
    N, Cin, H, W, Cout, kernel, stride, pad, dilate, opad, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, Cin, H, W)).astype(dtype)
    w = rng.standard_normal((Cin, Cout // groups) + kernel).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype)
    OH = (H - 1) * stride[0] - 2 * pad[0] + dilate[0] * (kernel[0] - 1) + opad[0] + 1
    OW = (W - 1) * stride[1] - 2 * pad[1] + dilate[1] * (kernel[1] - 1) + opad[1] + 1
    return x, w, b, (N, Cout, OH, OW), (stride, pad, dilate), opad, groups


def ref_conv_transpose(x, w, b, y_shape, attrs, groups):
    """The transposed conv is the input-gradient of the conv it transposes,
    computed here by brute force on a y big enough for any output_padding."""
    stride, pad, dilate = attrs
    N, Cout, OH, OW = y_shape
    H, W = x.shape[2:]
    # Rows/cols of y beyond the conv's reach get no contribution: pad x to the
    # conv output size of y and use the reference backward-data.
    fh = _out(OH, w.shape[2], stride[0], pad[0], dilate[0])
    fw = _out(OW, w.shape[3], stride[1], pad[1], dilate[1])
    xx = np.zeros((N, x.shape[1], fh, fw))
    xx[:, :, :H, :W] = x
    y = ref_conv_backward_data(xx, w, y_shape, stride, pad, dilate, groups)
    return y + b.reshape(1, -1, 1, 1) if b is not None else y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TCASES, ids=TCASE_IDS)
def test_transpose_forward(case, dtype):
    x, w, b, y_shape, attrs, opad, groups = _make_t(case, dtype)
    for bias in (None, b):
        y = conv.conv2d_transpose_forward(x, w, bias, *attrs, opad, groups)
        assert y.shape == y_shape and y.dtype == dtype
        _close(y, ref_conv_transpose(x, w, bias, y_shape, attrs, groups), dtype)


def test_transpose_forward_checks_bias_shape():
    """The bias check is the shared composition's (kernels/composed/conv_gemm.py), as on the GPU."""
    x, w, b, y_shape, attrs, opad, groups = _make_t(TCASES[0], np.float32)
    with pytest.raises(ValueError, match=r"conv2d_transpose_forward: bias has shape \(3,\), "
                                         r"expected \(4,\)"):
        conv.conv2d_transpose_forward(x, w, b[:3], *attrs, opad, groups)


@pytest.mark.parametrize("case", TCASES, ids=TCASE_IDS)
def test_transpose_backward_adjoint(case):
    x, w, b, y_shape, attrs, opad, groups = _make_t(case, np.float64)
    y = conv.conv2d_transpose_forward(x, w, None, *attrs, opad, groups)
    dy = np.random.default_rng(5).standard_normal(y.shape)
    lhs = np.vdot(y, dy)
    dx = conv.conv2d_transpose_backward_data(dy, w, x.shape, *attrs, groups)
    dw = conv.conv2d_transpose_backward_weight(dy, x, w.shape, *attrs, groups)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert np.vdot(x, dx) == pytest.approx(lhs)
    assert np.vdot(w, dw) == pytest.approx(lhs)
    np.testing.assert_allclose(conv.conv2d_transpose_backward_bias(dy), dy.sum(axis=(0, 2, 3)))


# ---------------------------------------------------------------------- torch


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_against_torch_conv2d(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, (stride, pad, dilate, groups) = _make(case, np.float32)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = F.conv2d(tx, tw, tb, stride, pad, dilate, groups)
    dy = np.random.default_rng(7).standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    attrs = (stride, pad, dilate, groups)
    _close(conv.conv2d_forward(x, w, b, *attrs), ty.detach().numpy(), np.float32)
    _close(conv.conv2d_backward_data(dy, w, x.shape, *attrs), tx.grad.numpy(), np.float32)
    _close(conv.conv2d_backward_weight(dy, x, w.shape, *attrs), tw.grad.numpy(), np.float32)
    _close(conv.conv2d_backward_bias(dy), tb.grad.numpy(), np.float32)


@pytest.mark.torch
@pytest.mark.parametrize("case", TCASES, ids=TCASE_IDS)
def test_against_torch_conv_transpose2d(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, y_shape, (stride, pad, dilate), opad, groups = _make_t(case, np.float32)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = F.conv_transpose2d(tx, tw, torch.tensor(b), stride, pad, opad, groups, dilate)
    assert tuple(ty.shape) == y_shape
    dy = np.random.default_rng(8).standard_normal(y_shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    attrs = (stride, pad, dilate)
    _close(conv.conv2d_transpose_forward(x, w, b, *attrs, opad, groups), ty.detach().numpy(),
           np.float32)
    _close(conv.conv2d_transpose_backward_data(dy, w, x.shape, *attrs, groups), tx.grad.numpy(),
           np.float32)
    _close(conv.conv2d_transpose_backward_weight(dy, x, w.shape, *attrs, groups),
           tw.grad.numpy(), np.float32)


@pytest.mark.parametrize("kernel,groups", [((3, 3), 1), ((1, 1), 1), ((3, 3), 4)])
def test_empty_batch(kernel, groups):
    x = np.zeros((0, 4, 6, 6), np.float32)
    w = np.ones((8, 4 // groups) + kernel, np.float32)
    attrs = ((1, 1), (kernel[0] // 2,) * 2, (1, 1), groups)
    y = conv.conv2d_forward(x, w, np.ones(8, np.float32), *attrs)
    assert y.shape == (0, 8, 6, 6)
    assert conv.conv2d_backward_data(y, w, x.shape, *attrs).shape == x.shape
    np.testing.assert_array_equal(conv.conv2d_backward_weight(y, x, w.shape, *attrs), 0)
    np.testing.assert_array_equal(conv.conv2d_backward_bias(y), 0)


def test_gemm_path_with_numba_im2col_fallback(monkeypatch):
    from kernels.cpu import im2col as im2col_mod

    monkeypatch.setattr(im2col_mod, "_ext", None)
    monkeypatch.setattr(im2col_mod, "_warned", True)  # the warning has its own test
    case = CASES[2]
    x, w, b, attrs = _make(case, np.float64)
    plans = _forced(x, w, attrs, "gemm")
    y = conv.conv2d_forward(x, w, b, *attrs, plan=plans["forward"])
    _close(y, ref_conv(x, w, b, *attrs), np.float64)
    _close(conv.conv2d_backward_data(y, w, x.shape, *attrs, plan=plans["data"]),
           ref_conv_backward_data(y, w, x.shape, *attrs), np.float64)
    _close(conv.conv2d_backward_weight(y, x, w.shape, *attrs, plan=plans["weight"]),
           ref_conv_backward_weight(y, x, w.shape, *attrs), np.float64)


@pytest.mark.parametrize("algo", ["gemm", "direct", "1x1"])
def test_relu_epilogue_keeps_nan(algo):
    """A NaN must reach the user (as with np.maximum), not be hidden as 0."""
    x = np.ones((3, 2, 4, 4), np.float32)  # 3 samples: merged chunks too
    x[1, 0, 0, 0] = np.nan
    k = (1, 1) if algo == "1x1" else (3, 3)
    w = np.ones((2, 2) + k, np.float32)
    p = (k[0] // 2,) * 2
    plan = _forced(x, w, ((1, 1), p, (1, 1), 1), algo)["forward"]
    y = conv.conv2d_forward(x, w, None, (1, 1), p, (1, 1), 1, act="relu", plan=plan)
    assert np.isnan(y[1, :, 0, 0]).all() and not np.isnan(y[0]).any()


# ------------------------------------------------- C++ direct kernels (vk / vw)
# Every layout on every instruction-set copy this CPU can run, against the
# float64 reference, including the multi-threaded path.

_ISAS = list(range(conv._cext().direct_isa() + 1)) if conv._cext() is not None else []


def test_the_extension_is_built():
    """The install builds the C++ extension (setup.py); its absence is a broken build, not an
    optional part (the skips below only guard running this file against a source tree)."""
    assert conv._cext() is not None and _ISAS, 'kernels.cpu._im2col is missing or lacks the direct kernels'

DCASES = CASES + [
    (2, 5, 9, 30, 40, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # 2 channel blocks, wide rows
    (1, 3, 7, 19, 17, (3, 5), (1, 1), (2, 1), (1, 2), 1),  # 17 = 16 + 1 channels, vw overlap
    (1, 2, 5, 6, 3, (3, 3), (1, 1), (3, 4), (1, 1), 1),  # pad > kernel: dx crops (negative pad)
    (2, 4, 12, 13, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2),  # groups, 3 channels per group
    (1, 3, 30, 31, 20, (7, 7), (2, 2), (3, 3), (1, 1), 1),  # 7x7 stride 2
    (3, 2, 1, 40, 5, (1, 5), (1, 1), (0, 2), (1, 1), 1),  # a conv1d shape (H = 1)
    (2, 6, 10, 10, 9, (2, 2), (1, 1), (0, 0), (1, 1), 3),  # even kernel
]
DCASE_IDS = ["N{}C{}{}x{}K{}k{}s{}p{}d{}g{}".format(*c).replace(" ", "") for c in DCASES]


def _direct(x, w, attrs, impl, isa=-1, parallel=None):
    """Plans of the three passes forcing direct kernel ``impl`` where the pass can run it: the
    C++ backward-data kernels need stride 1 (else the Numba loops run), "vw" stride 1 along W
    (else "vk"). ``parallel``: all threads (True), one (False), or as plan_conv decides."""
    stride = tuple(attrs[0])
    plans = {}
    for op in ("forward", "data", "weight"):
        kernel = impl
        if impl != "numba" and op == "data" and stride != (1, 1):
            kernel = "numba"
        elif impl == "vw" and stride[1] != 1:
            kernel = "vk"
        fields = dict(algo="direct", impl=kernel, isa=isa)
        if parallel is not None:
            fields["parallel"] = parallel
        plans[op] = _plan(op, x.shape, w.shape, attrs, x.dtype, **fields)
    return plans


def _check_passes(x, w, b, attrs, plans, dy_seed=1, acts=((None, None), ("b", "relu"))):
    """Forward (with the given bias / activation pairs), backward-data and backward-weight by
    ``plans`` against the float64 reference."""
    dtype = x.dtype.type
    for bias, act in acts:
        bias = b if bias == "b" else None
        _close(conv.conv2d_forward(x, w, bias, *attrs, act=act, plan=plans["forward"]),
               ref_conv(x, w, bias, *attrs, relu=act == "relu"), dtype)
    dy = np.random.default_rng(dy_seed).standard_normal(ref_conv(x, w, None, *attrs).shape)
    dy = dy.astype(dtype)
    _close(conv.conv2d_backward_data(dy, w, x.shape, *attrs, plan=plans["data"]),
           ref_conv_backward_data(dy, w, x.shape, *attrs), dtype)
    _close(conv.conv2d_backward_weight(dy, x, w.shape, *attrs, plan=plans["weight"]),
           ref_conv_backward_weight(dy, x, w.shape, *attrs), dtype)


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
@pytest.mark.parametrize("isa", _ISAS)
@pytest.mark.parametrize("impl", ["vk", "vw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", DCASES, ids=DCASE_IDS)
def test_direct_kernels(case, dtype, impl, isa):
    """Forward (with bias / ReLU), backward-data and backward-weight."""
    x, w, b, attrs = _make(case, dtype)
    _check_passes(x, w, b, attrs, _direct(x, w, attrs, impl, isa, True if isa == _ISAS[-1] else None))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", DCASES, ids=DCASE_IDS)
def test_numba_direct_kernels(case, dtype):
    """The Numba loops (depthwise convs, and everything when the extension is not built)."""
    x, w, b, attrs = _make(case, dtype)
    _check_passes(x, w, b, attrs, _direct(x, w, attrs, "numba"), acts=(("b", "relu"),))


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
@pytest.mark.parametrize("impl", ["vk", "vw"])
def test_direct_kernels_larger_parallel(impl):
    """Many work items over several threads (partial weight sums reduced across
    threads), several tiles per row and channel blocks, float32 against float64."""
    case = (5, 24, 21, 37, 48, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    x, w, b, attrs = _make(case, np.float32)
    plans = _direct(x, w, attrs, impl, parallel=True)
    _check_passes(x, w, b, attrs, plans, dy_seed=5, acts=(("b", "relu"),))
    dy = np.random.default_rng(5).standard_normal((5, 48, 21, 37)).astype(np.float32)
    dw = conv.conv2d_backward_weight(dy, x, w.shape, *attrs, plan=plans["weight"])
    # per-thread partial sums are reduced in a fixed order: bit-identical reruns
    for _ in range(3):
        np.testing.assert_array_equal(
            conv.conv2d_backward_weight(dy, x, w.shape, *attrs, plan=plans["weight"]), dw)


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
@pytest.mark.parametrize("impl", ["vk", "vw"])
def test_direct_kernels_finite_differences(impl, numgrad):
    """float64 gradients of the C++ path against central differences of its own forward."""
    case = (2, 3, 6, 7, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    x, w, b, attrs = _make(case, np.float64)
    plans = _direct(x, w, attrs, impl)
    dy = np.random.default_rng(6).standard_normal((2, 4, 6, 7))
    dx = conv.conv2d_backward_data(dy, w, x.shape, *attrs, plan=plans["data"])
    dw = conv.conv2d_backward_weight(dy, x, w.shape, *attrs, plan=plans["weight"])
    fx = lambda x_: np.vdot(conv.conv2d_forward(x_, w, b, *attrs, plan=plans["forward"]), dy)  # noqa: E731
    fw = lambda w_: np.vdot(conv.conv2d_forward(x, w_, b, *attrs, plan=plans["forward"]), dy)  # noqa: E731
    np.testing.assert_allclose(dx, numgrad(fx, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dw, numgrad(fw, w), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
def test_direct_relu_keeps_nan():
    for impl in ["vk", "vw"]:
        x = np.ones((3, 2, 4, 4), np.float32)
        x[1, 0, 0, 0] = np.nan
        w = np.ones((2, 2, 3, 3), np.float32)
        attrs = ((1, 1), (1, 1), (1, 1), 1)
        y = conv.conv2d_forward(x, w, None, *attrs, act="relu",
                                plan=_direct(x, w, attrs, impl)["forward"])
        assert np.isnan(y[1, :, 0, 0]).all() and not np.isnan(y[0]).any()


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
def test_direct_extension_errors():
    ext = conv._cext()
    x = np.zeros((1, 4, 6, 6), np.float32)
    w = np.zeros((8, 4, 3, 3), np.float32)
    y = np.zeros((1, 8, 4, 4), np.float32)
    ext.conv2d_direct(x, w, None, 1, 1, 0, 0, 1, 1, 1, False, y, "vk", -1, 1)
    with pytest.raises(ValueError, match="variant"):
        ext.conv2d_direct(x, w, None, 1, 1, 0, 0, 1, 1, 1, False, y, "vx", -1, 1)
    with pytest.raises(ValueError, match="stride 1"):
        ext.conv2d_direct(x, w, None, 2, 2, 0, 0, 1, 1, 1, False, np.zeros((1, 8, 2, 2), np.float32),
                          "vw", -1, 1)
    with pytest.raises(ValueError, match="isa"):
        ext.conv2d_direct(x, w, None, 1, 1, 0, 0, 1, 1, 1, False, y, "vk", 3, 1)
    with pytest.raises(ValueError, match="out has shape"):
        ext.conv2d_direct(x, w, None, 1, 1, 1, 1, 1, 1, 1, False, y, "vk", -1, 1)
    with pytest.raises(ValueError, match="groups"):
        ext.conv2d_direct(x, w, None, 1, 1, 0, 0, 1, 1, 3, False, y, "vk", -1, 1)
    with pytest.raises(ValueError, match="bias"):
        ext.conv2d_direct(x, w, np.zeros(3, np.float32), 1, 1, 0, 0, 1, 1, 1, False, y, "vk", -1, 1)
    with pytest.raises(TypeError, match="dtype"):
        ext.conv2d_direct(x, w.astype(np.float64), None, 1, 1, 0, 0, 1, 1, 1, False, y, "vk", -1, 1)
    with pytest.raises(ValueError, match="dy has shape"):
        ext.conv2d_direct_bwt(np.zeros((1, 8, 5, 5), np.float32), x, 1, 1, 0, 0, 1, 1, 1,
                              np.zeros_like(w), "vk", -1, 1)


# ------------------------------------------------------------ Winograd F(4x4, 3x3)

WCASES = [  # (N, C, H, W, K, pad): odd sizes, partial tiles, batch 1, pad > 2 (the
    # backward-data pass then runs with negative padding), many channels
    (2, 3, 7, 9, 4, 1), (1, 5, 11, 13, 7, 1), (3, 2, 5, 6, 3, 0), (1, 4, 20, 37, 5, 1),
    (2, 3, 6, 5, 2, 3), (1, 2, 3, 3, 3, 0), (2, 16, 30, 34, 33, 1), (1, 3, 8, 70, 40, 2),
]


def test_winograd_numpy_reference():
    """The transform matrices (NumPy, float64) reproduce the convolution."""
    for N, C, H, W, K, p in WCASES:
        x, w, b, attrs = _make((N, C, H, W, K, (3, 3), (1, 1), (p, p), (1, 1), 1), np.float64)
        np.testing.assert_allclose(winograd.reference_forward(x, w, b, (p, p)),
                                   ref_conv(x, w, b, *attrs), rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
@pytest.mark.parametrize("isa", _ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wcase", WCASES, ids=[f"w{i}" for i in range(len(WCASES))])
def test_winograd_kernel(wcase, dtype, isa):
    N, C, H, W, K, p = wcase
    x, w, b, attrs = _make((N, C, H, W, K, (3, 3), (1, 1), (p, p), (1, 1), 1), dtype)
    # several threads, even here; the weight gradient runs "direct"
    _check_passes(x, w, b, attrs, _forced(x, w, attrs, "winograd", isa=isa, parallel=True))


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
def test_winograd_float32_error_and_nan():
    """float32 error at a realistic size stays near the direct kernel's; NaN survives ReLU."""
    x, w, b, attrs = _make((2, 64, 24, 40, 48, (3, 3), (1, 1), (1, 1), (1, 1), 1), np.float32)
    plan = _forced(x, w, attrs, "winograd")["forward"]
    ref = ref_conv(x, w, b, *attrs)
    err = np.abs(conv.conv2d_forward(x, w, b, *attrs, plan=plan) - ref).max() / np.abs(ref).max()
    assert err < 2e-5  # measured 5e-6 (the direct kernel: ~1e-6)
    x[1, 3, 5, 7] = np.nan
    y = conv.conv2d_forward(x, w, None, *attrs, act="relu", plan=plan)
    assert np.isnan(y[1, :, 4:7, 6:9]).all() and not np.isnan(y[0]).any()


@pytest.mark.skipif(not _ISAS, reason="needs the C++ extension with the direct kernels")
def test_winograd_choice():
    def algo(op, x_shape, w_shape, stride=(1, 1), groups=1):
        return conv.plan_conv(op, x_shape, w_shape, stride, (1, 1), (1, 1), groups).algo

    assert algo("forward", (16, 64, 56, 56), (64, 64, 3, 3)) == "winograd"
    assert algo("data", (16, 64, 56, 56), (64, 64, 3, 3)) == "winograd"
    assert algo("weight", (16, 64, 56, 56), (64, 64, 3, 3)) == "direct"
    assert algo("forward", (16, 64, 56, 56), (64, 64, 3, 3), (2, 2)) == "direct"
    assert algo("forward", (16, 64, 56, 56), (64, 32, 3, 3), groups=2) == "direct"
    assert algo("forward", (4, 32, 32, 32), (32, 32, 3, 3)) == "direct"  # narrow rows
    assert algo("forward", (16, 16, 56, 56), (64, 16, 3, 3)) == "direct"  # few input channels
