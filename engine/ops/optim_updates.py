"""MXNet's optimizer update ops (``nd.sgd_update``, ``nd.adam_update``, ``nd.signum_update``, ...).

Each runs the same kernel as the optimizer of that name (``kernels/cpu/optim.py``: fused Numba
loops with CUDA twins; ``kernels/cpu/optim_more.py``: array-ufunc updates for both devices), so
an optimizer and its op give the same numbers. As in MXNet, the state arrays are updated in
place and the new weight is written to ``out`` (pass ``out=weight`` to update the weight itself;
without ``out`` the weight is left unchanged and a new array is returned). These are imperative
functions, not graph ops: they are not recorded by autograd and cannot be traced.
"""
import numpy as np

from kernels.cpu import optim as _fused
from kernels.cpu import optim_more as _more

from ..base import MXNetError, array_module, fmt_shape

__all__ = [
    'sgd_update', 'sgd_mom_update', 'nag_mom_update', 'adam_update', 'rmsprop_update',
    'rmspropalex_update', 'signsgd_update', 'signum_update', 'ftml_update', 'ftrl_update',
    'lamb_update_phase1', 'lamb_update_phase2',
]

_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _arrays(op, names, arrays, out):
    """Check the inputs (NDArrays of one shape and context) and pick the array to write."""
    from ..ndarray import NDArray
    w = arrays[0]
    for name, a in zip(names, arrays):
        if not isinstance(a, NDArray):
            raise MXNetError(f'{op}: {name} must be an NDArray, got {type(a).__name__}')
        if getattr(a, 'stype', 'default') != 'default':
            raise MXNetError(f"{op}: {name} has storage type {a.stype!r}; this update takes dense arrays "
                             "(convert with .tostype('default'))")
        if a.shape != w.shape:
            raise MXNetError(f'{op}: {name} has shape {fmt_shape(a.shape)} but weight has shape '
                             f'{fmt_shape(w.shape)}; every input must have the shape of weight')
        if a.context != w.context:
            raise MXNetError(f'{op}: {name} is on {a.context} but weight is on {w.context}')
        if not np.issubdtype(a._data.dtype, np.floating):
            raise MXNetError(f'{op}: {name} has dtype {a._data.dtype}; expected a float dtype')
    if out is None:
        out = w.copy()
    elif not isinstance(out, NDArray) or out.shape != w.shape or out.context != w.context:
        raise MXNetError(f'{op}: out must be an NDArray of shape {fmt_shape(w.shape)} on '
                         f'{w.context} (usually out=weight)')
    elif out is not w:
        out._data[...] = w._data
    return out


def _run(kernel, out, others, scalars):
    """kernel(out, grad, *states, *scalars) in place; for the fused kernels through flat
    contiguous buffers of one float dtype (copies written back where needed)."""
    bufs = [out._data] + [a._data for a in others]
    xp = array_module(bufs[0])
    with out.context.scope():
        if getattr(_more, kernel.__name__, None) is kernel:
            kernel(*bufs, *scalars)
            return
        if xp is not np:
            from kernels.cuda import optim as cuda_optim
            kernel = getattr(cuda_optim, kernel.__name__)
        dt = bufs[0].dtype if bufs[0].dtype in _FUSED_DTYPES else np.dtype(np.float32)
        flats, back = [], []
        for k, b in enumerate(bufs):
            if b.dtype == dt and b.flags.c_contiguous:
                flats.append(b.reshape(-1))
            else:
                f = xp.ascontiguousarray(b, dtype=dt).reshape(-1)
                flats.append(f)
                if k != 1:   # the gradient is only read
                    back.append((b, f))
        kernel(*flats, *[float(s) for s in scalars])
        for b, f in back:
            b[...] = f.reshape(b.shape).astype(b.dtype, copy=False)


def _update(op, kernel, names, arrays, scalars, out):
    out = _arrays(op, names, arrays, out)
    _run(kernel, out, arrays[1:], scalars)
    return out


