"""Dropout mask and embedding kernels."""
import numpy as np
import pytest

from kernels.cpu import misc

RNG = np.random.default_rng(3)


# ----------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_values_and_rate(p, dtype):
    mask = misc.dropout_mask((200, 500), p, np.random.default_rng(0), dtype)
    assert mask.dtype == dtype and mask.shape == (200, 500)
    scale = dtype(1.0 / (1.0 - p))
    assert set(np.unique(mask)) <= {dtype(0), scale}
    keep = np.mean(mask != 0)
    assert abs(keep - (1 - p)) < 5 * np.sqrt(p * (1 - p) / mask.size)
    assert abs(mask.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation


def test_dropout_mask_seeded_and_edge_rates():
    a = misc.dropout_mask((50,), 0.3, np.random.default_rng(7))
    b = misc.dropout_mask((50,), 0.3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert np.all(misc.dropout_mask((4, 4), 0.0, RNG) == 1)
    assert np.all(misc.dropout_mask((4, 4), 1.0, RNG) == 0)
    out = np.empty((3, 3), np.float32)
    assert misc.dropout_mask((3, 3), 0.5, RNG, np.float32, out=out) is out


def test_dropout_mask_draws_look_independent_and_fill_strided_outputs():
    big = misc.dropout_mask((1 << 17,), 0.5, np.random.default_rng(1)) != 0   # parallel kernel
    for lag in (1, 2, 7, 64):          # neighbours (and cache-line/thread-block strides) uncorrelated
        assert abs(np.corrcoef(big[:-lag], big[lag:])[0, 1]) < 0.02
    again = misc.dropout_mask((1 << 17,), 0.5, np.random.default_rng(2)) != 0
    assert abs(np.mean(big == again) - 0.5) < 0.01       # another seed, another mask
    base = np.full((6, 8), -1.0, np.float32)
    view = base[:, ::2]
    assert misc.dropout_mask((6, 4), 0.5, RNG, np.float32, out=view) is view
    assert set(np.unique(view)) <= {0.0, 2.0} and np.all(base[:, 1::2] == -1)


# ----------------------------------------------------------------------------- embedding

@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_forward(idx_dtype, dtype):
    weight = RNG.standard_normal((10, 4)).astype(dtype)
    idx = RNG.integers(0, 10, (3, 5)).astype(idx_dtype)
    y = misc.embedding_forward(idx, weight)
    assert y.shape == (3, 5, 4) and y.dtype == dtype
    np.testing.assert_array_equal(y, weight[idx.astype(np.int64)])
    out = np.empty_like(y)
    assert misc.embedding_forward(idx, weight, out=out) is out
    np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64, np.float32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_repeated_indices(idx_dtype, dtype):
    idx = np.array([[1, 3, 1], [0, 1, 7]], idx_dtype)  # row 1 appears three times
    dy = RNG.standard_normal((2, 3, 5)).astype(dtype)
    dw = misc.embedding_backward(dy, idx, 8)
    ref = np.zeros((8, 5))
    np.add.at(ref, idx.astype(np.int64).ravel(), dy.reshape(-1, 5).astype(np.float64))
    assert dw.shape == (8, 5) and dw.dtype == dtype
    np.testing.assert_allclose(dw, ref, rtol=1e-6)
    out = np.full((8, 5), np.nan, dtype)  # stale contents are overwritten
    assert misc.embedding_backward(dy, idx, 8, out=out) is out
    np.testing.assert_array_equal(out, dw)


def test_embedding_backward_is_adjoint_of_forward():
    # <embedding(idx, W), dy> == <W, embedding_backward(dy, idx)> for any W, dy
    W = RNG.standard_normal((6, 3))
    idx = RNG.integers(0, 6, 20)
    dy = RNG.standard_normal((20, 3))
    lhs = np.sum(misc.embedding_forward(idx, W) * dy)
    rhs = np.sum(W * misc.embedding_backward(dy, idx, 6))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.torch
def test_embedding_against_torch():
    torch = pytest.importorskip("torch")
    W = RNG.standard_normal((12, 6)).astype(np.float32)
    idx = RNG.integers(0, 12, (4, 9))
    dy = RNG.standard_normal((4, 9, 6)).astype(np.float32)
    tw = torch.from_numpy(W).requires_grad_()
    ty = torch.nn.functional.embedding(torch.from_numpy(idx), tw)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(misc.embedding_forward(idx, W), ty.detach().numpy())
    np.testing.assert_allclose(misc.embedding_backward(dy, idx, 12), tw.grad.numpy(), rtol=1e-5, atol=1e-6)
