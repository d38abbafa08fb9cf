"""Matrix products through BLAS: dot, batch_dot, fully_connected."""
import math
import numpy as np

from ..base import MXNetError, array_module, fmt_shape
from ..imperative import invoke
from .registry import register, shape_error
from .shape import reshape
from .reduce import sum as _sum


def _t(shape, flag):
    return tuple(reversed(shape)) if flag and len(shape) == 2 else tuple(shape)


def _dot_infer(shapes, dtypes, transpose_a, transpose_b):
    a, b = _t(shapes[0], transpose_a), _t(shapes[1], transpose_b)
    if not a or not b or a[-1] != b[0]:
        raise MXNetError(f'dot: shape mismatch: {fmt_shape(a)} x {fmt_shape(b)} (the last axis of lhs '
                         'must match the first axis of rhs)')
    return [a[:-1] + b[1:]], [np.result_type(*dtypes)]


def _dot_kernel(a, b, transpose_a, transpose_b, out=None):
    a = a.T if transpose_a and a.ndim == 2 else a
    b = b.T if transpose_b and b.ndim == 2 else b
    if a.ndim == 2 and b.ndim == 2:
        return np.matmul(a, b, out=out)
    res = array_module(a, b).asarray(np.tensordot(a, b, axes=1))
    if out is not None:
        out[...] = res
        return out
    return res


def _dot_grad(g, y, a, b, transpose_a, transpose_b):
    if a.ndim == 2 and b.ndim == 2:
        ta, tb = transpose_a, transpose_b
        if not ta and not tb:
            return [dot(g, b, transpose_b=True), dot(a, g, transpose_a=True)]
        if ta and not tb:
            return [dot(b, g, transpose_b=True), dot(a, g)]
        if not ta and tb:
            return [dot(g, b), dot(g, a, transpose_a=True)]
        return [dot(b, g, True, True), dot(g, a, True, True)]
    # N-d (no transposes): view as (M, K) x (K, N) matrices
    k = a.shape[-1]
    a2, b2 = reshape(a, (-1, k)), reshape(b, (k, -1))
    g2 = reshape(g, (a2.shape[0], b2.shape[1]))
    return [reshape(dot(g2, b2, transpose_b=True), a.shape), reshape(dot(a2, g2, transpose_a=True), b.shape)]


_dot = register('dot', _dot_infer, _dot_kernel, _dot_grad)


def dot(lhs, rhs, transpose_a=False, transpose_b=False):
    """Matrix product; N-d arrays contract the last axis of lhs with the first of rhs."""
    if getattr(lhs, 'stype', 'default') != 'default' or getattr(rhs, 'stype', 'default') != 'default':
        from ..ndarray_sparse import dot as sparse_dot   # csr / row_sparse operands, as MXNet's dot
        return sparse_dot(lhs, rhs, transpose_a, transpose_b)
    if (transpose_a and lhs.ndim > 2) or (transpose_b and rhs.ndim > 2):
        raise MXNetError('dot: transpose_a/transpose_b are supported for 1-d and 2-d inputs only')
    return invoke(_dot, [lhs, rhs], {'transpose_a': bool(transpose_a), 'transpose_b': bool(transpose_b)})


def _bt(shape, flag):
    return (shape[0], shape[2], shape[1]) if flag else tuple(shape)


def _batch_dot_infer(shapes, dtypes, transpose_a, transpose_b):
    if len(shapes[0]) != 3 or len(shapes[1]) != 3:
        raise shape_error('batch_dot', 'expects two 3-d arrays', *shapes)
    a, b = _bt(shapes[0], transpose_a), _bt(shapes[1], transpose_b)
    if a[0] != b[0] or a[2] != b[1]:
        raise shape_error('batch_dot', 'shape mismatch', shapes[0], shapes[1])
    return [(a[0], a[1], b[2])], [np.result_type(*dtypes)]


def _batch_dot_kernel(a, b, transpose_a, transpose_b, out=None):
    a = a.transpose(0, 2, 1) if transpose_a else a
    b = b.transpose(0, 2, 1) if transpose_b else b
    return np.matmul(a, b, out=out)


def _batch_dot_grad(g, y, a, b, transpose_a, transpose_b):
    ta, tb = transpose_a, transpose_b
    if not ta and not tb:
        return [batch_dot(g, b, transpose_b=True), batch_dot(a, g, transpose_a=True)]
    if ta and not tb:
        return [batch_dot(b, g, transpose_b=True), batch_dot(a, g)]
    if not ta and tb:
        return [batch_dot(g, b), batch_dot(g, a, transpose_a=True)]
    return [batch_dot(b, g, True, True), batch_dot(g, a, True, True)]


_batch_dot = register('batch_dot', _batch_dot_infer, _batch_dot_kernel, _batch_dot_grad)


def batch_dot(lhs, rhs, transpose_a=False, transpose_b=False):
    """Batched matrix product of (B, M, K) and (B, K, N) arrays."""
    return invoke(_batch_dot, [lhs, rhs], {'transpose_a': bool(transpose_a), 'transpose_b': bool(transpose_b)})


# ---- fully connected ------------------------------------------------------------------------

def _fc_infer(shapes, dtypes, flatten):
    x, w = shapes[0], shapes[1]
    k = int(math.prod(x[1:])) if flatten else x[-1]
    if len(w) != 2 or w[1] != k:
        raise shape_error('FullyConnected', f'weight must be (num_hidden, {k}) for this input', x, w)
    if len(shapes) == 3 and tuple(shapes[2]) != (w[0],):
        raise shape_error('FullyConnected', f'bias must be ({w[0]},)', shapes[2])
    out = (x[0], w[0]) if flatten else tuple(x[:-1]) + (w[0],)
    return [out], [np.result_type(*dtypes)]


def _fc_2d(shape, flatten):
    # explicit sizes: a -1 cannot be resolved for an empty batch (0 rows)
    if flatten:
        return (shape[0], int(math.prod(shape[1:])))
    return (int(math.prod(shape[:-1])), shape[-1])


def _fc_kernel(x, w, b=None, flatten=True, out=None):
    x2 = x.reshape(_fc_2d(x.shape, flatten))
    shape = (x.shape[0], w.shape[0]) if flatten else x.shape[:-1] + (w.shape[0],)
    res = np.matmul(x2, w.T, out=None if out is None else out.reshape(-1, w.shape[0]))
    if b is not None:
        res += b
    return res.reshape(shape) if out is None else out


def _fc_grad(g, y, x, w, *b, flatten):
    x2 = reshape(x, _fc_2d(x.shape, flatten))
    g2 = reshape(g, (x2.shape[0], w.shape[0]))
    grads = [reshape(dot(g2, w), x.shape), dot(g2, x2, transpose_a=True)]
    return grads + [_sum(g2, axis=0)] if b else grads


_fc = register('fully_connected', _fc_infer, _fc_kernel, _fc_grad)


def FullyConnected(data, weight, bias=None, num_hidden=None, no_bias=False, flatten=True):
    """y = x W^T + b, with MXNet's weight layout (num_hidden, in_units)."""
    if num_hidden is not None and weight.shape[0] != num_hidden:
        raise MXNetError(f'FullyConnected: num_hidden={num_hidden} but weight has shape {weight.shape}')
    inputs = [data, weight] if no_bias or bias is None else [data, weight, bias]
    return invoke(_fc, inputs, {'flatten': bool(flatten)})