def sgd_update(weight, grad, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, lazy_update=True,
               out=None):
    """``w = (1 - lr*wd)*w - lr*clip(rescale_grad*grad)``."""
    return _update('sgd_update', _fused.sgd_update, ('weight', 'grad'), (weight, grad),
                   (lr, wd, rescale_grad, clip_gradient), out)


def sgd_mom_update(weight, grad, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0,
                   clip_gradient=-1.0, lazy_update=True, out=None):
    """``mom = momentum*mom - lr*wd*w - lr*clip(rescale_grad*grad); w += mom``."""
    return _update('sgd_mom_update', _fused.sgd_mom_update, ('weight', 'grad', 'mom'),
                   (weight, grad, mom), (lr, momentum, wd, rescale_grad, clip_gradient), out)


def nag_mom_update(weight, grad, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0,
                   clip_gradient=-1.0, out=None):
    """``g = clip(rescale_grad*grad) + wd*w; mom = momentum*mom - lr*g; w += momentum*mom - lr*g``
    (MXNet's op: the state holds lr-scaled steps, as the NAG optimizer's)."""
    return _update('nag_mom_update', _more.nag_mom_update, ('weight', 'grad', 'mom'),
                   (weight, grad, mom), (lr, momentum, wd, rescale_grad, clip_gradient), out)


def adam_update(weight, grad, mean, var, lr, beta1=0.9, beta2=0.999, epsilon=1e-8, wd=0.0,
                rescale_grad=1.0, clip_gradient=-1.0, lazy_update=True, out=None):
    """``g = clip(rescale_grad*grad + wd*w)``, moments, ``w -= lr*mean/(sqrt(var) + epsilon)``
    (no bias correction: the Adam optimizer folds it into lr)."""
    return _update('adam_update', _fused.adam_update, ('weight', 'grad', 'mean', 'var'),
                   (weight, grad, mean, var),
                   (lr, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient), out)


def rmsprop_update(weight, grad, n, lr, gamma1=0.95, epsilon=1e-8, wd=0.0, rescale_grad=1.0,
                   clip_gradient=-1.0, clip_weights=-1.0, out=None):
    """``g = clip(rescale_grad*grad + wd*w); n = (1-gamma1)*g^2 + gamma1*n;
    w -= lr*g/sqrt(n + epsilon)``, clipped to ``clip_weights`` when >= 0."""
    return _update('rmsprop_update', _fused.rmsprop_update, ('weight', 'grad', 'n'),
                   (weight, grad, n),
                   (lr, gamma1, epsilon, wd, rescale_grad, clip_gradient, clip_weights), out)


def rmspropalex_update(weight, grad, n, g, delta, lr, gamma1=0.95, gamma2=0.9, epsilon=1e-8,
                       wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, clip_weights=-1.0, out=None):
    """Centered RMSProp (Graves 2013); see ``kernels.cpu.optim.rmspropalex_update``."""
    return _update('rmspropalex_update', _fused.rmspropalex_update,
                   ('weight', 'grad', 'n', 'g', 'delta'), (weight, grad, n, g, delta),
                   (lr, gamma1, gamma2, epsilon, wd, rescale_grad, clip_gradient, clip_weights),
                   out)


def signsgd_update(weight, grad, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, out=None):
    """``w = (1 - lr*wd)*w - lr*sign(grad)``."""
    return _update('signsgd_update', _more.signsgd_update, ('weight', 'grad'), (weight, grad),
                   (lr, wd, rescale_grad, clip_gradient), out)


def signum_update(weight, grad, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0,
                  clip_gradient=-1.0, wd_lh=0.0, out=None):
    """``mom = momentum*mom - (1-momentum)*(clip(rescale_grad*grad) + wd*w);
    w = (1 - lr*wd_lh)*w + lr*sign(mom)``."""
    return _update('signum_update', _more.signum_update, ('weight', 'grad', 'mom'),
                   (weight, grad, mom), (lr, momentum, wd, rescale_grad, clip_gradient, wd_lh), out)


