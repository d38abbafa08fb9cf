"""Fused optimizer updates on CuPy arrays: the GPU twin of ``kernels/cpu/optim.py``.

Same functions and arguments: the weight, its gradient and the state buffers
(C-contiguous, one float dtype, same number of elements; any shape, they are used
flat), then plain floats. Each call is one kernel (optim.cu) that updates the weight
and the states in place and returns None, like the CPU kernels. The formulas are
MXNet 1.x's (see the CPU module); arithmetic is double and optim.cu is compiled
without FMA contraction, so float64 results equal the CPU's bit for bit.
"""
from . import _runtime as rt
from ._util import fmt_shape, require_float

__all__ = [
    "sgd_update", "sgd_mom_update", "nag_mom_update", "adam_update", "adamw_update",
    "rmsprop_update", "rmspropalex_update", "adagrad_update",
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
