"""Fused optimizer updates on CuPy arrays: the GPU twin of ``kernels/cpu/optim.py``.

Same functions and arguments: the weight, its gradient and the state buffers
(C-contiguous, one float dtype, same number of elements; any shape, they are used
flat), then plain floats. Each call is one kernel (optim.cu) that updates the weight
and the states in place and returns None, like the CPU kernels. The formulas are
MXNet 1.x's (see the CPU module); arithmetic is double and optim.cu is compiled
without FMA contraction, so float64 results equal the CPU's bit for bit.
"""
import numpy as np

from . import _runtime as rt
from ._util import fmt_shape, require_float

__all__ = [
    "sgd_update", "sgd_mom_update", "nag_mom_update", "adam_update", "adamw_update",
    "rmsprop_update", "rmspropalex_update", "adagrad_update",
    "address", "sgd_update_multi", "sgd_mom_update_multi", "nag_mom_update_multi", "adam_update_multi",
    "adamw_update_multi",
]

_k = rt.Family("optim")


def _flat(fn, names, bufs):
    """The buffers checked (an in-place update cannot go through a contiguous copy)
    and viewed flat."""
    w = require_float(fn, names[0], bufs[0])
    for name, b in zip(names, bufs):
        require_float(fn, name, b)
        if b.dtype != w.dtype or b.size != w.size:
            raise ValueError(f"{fn}: {name} has shape {fmt_shape(b.shape)} and dtype {b.dtype}; "
                             f"expected {w.size} values of dtype {w.dtype} like {names[0]} "
                             f"{fmt_shape(w.shape)}")
        if not b.flags.c_contiguous:
            raise ValueError(f"{fn}: {name} (shape {fmt_shape(b.shape)}) must be C-contiguous: "
                             f"it is updated in place")
    return [b.reshape(-1) for b in bufs]


def sgd_update(w, g, lr, wd, rescale, clip):
    """Plain SGD: ``w = (1 - lr*wd)*w - lr*clip(rescale*g)`` (decay after clipping)."""
    bufs = _flat("sgd_update", ("w", "g"), (w, g))
    _k.launch_1d("sgd_update", w.dtype, w.size, *bufs, w.size, lr, wd, rescale, clip)


def sgd_mom_update(w, g, mom, lr, momentum, wd, rescale, clip):
    """SGD with momentum; the state holds the lr-scaled velocity (MXNet's convention):
    ``mom = momentum*mom - lr*wd*w - lr*clip(rescale*g); w += mom``."""
    bufs = _flat("sgd_mom_update", ("w", "g", "mom"), (w, g, mom))
    _k.launch_1d("sgd_mom_update", w.dtype, w.size, *bufs, w.size, lr, momentum, wd, rescale, clip)


def nag_mom_update(w, g, mom, lr, momentum, wd, rescale, clip):
    """Nesterov momentum: ``g' = clip(rescale*g) + wd*w; mom = momentum*mom + g';
    w -= lr*(momentum*mom + g')``."""
    bufs = _flat("nag_mom_update", ("w", "g", "mom"), (w, g, mom))
    _k.launch_1d("nag_mom_update", w.dtype, w.size, *bufs, w.size, lr, momentum, wd, rescale, clip)


def adam_update(w, g, mean, var, lr, beta1, beta2, eps, wd, rescale, clip):
    """Adam with L2 decay folded into the gradient before clipping (as MXNet); the caller
    folds the bias correction into lr."""
    bufs = _flat("adam_update", ("w", "g", "mean", "var"), (w, g, mean, var))
    _k.launch_1d("adam_update", w.dtype, w.size, *bufs, w.size, lr, beta1, beta2, eps, wd, rescale,
                 clip)


def adamw_update(w, g, mean, var, lr, beta1, beta2, eps, wd, rescale, clip, bias_corr):
    """AdamW (decoupled weight decay):
    ``w -= lr * (bias_corr * m / (sqrt(v) + eps) + wd*w)``."""
    bufs = _flat("adamw_update", ("w", "g", "mean", "var"), (w, g, mean, var))
    _k.launch_1d("adamw_update", w.dtype, w.size, *bufs, w.size, lr, beta1, beta2, eps, wd,
                 rescale, clip, bias_corr)


