"""Indexing: basic and integer-array getitem, slice_axis, take, pick, one_hot."""
import builtins

import numpy as np

from ..base import MXNetError, array_module, fmt_shape
from ..imperative import invoke
from .elemwise import _cast
from .registry import register
from .shape import _ndim_axis


_py_slice = builtins.slice  # this module defines its own `slice` op


# ---- getitem -----------------------------------------------------------------------------
# A key is stored as a hashable template; integer-array parts become extra op inputs:
#   ('i', n) int   ('s', start, stop, step) slice   ('n',) None   ('e',) Ellipsis   ('a', k) array k

def encode_key(key, ctx=None, shape=None, name='getitem'):
    """Split a Python index into (template, index arrays); index arrays built from lists or NumPy
    arrays are placed on `ctx` (the indexed array's context; default: the current one). With the
    indexed array's `shape`, boolean masks are checked against the dimensions they cover."""
    from ..ndarray import NDArray
    items = key if isinstance(key, tuple) else (key,)
    template, arrays, masks = [], [], []
    for it in items:
        if isinstance(it, (int, np.integer)) and not isinstance(it, bool):
            template.append(('i', int(it)))
        elif isinstance(it, _py_slice):
            template.append(('s', it.start, it.stop, it.step))
        elif it is None:
            template.append(('n',))
        elif it is Ellipsis:
            template.append(('e',))
        elif isinstance(it, (float, np.floating)):
            raise MXNetError(f'getitem: index {it!r} is a float; indices must be integers, slices, '
                             'None, Ellipsis or integer/boolean arrays')
        else:
            idx = it if isinstance(it, NDArray) else _host_index(it, ctx)
            if np.dtype(idx.dtype) == np.bool_:
                masks.append((len(template), idx.shape))
                # a k-d mask is the k index arrays of its nonzero entries
                for nz in np.nonzero(np.asarray(idx)):
                    template.append(('a', len(arrays)))
                    arrays.append(_new_index(nz, idx.context))
                continue
            template.append(('a', len(arrays)))
            arrays.append(idx)
    if shape is not None and masks:
        _check_masks(template, masks, shape, name)
    return tuple(template), arrays


def _new_index(values, ctx):
    from ..ndarray import array
    return array(values, ctx=ctx, dtype='int64')


def _host_index(it, ctx):
    """An index array from a list or NumPy array: integers (or integral floats) or booleans."""
    from ..ndarray import array
    a = np.asarray(it)
    if a.dtype == np.bool_:
        return array(a, ctx=ctx, dtype='bool')
    if a.dtype.kind == 'f' and not np.array_equal(a, np.trunc(a)):
        raise MXNetError(f'getitem: index array {it!r} holds non-integer values')
    if a.dtype.kind not in 'iuf':
        raise MXNetError(f'getitem: cannot index with {type(it).__name__} of dtype {a.dtype}')
    return _new_index(a, ctx)


def _check_masks(template, masks, shape, name):
    """Each boolean mask must have the shape of the dimensions it covers (else NumPy-style
    indexing with its nonzero positions would silently select from a different layout)."""
    mask_at = dict(masks)
    widths, i = [], 0
    while i < len(template):   # dims each item consumes; a mask's index arrays count once
        if i in mask_at:
            widths.append((i, len(mask_at[i])))
            i += len(mask_at[i])
            continue
        widths.append((i, 0 if template[i][0] in 'ne' else 1))
        i += 1
    used = sum(w for _, w in widths)
    dim = 0
    for i, w in widths:
        if template[i][0] == 'e':
            dim += max(len(shape) - used, 0)
        if i in mask_at and tuple(shape[dim:dim + w]) != tuple(mask_at[i]):
            raise MXNetError(f'{name}: boolean index of shape {fmt_shape(mask_at[i])} does not match '
                             f'the indexed dimensions {fmt_shape(shape[dim:dim + w])} of an array of '
                             f'shape {fmt_shape(shape)}')
        dim += w


def decode_key(template, arrays):
    out = []
    for t in template:
        kind = t[0]
        if kind == 'i':
            out.append(t[1])
        elif kind == 's':
            out.append(_py_slice(t[1], t[2], t[3]))
        elif kind == 'n':
            out.append(None)
        elif kind == 'e':
            out.append(Ellipsis)
        else:
            out.append(arrays[t[1]].astype(np.int64, copy=False))
    return tuple(out)


