"""Float64 finite-difference gradient checks for every differentiable op in the registry.

CASES maps an op name to the cases that exercise it: (function under test, NumPy inputs, options
for check_numeric_gradient). `test_every_differentiable_op_has_a_case` makes adding an op without a
gradient check fail, and each case verifies that its op really is on the recorded tape (so a case
filed under the wrong name, or an API that silently dispatches elsewhere, is caught).
Inputs stay away from kinks (abs/relu at 0, max ties, mod jumps, clip bounds) by construction.
"""
import numpy as np
import pytest

from engine import autograd, nd
from engine import random as mx_random
from engine.imperative import invoke
from engine.ndarray import NDArray
from engine.ops.index import encode_key
from engine.ops.registry import REGISTRY, get_op
from engine.ops.rnn import rnn_layer
from engine.test_utils import check_numeric_gradient

_rng = np.random.default_rng(20240601)


def u(*shape, lo=-1.0, hi=1.0):
    return np.asarray(_rng.uniform(lo, hi, shape))


def pos(*shape):
    return u(*shape, lo=0.5, hi=2.0)


def nz(*shape):
    """|x| in [0.3, 1.5] with a random sign: away from the kink at 0."""
    return np.asarray(_rng.uniform(0.3, 1.5, shape) * _rng.choice([-1.0, 1.0], shape))


def away(shape, points, lo=-1.5, hi=1.5, gap=0.1):
    """Uniform values at least `gap` away from each of `points`."""
    x = np.asarray(_rng.uniform(lo, hi, shape), dtype=np.float64).reshape(shape)
    pts = np.asarray(points, dtype=np.float64)
    for _ in range(1000):
        bad = np.min(np.abs(x[..., None] - pts), axis=-1) < gap
        if not bad.any():
            return x
        x[bad] = _rng.uniform(lo, hi, int(bad.sum()))
    raise AssertionError('could not draw values away from the given points')


