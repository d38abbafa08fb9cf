"""Reductions over axes: sum, mean, prod, max, min, norm, argmax, argmin."""
import math
import numpy as np

from ..base import MXNetError, fmt_shape
from ..imperative import invoke
from .elemwise import _cast, equal, sign
from .registry import register
from .shape import broadcast_to, reshape


def normalize_axis(axis, ndim, name, shape=None):
    """None -> None; int or sequence -> a sorted tuple of non-negative axes (validated)."""
    where = '' if shape is None else f' (input shape {fmt_shape(shape)})'
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if ndim == 0:  # a 0-d array has nothing to reduce: axis 0 (or -1) means all of it
        if any(int(a) not in (0, -1) for a in axes):
            raise MXNetError(f'{name}: axis {axis} is out of range for a 0-d array')
        return None
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise MXNetError(f'{name}: axis {a} is out of range for an array with {ndim} dimensions{where}')
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise MXNetError(f'{name}: repeated axis in {axis}{where}')
    return tuple(sorted(out))


def reduced_shape(shape, axis, keepdims):
    axes = range(len(shape)) if axis is None else axis
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


_NO_IDENTITY = ('max', 'min', 'argmax', 'argmin')


def _reduce_infer(name, out_dtype=None):
    def infer(shapes, dtypes, axis, keepdims, **attrs):
        x = shapes[0]
        if name in _NO_IDENTITY and 0 in [x[a] for a in (range(len(x)) if axis is None else axis)]:
            raise MXNetError(f'{name}: cannot reduce an empty axis (input shape {fmt_shape(x)}, axis {axis}): '
                             'it has no identity value')
        return [reduced_shape(shapes[0], axis, keepdims)], [out_dtype or dtypes[0]]
    return infer


def _expand_grad(g, x, axis, keepdims):
    """Broadcast the gradient of a reduction back over the reduced axes."""
    if not keepdims:
        g = reshape(g, reduced_shape(x.shape, axis, True))
    return broadcast_to(g, x.shape)


def _count(x, axis):
    return int(math.prod([x.shape[a] for a in (range(x.ndim) if axis is None else axis)]))


def _reduction(name, fn, grad, out_dtype=None, no_grad=None):
    def kernel(x, axis, keepdims, out=None, **attrs):
        return _cast(fn(x, axis=axis, keepdims=keepdims, **attrs), out_dtype or x.dtype, out)
    op = register(name, _reduce_infer(name, out_dtype), kernel, grad, no_grad=no_grad)

    def apply(data, axis=None, keepdims=False, exclude=False, **attrs):
        ax = normalize_axis(axis, data.ndim, name, data.shape)
        if exclude and ax is not None:
            ax = tuple(i for i in range(data.ndim) if i not in ax)
        return invoke(op, [data], dict(axis=ax, keepdims=bool(keepdims), **attrs))
    apply.__name__ = name
    return apply


def _extreme_grad(g, y, x, axis, keepdims):
    # ties share the gradient equally, so the rule is the derivative of a symmetric function
    mask = equal(x, _expand_grad(y, x, axis, keepdims))
    count = _expand_grad(_sum(mask, axis=axis, keepdims=keepdims), x, axis, keepdims)
    return [_expand_grad(g, x, axis, keepdims) * mask / count]


def _norm_kernel(x, axis=None, keepdims=False, ord=2):
    if ord == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    return np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims))


def _norm_grad(g, y, x, axis, keepdims, ord):
    if ord == 1:
        return [_expand_grad(g, x, axis, keepdims) * sign(x)]
    return [_expand_grad(g / y, x, axis, keepdims) * x]


# the array methods (NumPy's and CuPy's alike) skip np.sum's Python dispatch: 1.0 vs 2.3 us on a
# small array, and a training step sums every bias gradient
sum = _sum = _reduction('sum', lambda x, **k: x.sum(**k),
                        lambda g, y, x, axis, keepdims: [_expand_grad(g, x, axis, keepdims)])
mean = _reduction('mean', lambda x, **k: x.mean(**k), lambda g, y, x, axis, keepdims:
                  [_expand_grad(g, x, axis, keepdims) / float(_count(x, axis))])
prod = _reduction('prod', np.prod, lambda g, y, x, axis, keepdims:
                  [_expand_grad(g * y, x, axis, keepdims) / x])
max = _reduction('max', lambda x, **k: x.max(**k), _extreme_grad)
min = _reduction('min', lambda x, **k: x.min(**k), _extreme_grad)
_norm = _reduction('norm', _norm_kernel, _norm_grad)
argmax = _reduction('argmax', lambda x, axis, keepdims: _arg(np.argmax, x, axis, keepdims),
                    None, out_dtype=np.dtype(np.float32), no_grad='index output')
argmin = _reduction('argmin', lambda x, axis, keepdims: _arg(np.argmin, x, axis, keepdims),
                    None, out_dtype=np.dtype(np.float32), no_grad='index output')
nansum = sum
sum_axis, max_axis, min_axis = sum, max, min


def _arg(fn, x, axis, keepdims):
    if axis is None:
        return fn(x.reshape(-1)).reshape((1,) * x.ndim if keepdims else ())
    if len(axis) != 1:
        raise MXNetError(f'{fn.__name__}: expects one axis, got {axis}')
    return fn(x, axis=axis[0], keepdims=keepdims)


def norm(data, ord=2, axis=None, keepdims=False):
    """The L2 (ord=2) or L1 (ord=1) norm over `axis` (all elements when None)."""
    if ord not in (1, 2):
        raise MXNetError(f'norm: ord must be 1 or 2, got {ord}')
    return _norm(data, axis=axis, keepdims=keepdims, ord=int(ord))