def ftml_update(weight, grad, d, v, z, lr, beta1=0.6, beta2=0.999, epsilon=1e-8, t=None, wd=0.0,
                rescale_grad=1.0, clip_grad=-1.0, out=None):
    """FTML (Zheng & Kwok 2017) at step ``t`` (required, >= 1); see ``kernels.cpu.optim_more``."""
    if t is None or int(t) < 1:
        raise MXNetError(f'ftml_update: t (the update count) must be >= 1, got {t}')
    return _update('ftml_update', _more.ftml_update, ('weight', 'grad', 'd', 'v', 'z'),
                   (weight, grad, d, v, z),
                   (lr, beta1, beta2, epsilon, int(t), wd, rescale_grad, clip_grad), out)


def ftrl_update(weight, grad, z, n, lr, lamda1=0.01, beta=1.0, wd=0.0, rescale_grad=1.0,
                clip_gradient=-1.0, out=None):
    """FTRL-proximal (McMahan et al. 2013); see ``kernels.cpu.optim_more.ftrl_update``."""
    return _update('ftrl_update', _more.ftrl_update, ('weight', 'grad', 'z', 'n'),
                   (weight, grad, z, n), (lr, lamda1, beta, wd, rescale_grad, clip_gradient), out)


def lamb_update_phase1(weight, grad, mean, var, beta1=0.9, beta2=0.999, epsilon=1e-6, t=None,
                       bias_correction=True, wd=None, rescale_grad=1.0, clip_gradient=-1.0,
                       out=None):
    """LAMB phase 1 (``t`` and ``wd`` required): updates mean/var in place and returns the step
    direction ``g`` (in ``out`` when given; the weight is not changed)."""
    from ..ndarray import NDArray
    if wd is None:
        raise MXNetError('lamb_update_phase1: wd (the weight decay) is required')
    if t is None or int(t) < 1:
        raise MXNetError(f'lamb_update_phase1: t (the update count) must be >= 1, got {t}')
    _arrays('lamb_update_phase1', ('weight', 'grad', 'mean', 'var'), (weight, grad, mean, var),
            weight)
    if out is None:
        with weight.context.scope():
            out = NDArray(weight.context.xp.empty_like(weight._data), weight.context)
    elif not isinstance(out, NDArray) or out.shape != weight.shape:
        raise MXNetError(f'lamb_update_phase1: out must be an NDArray of shape '
                         f'{fmt_shape(weight.shape)}')
    with weight.context.scope():
        _more.lamb_update_phase1(weight._data, grad._data, mean._data, var._data, out._data,
                                 float(beta1), float(beta2), float(epsilon), int(t),
                                 bool(bias_correction), float(wd), float(rescale_grad),
                                 float(clip_gradient))
    return out


def lamb_update_phase2(weight, g, r1, r2, lr, lower_bound=-1.0, upper_bound=-1.0, out=None):
    """LAMB phase 2: ``w -= lr * r1/r2 * g`` with ``r1`` (the weight's norm, a 1-element array)
    clamped to the bounds that are > 0 and the ratio 1 when r1 or r2 is 0."""
    from ..ndarray import NDArray
    for name, r in (('r1', r1), ('r2', r2)):
        if not isinstance(r, NDArray) or r.size != 1:
            raise MXNetError(f'lamb_update_phase2: {name} must be a 1-element NDArray (a norm), '
                             f'got {getattr(r, "shape", type(r).__name__)}')
    out = _arrays('lamb_update_phase2', ('weight', 'g'), (weight, g), out)
    with out.context.scope():
        _more.lamb_update_phase2(out._data, g._data, r1._data.reshape(1), r2._data.reshape(1),
                                 float(lr), float(lower_bound), float(upper_bound))
    return out


# ---- multi-precision (a float32 master copy of a float16 weight) and multi-tensor forms -------

def _mp_update(op, kernel, names, arrays, weight32, scalars, out):
    """Update the float32 master ``weight32`` with the kernel, then write it, cast, to ``out``."""
    from ..ndarray import NDArray
    weight = arrays[0]
    _arrays(op, names + ('weight32',), tuple(arrays) + (weight32,), weight)
    if weight32._data.dtype != np.float32:
        raise MXNetError(f'{op}: weight32 must be float32 (the master copy), got {weight32._data.dtype}')
    _run(kernel, weight32, arrays[1:], scalars)
    if out is None:
        with weight.context.scope():
            out = NDArray(weight.context.xp.empty_like(weight._data), weight.context)
    elif not isinstance(out, NDArray) or out.shape != weight.shape:
        raise MXNetError(f'{op}: out must be an NDArray of shape {fmt_shape(weight.shape)}')
    out._data[...] = weight32._data.astype(out._data.dtype)
    return out


