"""Shape ops: reshape, transpose, broadcast, tile, repeat, flip, pad, concat, stack, split."""
import math
import numpy as np

from ..base import MXNetError, MXNetValueError, array_module, fmt_shape
from ..imperative import invoke
from . import expr
from .registry import register, shape_error


def _ndim_axis(axis, ndim, name, shape=None):
    axis = int(axis)
    if not -ndim <= axis < ndim:
        where = '' if shape is None else f' (input shape {fmt_shape(shape)})'
        raise MXNetError(f'{name}: axis {axis} is out of range for {ndim} dimensions{where}')
    return axis % ndim


# ---- reshape -----------------------------------------------------------------------------

def _reshape_infer(shapes, dtypes, shape):
    if int(math.prod(shapes[0])) != int(math.prod(shape)):
        # a ValueError too, as MXNet's NDArray.reshape raises
        raise MXNetValueError(f'reshape: cannot reshape {fmt_shape(shapes[0])} into {fmt_shape(shape)}')
    return [shape], [dtypes[0]]


_reshape = register('reshape', _reshape_infer,
                    lambda x, shape, out=None: _into(x.reshape(shape), out),
                    lambda g, y, x, shape: [reshape(g, x.shape)],
                    template=expr.x0)


def _into(res, out):
    if out is None:
        return res
    out[...] = res
    return out


def infer_reshape(src, target, reverse=False):
    """Resolve MXNet's special reshape values against the source shape:
    0 copies a dimension, -1 infers one, -2 copies the rest, -3 merges two, -4 splits one.
    `reverse` applies the spec right to left: as in MXNet, the spec and the source shape are both
    reversed token by token (so a -4 there comes after its two sizes: (..., b, a, -4, ...))."""
    src, target = tuple(src), tuple(int(t) for t in target)
    if reverse:
        return tuple(reversed(infer_reshape(src[::-1], target[::-1])))
    out, i, j = [], 0, 0
    while j < len(target):
        t = target[j]
        if t == 0:
            out.append(src[i]); i += 1
        elif t == -1:
            out.append(-1); i += 1
        elif t == -2:
            out.extend(src[i:]); i = len(src)
        elif t == -3:
            out.append(src[i] * src[i + 1]); i += 2
        elif t == -4:
            a, b = target[j + 1], target[j + 2]
            a = src[i] // b if a == -1 else a
            b = src[i] // a if b == -1 else b
            if a * b != src[i]:
                raise MXNetError(f'reshape: -4 splits dimension {src[i]} of {fmt_shape(src)} into '
                                 f'{a} x {b}, which does not multiply back to it')
            out.extend([a, b]); i += 1; j += 2
        else:
            out.append(t); i += 1
        j += 1
    if out.count(-1) > 1:
        raise MXNetError(f'reshape: more than one -1 in {target}')
    if -1 in out:
        known = int(math.prod([d for d in out if d != -1]))
        total = int(math.prod(src))
        if known == 0 or total % known:
            raise MXNetError(f'reshape: cannot infer -1 reshaping {fmt_shape(src)} into {target}')
        out[out.index(-1)] = total // known
    return tuple(out)


