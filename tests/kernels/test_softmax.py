"""Softmax / log-softmax / softmax-cross-entropy kernels against NumPy float64 references."""
import numpy as np
import pytest

from kernels.cpu import softmax as sm

RNG = np.random.default_rng(1)
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}


# ----------------------------------------------------------------------------- references

def ref_log_softmax(x, axis):
    x = x.astype(np.float64)
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def ref_ce(x, label, axis, sparse):
    lp = ref_log_softmax(x, axis)
    if sparse:
        lab = np.expand_dims(label.astype(np.int64), axis)
        return -np.take_along_axis(lp, lab, axis).squeeze(axis)
    return -(label.astype(np.float64) * lp).sum(axis)


SHAPES = [((4, 7), -1), ((1, 10), -1), ((3, 1000), 1), ((2, 5, 3), 1), ((2, 4, 3, 5), 1),
          ((2, 3, 600), 1), ((3, 4, 2), 0), ((5, 1), -1)]


def labels_for(shape, axis, sparse, dtype=np.int64):
    ax = axis % len(shape)
    if sparse:
        return RNG.integers(0, shape[ax], shape[:ax] + shape[ax + 1:]).astype(dtype)
    p = RNG.random(shape)
    return p / p.sum(axis, keepdims=True)


# ----------------------------------------------------------------------------- softmax

@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_forward(shape, axis, dtype):
    x = (RNG.standard_normal(shape) * 3).astype(dtype)
    lp = ref_log_softmax(x, axis)
    y = sm.softmax(x, axis)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, np.exp(lp), **TOL[dtype])
    np.testing.assert_allclose(sm.log_softmax(x, axis), lp, rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["rtol"] * 10)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_stability_and_special_values(axis):
    x = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 1.0, 2.0], [5.0, 5.0, 5.0]], np.float32)
    x = x if axis == -1 else x.T.copy()
    y = sm.softmax(x, axis)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis), 1, rtol=1e-6)
    np.testing.assert_allclose(y, np.exp(ref_log_softmax(x, axis)), rtol=1e-6, atol=1e-30)
    lp = sm.log_softmax(x, axis)
    assert np.take(lp, 0, axis)[1] == -np.inf  # -inf logit: probability exactly 0
    x2 = np.array([[1.0, np.nan, 2.0]], np.float32)
    assert np.all(np.isnan(sm.softmax(x2 if axis == -1 else x2.T.copy(), axis)))


def test_softmax_long_rows_float32():
    x = RNG.standard_normal((2, 200_000)).astype(np.float32)
    np.testing.assert_allclose(sm.softmax(x).sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(sm.log_softmax(x), ref_log_softmax(x, -1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,axis", SHAPES[:6])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward_fd(shape, axis, log, numgrad):
    if np.prod(shape) > 200:
        shape = shape[:-1] + (7,)
    x = RNG.standard_normal(shape)
    w = RNG.standard_normal(shape)
    fwd = sm.log_softmax if log else sm.softmax
    bwd = sm.log_softmax_backward if log else sm.softmax_backward
    dx = bwd(w, fwd(x, axis), axis)
    np.testing.assert_allclose(dx, numgrad(lambda v: np.sum(w * fwd(v, axis)), x),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_backward_matches_formula(dtype):
    x = RNG.standard_normal((3, 5, 4)).astype(dtype)
    dy = RNG.standard_normal(x.shape).astype(dtype)
    y = sm.softmax(x, 1)
    ref = y * (dy - (dy * y).sum(1, keepdims=True))
    np.testing.assert_allclose(sm.softmax_backward(dy, y, 1), ref, **TOL[dtype])
    ly = sm.log_softmax(x, 1)
    ref = dy - np.exp(ly.astype(np.float64)) * dy.sum(1, keepdims=True)
    np.testing.assert_allclose(sm.log_softmax_backward(dy, ly, 1), ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- cross entropy

@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ce_forward(shape, axis, sparse, dtype):
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    label = labels_for(shape, axis, sparse)
    loss, prob = sm.softmax_cross_entropy_forward(x, label, axis, sparse)
    ax = axis % len(shape)
    assert loss.shape == shape[:ax] + shape[ax + 1:] and prob.shape == shape
    assert loss.dtype == prob.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss, ref_ce(x, label, axis, sparse), **tol)
    np.testing.assert_allclose(prob, np.exp(ref_log_softmax(x, axis)), **TOL[dtype])


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.float32, np.float64])
def test_ce_label_dtypes(label_dtype):
    x = RNG.standard_normal((6, 5)).astype(np.float32)
    label = labels_for(x.shape, -1, True, label_dtype)
    loss, prob = sm.softmax_cross_entropy_forward(x, label)
    np.testing.assert_allclose(loss, ref_ce(x, label, -1, True), rtol=1e-5)
    dx = sm.softmax_cross_entropy_backward(np.ones(6, np.float32), prob, label)
    onehot = np.eye(5)[label.astype(np.int64)]
    np.testing.assert_allclose(dx, prob - onehot, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((2, 5, 3), 1), ((2, 3, 2, 3), 1),
                                        ((3, 4, 2), 0), ((1, 6), 1)])
@pytest.mark.parametrize("sparse", [True, False])
def test_ce_backward_fd(shape, axis, sparse, numgrad):
    x = RNG.standard_normal(shape) * 2
    label = labels_for(shape, axis, sparse)
    if not sparse:
        label = label * 1.3  # rows not summing to one exercise the general formula
    loss, prob = sm.softmax_cross_entropy_forward(x, label, axis, sparse)
    w = RNG.standard_normal(loss.shape)
    dx = sm.softmax_cross_entropy_backward(w, prob, label, axis, sparse)
    f = lambda v: np.sum(w * sm.softmax_cross_entropy_forward(v, label, axis, sparse)[0])
    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-6, atol=1e-8)