def distinct(*shape):
    """Values at least 0.1 apart (no ties for max/min)."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.1 - 0.05 * n).reshape(shape)


def mod_pair(a_shape, b_shape, lo=1.0, hi=2.0):
    """(a, b) with a / b at least 0.2 away from an integer: a mod b is smooth there."""
    b = _rng.uniform(lo, hi, b_shape)
    shape = np.broadcast_shapes(a_shape, b_shape)
    q = _rng.integers(-2, 3, shape) + _rng.uniform(0.2, 0.8, shape)
    return (q * b).reshape(a_shape) if shape == a_shape else None, b


CASES = {}


def case(op, fn, *inputs, **opts):
    CASES.setdefault(op, []).append((fn, [np.asarray(x) for x in inputs], opts))


# ---- unary ------------------------------------------------------------------------------------
case('negative', nd.negative, u(3, 4))
case('negative', lambda x: -x, u(2, 3))
case('copy', nd.copy, u(3, 4))
case('copy', lambda x: x.copy(), u(5))
case('exp', nd.exp, u(3, 4))
case('exp', lambda x: x.exp(), u())  # 0-d
case('log', nd.log, pos(3, 4))
case('log1p', nd.log1p, pos(3, 4))
case('expm1', nd.expm1, u(3, 4))
case('sqrt', nd.sqrt, pos(3, 4))
case('rsqrt', nd.rsqrt, pos(3, 4))
case('square', nd.square, u(3, 4))
case('square', lambda x: x ** 2, u(2, 3))
case('reciprocal', nd.reciprocal, nz(3, 4))
case('abs', nd.abs, nz(3, 4))
case('abs', lambda x: abs(x), nz())
case('sin', nd.sin, u(3, 4, lo=-3, hi=3))
case('cos', nd.cos, u(3, 4, lo=-3, hi=3))
case('tan', nd.tan, u(3, 4))
case('tanh', nd.tanh, u(3, 4, lo=-2, hi=2))
case('sigmoid', nd.sigmoid, u(3, 4, lo=-4, hi=4))
case('sigmoid', nd.sigmoid, u(1))
case('relu', nd.relu, nz(3, 4))
case('softplus', nd.softplus, u(3, 4, lo=-30, hi=30))
case('softplus', nd.softrelu, u(2, 2))
case('erf', nd.erf, u(3, 4, lo=-2, hi=2))
# float64 -> float32 -> float64 loses precision: a large step is exact for this linear op
case('cast', lambda x: nd.cast(x, 'float32'), u(3, 4), eps=1e-2, rtol=1e-4, atol=1e-5)
case('cast', lambda x: x.astype('float64'), u(3, 4))

# ---- scalar ops ---------------------------------------------------------------------------------
case('_plus_scalar', lambda x: x + 2, u(3, 4))
case('_plus_scalar', lambda x: 2.5 + x, u(3, 4))
case('_plus_scalar', lambda x: x - 3, u(3, 4))
case('_plus_scalar', lambda x: x + np.float64(1.5), u())
case('_rminus_scalar', lambda x: 2 - x, u(3, 4))
case('_rminus_scalar', lambda x: nd.subtract(2, x), u(4))
case('_mul_scalar', lambda x: x * 3, u(3, 4))
case('_mul_scalar', lambda x: 3 * x, u(3, 4))
case('_div_scalar', lambda x: x / 3, u(3, 4))
case('_rdiv_scalar', lambda x: 3 / x, nz(3, 4))
case('_power_scalar', lambda x: x ** 3, u(3, 4))
case('_power_scalar', lambda x: x ** 0.5, pos(3, 4))
case('_power_scalar', lambda x: x ** -1.5, pos(3))
case('_rpower_scalar', lambda x: 2 ** x, u(3, 4))
case('_rpower_scalar', lambda x: 0.5 ** x, u(3))
case('_maximum_scalar', lambda x: nd.maximum(x, 0.2), away((3, 4), [0.2]))
case('_maximum_scalar', lambda x: nd.maximum(0.2, x), away((3, 4), [0.2]))
case('_minimum_scalar', lambda x: nd.minimum(x, 0.2), away((3, 4), [0.2]))
case('_minimum_scalar', lambda x: nd.minimum(-0.3, x), away((5,), [-0.3]))
case('_mod_scalar', lambda x: x % 1.5, 1.5 * (_rng.integers(-2, 3, (3, 4)) + _rng.uniform(0.2, 0.8, (3, 4))))
case('_rmod_scalar', lambda x: 5 % x, 5.0 / (_rng.integers(1, 6, (3, 4)) + _rng.uniform(0.2, 0.8, (3, 4))))
case('clip', lambda x: nd.clip(x, -0.5, 0.5), away((3, 4), [-0.5, 0.5]))
case('clip', lambda x: x.clip(0.0, 1.0), away((6,), [0.0, 1.0], lo=-0.5, hi=1.5))

# ---- broadcasting binary ops --------------------------------------------------------------------
_BCAST = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), (3,)), ((), (2, 3)), ((2, 3), ())]
for _a, _b in _BCAST:
    case('add', nd.add, u(*_a), u(*_b))
    case('subtract', nd.subtract, u(*_a), u(*_b))
    case('multiply', nd.multiply, u(*_a), u(*_b))
    case('divide', nd.divide, u(*_a), nz(*_b))
    case('power', nd.power, pos(*_a), u(*_b))
case('add', lambda a, b: a + b, u(2, 3), u(2, 3))
case('add', lambda a: a + a, u(3))  # the same input twice accumulates
case('subtract', lambda a, b: a - b, u(2, 1, 3), u(4, 1))
case('multiply', lambda a, b: a * b, u(2, 3), u(2, 3))
case('divide', lambda a, b: a / b, u(4, 1), nz(1, 3))
case('power', lambda a, b: a ** b, pos(2, 3), u(2, 3))
for _a, _b in [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((2, 3), (3,))]:
    _x, _y = mod_pair(_a, _b)
    case('modulo', nd.modulo, _x, _y)
case('modulo', lambda a, b: a % b, *mod_pair((4,), (4,)))
_a = np.array([[0.1], [0.5], [0.9]])
_b = np.array([[0.3, 0.7, -0.2, 1.2]])
case('maximum', nd.maximum, _a, _b)
case('minimum', nd.minimum, _a, _b)
_x = u(3, 4)
_y = _x + _rng.choice([-1.0, 1.0], (3, 4)) * _rng.uniform(0.1, 0.5, (3, 4))
case('maximum', nd.maximum, _x, _y)
case('minimum', nd.minimum, _x, _y)
case('maximum', nd.maximum, np.array(0.05), distinct(2, 3))
case('where', nd.where, (u(2, 3) > 0).astype(np.float64), u(2, 3), u(2, 3), grad_inputs=[1, 2])
case('where', nd.where, np.array([[1.0], [0.0]]), u(1, 3), u(2, 3), grad_inputs=[1, 2])
case('where', lambda c, x, y: nd.where(c, x, y), np.array([1.0, 0.0, 2.0]), u(3), u(), grad_inputs=[1, 2])

# ---- shape ops ----------------------------------------------------------------------------------
case('reshape', lambda x: x.reshape((4, -1)), u(2, 3, 4))
case('reshape', lambda x: nd.reshape(x, (0, -3)), u(2, 3, 4))
case('reshape', lambda x: nd.reshape(x, (-4, 1, 2, -2)), u(2, 3, 4))
case('reshape', lambda x: x.reshape(6), u(2, 3))
case('reshape', lambda x, y: nd.reshape_like(x, y), u(2, 6), u(3, 4), grad_inputs=[0])
case('reshape', lambda x: nd.flatten(x), u(2, 3, 4))
case('reshape', lambda x: nd.expand_dims(x, axis=1), u(2, 3))
case('reshape', lambda x: nd.squeeze(x), u(2, 1, 3, 1))
case('transpose', lambda x: nd.transpose(x, axes=(1, 2, 0)), u(2, 3, 4))
case('transpose', lambda x: x.T, u(2, 3))
case('transpose', lambda x: x.transpose(0, 2, 1), u(2, 3, 4))
case('transpose', lambda x: nd.swapaxes(x, 0, 2), u(2, 3, 4))
case('broadcast_to', lambda x: nd.broadcast_to(x, (3, 4)), u(3, 1))
case('broadcast_to', lambda x: nd.broadcast_to(x, (2, 3, 4)), u(4))
case('broadcast_to', lambda x: nd.broadcast_to(x, (2, 3)), u())
case('broadcast_to', lambda x, y: nd.broadcast_like(x, y), u(1, 3), u(4, 3), grad_inputs=[0])
case('sum_to', lambda x: nd.sum_to(x, (3, 1)), u(3, 4))
case('sum_to', lambda x: nd.sum_to(x, (3, 1)), u(2, 3, 4))
case('sum_to', lambda x: nd.sum_to(x, ()), u(2, 3))
case('tile', lambda x: nd.tile(x, (2, 1, 2)), u(2, 3))
case('tile', lambda x: nd.tile(x, 3), u(2, 3))
case('tile', lambda x: x.tile((2, 2)), u(3))
case('repeat', lambda x: nd.repeat(x, 2), u(2, 3))
case('repeat', lambda x: nd.repeat(x, 3, axis=1), u(2, 3))
case('repeat', lambda x: x.repeat(2, axis=-1), u(2, 2, 2))
case('flip', lambda x: nd.flip(x, axis=0), u(3, 4))
case('flip', lambda x: nd.flip(x, axis=(0, 2)), u(2, 3, 4))
_PW4 = (0, 0, 0, 0, 1, 2, 2, 1)
for _mode in ('constant', 'edge', 'reflect'):
    case('pad', lambda x, m=_mode: nd.pad(x, mode=m, pad_width=_PW4, constant_value=1.5), u(1, 2, 3, 3))
    case('pad', lambda x, m=_mode: nd.pad(x, mode=m, pad_width=(1, 1, 2, 0)), u(3, 4))
    case('_pad_backward', lambda g, m=_mode: invoke(get_op('_pad_backward'), [g],
                                                    {'shape': (1, 2, 3, 3), 'mode': m, 'pad_width': _PW4}),
         u(1, 2, 6, 6))
case('concat', lambda a, b, c: nd.concat(a, b, c, dim=1), u(2, 1), u(2, 3), u(2, 2))
case('concat', lambda a, b: nd.concat(a, b, dim=0), u(1, 3), u(2, 3))
case('concat', lambda a, b: nd.stack(a, b, axis=1), u(2, 3), u(2, 3))
case('concat', lambda a, b, c: nd.stack(a, b, c, axis=-1), u(3), u(3), u(3))
case('split', lambda x: nd.split(x, 3, axis=1), u(2, 6))
case('split', lambda x: nd.split(x, 2, axis=0, squeeze_axis=True), u(2, 3))
case('split', lambda x: nd.split(x, 3, axis=1)[2] * 2, u(2, 3, 2))  # only one output used
case('split', lambda x: tuple(nd.split(x, 4, axis=-1))[::2], u(3, 4))

# ---- indexing -----------------------------------------------------------------------------------
_X = u(4, 5)
for _key in [np.s_[1:3], np.s_[::-1], np.s_[::-2, 1], np.s_[-1], np.s_[None, ..., 1], np.s_[..., None],
             np.s_[1, 3], np.s_[[0, 2, 0]], np.s_[[0, 2, 0], 1:], np.s_[1, [0, 0, 4]],
             np.s_[[0, 1, 1], [2, 2, 2]], np.s_[[True, False, True, True]], np.s_[3:0:-2, ::3]]:
    case('getitem', lambda x, k=_key: x[k], _X)
_IDX = nd.array([3, 3, 1])  # a float32 NDArray index, as MXNet code writes them
case('getitem', lambda x: x[_IDX], _X)
case('getitem', lambda x: x[:, [1, 1], ::2], u(2, 3, 5))
case('getitem', lambda x: nd.slice_axis(x, axis=1, begin=1, end=4), _X)
case('getitem', lambda x: nd.slice(x, begin=(1, None), end=(3, None), step=(1, -1)), _X)


def _getitem_backward(key, shape):
    template, arrays = encode_key(key)
    return lambda g: invoke(get_op('_getitem_backward'), [g, *arrays], {'key': template, 'shape': shape})


for _key in [np.s_[1:3], np.s_[::-2, 1], np.s_[[0, 2, 0]], np.s_[None, ..., [1, 1]]]:
    _gshape = np.zeros((4, 5))[_key].shape
    case('_getitem_backward', _getitem_backward(_key, (4, 5)), u(*_gshape))

_I = np.array([[0, 5, -1], [2, 2, 3]])
case('take', lambda a, i: nd.take(a, i), u(4, 3), _I)                    # clip: 5 -> 3, -1 -> 0
case('take', lambda a, i: nd.take(a, i, axis=1, mode='wrap'), u(3, 4), np.array([5, -1, 2, 2]))
case('take', lambda a, i: a.take(i, axis=-1, mode='clip'), u(2, 2, 3), np.array([[0, 0], [7, 1]]))
for _axis, _mode, _ashape, _i in [(0, 'clip', (4, 3), _I), (1, 'wrap', (3, 4), np.array([5, -1, 2, 2]))]:
    _gshape = _ashape[:_axis] + _i.shape + _ashape[_axis + 1:]
    case('_take_backward', lambda g, i, ax=_axis, m=_mode, s=_ashape:
         invoke(get_op('_take_backward'), [g, i], {'axis': ax, 'mode': m, 'shape': s}), u(*_gshape), _i)
case('pick', lambda d, i: nd.pick(d, i), u(3, 4), np.array([0, 3, 5]))  # clip: 5 -> 3
case('pick', lambda d, i: nd.pick(d, i, mode='wrap'), u(3, 4), np.array([-1, 2, 5]))
case('pick', lambda d, i: nd.pick(d, i, axis=0, keepdims=True), u(3, 4), np.array([0, 2, 1, 1]))
case('pick', lambda d, i: d.pick(i, axis=1), u(2, 3, 2), np.array([[0, 2], [1, 1]]))
case('pick', lambda d, i: nd.pick(d, i, axis=-1), u(3, 4), np.array([[1], [0], [3]]))
for _axis, _keep, _mode, _dshape, _i in [(1, False, 'clip', (3, 4), np.array([0, 3, 5])),
                                         (0, True, 'wrap', (3, 4), np.array([0, -1, 4, 1]))]:
    _gshape = tuple(1 if (d == _axis and _keep) else s for d, s in enumerate(_dshape) if d != _axis or _keep)
    case('_pick_backward', lambda g, i, ax=_axis, k=_keep, m=_mode, s=_dshape:
         invoke(get_op('_pick_backward'), [g, i], {'axis': ax, 'keepdims': k, 'mode': m, 'shape': s}),
         u(*_gshape), _i)

_IA = np.array([[0, 3], [1, 1], [2, 0]])    # along axis 1 of (3, 4); a repeated index adds up
case('take_along_axis', lambda d, i: nd.take_along_axis(d, i, axis=1), u(3, 4), _IA)
case('take_along_axis', lambda d: nd.topk(d, k=2, ret_typ='value', axis=0), u(3, 4))
case('take_along_axis', lambda d: nd.sort(d, axis=None, is_ascend=False), u(2, 3))
case('_scatter_along_axis', lambda g, i: invoke(get_op('_scatter_along_axis'), [g, i],
                                                {'axis': 1, 'shape': (3, 4)}), u(3, 2), _IA)

# ---- reductions ---------------------------------------------------------------------------------
for _kw in [{}, {'axis': 0}, {'axis': (0, 2)}, {'axis': 1, 'keepdims': True}, {'axis': -1},
            {'axis': 1, 'exclude': True}, {'axis': None, 'keepdims': True}]:
    case('sum', lambda x, kw=_kw: nd.sum(x, **kw), u(2, 3, 4))
    case('mean', lambda x, kw=_kw: nd.mean(x, **kw), u(2, 3, 4))
case('sum', lambda x: x.sum(), u())
case('prod', lambda x: nd.prod(x), nz(2, 3))
case('prod', lambda x: nd.prod(x, axis=1), nz(2, 3, 2))
case('prod', lambda x: x.prod(axis=0, keepdims=True), nz(3, 2))
for _kw in [{}, {'axis': 1}, {'axis': 0, 'keepdims': True}, {'axis': (0, 2)}]:
    case('max', lambda x, kw=_kw: nd.max(x, **kw), distinct(2, 3, 4))
    case('min', lambda x, kw=_kw: nd.min(x, **kw), distinct(2, 3, 4))
case('max', lambda x: x.max(axis=-1), distinct(5))
case('norm', lambda x: nd.norm(x), u(3, 4))
case('norm', lambda x: nd.norm(x, axis=1), u(3, 4))
case('norm', lambda x: nd.norm(x, ord=1, axis=0, keepdims=True), nz(3, 4))
case('norm', lambda x: x.norm(ord=1), nz(2, 3))

# ---- linear algebra -----------------------------------------------------------------------------
case('dot', nd.dot, u(3, 4), u(4, 5))
case('dot', lambda a, b: nd.dot(a, b, transpose_a=True), u(4, 3), u(4, 5))
case('dot', lambda a, b: nd.dot(a, b, transpose_b=True), u(3, 4), u(5, 4))
case('dot', lambda a, b: nd.dot(a, b, transpose_a=True, transpose_b=True), u(4, 3), u(5, 4))
case('dot', nd.dot, u(4), u(4))
case('dot', nd.dot, u(3, 4), u(4))
case('dot', nd.dot, u(4), u(4, 2))
case('dot', nd.dot, u(2, 3, 4), u(4, 5))
case('dot', nd.dot, u(2, 3, 4), u(4, 2, 2))
case('dot', lambda a, b: a.dot(b), u(3), u(3, 2, 2))
case('batch_dot', nd.batch_dot, u(2, 3, 4), u(2, 4, 5))
case('batch_dot', lambda a, b: nd.batch_dot(a, b, transpose_a=True), u(2, 4, 3), u(2, 4, 5))
case('batch_dot', lambda a, b: nd.batch_dot(a, b, transpose_b=True), u(2, 3, 4), u(2, 5, 4))
case('batch_dot', lambda a, b: nd.batch_dot(a, b, True, True), u(2, 4, 3), u(2, 5, 4))
case('fully_connected', lambda x, w, b: nd.FullyConnected(x, w, b, num_hidden=5), u(2, 3, 4), u(5, 12), u(5))
case('fully_connected', lambda x, w: nd.FullyConnected(x, w, no_bias=True, num_hidden=5), u(2, 3, 4), u(5, 12))
case('fully_connected', lambda x, w, b: nd.FullyConnected(x, w, b, flatten=False), u(2, 3, 4), u(5, 4), u(5))
case('fully_connected', lambda x, w: nd.FullyConnected(x, w, flatten=False), u(2, 3, 4), u(5, 4))
case('fully_connected', lambda x, w, b: nd.FullyConnected(x, w, b), u(4, 3), u(2, 3), u(2))



# ---- nn ops ------------------------------------------------------------------------------------


def _train(fn):
    """Run fn in training mode (batch statistics), also for the finite-difference evaluations."""
    def run(*args):
        with autograd.train_mode():
            return fn(*args)
    return run


def _bn(x, g, b):
    c = x.shape[1]
    return nd.BatchNorm(x, g, b, nd.zeros(c, dtype=x.dtype), nd.ones(c, dtype=x.dtype), fix_gamma=False)


_LABELS4 = np.array([0, 2, 1, 3], dtype=np.float64)

case('conv2d', lambda x, w, b: nd.Convolution(x, w, b, kernel=(3, 3), pad=(1, 1)), u(2, 3, 5, 4), u(4, 3, 3, 3), u(4))
case('conv2d', lambda x, w: nd.Convolution(x, w, kernel=(2, 3), stride=(2, 1), dilate=(2, 1), no_bias=True),
     u(1, 2, 7, 6), u(3, 2, 2, 3))
case('conv2d', lambda x, w, b: nd.Convolution(x, w, b, kernel=(3, 3), num_group=2, pad=(1, 1)),
     u(2, 4, 5, 5), u(6, 2, 3, 3), u(6))
case('conv2d', lambda x, w: nd.Convolution(x, w, kernel=(3,), no_bias=True), u(2, 3, 7), u(4, 3, 3))  # 1-d
case('conv2d', lambda x, w, b: nd.relu(nd.Convolution(x, w, b, kernel=(3, 3), act='relu')),
     u(1, 2, 5, 5), u(3, 2, 3, 3), u(3))
case('conv2d_backward_data', lambda g, w: invoke(get_op('conv2d_backward_data'), [g, w], dict(
     stride=(1, 1), pad=(1, 1), dilate=(1, 1), groups=1, x_shape=(2, 3, 5, 4))), u(2, 4, 5, 4), u(4, 3, 3, 3))
case('conv2d_transpose', lambda x, w, b: nd.Deconvolution(x, w, b, kernel=(2, 2), stride=(2, 2), no_bias=False),
     u(2, 3, 3, 4), u(3, 2, 2, 2), u(2))
case('conv2d_transpose', lambda x, w: nd.Deconvolution(x, w, kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1)),
     u(1, 2, 3, 3), u(2, 3, 3, 3))
case('max_pool2d', lambda x: nd.Pooling(x, kernel=(2, 2), stride=(2, 2)), distinct(2, 3, 4, 6))
case('max_pool2d', lambda x: nd.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention='full'),
     distinct(1, 2, 5, 5))
case('avg_pool2d', lambda x: nd.Pooling(x, kernel=(2, 3), stride=(1, 2), pool_type='avg'), u(2, 2, 5, 7))
case('avg_pool2d', lambda x: nd.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg',
                                        count_include_pad=False), u(1, 2, 5, 5))
case('avg_pool2d', lambda x: nd.Pooling(x, kernel=(2,), pool_type='avg'), u(2, 3, 6))  # 1-d
case('avg_pool2d_backward', lambda g: invoke(get_op('avg_pool2d_backward'), [g], dict(
     kernel=(2, 2), stride=(2, 2), pad=(0, 0), ceil_mode=False, count_include_pad=True, x_shape=(1, 2, 4, 4))),
     u(1, 2, 2, 2))
case('softmax', lambda x: nd.softmax(x, axis=1), u(3, 4, 2))
case('softmax_backward', lambda g, x: invoke(get_op('softmax_backward'), [g, nd.softmax(x)], {'axis': -1}),
     u(3, 5), u(3, 5))
case('log_softmax', nd.log_softmax, u(3, 5))
case('log_softmax_backward', lambda g, x: invoke(get_op('log_softmax_backward'), [g, nd.log_softmax(x)],
     {'axis': -1}), u(3, 5), u(3, 5))
case('softmax_cross_entropy', lambda x: nd.softmax_cross_entropy_loss(x, nd.array(_LABELS4, dtype='float64')),
     u(4, 5))
case('softmax_cross_entropy', lambda x, p: nd.softmax_cross_entropy_loss(x, nd.softmax(p), sparse_label=False),
     u(4, 5), u(4, 5), grad_inputs=[0])
case('softmax_cross_entropy', lambda x: nd.softmax_cross_entropy_loss(
     x, nd.array(np.array([[0, 2], [1, 1]], dtype=np.float64)), axis=1), u(2, 3, 2))  # per pixel
case('softmax_output', lambda x: nd.SoftmaxOutput(x, nd.array(_LABELS4, dtype='float64')), u(4, 5),
     legacy_gradient=lambda x: (_softmax_np(x) - np.eye(5)[_LABELS4.astype(int)]))
case('make_loss', lambda x: nd.make_loss(x, grad_scale=0.5), u(3, 4), legacy_gradient=lambda x: np.full_like(x, 0.5))
case('make_loss', lambda x: nd.make_loss(x, normalization='batch'), u(4, 2), legacy_gradient=lambda x: np.full_like(x, 0.25))
case('make_loss', lambda x: nd.make_loss(x, normalization='valid', valid_thresh=0.5), np.array([0.1, 0.7, 0.9]),
     legacy_gradient=lambda x: np.full_like(x, 0.5))
case('batch_norm', _train(_bn), u(4, 3, 2, 2), pos(3), u(3))
case('batch_norm', _train(lambda x, g, b: nd.BatchNorm(x, g, b, nd.zeros(2, dtype=x.dtype), nd.ones(2, dtype=x.dtype),
                                                        axis=-1, fix_gamma=False)), u(5, 2), pos(2), u(2))
case('layer_norm', lambda x, g, b: nd.LayerNorm(x, g, b), u(3, 5), pos(5), u(5))
case('layer_norm', lambda x, g, b: nd.LayerNorm(x, g, b, axis=1), u(2, 4, 3), pos(4), u(4))
case('embedding', lambda w: nd.Embedding(nd.array([[0, 2], [2, 3]]), w, input_dim=4, output_dim=3), u(4, 3))
case('leaky_relu', lambda x: nd.LeakyReLU(x, act_type='leaky', slope=0.1), nz(3, 4))
case('elu', lambda x: nd.LeakyReLU(x, act_type='elu', slope=0.7), nz(3, 4))
case('selu', lambda x: nd.LeakyReLU(x, act_type='selu'), nz(3, 4))
case('gelu', lambda x: nd.LeakyReLU(x, act_type='gelu'), u(3, 4))
case('softsign', lambda x: nd.Activation(x, act_type='softsign'), u(3, 4))
case('multiply', lambda x, g: nd.LeakyReLU(x, g, act_type='prelu'), nz(2, 3, 4), u(3), grad_inputs=[0, 1])


# ---- backward ops (their rules give higher-order gradients; each is checked on its own) ------------

def _op(name, **attrs):
    """Apply the op `name` to the inputs (the first output of a multi-output op stays a tuple)."""
    return lambda *xs: invoke(get_op(name), list(xs), attrs)


_CONV = dict(stride=(2, 1), pad=(1, 0), dilate=(1, 1), groups=2)
_DECONV = dict(stride=(2, 2), pad=(1, 1), dilate=(1, 1), groups=1)  # x (1, 2, 3, 3) -> (1, 3, 6, 6), adj 1
case('conv2d_backward_weight', _op('conv2d_backward_weight', w_shape=(4, 2, 3, 3), **_CONV),
     u(1, 4, 3, 2), u(1, 4, 5, 4))
case('conv2d_backward_weight', _op('conv2d_backward_weight', w_shape=(3, 2, 2, 2), stride=(1, 1), pad=(0, 0),
                                   dilate=(2, 1), groups=1), u(2, 3, 3, 4), u(2, 2, 5, 5))
case('conv2d_backward_data', _op('conv2d_backward_data', x_shape=(1, 4, 5, 4), **_CONV), u(1, 4, 3, 2), u(4, 2, 3, 3))
case('conv2d_backward_bias', _op('conv2d_backward_bias'), u(2, 3, 4, 5))
case('conv2d_transpose_backward_data', _op('conv2d_transpose_backward_data', x_shape=(1, 2, 3, 3), **_DECONV),
     u(1, 3, 6, 6), u(2, 3, 3, 3))
case('conv2d_transpose_backward_weight', _op('conv2d_transpose_backward_weight', w_shape=(2, 3, 3, 3), **_DECONV),
     u(1, 3, 6, 6), u(1, 2, 3, 3))
_POOL = dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), ceil_mode=True)
_POOL_IDX = get_op('max_pool2d').kernel('cpu')(distinct(1, 2, 5, 5), **_POOL)[1]   # (1, 2, 3, 3) int32
case('max_pool2d_backward', _op('max_pool2d_backward', x_shape=(1, 2, 5, 5)), u(1, 2, 3, 3), _POOL_IDX)
case('max_pool2d_gather', _op('max_pool2d_gather'), u(1, 2, 5, 5), _POOL_IDX)
_SPARSE = dict(axis=1, sparse=True)
for _g in (u(4), u(1)):   # the loss gradient may broadcast: its gradient is summed down
    case('softmax_cross_entropy_backward', _op('softmax_cross_entropy_backward', **_SPARSE), _g, pos(4, 5), _LABELS4,
         grad_inputs=[0, 1])
case('softmax_cross_entropy_backward', _op('softmax_cross_entropy_backward', axis=1, sparse=False),
     u(4), pos(4, 5), pos(4, 5))
case('softmax_cross_entropy_backward', _op('softmax_cross_entropy_backward', axis=1, sparse=True),
     u(2, 2), pos(2, 3, 2), np.array([[0, 2], [1, 1]], dtype=np.float64), grad_inputs=[0, 1])
case('batch_norm_backward', _op('batch_norm_backward', axis=1, fix_gamma=False),
     u(4, 3, 2), u(4, 3, 2), pos(3), u(3), pos(3))
case('batch_norm_backward', _op('batch_norm_backward', axis=1, fix_gamma=True),
     u(4, 3, 2), u(4, 3, 2), pos(3), u(3), pos(3), grad_inputs=[0, 1, 3, 4])
case('batch_norm_backward', _op('batch_norm_backward', axis=1, fix_gamma=False), u(5, 2), u(5, 2), pos(2), u(2), pos(2))
case('layer_norm_backward', _op('layer_norm_backward', axis=1), u(3, 5), u(3, 5), pos(5), u(3), pos(3))
case('layer_norm_backward', _op('layer_norm_backward', axis=1), u(2, 4, 3), u(2, 4, 3), pos(4), u(2, 3), pos(2, 3))
case('embedding_backward', lambda g: invoke(get_op('embedding_backward'), [g, nd.array([[0, 2], [2, 3]])],
                                            {'num_rows': 4}), u(2, 2, 3))
_T, _N, _C, _H = 2, 2, 3, 2
for _mode, _gates in (('lstm', 4), ('gru', 3), ('rnn_tanh', 1)):
    _states = [u(_N, _H)] * (2 if _mode == 'lstm' else 1)
    case('rnn_layer', lambda x, *a, m=_mode: rnn_layer(x, *(a if m == 'lstm' else a[:1] + (None,) + a[1:]), mode=m),
         u(_T, _N, _C), *_states, u(_gates * _H, _C), u(_gates * _H, _H), u(_gates * _H), u(_gates * _H))
case('rnn_layer', lambda x, h, *w: rnn_layer(x, h, None, *w, mode='rnn_relu', reverse=True),
     u(_T, _N, _C), u(_N, _H), u(_H, _C) + 2.0, u(_H, _H), u(_H) + 2.0, u(_H))   # pre-activations > 0
# ops whose rule is a clear error (second order not implemented; tested where the op lives:
# tests/gluon/test_rnn.py::test_second_order_gradient_is_a_clear_error)
RULE_REFUSES = {'rnn_layer_backward'}

# every output of the norms and of softmax-CE: the statistics / probabilities outputs have
# gradients too (the backward ops read them, so higher-order gradients flow through them)
_BN = dict(axis=1, eps=1e-3, momentum=0.9, fix_gamma=False, training=True)
case('batch_norm', lambda x, g, b: invoke(get_op('batch_norm'), [x, g, b, nd.zeros(3, dtype=x.dtype),
                                                                 nd.ones(3, dtype=x.dtype)], _BN),
     u(4, 3, 2), pos(3), u(3))
case('layer_norm', _op('layer_norm', axis=1, eps=1e-5), u(2, 4, 3), pos(4), u(4))
case('softmax_cross_entropy', lambda x: invoke(get_op('softmax_cross_entropy'),
                                               [x, nd.array(_LABELS4, dtype='float64')], _SPARSE), u(4, 5))
case('softmax_cross_entropy', _op('softmax_cross_entropy', axis=1, sparse=False), u(4, 5), pos(4, 5))  # label grad
# CTC: activations (T=5, N=2, C=4), blank 0, labels of lengths 2 and 1 (with a repeat: a skip is
# forbidden between equal labels), the second sample 4 steps long
case('ctc_loss', lambda x: nd.ctc_loss(x, nd.array([[1, 1], [3, 0]], dtype='float64'),
                                       nd.array([5, 4], dtype='float64'), nd.array([2, 1], dtype='float64'),
                                       use_data_lengths=True, use_label_lengths=True), u(5, 2, 4))


def _softmax_np(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---- the tests ----------------------------------------------------------------------------------

def _record(fn, inputs):
    """Run `fn` under record() on float inputs marked as variables; the recorded outputs."""
    nds = [nd.array(a, dtype=a.dtype) for a in inputs]
    for x in nds:
        if np.dtype(x.dtype).kind == 'f':
            x.attach_grad()
    with autograd.record():
        out = fn(*nds)
    return [o for o in ([out] if isinstance(out, NDArray) else list(out)) if o._entry is not None]


def _recorded_ops(fn, inputs):
    """Names of the ops on the tape when `fn` runs on `inputs` under record()."""
    outs = _record(fn, inputs)
    if not outs:
        return set()
    return {n.op.name for n in autograd._topo_order(outs) if isinstance(n, autograd.Node)}


_ALL = [(op, k, fn, inputs, opts) for op, cs in CASES.items() for k, (fn, inputs, opts) in enumerate(cs)]


def test_every_op_has_a_case_or_declares_no_gradient():
    """Every registered op, backward ops included (their rules are what higher-order gradients
    run), either has a finite-difference case or says why no gradient flows through it."""
    missing = sorted(n for n, op in REGISTRY.items() if op.no_grad is None and n not in CASES and n not in RULE_REFUSES)
    assert not missing, f'ops with a gradient rule but no check in CASES: {missing}'
    vague = sorted(n for n, op in REGISTRY.items() if op.no_grad is not None and
                   (not isinstance(op.no_grad, str) or len(op.no_grad) < 8))
    assert not vague, f'ops declaring no_grad without a reason: {vague}'


def test_cases_name_differentiable_registered_ops():
    unknown = sorted(n for n in CASES if n not in REGISTRY or not REGISTRY[n].differentiable)
    assert not unknown, f'CASES entries that are not differentiable registered ops: {unknown}'


def test_an_op_without_a_rule_is_refused_at_registration():
    from engine.base import MXNetError
    from engine.ops.registry import register
    infer = lambda s, d: ([s[0]], [d[0]])   # noqa: E731
    with pytest.raises(MXNetError, match=r"'_no_rule_op': has no gradient rule\. Pass grad=.*no_grad="):
        register('_no_rule_op', infer, lambda x, out=None: x)
    with pytest.raises(MXNetError, match='both'):
        register('_no_rule_op', infer, lambda x, out=None: x, grad=lambda g, y, x: [g], no_grad='integer output')
    assert '_no_rule_op' not in REGISTRY


@pytest.mark.parametrize('op,k,fn,inputs,opts', _ALL, ids=[f'{c[0]}-{c[1]}' for c in _ALL])
def test_gradient(op, k, fn, inputs, opts):
    assert op in _recorded_ops(fn, inputs), f'case {op}-{k} does not run {op} under record()'
    opts = dict(opts)
    legacy = opts.pop('legacy_gradient', None)
    if legacy is None:
        check_numeric_gradient(fn, inputs, **opts)
        return
    # ops like SoftmaxOutput define their backward regardless of the head gradient (MXNet's
    # legacy output layers): compare with that definition instead of finite differences
    x = nd.array(inputs[0], dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = fn(x)
    y.backward(nd.array(_rng.standard_normal(y.shape), dtype='float64'))
    np.testing.assert_allclose(x.grad.asnumpy(), legacy(inputs[0]), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
def test_composite_gradient_matches_torch():
    torch = pytest.importorskip('torch')
    xa, wa, ba = u(4, 3), u(5, 3), u(5)

    def f(F, x, w, b, lin):
        h = lin(x, w, b)
        return F.tanh(h) * F.sigmoid(h) + F.exp(-h * h)

    x, w, b = (nd.array(a, dtype='float64') for a in (xa, wa, ba))
    for v in (x, w, b):
        v.attach_grad()
    with autograd.record():
        y = f(nd, x, w, b, lambda x, w, b: nd.FullyConnected(x, w, b)).sum()
    y.backward()
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    ty = f(torch, tx, tw, tb, lambda x, w, b: x @ w.T + b).sum()
    ty.backward()
    for mine, ref in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(mine.grad.asnumpy(), ref.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---- the kernel contract: every kernel can write into a caller-provided `out` ------------------
# forward-only calls for the ops the gradient cases do not reach
_FORWARD_ONLY = [
    lambda: nd.topk(nd.array(u(3, 4)), k=2), lambda: nd.topk(nd.array(u(2, 50)), k=3, is_ascend=True),
    lambda: nd.sign(nd.array(u(3, 4))), lambda: nd.floor(nd.array(u(3))), lambda: nd.ceil(nd.array(u(3))),
    lambda: nd.round(nd.array(u(3))), lambda: nd.trunc(nd.array(u(3))), lambda: nd.logical_not(nd.array(u(3))),
    lambda: nd.argmax(nd.array(u(3, 4)), axis=1), lambda: nd.argmin(nd.array(u(3, 4))),
    lambda: nd.one_hot(nd.array([0, 2, 1]), 4), lambda: nd.one_hot(nd.array(2.0), 3, dtype='int32'),
] + [lambda f=f: f(nd.array(u(3, 4)), nd.array(u(4))) for f in (
    nd.equal, nd.not_equal, nd.greater, nd.greater_equal, nd.lesser, nd.lesser_equal)] + [
    lambda f=f: f(nd.array(u(3, 4)), 0.5) for f in (
    nd.equal, nd.not_equal, nd.greater, nd.greater_equal, nd.lesser, nd.lesser_equal)] + [
    lambda: nd.array([1, 5, 7], dtype='int32') % 3, lambda: 7 % nd.array([2, 3, 4], dtype='int32'),
    lambda: nd.sum(nd.array([[1, 2]], dtype='int32'), axis=1), lambda: nd.dot(nd.ones(3), nd.ones(3)),
    lambda: _train(lambda x: nd.Dropout(x, p=0.5))(nd.array(u(4, 5))), lambda: nd.full_like(nd.array(u(3)), 2.0),
    lambda: nd.stop_gradient(nd.array(u(3))), lambda: nd.random_normal_like(nd.array(u(3, 4))),
]


def _forward_backward(fn, inputs):
    outs = _record(fn, inputs)
    if outs:
        autograd.backward(outs)


def _kernel_calls():
    """(op, input buffers, attrs) of every kernel call made by the gradient cases (forward) and
    _FORWARD_ONLY: adding a gradient case for a new op also enrolls it in the contract tests below."""
    from engine.ops.registry import Op
    calls, orig = [], Op.kernel

    def spy(self, device_type):
        k = orig(self, device_type)

        def run(*arrays, **attrs):
            calls.append((self, arrays, attrs))
            return k(*arrays, **attrs)
        return run
    Op.kernel = spy
    try:
        for fn, inputs, _ in (c for cs in CASES.values() for c in cs):
            _forward_backward(fn, inputs)   # reaches the backward ops' kernels too
        for fn in _FORWARD_ONLY:
            fn()
    finally:
        Op.kernel = orig
    return calls


def test_kernels_write_into_out():
    seen = set()
    for op, arrays, attrs in _kernel_calls():
        seen.add(op.name)
        kernel = op.kernel('cpu')
        mx_random.seed(0)  # random ops (dropout masks) must draw the same values both times
        ref = kernel(*arrays, **attrs)
        shapes, dtypes = op.infer([a.shape for a in arrays], [a.dtype for a in arrays], **attrs)
        outs = [np.full(s, 7, dtype=d) for s, d in zip(shapes, dtypes)]  # garbage to overwrite
        mx_random.seed(0)
        got = kernel(*arrays, out=tuple(outs) if op.multi_output else outs[0], **attrs)
        refs, gots = (ref, got) if op.multi_output else ((ref,), (got,))
        for r, g, o in zip(refs, gots, outs):
            assert g is o, f'{op.name}: kernel did not return the out buffer'
            np.testing.assert_allclose(o, r, rtol=1e-12, atol=0, err_msg=f'{op.name} with out=')
    missing = sorted(set(REGISTRY) - seen)
    assert not missing, f'ops whose kernels no test ran with out= (add a CASES or _FORWARD_ONLY entry): {missing}'


def test_numba_rules_match_kernels():
    """The fuser builds kernels from each elementwise op's scalar rule rendered for Numba: it must
    compute what the op's own kernel computes."""
    numba = pytest.importorskip('numba')
    from engine.ops import expr as E
    compiled, seen = {}, set()
    for op, arrays, attrs in _kernel_calls():
        if op.template is None:
            continue
        expr = E.numba_source(op.template, [f'x{i}' for i in range(len(arrays))], attrs)
        if expr not in compiled:
            ns = {}
            exec(E.NUMBA_PRELUDE + f"def f({', '.join(f'x{i}' for i in range(len(arrays)))}):\n    return {expr}\n", ns)
            compiled[expr] = numba.njit(error_model='numpy')(ns['f'])
        f = compiled[expr]
        want = op.kernel('cpu')(*arrays, **attrs)
        flat = [a.reshape(-1) if a.size == want.size else np.broadcast_to(a, want.shape).reshape(-1)
                for a in arrays]
        got = np.array([f(*(a[i] for a in flat)) for i in range(want.size)], dtype=np.float64)
        np.testing.assert_allclose(got.reshape(want.shape), want.astype(np.float64), rtol=1e-6, atol=1e-6,
                                   err_msg=f'{op.name}: numba rule {expr!r} vs kernel')
        seen.add(op.name)
    missing = sorted(n for n, op in REGISTRY.items() if op.template is not None and n not in seen)
    assert not missing, f'rules no test compared with the kernel: {missing}'