def reshape(data, shape, reverse=False):
    """Reshape (MXNet special values 0, -1, -2, -3, -4 allowed)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise MXNetError(f'reshape: shape must be a tuple of integers, got {shape}') from None
    if any(s < 0 or s == 0 for s in shape):
        try:
            shape = infer_reshape(data.shape, shape, reverse)
        except (IndexError, ZeroDivisionError):
            raise MXNetError(f'reshape: spec {shape} does not fit {fmt_shape(data.shape)}') from None
    return invoke(_reshape, [data], {'shape': shape})


def reshape_like(lhs, rhs):
    return reshape(lhs, rhs.shape)


def _fresh(y, inplace):
    """MXNet's flatten/expand_dims/squeeze return a copy unless inplace=True asks for a view of
    the input (reshape here is a view: writing into it would silently change the input)."""
    from ..ndarray import NDArray
    from .elemwise import copy
    return y if inplace or type(y) is not NDArray else copy(y)


def flatten(data, inplace=False):
    """Collapse all axes but the first: (N, a, b, ...) -> (N, a*b*...); a view with inplace=True."""
    return _fresh(reshape(data, (data.shape[0] if data.ndim else 1, -1)), inplace)


Flatten = flatten


def expand_dims(data, axis, inplace=False):
    axis = _ndim_axis(axis, data.ndim + 1, 'expand_dims', data.shape)
    return _fresh(reshape(data, data.shape[:axis] + (1,) + data.shape[axis:]), inplace)


def squeeze(data, axis=None, inplace=False):
    axes = range(data.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    axes = {_ndim_axis(a, data.ndim, 'squeeze', data.shape) for a in axes}
    for a in axes:
        if axis is not None and data.shape[a] != 1:
            raise MXNetError(f'squeeze: axis {a} has size {data.shape[a]}, not 1 (shape {fmt_shape(data.shape)})')
    return _fresh(reshape(data, tuple(s for i, s in enumerate(data.shape) if not (i in axes and s == 1))),
                  inplace)


# ---- transpose ---------------------------------------------------------------------------

def _transpose_infer(shapes, dtypes, axes):
    if sorted(axes) != list(range(len(shapes[0]))):
        raise shape_error('transpose', f'axes {axes} are not a permutation of the dimensions', shapes[0])
    return [tuple(shapes[0][a] for a in axes)], [dtypes[0]]


_transpose = register('transpose', _transpose_infer,
                      lambda x, axes, out=None: _into(x.transpose(axes).copy(), out),
                      lambda g, y, x, axes: [transpose(g, tuple(np.argsort(axes)))])


def transpose(data, axes=None):
    if not axes:
        axes = tuple(reversed(range(data.ndim)))
    else:
        axes = tuple(int(a) for a in axes)
        if len(axes) != data.ndim or any(not -data.ndim <= a < data.ndim for a in axes):
            raise shape_error('transpose', f'axes {axes} are not a permutation of the dimensions',
                              data.shape)
        axes = tuple(a % data.ndim for a in axes)
    return invoke(_transpose, [data], {'axes': axes})


def swapaxes(data, dim1=0, dim2=1):
    axes = list(range(data.ndim))
    d1, d2 = _ndim_axis(dim1, data.ndim, 'swapaxes', data.shape), _ndim_axis(dim2, data.ndim, 'swapaxes', data.shape)
    axes[d1], axes[d2] = axes[d2], axes[d1]
    return transpose(data, axes)


SwapAxis = swapaxes


# ---- broadcast_to / sum_to (each is the other's gradient) ----------------------------------

def _broadcast_infer(shapes, dtypes, shape):
    try:
        if np.broadcast_shapes(shapes[0], shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise shape_error('broadcast_to', f'cannot broadcast {fmt_shape(shapes[0])} to {fmt_shape(shape)}') from None
    return [tuple(shape)], [dtypes[0]]


def _sum_to_infer(shapes, dtypes, shape):
    try:
        if np.broadcast_shapes(shapes[0], shape) != tuple(shapes[0]):
            raise ValueError
    except ValueError:
        raise shape_error('sum_to', f'cannot sum {fmt_shape(shapes[0])} down to {fmt_shape(shape)}') from None
    return [tuple(shape)], [dtypes[0]]


def sum_to_kernel(x, shape, out=None):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    res = np.sum(x, axis=axes, keepdims=True) if axes else x
    res = array_module(x).asarray(res).reshape(shape)
    return _into(res.astype(x.dtype, copy=False), out)


_broadcast_to = register('broadcast_to', _broadcast_infer,
                         lambda x, shape, out=None: _into(np.broadcast_to(x, shape).copy(), out),
                         lambda g, y, x, shape: [sum_to(g, x.shape)])
_sum_to = register('sum_to', _sum_to_infer, sum_to_kernel,
                   lambda g, y, x, shape: [broadcast_to(g, x.shape)])


def broadcast_to(data, shape):
    shape = tuple(d if s == 0 else int(s) for s, d in
                  zip(shape, (1,) * (len(shape) - data.ndim) + tuple(data.shape)))
    if shape == tuple(data.shape):
        return data
    return invoke(_broadcast_to, [data], {'shape': shape})


def broadcast_like(lhs, rhs, lhs_axes=None, rhs_axes=None):
    """Broadcast `lhs` to the shape of `rhs`; with `lhs_axes`/`rhs_axes` (equal-length, non-empty
    axis tuples) only those axes of `lhs` (each of size 1) take the sizes of `rhs`'s axes."""
    if lhs_axes is None and rhs_axes is None:
        return broadcast_to(lhs, rhs.shape)
    la = (lhs_axes,) if isinstance(lhs_axes, (int, np.integer)) else tuple(lhs_axes or ())
    ra = (rhs_axes,) if isinstance(rhs_axes, (int, np.integer)) else tuple(rhs_axes or ())
    if not la:
        raise MXNetError('broadcast_like: lhs_axes is empty; give at least one axis')
    if len(la) != len(ra):
        raise MXNetError(f'broadcast_like: lhs_axes {la} and rhs_axes {ra} must have the same length')
    target = list(lhs.shape)
    for a, b in zip(la, ra):
        i = _ndim_axis(a, lhs.ndim, 'broadcast_like', lhs.shape)
        j = _ndim_axis(b, rhs.ndim, 'broadcast_like', rhs.shape)
        if lhs.shape[i] not in (1, rhs.shape[j]):
            raise MXNetError(f'broadcast_like: axis {a} of lhs {fmt_shape(lhs.shape)} has size '
                             f'{lhs.shape[i]} and cannot be broadcast to {rhs.shape[j]} (axis {b} '
                             f'of rhs {fmt_shape(rhs.shape)})')
        target[i] = rhs.shape[j]
    return broadcast_to(lhs, tuple(target))


