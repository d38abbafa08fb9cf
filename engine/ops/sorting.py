"""Sorting: MXNet's ``topk``, ``sort`` and ``argsort``.

One integer op finds the order (``_topk_indices``: the positions of the k first elements along an
axis, ties in position order), and the values are gathered with ``take_along_axis``, whose
gradient scatters back (``_scatter_along_axis``, itself differentiable: its gradient is the
gather). So ``topk(ret_typ='value')`` and ``sort`` pass gradients to the picked elements, as in
MXNet, in eager mode and in hybridized graphs alike."""
import numpy as np

from ..base import MXNetError, array_module, fmt_shape
from ..imperative import invoke
from .elemwise import _cast, cast
from .registry import register
from .shape import _ndim_axis, reshape

__all__ = ['topk', 'sort', 'argsort', 'take_along_axis']


def _order(v, ascending):
    """Stable order of `v` (M, n) along its last axis, ascending or descending; equal values keep
    their position order in both directions."""
    xp = array_module(v)
    kw = {'kind': 'stable'} if xp is np else {}
    if ascending:
        return xp.argsort(v, axis=1, **kw)
    n = v.shape[1]
    # descending: the ascending order of the reversed rows, reversed, names the equal values
    # of the original rows in position order
    return (n - 1) - xp.argsort(v[:, ::-1], axis=1, **kw)[:, ::-1]


def _candidates(v, k, ascending):
    """The positions (M, k), in position order, of the k elements a full stable sort of each row
    of `v` would put first, found by a partition (the k-th value) instead of a sort: those
    strictly before the k-th value, then the first of the ties with it. None when a row has no
    such k (NaNs): the caller sorts."""
    xp = array_module(v)
    n = v.shape[1]
    kth = xp.partition(v, k - 1 if ascending else n - k, axis=1)[:, k - 1 if ascending else n - k][:, None]
    before = v < kth if ascending else v > kth
    tie = v == kth
    room = k - before.sum(axis=1, keepdims=True)
    chosen = before | (tie & (xp.cumsum(tie, axis=1) <= room))
    if not bool((chosen.sum(axis=1) == k).all()):
        return None
    return xp.nonzero(chosen)[1].reshape(v.shape[0], k)


def _topk_kernel(x, axis, k, is_ascend, out=None):
    xp = array_module(x)
    moved = xp.moveaxis(x, axis, -1)
    lead, n = moved.shape[:-1], moved.shape[-1]
    v = moved.reshape(-1, n)
    cand = _candidates(v, k, is_ascend) if 0 < 4 * k < n else None
    if cand is not None:    # a few of many: the k picked elements, then their order
        idx = xp.take_along_axis(cand, _order(xp.take_along_axis(v, cand, 1), is_ascend), 1)
    else:
        idx = _order(v, is_ascend)[:, :k]
    res = xp.moveaxis(idx.reshape(lead + (k,)), -1, axis).astype(np.int64)
    return _cast(res, np.int64, out)


def _topk_infer(shapes, dtypes, axis, k, is_ascend):
    s = tuple(shapes[0])
    if not 0 <= axis < len(s):
        raise MXNetError(f'topk: axis {axis} is out of range for the data {fmt_shape(s)}')
    if not 1 <= k <= s[axis]:
        raise MXNetError(f'topk: k={k} must be between 1 and the size {s[axis]} of axis {axis} of the '
                         f'data {fmt_shape(s)}')
    return [s[:axis] + (k,) + s[axis + 1:]], [np.dtype(np.int64)]


_topk_indices = register('_topk_indices', _topk_infer, _topk_kernel, no_grad='integer output')


def _gather_infer(shapes, dtypes, axis):
    d, i = (tuple(s) for s in shapes)
    if not 0 <= axis < len(d) or len(i) != len(d) or d[:axis] + d[axis + 1:] != i[:axis] + i[axis + 1:]:
        raise MXNetError(f'take_along_axis: indices {fmt_shape(i)} must match the data {fmt_shape(d)} '
                         f'on every axis but axis {axis}')
    return [i], [dtypes[0]]


def _check_index(name, idx, n):
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise MXNetError(f'{name}: an index is outside [0, {n})')