def _getitem_infer(shapes, dtypes, key):
    dummy = np.broadcast_to(np.zeros((), dtype=np.int8), shapes[0])
    try:
        res = dummy[decode_key(key, [np.zeros(s, dtype=np.int64) for s in shapes[1:]])]
    except (IndexError, TypeError, ValueError) as e:
        why = _index_words(key, shapes[0]) or f'invalid index: {e}'
        raise MXNetError(f'getitem: {why} (array of shape {fmt_shape(shapes[0])})') from None
    return [res.shape], [dtypes[0]]


def _index_words(key, shape):
    """The common bad keys in our words (None: let NumPy's message explain the rest)."""
    used = sum(1 for t in key if t[0] in 'isa')
    if used > len(shape):
        return f'{used} indices for an array of {len(shape)} dimensions'
    dim = 0
    for t in key:
        if t[0] == 'i' and not -shape[dim] <= t[1] < shape[dim]:
            return f'index {t[1]} is out of range for axis {dim} of size {shape[dim]}'
        dim += len(shape) - used if t[0] == 'e' else t[0] in 'isa'
    return None


def _check_index_arrays(name, key, idx, shape):
    """Integer-array indices must lie in their axes: NumPy would refuse them in its words, CuPy
    silently wraps them around. One min/max per index array."""
    used = sum(1 for t in key if t[0] in 'isa')
    dim = 0
    for t in key:
        a = idx[t[1]] if t[0] == 'a' else None
        if a is not None and a.size:
            lo, hi, n = int(a.min()), int(a.max()), shape[dim]
            if lo < -n or hi >= n:
                raise MXNetError(f'{name}: index {hi if hi >= n else lo} is out of range for axis {dim} of '
                                 f'size {n} (array of shape {fmt_shape(shape)})')
        dim += len(shape) - used if t[0] == 'e' else t[0] in 'isa'


def _getitem_kernel(x, *idx, key, out=None):
    idx = [i.astype(np.int64, copy=False) for i in idx]
    _check_index_arrays('getitem', key, idx, x.shape)
    res = x[decode_key(key, idx)]
    if getattr(res, 'ndim', 0):
        res = array_module(x).ascontiguousarray(res)   # (NumPy's would refuse a CuPy array)
    elif hasattr(res, 'copy'):
        res = res.copy()  # np.ascontiguousarray would turn a 0-d result into shape (1,)
    return _cast(res, x.dtype, out)


def _scatter_kernel(g, *idx, key, shape, out=None):
    xp = array_module(g)    # NumPy or CuPy: the same array API (CuPy's add.at is a scatter-add)
    res = xp.zeros(shape, dtype=g.dtype) if out is None else out
    if out is not None:
        res[...] = 0
    idx = [i.astype(np.int64, copy=False) for i in idx]
    _check_index_arrays('_getitem_backward', key, idx, shape)
    k = decode_key(key, idx)
    if idx:
        xp.add.at(res, k, g)   # repeated indices accumulate
    else:
        res[k] = g
    return res


_getitem = register('getitem', _getitem_infer, kernels={'any': _getitem_kernel},
                    grad=lambda g, y, x, *idx, key: [invoke(_getitem_backward, [g, *idx],
                                                            {'key': key, 'shape': x.shape})] + [None] * len(idx))
def _getitem_backward_infer(shapes, dtypes, key, shape):
    y = _implied('_getitem_backward', _getitem_infer, [tuple(shape)] + list(shapes[1:]), dtypes, key=key)
    _check_grad_shape('_getitem_backward', shapes[0], y)
    return [tuple(shape)], [dtypes[0]]


def _implied(name, rule, shapes, dtypes, **attrs):
    """The first output shape the forward `rule` gives; its errors are reported as `name`'s."""
    try:
        return rule(shapes, dtypes, **attrs)[0][0]
    except MXNetError as e:
        raise MXNetError(f'{name}: attributes and inputs do not fit: {e}') from None


def _check_grad_shape(name, got, want):
    if tuple(got) != tuple(want):
        raise MXNetError(f'{name}: the output gradient has shape {fmt_shape(got)}, but the attributes '
                         f'and the other inputs imply {fmt_shape(want)}')