def sum_to(data, shape):
    """Sum a broadcast array back down to `shape` (the adjoint of broadcast_to)."""
    shape = tuple(shape)
    if shape == tuple(data.shape):
        return data
    return invoke(_sum_to, [data], {'shape': shape})


# ---- tile / repeat / flip ----------------------------------------------------------------

def _tile_infer(shapes, dtypes, reps):
    if any(r < 0 for r in reps):
        raise shape_error('tile', f'reps={tuple(reps)} must be non-negative', shapes[0])
    shape = (1,) * (len(reps) - len(shapes[0])) + tuple(shapes[0])
    reps = (1,) * (len(shape) - len(reps)) + tuple(reps)
    return [tuple(s * r for s, r in zip(shape, reps))], [dtypes[0]]


def _tile_grad(g, y, x, reps):
    shape = (1,) * (len(reps) - x.ndim) + tuple(x.shape)
    reps = (1,) * (len(shape) - len(reps)) + tuple(reps)
    split = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    summed = g.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2)))
    return [reshape(summed, x.shape)]


_tile = register('tile', _tile_infer, lambda x, reps, out=None: _into(np.tile(x, reps), out), _tile_grad)


def tile(data, reps):
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    return invoke(_tile, [data], {'reps': reps})


def _repeat_infer(shapes, dtypes, repeats, axis):
    if repeats < 0:
        raise shape_error('repeat', f'repeats={repeats} must be non-negative', shapes[0])
    if axis is None:
        return [(int(np.prod(shapes[0])) * repeats,)], [dtypes[0]]
    s = list(shapes[0])
    s[axis] *= repeats
    return [tuple(s)], [dtypes[0]]


def _repeat_grad(g, y, x, repeats, axis):
    if axis is None:
        return [reshape(g.reshape((-1, repeats)).sum(axis=1), x.shape)]
    split = x.shape[:axis] + (x.shape[axis], repeats) + x.shape[axis + 1:]
    return [g.reshape(split).sum(axis=axis + 1)]


_repeat = register('repeat', _repeat_infer,
                   lambda x, repeats, axis, out=None: _into(np.repeat(x, repeats, axis), out), _repeat_grad)


