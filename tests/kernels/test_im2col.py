"""im2col / col2im (C++ extension and Numba fallback) against a plain NumPy reference."""
import warnings

import numpy as np
import pytest

from kernels.cpu import im2col as mod

# (x shape, kernel, stride, pad, dilate)
CASES = [
    ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1), (1, 1)),  # odd sizes, "same" padding
    ((1, 2, 8, 8), (2, 2), (3, 3), (0, 0), (1, 1)),  # batch 1, stride > kernel
    ((2, 2, 9, 11), (3, 2), (2, 1), (1, 2), (2, 3)),  # dilation, non-square everything
    ((1, 1, 4, 5), (2, 3), (1, 2), (4, 5), (1, 1)),  # padding larger than the kernel
    ((3, 4, 12, 10), (5, 5), (2, 2), (2, 2), (1, 1)),  # stride 2 (vectorized path)
    ((2, 1, 1, 10), (1, 3), (1, 3), (0, 1), (1, 2)),  # the conv1d shape
    ((1, 2, 6, 6), (1, 1), (1, 1), (0, 0), (1, 1)),  # 1x1
    ((2, 3, 5, 5), (5, 5), (1, 1), (0, 0), (1, 1)),  # kernel covers the image
]


def ref_im2col(x, kernel, stride, pad, dilate):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilate
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((N, C, kh, kw, OH, OW), x.dtype)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(kh):
                for j in range(kw):
                    ih, iw = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                    if 0 <= ih < H and 0 <= iw < W:
                        cols[:, :, i, j, oh, ow] = x[:, :, ih, iw]
    return cols.reshape(N, C * kh * kw, OH * OW)


def ref_col2im(cols, x_shape, kernel, stride, pad, dilate):
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilate
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    c6 = cols.reshape(N, C, kh, kw, OH, OW)
    x = np.zeros(x_shape, cols.dtype)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(kh):
                for j in range(kw):
                    ih, iw = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                    if 0 <= ih < H and 0 <= iw < W:
                        x[:, :, ih, iw] += c6[:, :, i, j, oh, ow]
    return x


def to_merged(cols):
    return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(cols.shape[1], -1)


IMPLS = [
    pytest.param((mod.im2col, mod.col2im), id="cpp",
                 marks=pytest.mark.skipif(not mod.HAVE_CPP_IM2COL, reason="extension not built")),
    pytest.param((mod.im2col_numba, mod.col2im_numba), id="numba"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) + str(c[1:]) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_matches_reference(impl, case, dtype):
    im2col, _ = impl
    shape, *attrs = case
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    expected = ref_im2col(x, *attrs)
    got = im2col(x, *attrs)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    merged = im2col(x, *attrs, merged=True)
    np.testing.assert_array_equal(merged, to_merged(expected))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) + str(c[1:]) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_matches_reference(impl, case, dtype):
    _, col2im = impl
    shape, *attrs = case
    rng = np.random.default_rng(1)
    cols_shape = ref_im2col(np.zeros(shape), *attrs).shape
    cols = rng.standard_normal(cols_shape).astype(dtype)
    expected = ref_col2im(cols, shape, *attrs)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    # Garbage in `out` must not leak through: col2im zero-fills it.
    out = np.full(shape, np.nan, dtype)
    got = col2im(cols, shape, *attrs, out=out)
    assert got is out
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(col2im(to_merged(cols), shape, *attrs), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES[:4], ids=[str(c[0]) for c in CASES[:4]])
def test_col2im_is_adjoint_of_im2col(impl, case):
    im2col, col2im = impl
    shape, *attrs = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cols = im2col(x, *attrs)
    c = rng.standard_normal(cols.shape)
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, col2im(c, shape, *attrs)), rel=1e-12)


def test_cpp_and_numba_agree_on_a_larger_problem():
    if not mod.HAVE_CPP_IM2COL:
        pytest.skip("extension not built")
    x = np.random.default_rng(3).standard_normal((4, 8, 31, 29)).astype(np.float32)
    attrs = ((3, 5), (2, 1), (1, 2), (1, 2))
    a = mod.im2col(x, *attrs)
    np.testing.assert_array_equal(a, mod.im2col_numba(x, *attrs))
    np.testing.assert_allclose(mod.col2im(a, x.shape, *attrs),
                               mod.col2im_numba(a, x.shape, *attrs), rtol=1e-6, atol=1e-5)


def test_out_buffer_is_used():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    out = np.empty((2, 27, 36))
    assert mod.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1), out=out) is out
    merged = np.empty((27, 72))
    assert mod.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1), out=merged) is merged
    np.testing.assert_array_equal(merged, to_merged(out))


@pytest.mark.skipif(not mod.HAVE_CPP_IM2COL, reason="extension not built")
def test_extension_rejects_bad_arrays():
    ext = mod._ext
    x = np.zeros((1, 2, 5, 5), np.float32)
    out = np.zeros((1, 18, 25), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        ext.im2col(np.zeros((1, 2, 5, 10), np.float32)[..., ::2], 3, 3, 1, 1, 1, 1, 1, 1, out)
    with pytest.raises(TypeError, match="float32 and float64"):
        ext.im2col(x.astype(np.int32), 3, 3, 1, 1, 1, 1, 1, 1, out.astype(np.int32))
    with pytest.raises(TypeError, match="differs"):
        ext.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, out.astype(np.float64))
    with pytest.raises(ValueError, match="expected"):
        ext.im2col(x, 3, 3, 1, 1, 0, 0, 1, 1, out)  # out sized for pad 1
    with pytest.raises(ValueError, match="4-D"):
        ext.im2col(x[0], 3, 3, 1, 1, 1, 1, 1, 1, out)
    with pytest.raises(ValueError, match="larger than"):
        ext.im2col(x, 7, 7, 1, 1, 0, 0, 1, 1, out)
    with pytest.raises(ValueError, match="expected"):
        ext.col2im(out, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, np.zeros((1, 3, 5, 5), np.float32))


def test_fallback_warns_once(monkeypatch):
    monkeypatch.setattr(mod, "_ext", None)
    monkeypatch.setattr(mod, "_warned", False)
    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5))
    attrs = ((3, 3), (1, 1), (1, 1), (1, 1))
    with pytest.warns(RuntimeWarning, match="Numba"):
        cols = mod.im2col(x, *attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = mod.col2im(cols, x.shape, *attrs)
    np.testing.assert_array_equal(cols, ref_im2col(x, *attrs))
    np.testing.assert_allclose(back, ref_col2im(cols, x.shape, *attrs))