def _gather_kernel(x, idx, axis, out=None):
    idx = idx.astype(np.int64, copy=False)
    _check_index('take_along_axis', idx, x.shape[axis])
    return _cast(array_module(x).take_along_axis(x, idx, axis), x.dtype, out)


def _scatter_infer(shapes, dtypes, axis, shape):
    y = _gather_infer([tuple(shape), shapes[1]], dtypes, axis)[0][0]
    if tuple(shapes[0]) != y:
        raise MXNetError(f'_scatter_along_axis: gradient shape {fmt_shape(shapes[0])} does not match '
                         f'the gathered shape {fmt_shape(y)}')
    return [tuple(shape)], [dtypes[0]]


def _scatter_kernel(g, idx, axis, shape, out=None):
    xp = array_module(g)
    idx = idx.astype(np.int64, copy=False)
    _check_index('_scatter_along_axis', idx, shape[axis])
    res = xp.zeros(shape, dtype=g.dtype)
    grids = list(xp.ix_(*[xp.arange(n) for n in idx.shape]))
    grids[axis] = idx
    if xp is np:
        np.add.at(res, tuple(grids), g)
    else:   # CuPy: the scatter-add of cupyx
        import cupyx
        cupyx.scatter_add(res, tuple(grids), g)
    return _cast(res, g.dtype, out)


_scatter_along_axis = register(
    '_scatter_along_axis', _scatter_infer, _scatter_kernel,
    lambda g, y, gy, idx, axis, shape: [invoke(_take_along_axis, [g, idx], {'axis': axis}), None])
_take_along_axis = register(
    'take_along_axis', _gather_infer, _gather_kernel,
    lambda g, y, x, idx, axis: [invoke(_scatter_along_axis, [g, idx], {'axis': axis, 'shape': x.shape}),
                                None])


def take_along_axis(data, indices, axis):
    """NumPy's take_along_axis: ``out[..., j, ...] = data[..., indices[..., j, ...], ...]``
    (indices in range, else an MXNetError)."""
    return invoke(_take_along_axis, [data, indices], {'axis': _ndim_axis(axis, data.ndim, 'take_along_axis',
                                                                         data.shape)})


_RET_TYPES = ('value', 'indices', 'mask', 'both')


def topk(data, axis=-1, k=1, ret_typ='indices', is_ascend=False, dtype='float32'):
    """The k largest (``is_ascend=False``) or smallest elements along ``axis`` (None: of the
    flattened array; ``k < 1``: all of them). ``ret_typ``: 'indices' (in ``dtype``), 'value',
    'both' ([value, indices]) or 'mask' (1 at the picked elements, in the data's dtype)."""
    if ret_typ not in _RET_TYPES:
        raise MXNetError(f'topk: ret_typ must be one of {_RET_TYPES}, got {ret_typ!r}')
    x = reshape(data, (-1,)) if axis is None else data
    ax = 0 if axis is None else _ndim_axis(axis, x.ndim, 'topk', x.shape)
    n = x.shape[ax]
    k = n if int(k) < 1 else int(k)
    idx = invoke(_topk_indices, [x], {'axis': ax, 'k': k, 'is_ascend': bool(is_ascend)})
    if ret_typ == 'mask':
        ones = cast(idx * 0 + 1, np.dtype(data.dtype).name)
        mask = invoke(_scatter_along_axis, [ones, idx], {'axis': ax, 'shape': tuple(x.shape)})
        return reshape(mask, tuple(data.shape)) if axis is None else mask
    index = cast(idx, np.dtype(dtype).name)
    if ret_typ == 'indices':
        return index
    value = invoke(_take_along_axis, [x, idx], {'axis': ax})
    return value if ret_typ == 'value' else [value, index]


def sort(data, axis=-1, is_ascend=True):
    """The data sorted along ``axis`` (None: flattened), ascending unless ``is_ascend=False``."""
    return topk(data, axis=axis, k=0, ret_typ='value', is_ascend=is_ascend)


def argsort(data, axis=-1, is_ascend=True, dtype='float32'):
    """The positions that sort the data along ``axis`` (None: flattened), as ``dtype``."""
    return topk(data, axis=axis, k=0, ret_typ='indices', is_ascend=is_ascend, dtype=dtype)