def mp_sgd_update(weight, grad, weight32, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                  lazy_update=True, out=None):
    """``sgd_update`` on the float32 master copy ``weight32``; ``out`` gets it in weight's dtype."""
    return _mp_update('mp_sgd_update', _fused.sgd_update, ('weight', 'grad'), (weight, grad), weight32,
                      (lr, wd, rescale_grad, clip_gradient), out)


def mp_sgd_mom_update(weight, grad, mom, weight32, lr, momentum=0.0, wd=0.0, rescale_grad=1.0,
                      clip_gradient=-1.0, lazy_update=True, out=None):
    """``sgd_mom_update`` on the float32 master copy ``weight32`` (mom float32 too)."""
    return _mp_update('mp_sgd_mom_update', _fused.sgd_mom_update, ('weight', 'grad', 'mom'),
                      (weight, grad, mom), weight32, (lr, momentum, wd, rescale_grad, clip_gradient), out)


def _multi(op, single, group, data, lrs, wds, num_weights, out, **kw):
    n = int(num_weights)
    if len(data) != group * n:
        raise MXNetError(f'{op}: expected {group} arrays per weight for num_weights={n}, got {len(data)}')
    lrs, wds = list(lrs), list(wds)
    if len(lrs) != n or len(wds) != n:
        raise MXNetError(f'{op}: lrs and wds need {n} values each, got {len(lrs)} and {len(wds)}')
    outs = list(out) if isinstance(out, (list, tuple)) else [None] * n if out is None else [out]
    if len(outs) != n:
        raise MXNetError(f'{op}: out must be a list of {n} arrays')
    return [single(*data[group * i:group * (i + 1)], lr=lrs[i], wd=wds[i], out=outs[i], **kw)
            for i in range(n)]


def multi_sgd_update(*data, lrs, wds, rescale_grad=1.0, clip_gradient=-1.0, num_weights=1, out=None):
    """``sgd_update`` for weights, grads given as ``w0, g0, w1, g1, ...`` with per-weight rates."""
    return _multi('multi_sgd_update', sgd_update, 2, data, lrs, wds, num_weights, out,
                  rescale_grad=rescale_grad, clip_gradient=clip_gradient)


def multi_sgd_mom_update(*data, lrs, wds, momentum=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                         num_weights=1, out=None):
    """``sgd_mom_update`` for ``w0, g0, mom0, w1, g1, mom1, ...``."""
    return _multi('multi_sgd_mom_update', sgd_mom_update, 3, data, lrs, wds, num_weights, out,
                  momentum=momentum, rescale_grad=rescale_grad, clip_gradient=clip_gradient)


def multi_mp_sgd_update(*data, lrs, wds, rescale_grad=1.0, clip_gradient=-1.0, num_weights=1, out=None):
    """``mp_sgd_update`` for ``w0, g0, w32_0, w1, g1, w32_1, ...``."""
    return _multi('multi_mp_sgd_update', mp_sgd_update, 3, data, lrs, wds, num_weights, out,
                  rescale_grad=rescale_grad, clip_gradient=clip_gradient)


def multi_mp_sgd_mom_update(*data, lrs, wds, momentum=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                            num_weights=1, out=None):
    """``mp_sgd_mom_update`` for ``w0, g0, mom0, w32_0, ...``."""
    return _multi('multi_mp_sgd_mom_update', mp_sgd_mom_update, 4, data, lrs, wds, num_weights, out,
                  momentum=momentum, rescale_grad=rescale_grad, clip_gradient=clip_gradient)


__all__ += ['mp_sgd_update', 'mp_sgd_mom_update', 'multi_sgd_update',
            'multi_sgd_mom_update', 'multi_mp_sgd_update', 'multi_mp_sgd_mom_update']
