"""Fused optimizer updates: one pass over a parameter per training step.

Each kernel takes flat (1-D, C-contiguous) buffers of the same length and dtype (float32 or
float64): the weight, its gradient and the optimizer's state buffers, followed by plain Python
floats. In a single loop it rescales the gradient, clips it, applies weight decay, updates the
states and writes the new weight, all in place. The formulas are MXNet 1.x's
(``src/operator/optimizer_op-inl.h``), so a model trains the same way as under MXNet:

* ``clip < 0`` means "no clipping" (the Python side passes -1 when ``clip_gradient`` is unset);
  clipping keeps NaN as NaN, as MXNet's ``clip`` does.
* where weight decay enters the gradient (before or after clipping) differs between optimizers
  exactly as in MXNet; each kernel says which.
* scalars arrive as float64, so float32 buffers are updated with float64 arithmetic and the result
  is rounded once on store.

``fastmath`` stays off: these loops are memory-bound and IEEE behaviour (NaN/inf propagation,
no reassociation) keeps the results bit-stable across runs and machines. ``error_model="numpy"``
makes a division by zero give inf/NaN (as NumPy, MXNet and PyTorch do, e.g. with epsilon 0)
instead of raising; Python's error model also puts a zero test before every division, which
kept LLVM from vectorizing the Adam loop (4M float32: 11.6 ms -> 4.2 ms).
"""
import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = [
    "sgd_update", "sgd_mom_update", "nag_mom_update", "adam_update", "adamw_update",
    "rmsprop_update", "rmspropalex_update", "adagrad_update",
    "address", "sgd_update_multi", "sgd_mom_update_multi", "nag_mom_update_multi",
    "adam_update_multi", "adamw_update_multi",
]


@njit(cache=True, fastmath=False, error_model="numpy")
def _clip(x, bound):
    """Clip x to [-bound, bound] when bound >= 0 (NaN passes through)."""
    if bound >= 0.0:
        if x > bound:
            return bound
        if x < -bound:
            return -bound
    return x


@njit(cache=True, fastmath=False, error_model="numpy")
def sgd_update(w, g, lr, wd, rescale, clip):
    """Plain SGD: ``w = (1 - lr*wd)*w - lr*clip(rescale*g)`` (decay after clipping)."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i], clip)
        w[i] = (1.0 - lr * wd) * w[i] - lr * gi


@njit(cache=True, fastmath=False, error_model="numpy")
def sgd_mom_update(w, g, mom, lr, momentum, wd, rescale, clip):
    """SGD with momentum; the state holds the lr-scaled velocity (MXNet's convention):
    ``mom = momentum*mom - lr*wd*w - lr*clip(rescale*g); w += mom``."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i], clip)
        m = momentum * mom[i] - lr * wd * w[i] - lr * gi
        mom[i] = m
        w[i] = w[i] + m


@njit(cache=True, fastmath=False, error_model="numpy")
def nag_mom_update(w, g, mom, lr, momentum, wd, rescale, clip):
    """Nesterov momentum as MXNet's ``nag_mom_update`` (the state holds lr-scaled steps):
    ``g' = clip(rescale*g) + wd*w; mom = momentum*mom - lr*g'; w += momentum*mom - lr*g'``
    (for a constant rate, the same trajectory as PyTorch's nesterov SGD)."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i], clip) + wd * w[i]
        m = momentum * mom[i] - lr * gi
        mom[i] = m
        w[i] = w[i] + momentum * m - lr * gi


@njit(cache=True, fastmath=False, error_model="numpy")
def adam_update(w, g, mean, var, lr, beta1, beta2, eps, wd, rescale, clip):
    """Adam with L2 decay folded into the gradient *before* clipping (as MXNet):
    ``g' = clip(rescale*g + wd*w); m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
    w -= lr * m / (sqrt(v) + eps)``. The caller folds the bias correction into lr
    (``lr * sqrt(1-b2^t) / (1-b1^t)``), so eps is added to the uncorrected sqrt(v)."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i] + wd * w[i], clip)
        m = beta1 * mean[i] + (1.0 - beta1) * gi
        v = beta2 * var[i] + (1.0 - beta2) * gi * gi
        mean[i] = m
        var[i] = v
        w[i] = w[i] - lr * m / (np.sqrt(v) + eps)


@njit(cache=True, fastmath=False, error_model="numpy")
def adamw_update(w, g, mean, var, lr, beta1, beta2, eps, wd, rescale, clip, bias_corr):
    """AdamW (decoupled weight decay, Loshchilov & Hutter):
    ``g' = clip(rescale*g); m, v as Adam; w -= lr * (bias_corr * m / (sqrt(v) + eps) + wd*w)``
    with ``bias_corr = sqrt(1-b2^t) / (1-b1^t)`` (so decay is not bias-corrected)."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i], clip)
        m = beta1 * mean[i] + (1.0 - beta1) * gi
        v = beta2 * var[i] + (1.0 - beta2) * gi * gi
        mean[i] = m
        var[i] = v
        wi = w[i]
        w[i] = wi - lr * (bias_corr * m / (np.sqrt(v) + eps) + wd * wi)


@njit(cache=True, fastmath=False, error_model="numpy")
def rmsprop_update(w, g, n, lr, gamma1, eps, wd, rescale, clip, clip_weights):
    """RMSProp (Tieleman & Hinton), eps inside the square root as in MXNet:
    ``g' = clip(rescale*g + wd*w); n = (1-gamma1)*g'^2 + gamma1*n; w -= lr*g'/sqrt(n + eps)``,
    then the weight is clipped to [-clip_weights, clip_weights] when clip_weights >= 0."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i] + wd * w[i], clip)
        ni = (1.0 - gamma1) * gi * gi + gamma1 * n[i]
        n[i] = ni
        w[i] = _clip(w[i] - lr * gi / np.sqrt(ni + eps), clip_weights)


@njit(cache=True, fastmath=False, error_model="numpy")
def rmspropalex_update(w, g, n, gavg, delta, lr, gamma1, gamma2, eps, wd, rescale, clip,
                       clip_weights):
    """Centered RMSProp (Graves 2013, MXNet's ``rmspropalex_update``):
    ``n = (1-gamma1)*g'^2 + gamma1*n; gavg = (1-gamma1)*g' + gamma1*gavg;
    delta = gamma2*delta - lr*g'/sqrt(n - gavg^2 + eps); w += delta``."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i] + wd * w[i], clip)
        ni = (1.0 - gamma1) * gi * gi + gamma1 * n[i]
        gai = (1.0 - gamma1) * gi + gamma1 * gavg[i]
        di = gamma2 * delta[i] - lr * gi / np.sqrt(ni - gai * gai + eps)
        n[i] = ni
        gavg[i] = gai
        delta[i] = di
        w[i] = _clip(w[i] + di, clip_weights)


@njit(cache=True, fastmath=False, error_model="numpy")
def adagrad_update(w, g, hist, lr, eps, wd, rescale, clip):
    """AdaGrad as MXNet 1.x: decay is *not* accumulated in the history:
    ``g' = clip(rescale*g); h += g'^2; w -= lr * (g'/sqrt(h + eps) + wd*w)``."""
    for i in range(w.shape[0]):
        gi = _clip(rescale * g[i], clip)
        h = hist[i] + gi * gi
        hist[i] = h
        w[i] = w[i] - lr * (gi / np.sqrt(h + eps) + wd * w[i])


# ---- multi-tensor updates ------------------------------------------------------------------------
# One call updates every parameter of a step: a step of a small model is dominated by the cost of
# calling a kernel (~3 us a parameter, argument unboxing included), not by its loop. The buffers
# arrive as a table of addresses, table[k] = (weight, grad, *states) of parameter k, each a
# C-contiguous buffer of sizes[k] elements of `like`'s dtype; passing arrays in a container instead
# costs more than the separate calls (a numba.typed.List of 12 arrays: 20 us a call). The caller
# keeps the arrays alive and the table current (engine/optimizer/optimizer.py: _MultiTable). Each
# parameter then runs the single-tensor kernel above, with its own rate and decay.


@intrinsic
def _pointer(typingctx, addr, like):
    """The integer `addr` as a pointer to `like`'s element type."""
    ptr_t = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr_t))
    return ptr_t(addr, like), codegen


