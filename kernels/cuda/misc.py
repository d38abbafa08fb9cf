"""Dropout masks and embedding lookup on CuPy arrays: the GPU twin of
``kernels/cpu/misc.py`` (same functions, arguments and returns).

Dropout masks come from the same counter-based splitmix64 draw as on the CPU (one
seed per mask from the caller's generator), so a seed gives the same mask on both
devices; applying the mask is the engine's elementwise multiply (fusable). Embedding
indices are converted once to int64 (they may come as floats, as in MXNet); the backward
accumulates repeated indices with atomicAdd.
"""
import math

import numpy as np

from . import _runtime as rt
from ._util import fmt_shape, out_buffer, require_device, require_float

__all__ = ["dropout_mask", "embedding_forward", "embedding_backward"]

_k = rt.Family("misc")


def _draw_seed(rng):
    """One seed in [0, 2**63) from the caller's generator: the engine's GPU generator and
    NumPy's Generator answer ``integers`` with a host scalar; a plain CuPy RandomState
    (``randint``) returns a device scalar, read back once."""
    draw = getattr(rng, "integers", None) or rng.randint
    return int(draw(0, 2**63, dtype=np.int64))


def dropout_mask(shape, p, rng, dtype=np.float32, out=None):
    """Inverted-dropout mask: 1/(1-p) with probability 1-p, else 0.

    rng: the caller's seeded generator (the engine's GPU generator, a NumPy Generator or a
    CuPy RandomState); one 64-bit seed is drawn from it per mask and element i keeps its
    unit when the top 24 bits of splitmix64(seed, i) are at least p * 2**24, exactly as on
    the CPU, so the same seed gives the same mask on both devices.
    p >= 1 gives all zeros (no 1/0); p <= 0 gives all ones.
    """
    fn = "dropout_mask"
    xp = rt.xp()
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if out is None:
        mask = xp.empty(shape, dtype)
    else:
        mask = require_device(fn, "out", out)
        if tuple(out.shape) != shape:
            raise ValueError(f"{fn}: out has shape {fmt_shape(out.shape)}, "
                             f"expected {fmt_shape(shape)}")
    if p <= 0:
        mask[...] = 1
        return mask
    if p >= 1:
        mask[...] = 0
        return mask
    seed = _draw_seed(rng)
    threshold = math.ceil(p * (1 << 24))
    # the kernel writes float32/float64 C-contiguous masks; others go through a float64 mask
    # (the scale rounds to the target dtype on the copy, as it does on the CPU)
    direct = mask.dtype in rt.FLOAT_DTYPES and mask.flags.c_contiguous
    dense = mask if direct else xp.empty(shape, np.float64)
    _k.launch_1d("dropout_mask", dense.dtype, dense.size, dense, dense.size, seed, threshold,
                 1.0 / (1.0 - p))
    if dense is not mask:
        mask[...] = dense
    return mask


def _int_index(fn, idx):
    """Indices as a contiguous flat int64 device array (float indices truncated)."""
    require_device(fn, "idx", idx)
    if idx.dtype.kind not in "iuf":
        raise ValueError(f"{fn}: idx has dtype {idx.dtype} (shape {fmt_shape(idx.shape)}); "
                         f"expected integers (any int or float dtype)")
    return rt.xp().ascontiguousarray(idx).reshape(-1).astype(np.int64, copy=False)


def embedding_forward(idx, weight, out=None):
    """Rows of weight (num_rows, dim) picked by idx; output idx.shape + (dim,).

    idx may hold integers in any int or float dtype; negative indices count from the
    end (NumPy's rule). Indices are assumed in range (the op layer checks them); an
    out-of-range index gives a NaN row rather than reading out of bounds.
    """
    fn = "embedding_forward"
    require_float(fn, "weight", weight, ndim=2)
    weight = rt.xp().ascontiguousarray(weight)
    rows, dim = weight.shape
    flat = _int_index(fn, idx)
    y = out_buffer(fn, out, tuple(idx.shape) + (dim,), weight.dtype)
    _k.launch_1d("embedding_forward", weight.dtype, y.size, flat, weight, y, flat.size, rows, dim)
    return y


def embedding_backward(dy, idx, num_rows, out=None):
    """Gradient of embedding wrt weight: dw[idx[i]] += dy[i] (repeated indices add)."""
    fn = "embedding_backward"
    require_float(fn, "dy", dy)
    flat = _int_index(fn, idx)
    dim = dy.shape[-1]
    if dy.size != flat.size * dim:
        raise ValueError(f"{fn}: dy has shape {fmt_shape(dy.shape)}, expected idx.shape + (dim,) "
                         f"with {flat.size} indices")
    dw = out_buffer(fn, out, (int(num_rows), dim), dy.dtype)
    dw.fill(0)
    _k.launch_1d("embedding_backward", dy.dtype, dy.size, rt.xp().ascontiguousarray(dy), flat, dw,
                 flat.size, int(num_rows), dim)
    return dw
