"""Dropout masks and embedding lookup kernels."""
import math

import numpy as np
from numba import njit, prange

from .parallel import twin

__all__ = ["dropout_mask", "embedding_forward", "embedding_backward"]


def dropout_mask(shape, p, rng, dtype=np.float32, out=None):
    """Inverted-dropout mask: 1/(1-p) with probability 1-p, else 0.

    rng: a numpy Generator owned (and seeded) by the caller; one 64-bit seed is drawn from it
    per mask, and element i keeps its unit when the top 24 bits of splitmix64(seed, i) are at
    least p * 2**24. The draw depends only on the seed and i (not on the thread count), and runs
    in parallel at memory speed (NumPy's generator is a serial ~5 ns per element here).
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
    seed = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    threshold = np.uint64(math.ceil(p * (1 << 24)))
    dense = mask if mask.flags.c_contiguous else np.empty(mask.shape, dtype)
    _keep_mask(seed, threshold, dense.dtype.type(1.0 / (1.0 - p)), dense.reshape(-1))
    if dense is not mask:
        mask[...] = dense
    return mask


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@twin(cache=True)
def _keep_mask(seed, threshold, scale, out):
    zero = out.dtype.type(0)
    for i in prange(out.shape[0]):
        z = seed + np.uint64(i + 1) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        out[i] = scale if (z >> np.uint64(40)) >= threshold else zero


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