def repeat(data, repeats, axis=None):
    axis = None if axis is None else _ndim_axis(axis, data.ndim, 'repeat', data.shape)
    return invoke(_repeat, [data], {'repeats': int(repeats), 'axis': axis})


def _flip_kernel(x, axis, out=None):
    return _into(np.flip(x, axis).copy(), out)


_flip = register('flip', lambda s, d, axis: ([s[0]], [d[0]]), _flip_kernel,
                 lambda g, y, x, axis: [flip(g, axis)])


def flip(data, axis):
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return invoke(_flip, [data], {'axis': tuple(_ndim_axis(a, data.ndim, 'flip', data.shape) for a in axes)})


reverse = flip


# ---- pad ---------------------------------------------------------------------------------

def _pad_pairs(pad_width, ndim):
    pw = tuple(int(p) for p in pad_width)
    if len(pw) != 2 * ndim:
        raise MXNetError(f'pad: pad_width needs 2 values per dimension ({2 * ndim}), got {len(pw)}')
    if any(p < 0 for p in pw):
        raise MXNetError(f'pad: negative padding {pw}')
    return tuple((pw[2 * i], pw[2 * i + 1]) for i in range(ndim))


def _pad_infer(shapes, dtypes, mode, pad_width, constant_value):
    pairs = _pad_pairs(pad_width, len(shapes[0]))
    if mode == 'reflect' and any(p >= s and p > 0 for s, pr in zip(shapes[0], pairs) for p in pr):
        raise shape_error('pad', 'reflect padding must be smaller than the dimension', shapes[0])
    return [tuple(s + a + b for s, (a, b) in zip(shapes[0], pairs))], [dtypes[0]]


def _pad_kernel(x, mode, pad_width, constant_value, out=None):
    pairs = _pad_pairs(pad_width, x.ndim)
    kw = {'constant_values': constant_value} if mode == 'constant' else {}
    return _into(np.pad(x, pairs, mode=mode, **kw), out)


def _pad_backward_kernel(g, shape, mode, pad_width, out=None):
    # pad is linear: its adjoint scatters each output element back to the input element it
    # was copied from (found by padding an array of flat indices the same way)
    xp = array_module(g)
    pairs = _pad_pairs(pad_width, len(shape))
    src = xp.arange(int(np.prod(shape))).reshape(shape)
    idx = xp.pad(src, pairs, mode=mode, **({'constant_values': -1} if mode == 'constant' else {}))
    keep = idx >= 0
    res = xp.zeros(int(np.prod(shape)), dtype=g.dtype)
    xp.add.at(res, idx[keep], xp.asarray(g)[keep])
    return _into(res.reshape(shape), out)


# the adjoint of pad is linear; its own adjoint is pad again (with zeros in constant mode)
def _pad_backward_infer(shapes, dtypes, shape, mode, pad_width):
    y = _pad_infer([tuple(shape)], dtypes, mode, pad_width, 0.0)[0][0]
    if tuple(shapes[0]) != y:
        raise shape_error('_pad_backward', f'the output gradient must be {fmt_shape(y)} for shape='
                          f'{tuple(shape)} and pad_width={pad_width}', shapes[0])
    return [tuple(shape)], [dtypes[0]]


_pad_backward = register('_pad_backward', _pad_backward_infer,
                         kernels={'cpu': _pad_backward_kernel, 'gpu': _pad_backward_kernel},
                         grad=lambda g, y, gy, shape, mode, pad_width: [pad(g, mode, pad_width, 0.0)])
_pad = register('pad', _pad_infer, _pad_kernel,
                lambda g, y, x, mode, pad_width, constant_value:
                [invoke(_pad_backward, [g], {'shape': x.shape, 'mode': mode, 'pad_width': pad_width})])


