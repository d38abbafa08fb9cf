"""Dropout masks and embedding lookup kernels."""
import numpy as np
from numba import njit

__all__ = ["dropout_mask", "embedding_forward", "embedding_backward"]


def dropout_mask(shape, p, rng, dtype=np.float32, out=None):
    """Inverted-dropout mask: 1/(1-p) with probability 1-p, else 0.

    rng: a numpy Generator owned (and seeded) by the caller. Uniforms are drawn in the
    mask's dtype (float32 draws are twice as fast and resolve p to 2**-24).
    p >= 1 gives all zeros (no 1/0); p <= 0 gives all ones.
    """
    dtype = np.dtype(dtype)
    mask = np.empty(shape, dtype) if out is None else out
    if p <= 0:
        mask[...] = 1
        return mask
    if p >= 1:
        mask[...] = 0
        return mask
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    u = rng.random(shape, dtype=draw_dtype)
    np.multiply(u >= p, 1.0 / (1.0 - p), out=mask, casting="unsafe")
    return mask


def _int_index(idx):
    """Integer view of an index array that may be stored as floats (MXNet passes floats)."""
    idx = np.asarray(idx)
    return idx if idx.dtype.kind in "iu" else idx.astype(np.int64)


def embedding_forward(idx, weight, out=None):
    """Rows of weight (num_rows, dim) picked by idx; output idx.shape + (dim,).

    idx may hold integers in any int or float dtype; indices are assumed in range
    (np.take raises IndexError otherwise rather than reading out of bounds).
    """
    idx = _int_index(idx)
    if out is None:
        return np.take(weight, idx, axis=0)
    return np.take(weight, idx, axis=0, out=out)


@njit(cache=True)
def _embedding_bwd(dy, idx, dw):
    # serial on purpose: repeated indices add into the same row, so a parallel loop over
    # idx would race; the loop is memory-bound and one thread streams it at full speed.
    dw[:] = 0
    for i in range(idx.shape[0]):
        row, g = dw[idx[i]], dy[i]
        for k in range(row.shape[0]):
            row[k] += g[k]


def embedding_backward(dy, idx, num_rows, out=None):
    """Gradient of embedding wrt weight: dw[idx[i]] += dy[i] (repeated indices add)."""
    idx = _int_index(idx).reshape(-1).astype(np.int64, copy=False)
    dim = dy.shape[-1]
    dw = np.empty((num_rows, dim), dy.dtype) if out is None else out
    _embedding_bwd(np.ascontiguousarray(dy).reshape(-1, dim), idx, dw)
    return dw