def rmsprop_update(w, g, n, lr, gamma1, eps, wd, rescale, clip, clip_weights):
    """RMSProp, eps inside the square root (MXNet); weight clipped when clip_weights >= 0."""
    bufs = _flat("rmsprop_update", ("w", "g", "n"), (w, g, n))
    _k.launch_1d("rmsprop_update", w.dtype, w.size, *bufs, w.size, lr, gamma1, eps, wd, rescale,
                 clip, clip_weights)


def rmspropalex_update(w, g, n, gavg, delta, lr, gamma1, gamma2, eps, wd, rescale, clip,
                       clip_weights):
    """Centered RMSProp (Graves 2013, MXNet's ``rmspropalex_update``)."""
    bufs = _flat("rmspropalex_update", ("w", "g", "n", "gavg", "delta"),
                 (w, g, n, gavg, delta))
    _k.launch_1d("rmspropalex_update", w.dtype, w.size, *bufs, w.size, lr, gamma1, gamma2, eps, wd,
                 rescale, clip, clip_weights)


def adagrad_update(w, g, hist, lr, eps, wd, rescale, clip):
    """AdaGrad as MXNet 1.x: ``h += g'^2; w -= lr * (g'/sqrt(h + eps) + wd*w)``."""
    bufs = _flat("adagrad_update", ("w", "g", "hist"), (w, g, hist))
    _k.launch_1d("adagrad_update", w.dtype, w.size, *bufs, w.size, lr, eps, wd, rescale, clip)


# ---- multi-tensor updates: the arguments of kernels/cpu/optim.py's *_multi --------------------
# table (parameters, buffers) holds device addresses, sizes each parameter's length, `like` an
# array of the buffers' dtype; table, sizes and the per-parameter arrays may be host arrays (they
# are copied to the device: one small copy instead of one launch per parameter).


def address(a):
    """The device address of CuPy array `a`'s first element (a table entry)."""
    return a.data.ptr


def _multi(name, table, sizes, per_param):
    """(grid, the kernel's leading arguments on the device) of a multi-tensor launch; None when
    there is no parameter."""
    xp = rt.xp()
    table = np.ascontiguousarray(table, dtype=np.int64)
    sizes_h = np.ascontiguousarray(sizes, dtype=np.int64)
    if table.ndim != 2 or table.shape[0] != sizes_h.shape[0]:
        raise ValueError(f"{name}: table has shape {fmt_shape(table.shape)}; expected one row "
                         f"of addresses per parameter ({sizes_h.shape[0]} sizes)")
    n_params, cols = table.shape
    if n_params == 0:
        return None, ()
    per = [xp.asarray(np.ascontiguousarray(a, dtype=np.float64)) for a in per_param]
    grid = (-(-int(sizes_h.max()) // rt.BLOCK), n_params)
    return grid, (xp.asarray(table), xp.asarray(sizes_h), n_params, cols, *per)


def sgd_update_multi(table, sizes, like, lrs, wds, rescale, clip):
    grid, args = _multi("sgd_update_multi", table, sizes, (lrs, wds))
    if grid:
        _k.launch("sgd_update_multi", like.dtype, grid, rt.BLOCK, *args, rescale, clip)


def sgd_mom_update_multi(table, sizes, like, lrs, wds, momentum, rescale, clip):
    grid, args = _multi("sgd_mom_update_multi", table, sizes, (lrs, wds))
    if grid:
        _k.launch("sgd_mom_update_multi", like.dtype, grid, rt.BLOCK, *args, momentum, rescale, clip)


def nag_mom_update_multi(table, sizes, like, lrs, wds, momentum, rescale, clip):
    grid, args = _multi("nag_mom_update_multi", table, sizes, (lrs, wds))
    if grid:
        _k.launch("nag_mom_update_multi", like.dtype, grid, rt.BLOCK, *args, momentum, rescale, clip)


def adam_update_multi(table, sizes, like, lrs, wds, beta1, beta2, eps, rescale, clip):
    grid, args = _multi("adam_update_multi", table, sizes, (lrs, wds))
    if grid:
        _k.launch("adam_update_multi", like.dtype, grid, rt.BLOCK, *args, beta1, beta2, eps, rescale,
                  clip)


def adamw_update_multi(table, sizes, like, lrs, wds, bias_corrs, beta1, beta2, eps, rescale, clip):
    grid, args = _multi("adamw_update_multi", table, sizes, (lrs, wds, bias_corrs))
    if grid:
        _k.launch("adamw_update_multi", like.dtype, grid, rt.BLOCK, *args, beta1, beta2, eps, rescale,
                  clip)