_getitem_backward = register(
    '_getitem_backward', _getitem_backward_infer,
    kernels={'cpu': _scatter_kernel, 'gpu': _scatter_kernel},
    grad=lambda g, y, gy, *idx, key, shape: [invoke(_getitem, [g, *idx], {'key': key})] + [None] * len(idx))


def getitem(data, key):
    template, arrays = encode_key(key, data.context, data.shape)
    return invoke(_getitem, [data, *arrays], {'key': template})


def slice_axis(data, axis, begin, end):
    axis = _ndim_axis(axis, data.ndim, 'slice_axis', data.shape)
    key = (_py_slice(None),) * axis + (_py_slice(begin, end),)
    return getitem(data, key)


def slice(data, begin, end, step=None):
    step = step or (None,) * len(begin)
    if not len(begin) == len(end) == len(step) <= data.ndim:
        raise MXNetError(f'slice: begin={tuple(begin)}, end={tuple(end)} and step={tuple(step)} must have '
                         f'one entry per sliced axis, at most {data.ndim} for shape {fmt_shape(data.shape)}')
    return getitem(data, tuple(_py_slice(b, e, s) for b, e, s in zip(begin, end, step)))


# ---- take / pick ----------------------------------------------------------------------------

def _wrap_index(idx, n, mode):
    xp = array_module(idx)
    if idx.dtype.kind == 'f':
        # clip (or wrap) before casting: 1e20 cast to int64 would become INT64_MIN (row 0);
        # NaN has no row and goes to 0
        idx = xp.nan_to_num(xp.trunc(idx), nan=0.0)
        idx = xp.fmod(idx, n) if mode == 'wrap' else xp.clip(idx, 0, n - 1)
    idx = idx.astype(np.int64)
    return xp.mod(idx, n) if mode == 'wrap' else xp.clip(idx, 0, n - 1)


def _take_infer(shapes, dtypes, axis, mode):
    a, i = shapes
    if not 0 <= axis < len(a) or a[axis] == 0:
        raise MXNetError(f'take: axis {axis} must index a non-empty axis of the data '
                         f'{fmt_shape(a)}')
    return [a[:axis] + tuple(i) + a[axis + 1:]], [dtypes[0]]


def _take_kernel(a, idx, axis, mode, out=None):
    return _cast(np.take(a, _wrap_index(idx, a.shape[axis], mode), axis=axis), a.dtype, out)


def _take_backward_kernel(g, idx, axis, mode, shape, out=None):
    xp = array_module(g)
    res = xp.zeros(shape, dtype=g.dtype)
    ii = _wrap_index(idx, shape[axis], mode)
    moved = xp.moveaxis(res, axis, 0)
    gm = g.reshape(shape[:axis] + (ii.size,) + shape[axis + 1:])
    xp.add.at(moved, ii.reshape(-1), xp.moveaxis(gm, axis, 0))
    return _cast(res, g.dtype, out)


# the scatter-add is linear; its own gradient is the gather again (for higher-order gradients)
def _take_backward_infer(shapes, dtypes, axis, mode, shape):
    y = _implied('_take_backward', _take_infer, [tuple(shape), shapes[1]], dtypes, axis=axis, mode=mode)
    _check_grad_shape('_take_backward', shapes[0], y)
    return [tuple(shape)], [dtypes[0]]


def _pick_backward_infer(shapes, dtypes, axis, keepdims, mode, shape):
    y = _implied('_pick_backward', _pick_infer, [tuple(shape), shapes[1]], dtypes, axis=axis,
                 keepdims=keepdims, mode=mode)
    _check_grad_shape('_pick_backward', shapes[0], y)
    return [tuple(shape)], [dtypes[0]]


_take_backward = register('_take_backward', _take_backward_infer,
                          kernels={'cpu': _take_backward_kernel, 'gpu': _take_backward_kernel},
                          grad=lambda g, y, gy, i, axis, mode, shape: [take(g, i, axis, mode), None])
_take = register('take', _take_infer, _take_kernel,
                 lambda g, y, a, i, axis, mode: [invoke(_take_backward, [g, i],
                                                        {'axis': axis, 'mode': mode, 'shape': a.shape}), None])


def take(a, indices, axis=0, mode='clip'):
    """Gather slices along `axis` (indices clipped or wrapped into range, as in MXNet)."""
    if mode not in ('clip', 'wrap'):
        raise MXNetError(f"take: mode must be 'clip' or 'wrap', got {mode!r}")
    return invoke(_take, [a, indices], {'axis': _ndim_axis(axis, a.ndim, 'take', a.shape), 'mode': mode})