def test_ce_large_logits_stable():
    x = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], np.float32)
    loss, prob = sm.softmax_cross_entropy_forward(x, np.array([1, 2]))
    np.testing.assert_allclose(loss, [1e4, np.log(2)], rtol=1e-6)
    assert np.all(np.isfinite(prob))
    want = [-1e4 - np.log(2), -np.log(2), -np.log(2)]
    np.testing.assert_allclose(sm.log_softmax(x, -1)[1], want, rtol=1e-6)  # rows kernel
    np.testing.assert_allclose(sm.log_softmax(x.T.copy(), 0)[:, 1], want, rtol=1e-6)  # blocks


def test_ce_out_buffers_and_scalar_dloss():
    x = RNG.standard_normal((8, 2, 3)).astype(np.float32)
    label = labels_for(x.shape, 1, True)
    loss, prob = np.empty((8, 3), np.float32), np.full(x.shape, np.nan, np.float32)
    rl, rp = sm.softmax_cross_entropy_forward(x, label, 1, out=(loss, prob))
    assert rl is loss and rp is prob
    dx = np.full(x.shape, np.nan, np.float32)
    assert sm.softmax_cross_entropy_backward(np.float32(2.0), prob, label, 1, out=dx) is dx
    np.testing.assert_allclose(
        dx, sm.softmax_cross_entropy_backward(np.full((8, 3), 2, np.float32), prob, label, 1))
    y = np.empty_like(x)
    assert sm.softmax(x, 1, out=y) is y and sm.log_softmax(x, 1, out=y) is y


def test_check_labels():
    assert sm.check_labels(np.array([0, 3, 2]), 4) is None
    assert sm.check_labels(np.array([0.0, 3.0]), 4) is None
    assert sm.check_labels(np.array([0, 4, -1]), 4) == 4
    assert sm.check_labels(np.array([1, -1]), 4) == -1
    assert sm.check_labels(np.array([1.0, 2.5]), 4) == 2.5
    assert np.isnan(sm.check_labels(np.array([np.nan]), 4))
    assert sm.check_labels(np.array([1.0, np.inf]), 4) == np.inf
    assert sm.check_labels(np.array([[1, 2], [3, 0]], np.uint8), 4) is None
    assert sm.check_labels(np.array([True, False]), 2) is None
    assert sm.check_labels(np.array([1.0, 3.5], np.float16), 4) == 3.5
    assert sm.check_labels(np.array([2, 7], np.int8), 4) == 7


# ----------------------------------------------------------------------------- PyTorch

@pytest.mark.torch
@pytest.mark.parametrize("shape", [(256, 10), (32, 1000), (2, 5, 7, 3)])
@pytest.mark.parametrize("sparse", [True, False])
def test_ce_against_torch(shape, sparse):
    """Per-sample loss and logits gradient within 1e-5 (float32), incl. per-pixel (N,C,H,W)."""
    torch = pytest.importorskip("torch")
    x = (RNG.standard_normal(shape) * 3).astype(np.float32)
    label = labels_for(shape, 1, sparse)
    label = label if sparse else label.astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tl = torch.from_numpy(label)
    tloss = torch.nn.functional.cross_entropy(tx, tl, reduction="none")
    w = RNG.standard_normal(tloss.shape).astype(np.float32)
    tloss.backward(torch.from_numpy(w))
    loss, prob = sm.softmax_cross_entropy_forward(x, label, 1, sparse)
    np.testing.assert_allclose(loss, tloss.detach().numpy(), rtol=1e-5, atol=1e-5)
    dx = sm.softmax_cross_entropy_backward(w, prob, label, 1, sparse)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_softmax_against_torch():
    torch = pytest.importorskip("torch")
    x = (RNG.standard_normal((4, 6, 5)) * 5).astype(np.float32)
    for axis in (0, 1, 2):
        np.testing.assert_allclose(sm.softmax(x, axis), torch.softmax(torch.from_numpy(x), axis),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(sm.log_softmax(x, axis),
                                   torch.log_softmax(torch.from_numpy(x), axis), rtol=1e-5, atol=1e-5)