# ---- the checker itself -------------------------------------------------------------------------

def test_checker_catches_a_wrong_gradient_rule():
    from engine import autograd as ag

    class WrongSquare(ag.Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x

        def backward(self, dy):
            x, = self.saved_tensors
            return dy * x          # should be 2 x dy

    with pytest.raises(AssertionError):
        check_numeric_gradient(lambda x: WrongSquare()(x), [u(3)])
    check_numeric_gradient(lambda x: x * x, [u(3)])


def test_numeric_gradient_handles_non_contiguous_inputs():
    from engine.test_utils import numeric_gradient
    x = np.asfortranarray(u(3, 4))
    heads = [np.ones((3, 4))]
    g = numeric_gradient(lambda a: a * a, [x], heads)[0]
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6)


def _autograd_grads(fn, inputs, dtype, heads_seed=0):
    nds = [nd.array(a, dtype=dtype if a.dtype.kind == 'f' else a.dtype) for a in inputs]
    idx = [i for i, a in enumerate(inputs) if a.dtype.kind == 'f']
    for i in idx:
        nds[i].attach_grad()
    with autograd.record():
        out = fn(*nds)
    outs = [out] if isinstance(out, NDArray) else list(out)
    rng = np.random.default_rng(heads_seed)
    autograd.backward(outs, [nd.array(rng.standard_normal(o.shape), dtype=o.dtype) for o in outs])
    return [nds[i].grad for i in idx]


@pytest.mark.parametrize('op,k,fn,inputs,opts', _ALL, ids=[f'{c[0]}-{c[1]}' for c in _ALL])
def test_gradient_float32(op, k, fn, inputs, opts):
    """The same cases in float32: gradients keep the variable's dtype and match float64."""
    g32 = _autograd_grads(fn, inputs, 'float32')
    g64 = _autograd_grads(fn, inputs, 'float64')
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-3, atol=1e-4)