def _pick_infer(shapes, dtypes, axis, keepdims, mode):
    d, i = shapes
    if not 0 <= axis < len(d) or d[axis] == 0:
        raise MXNetError(f'pick: axis {axis} must index a non-empty axis of the data {fmt_shape(d)}')
    expect = d[:axis] + d[axis + 1:]
    if tuple(i) not in (expect, d[:axis] + (1,) + d[axis + 1:]):
        raise MXNetError(f'pick: index shape {fmt_shape(i)} must be {fmt_shape(expect)} for data '
                         f'{fmt_shape(d)} along axis {axis}')
    return [d[:axis] + (1,) + d[axis + 1:] if keepdims else expect], [dtypes[0]]


def _pick_index(d_shape, idx, axis, mode):
    ii = _wrap_index(idx, d_shape[axis], mode)
    return array_module(ii).expand_dims(ii.reshape(d_shape[:axis] + d_shape[axis + 1:]), axis)


def _pick_kernel(d, idx, axis, keepdims, mode, out=None):
    res = array_module(d).take_along_axis(d, _pick_index(d.shape, idx, axis, mode), axis)
    return _cast(res if keepdims else res.squeeze(axis), d.dtype, out)


def _pick_backward_kernel(g, idx, axis, keepdims, mode, shape, out=None):
    xp = array_module(g)
    res = xp.zeros(shape, dtype=g.dtype)
    ii = _pick_index(shape, idx, axis, mode)
    xp.put_along_axis(res, ii, g.reshape(ii.shape), axis)
    return _cast(res, g.dtype, out)


_pick_backward = register('_pick_backward', _pick_backward_infer,
                          kernels={'cpu': _pick_backward_kernel, 'gpu': _pick_backward_kernel},
                          grad=lambda g, y, gy, i, axis, keepdims, mode, shape:
                          [pick(g, i, axis, keepdims, mode), None])
_pick = register('pick', _pick_infer, _pick_kernel,
                 lambda g, y, d, i, axis, keepdims, mode:
                 [invoke(_pick_backward, [g, i], {'axis': axis, 'keepdims': keepdims, 'mode': mode,
                                                  'shape': d.shape}), None])


def pick(data, index, axis=-1, keepdims=False, mode='clip'):
    """Pick one element per row along `axis`: out[i] = data[i, index[i]]."""
    if mode not in ('clip', 'wrap'):
        raise MXNetError(f"pick: mode must be 'clip' or 'wrap', got {mode!r}")
    return invoke(_pick, [data, index], {'axis': _ndim_axis(axis, data.ndim, 'pick', data.shape),
                                         'keepdims': bool(keepdims), 'mode': mode})


# ---- one_hot ------------------------------------------------------------------------------

def _one_hot_kernel(idx, depth, on_value, off_value, dtype, out=None):
    xp = array_module(idx)
    ii = xp.asarray(idx).astype(np.int64)
    res = xp.full(ii.shape + (depth,), off_value, dtype=dtype)
    if depth == 0:
        return _cast(res, np.dtype(dtype), out)
    valid = (ii >= 0) & (ii < depth)
    xp.put_along_axis(res, xp.where(valid, ii, 0)[..., None],
                      xp.where(valid, on_value, off_value)[..., None].astype(dtype), -1)
    return _cast(res, np.dtype(dtype), out)


def _one_hot_infer(shapes, dtypes, depth, on_value, off_value, dtype):
    if depth < 0:
        raise MXNetError(f'one_hot: depth={depth} must be non-negative (indices {fmt_shape(shapes[0])})')
    return [tuple(shapes[0]) + (depth,)], [np.dtype(dtype)]


_one_hot = register('one_hot', _one_hot_infer,
                    kernels={'cpu': _one_hot_kernel, 'gpu': _one_hot_kernel},
                    no_grad='integer indices in, constants out')


def one_hot(indices, depth, on_value=1.0, off_value=0.0, dtype='float32'):
    return invoke(_one_hot, [indices], {'depth': int(depth), 'on_value': float(on_value),
                                        'off_value': float(off_value), 'dtype': np.dtype(dtype).name})