@njit(cache=True)
def address(a):
    """The address of `a`'s first element (~1 us; ndarray.ctypes.data takes ~6 us)."""
    return a.ctypes.data


@njit(cache=True)
def _view(table, sizes, like, k, j):
    return numba.carray(_pointer(table[k, j], like), sizes[k])


@njit(cache=True, fastmath=False, error_model="numpy")
def sgd_update_multi(table, sizes, like, lrs, wds, rescale, clip):
    for k in range(sizes.shape[0]):
        sgd_update(_view(table, sizes, like, k, 0), _view(table, sizes, like, k, 1), lrs[k], wds[k],
                   rescale, clip)


@njit(cache=True, fastmath=False, error_model="numpy")
def sgd_mom_update_multi(table, sizes, like, lrs, wds, momentum, rescale, clip):
    for k in range(sizes.shape[0]):
        sgd_mom_update(_view(table, sizes, like, k, 0), _view(table, sizes, like, k, 1),
                       _view(table, sizes, like, k, 2), lrs[k], momentum, wds[k], rescale, clip)


@njit(cache=True, fastmath=False, error_model="numpy")
def nag_mom_update_multi(table, sizes, like, lrs, wds, momentum, rescale, clip):
    for k in range(sizes.shape[0]):
        nag_mom_update(_view(table, sizes, like, k, 0), _view(table, sizes, like, k, 1),
                       _view(table, sizes, like, k, 2), lrs[k], momentum, wds[k], rescale, clip)


@njit(cache=True, fastmath=False, error_model="numpy")
def adam_update_multi(table, sizes, like, lrs, wds, beta1, beta2, eps, rescale, clip):
    """`lrs` carry each parameter's bias correction (its update count may differ)."""
    for k in range(sizes.shape[0]):
        adam_update(_view(table, sizes, like, k, 0), _view(table, sizes, like, k, 1),
                    _view(table, sizes, like, k, 2), _view(table, sizes, like, k, 3), lrs[k], beta1,
                    beta2, eps, wds[k], rescale, clip)


@njit(cache=True, fastmath=False, error_model="numpy")
def adamw_update_multi(table, sizes, like, lrs, wds, bias_corrs, beta1, beta2, eps, rescale, clip):
    for k in range(sizes.shape[0]):
        adamw_update(_view(table, sizes, like, k, 0), _view(table, sizes, like, k, 1),
                     _view(table, sizes, like, k, 2), _view(table, sizes, like, k, 3), lrs[k], beta1,
                     beta2, eps, wds[k], rescale, clip, bias_corrs[k])