def pad(data, mode='constant', pad_width=(), constant_value=0.0):
    """Pad with MXNet's flat pad_width (before0, after0, before1, after1, ...)."""
    if mode not in ('constant', 'edge', 'reflect'):
        raise MXNetError(f"pad: mode must be 'constant', 'edge' or 'reflect', got {mode!r}")
    return invoke(_pad, [data], {'mode': mode, 'pad_width': tuple(int(p) for p in pad_width),
                                 'constant_value': float(constant_value)})


Pad = pad


# ---- concat / stack / split -----------------------------------------------------------------

def _concat_infer(shapes, dtypes, dim):
    ref = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(ref) or any(a != b for i, (a, b) in enumerate(zip(s, ref)) if i != dim):
            raise shape_error('concat', f'all inputs must match except on dim {dim}', *shapes)
    out = list(ref)
    out[dim] = sum(s[dim] for s in shapes)
    return [tuple(out)], [np.result_type(*dtypes)]


def _concat_grad(g, y, *xs, dim):
    bounds = np.cumsum([x.shape[dim] for x in xs])[:-1]
    return list(split_at(g, tuple(int(b) for b in bounds), dim))


_concat = register('concat', _concat_infer,
                   lambda *xs, dim, out=None: np.concatenate(xs, axis=dim, out=out), _concat_grad)


def concat(*data, dim=1, num_args=None):
    if not data:
        raise MXNetError('concat: needs at least one input')
    dim = _ndim_axis(dim, data[0].ndim, 'concat', data[0].shape)   # checked for one input too
    if len(data) == 1:
        return data[0]
    return invoke(_concat, list(data), {'dim': dim})


Concat = concat


def stack(*data, axis=0, num_args=None):
    if not data:
        raise MXNetError('stack: needs at least one input')
    axis = _ndim_axis(axis, data[0].ndim + 1, 'stack', data[0].shape)
    return concat(*[expand_dims(d, axis) for d in data], dim=axis)


def _split_infer(shapes, dtypes, bounds, axis):
    n = shapes[0][axis]
    edges = (0,) + tuple(bounds) + (n,)
    if any(b < a for a, b in zip(edges, edges[1:])):
        raise shape_error('split', f'cannot split axis {axis} of size {n} at {bounds}', shapes[0])
    outs = []
    for a, b in zip(edges, edges[1:]):
        s = list(shapes[0])
        s[axis] = b - a
        outs.append(tuple(s))
    return outs, [dtypes[0]] * len(outs)


def _split_kernel(x, bounds, axis, out=None):
    xp = array_module(x)   # NumPy's ascontiguousarray would refuse a CuPy array
    parts = [xp.ascontiguousarray(p) for p in xp.split(x, bounds, axis=axis)]
    if out is not None:
        for o, p in zip(out, parts):
            o[...] = p
        return tuple(out)
    return tuple(parts)


def _split_grad(gs, ys, x, bounds, axis):
    from .nn import full_like   # (nn imports this module)
    return [concat(*(full_like(y, 0.0) if g is None else g for g, y in zip(gs, ys)), dim=axis)]


_split = register('split', _split_infer, _split_kernel, _split_grad, multi_output=True)


def split_at(data, bounds, axis):
    """Split along `axis` at the given boundaries (a multi-output op): a tuple of arrays."""
    return invoke(_split, [data], {'bounds': tuple(int(b) for b in bounds), 'axis': axis})


def split(data, num_outputs, axis=1, squeeze_axis=False):
    """Split into `num_outputs` equal parts along `axis` (MXNet's SliceChannel)."""
    axis = _ndim_axis(axis, data.ndim, 'split', data.shape)
    if int(num_outputs) < 1:
        raise MXNetError(f'split: num_outputs must be at least 1, got {num_outputs}')
    if data.shape[axis] % num_outputs:
        raise MXNetError(f'split: axis {axis} of size {data.shape[axis]} is not divisible by '
                         f'num_outputs={num_outputs}')
    step = data.shape[axis] // num_outputs
    parts = split_at(data, tuple(step * i for i in range(1, num_outputs)), axis)
    if squeeze_axis:
        parts = tuple(squeeze(p, axis) for p in parts)
    return parts[0] if num_outputs == 1 else list(parts)


SliceChannel = split
