"""Forward results of every op against NumPy, dtype rules, edge-case shapes and error messages."""
import numpy as np
import pytest
import scipy.special

import engine
from engine import nd
from engine.base import MXNetError
from engine.context import Context
from engine.ndarray import NDArray

FLOAT = ('float32', 'float64')
INT = ('int32', 'int64')
TOL = {'float16': (1e-3, 1e-3), 'float32': (2e-6, 1e-6), 'float64': (1e-12, 1e-13)}


def make(shape, dtype, kind='any', seed=0):
    """Test data of `dtype`: kind 'any', 'pos' (> 0), 'nz' (away from 0) or 'unit' (|x| < 1)."""
    rng = np.random.default_rng(seed + 7 * len(shape) + int(np.prod(shape)))
    if np.dtype(dtype).kind in 'iu':
        lo, hi = {'any': (-5, 6), 'pos': (1, 6), 'nz': (1, 6), 'unit': (0, 1)}[kind]
        a = rng.integers(lo, hi, shape)
        if kind == 'nz':
            a = a * rng.choice([-1, 1], shape)
        return np.asarray(a).astype(dtype)
    lo, hi = {'any': (-2, 2), 'pos': (0.5, 3), 'nz': (0.3, 2), 'unit': (-0.9, 0.9)}[kind]
    a = rng.uniform(lo, hi, shape)
    if kind == 'nz':
        a = a * rng.choice([-1, 1], shape)
    return np.asarray(a).astype(dtype)


def check(fn, ref, *inputs, dtype=None):
    """fn on NDArrays vs ref on the NumPy inputs (computed in float64 for float inputs)."""
    out = fn(*[nd.array(a, dtype=a.dtype) for a in inputs])
    expect = np.asarray(ref(*[a.astype(np.float64) if a.dtype.kind == 'f' else a for a in inputs]))
    assert isinstance(out, NDArray)
    want = np.dtype(dtype or inputs[0].dtype)
    assert np.dtype(out.dtype) == want, f'dtype {np.dtype(out.dtype)}, expected {want}'
    assert out.shape == expect.shape
    if want.kind == 'f':
        rtol, atol = TOL[want.name]
        np.testing.assert_allclose(out.asnumpy(), expect, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(out.asnumpy(), expect.astype(want))


def _round_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# ---- unary --------------------------------------------------------------------------------------
UNARY = [
    ('negative', nd.negative, np.negative, 'any', FLOAT + INT),
    ('abs', nd.abs, np.abs, 'any', FLOAT + INT),
    ('sign', nd.sign, np.sign, 'any', FLOAT + INT),
    ('square', nd.square, np.square, 'any', FLOAT + INT),
    ('copy', nd.copy, np.copy, 'any', FLOAT + INT),
    ('relu', nd.relu, lambda x: np.maximum(x, 0), 'any', FLOAT + INT),
    ('exp', nd.exp, np.exp, 'any', FLOAT),
    ('log', nd.log, np.log, 'pos', FLOAT),
    ('log1p', nd.log1p, np.log1p, 'pos', FLOAT),
    ('expm1', nd.expm1, np.expm1, 'any', FLOAT),
    ('sqrt', nd.sqrt, np.sqrt, 'pos', FLOAT),
    ('rsqrt', nd.rsqrt, lambda x: 1 / np.sqrt(x), 'pos', FLOAT),
    ('reciprocal', nd.reciprocal, np.reciprocal, 'nz', FLOAT),
    ('sin', nd.sin, np.sin, 'any', FLOAT),
    ('cos', nd.cos, np.cos, 'any', FLOAT),
    ('tan', nd.tan, np.tan, 'unit', FLOAT),
    ('tanh', nd.tanh, np.tanh, 'any', FLOAT),
    ('sigmoid', nd.sigmoid, lambda x: 1 / (1 + np.exp(-x)), 'any', FLOAT),
    ('softplus', nd.softplus, lambda x: np.logaddexp(0, x), 'any', FLOAT),
    ('erf', nd.erf, scipy.special.erf, 'any', FLOAT),
    ('floor', nd.floor, np.floor, 'any', FLOAT),
    ('ceil', nd.ceil, np.ceil, 'any', FLOAT),
    ('trunc', nd.trunc, np.trunc, 'any', FLOAT),
    ('round', nd.round, _round_away, 'any', FLOAT),
    ('logical_not', nd.logical_not, lambda x: np.logical_not(x).astype(x.dtype), 'any', FLOAT + INT),
]


@pytest.mark.parametrize('name,fn,ref,kind,dtype',
                         [(n, f, r, k, d) for n, f, r, k, ds in UNARY for d in ds],
                         ids=[f'{n}-{d}' for n, _, _, _, ds in UNARY for d in ds])
@pytest.mark.parametrize('shape', [(3, 4), (), (1,), (0, 3)], ids=['3x4', '0d', '1', 'empty'])
def test_unary(name, fn, ref, kind, dtype, shape):
    check(fn, ref, make(shape, dtype, kind), dtype=dtype)


def test_unary_methods_match_functions():
    x = nd.array(make((2, 3), 'float32', 'pos'))
    for name in ('exp', 'log', 'sqrt', 'square', 'abs', 'sign', 'sin', 'tanh', 'sigmoid', 'relu', 'floor'):
        np.testing.assert_array_equal(getattr(x, name)().asnumpy(), getattr(nd, name)(x).asnumpy())


def test_softplus_large_inputs_do_not_overflow():
    x = nd.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    np.testing.assert_allclose(nd.softplus(x).asnumpy(), [0.0, np.exp(-50.0), np.log(2.0), 50.0, 1000.0],
                               rtol=1e-6)


def test_round_halves_away_from_zero_like_mxnet():
    x = nd.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6])
    np.testing.assert_array_equal(nd.round(x).asnumpy(), [-3, -2, -1, 1, 2, 3, 2, -3])


# ---- binary (broadcasting) ----------------------------------------------------------------------
SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), (3,)), ((), (2, 3)), ((2, 1, 3), (4, 1)),
          ((0, 3), (1, 3)), ((1,), ())]
BINARY = [
    ('add', nd.add, np.add, 'any', FLOAT + INT),
    ('subtract', nd.subtract, np.subtract, 'any', FLOAT + INT),
    ('multiply', nd.multiply, np.multiply, 'any', FLOAT + INT),
    ('divide', nd.divide, np.divide, 'nz', FLOAT),
    ('power', nd.power, np.power, 'pos', FLOAT),
    ('modulo', nd.modulo, np.mod, 'nz', FLOAT + INT),
    ('maximum', nd.maximum, np.maximum, 'any', FLOAT + INT),
    ('minimum', nd.minimum, np.minimum, 'any', FLOAT + INT),
    ('equal', nd.equal, lambda a, b: np.equal(a, b).astype(a.dtype), 'any', FLOAT + INT),
    ('not_equal', nd.not_equal, lambda a, b: np.not_equal(a, b).astype(a.dtype), 'any', FLOAT + INT),
    ('greater', nd.greater, lambda a, b: np.greater(a, b).astype(a.dtype), 'any', FLOAT + INT),
    ('greater_equal', nd.greater_equal, lambda a, b: np.greater_equal(a, b).astype(a.dtype), 'any', FLOAT + INT),
    ('lesser', nd.lesser, lambda a, b: np.less(a, b).astype(a.dtype), 'any', FLOAT + INT),
    ('lesser_equal', nd.lesser_equal, lambda a, b: np.less_equal(a, b).astype(a.dtype), 'any', FLOAT + INT),
]


@pytest.mark.parametrize('name,fn,ref,kind,dtype',
                         [(n, f, r, k, d) for n, f, r, k, ds in BINARY for d in ds],
                         ids=[f'{n}-{d}' for n, _, _, _, ds in BINARY for d in ds])
@pytest.mark.parametrize('shapes', SHAPES, ids=[f'{a}-{b}' for a, b in SHAPES])
def test_binary(name, fn, ref, kind, dtype, shapes):
    a = make(shapes[0], dtype, 'any' if kind == 'nz' else kind, seed=1)
    b = make(shapes[1], dtype, kind, seed=2)
    if name in ('equal', 'not_equal', 'greater_equal', 'lesser_equal') and dtype in FLOAT:
        b = np.round(b)   # make ties happen
        a = np.round(a)
    check(fn, ref, a, b, dtype=dtype)


def test_operators_dispatch_to_the_ops():
    a, b = make((2, 3), 'float64', 'pos', 1), make((2, 3), 'float64', 'pos', 2)
    x, y = nd.array(a, dtype='float64'), nd.array(b, dtype='float64')
    for got, want in [(x + y, a + b), (x - y, a - b), (x * y, a * b), (x / y, a / b), (x ** y, a ** b),
                      (x % y, a % b), (-x, -a), (abs(-x), a), (x == y, a == b), (x != y, a != b),
                      (x > y, a > b), (x >= y, a >= b), (x < y, a < b), (x <= y, a <= b)]:
        np.testing.assert_allclose(got.asnumpy(), np.asarray(want, dtype=np.float64), rtol=1e-12)


# ---- scalar ops ---------------------------------------------------------------------------------
SCALAR = [
    ('x+2.5', lambda x: x + 2.5, lambda x: x + 2.5, 'any'),
    ('2.5+x', lambda x: 2.5 + x, lambda x: 2.5 + x, 'any'),
    ('x-2', lambda x: x - 2, lambda x: x - 2, 'any'),
    ('2-x', lambda x: 2 - x, lambda x: 2 - x, 'any'),
    ('x*3', lambda x: x * 3, lambda x: x * 3, 'any'),
    ('3*x', lambda x: 3 * x, lambda x: 3 * x, 'any'),
    ('x/4', lambda x: x / 4, lambda x: x / 4, 'any'),
    ('4/x', lambda x: 4 / x, lambda x: 4 / x, 'nz'),
    ('x**3', lambda x: x ** 3, lambda x: x ** 3, 'any'),
    ('x**2', lambda x: x ** 2, lambda x: x ** 2, 'any'),
    ('x**0.5', lambda x: x ** 0.5, np.sqrt, 'pos'),
    ('2**x', lambda x: 2 ** x, lambda x: 2.0 ** x, 'any'),
    ('x%1.5', lambda x: x % 1.5, lambda x: np.mod(x, 1.5), 'any'),
    ('7%x', lambda x: 7 % x, lambda x: np.mod(7, x), 'nz'),
    ('max(x,0.5)', lambda x: nd.maximum(x, 0.5), lambda x: np.maximum(x, 0.5), 'any'),
    ('max(0.5,x)', lambda x: nd.maximum(0.5, x), lambda x: np.maximum(x, 0.5), 'any'),
    ('min(x,0.5)', lambda x: nd.minimum(x, 0.5), lambda x: np.minimum(x, 0.5), 'any'),
    ('min(0.5,x)', lambda x: nd.minimum(0.5, x), lambda x: np.minimum(x, 0.5), 'any'),
    ('x>1', lambda x: x > 1, lambda x: (x > 1).astype(x.dtype), 'any'),
    ('1>x', lambda x: 1 > x, lambda x: (1 > x).astype(x.dtype), 'any'),
    ('x>=1', lambda x: x >= 1, lambda x: (x >= 1).astype(x.dtype), 'any'),
    ('x<1', lambda x: x < 1, lambda x: (x < 1).astype(x.dtype), 'any'),
    ('x<=1', lambda x: x <= 1, lambda x: (x <= 1).astype(x.dtype), 'any'),
    ('x==1', lambda x: x == 1, lambda x: (x == 1).astype(x.dtype), 'any'),
    ('x!=1', lambda x: x != 1, lambda x: (x != 1).astype(x.dtype), 'any'),
    ('nd.greater(1,x)', lambda x: nd.greater(1, x), lambda x: (1 > x).astype(x.dtype), 'any'),
    ('nd.lesser_equal(1,x)', lambda x: nd.lesser_equal(1, x), lambda x: (1 <= x).astype(x.dtype), 'any'),
]


@pytest.mark.parametrize('dtype', FLOAT + ('float16',))
@pytest.mark.parametrize('name,fn,ref,kind', SCALAR, ids=[s[0] for s in SCALAR])
def test_scalar_ops_keep_the_array_dtype(name, fn, ref, kind, dtype):
    a = make((3, 4), dtype, kind)
    if name in ('x>=1', 'x<=1', 'x==1', 'x!=1', 'nd.lesser_equal(1,x)'):
        a = np.round(a)
    check(fn, ref, a, dtype=dtype)


@pytest.mark.parametrize('dtype', INT)
@pytest.mark.parametrize('name', ['x+2', 'x*3', '2-x', 'x%3', 'x>1', 'max', 'x**2'])
def test_scalar_ops_on_int_arrays(name, dtype):
    fn, ref = {'x+2': (lambda x: x + 2, lambda x: x + 2), 'x*3': (lambda x: x * 3, lambda x: x * 3),
               '2-x': (lambda x: 2 - x, lambda x: 2 - x), 'x%3': (lambda x: x % 3, lambda x: x % 3),
               'x>1': (lambda x: x > 1, lambda x: (x > 1).astype(x.dtype)),
               'max': (lambda x: nd.maximum(x, 1), lambda x: np.maximum(x, 1)),
               'x**2': (lambda x: x ** 2, lambda x: x ** 2)}[name]
    check(fn, ref, make((3, 4), dtype), dtype=dtype)


def test_dtype_rules():
    x = nd.array([1.5, -2.0, 3.0])
    assert x.dtype == np.float32
    for y in (x + 1, 1 + x, x * 2.5, x / 3, 3 / x, x - np.float64(1), np.float64(2) * x, x ** 3, 2 ** x,
              nd.maximum(x, 0.0), x > 0, x == 3.0, nd.clip(x, 0, 1), x % 2):
        assert isinstance(y, NDArray) and y.dtype == np.float32
    # comparisons return the input dtype with 0/1 values (MXNet), never bool
    for dt in ('float32', 'float64', 'int32'):
        a, b = nd.array([1, 2, 3], dtype=dt), nd.array([3, 2, 1], dtype=dt)
        for r in (a == b, a > b, a <= b, a != 2):
            assert r.dtype == np.dtype(dt).type
            assert set(np.unique(r.asnumpy())) <= {0, 1}
        np.testing.assert_array_equal((a > b).asnumpy(), [0, 0, 1])
    # argmax/argmin return float32 indices (MXNet)
    for dt in ('float64', 'int32', 'float32'):
        a = nd.array([[1, 5, 3], [7, 0, 2]], dtype=dt)
        for r, want in ((nd.argmax(a, axis=1), [1, 0]), (nd.argmin(a, axis=0), [0, 1, 1]),
                        (a.argmax(axis=1), [1, 0]), (nd.argmax(a), 3)):
            assert r.dtype == np.float32
            np.testing.assert_array_equal(r.asnumpy(), want)
    # reductions keep the dtype, including for ints
    assert nd.sum(nd.array([1, 2], dtype='int32')).dtype == np.int32
    assert nd.prod(nd.array([1, 2], dtype='int64'), axis=0).dtype == np.int64
    assert nd.mean(x).dtype == np.float32
    # mixed float dtypes promote like NumPy
    assert (x + nd.array([1, 2, 3], dtype='float64')).dtype == np.float64


# ---- reductions ---------------------------------------------------------------------------------
REDUCE_KW = [{}, {'axis': 0}, {'axis': 1}, {'axis': -1}, {'axis': (0, 2)}, {'axis': 1, 'keepdims': True},
             {'axis': None, 'keepdims': True}, {'axis': (0, 1, 2)}]


def _np_kw(kw):
    return {'axis': kw.get('axis'), 'keepdims': kw.get('keepdims', False)}


@pytest.mark.parametrize('kw', REDUCE_KW, ids=str)
@pytest.mark.parametrize('dtype', FLOAT + INT)
@pytest.mark.parametrize('name', ['sum', 'mean', 'prod', 'max', 'min'])
def test_reductions(name, dtype, kw):
    if name == 'mean' and dtype in INT:
        pytest.skip('integer mean truncates')
    a = make((2, 3, 4), dtype, 'pos' if name == 'prod' else 'any')
    if name == 'prod' and dtype in FLOAT:
        a = a / 1.5
    check(lambda x: getattr(nd, name)(x, **kw), lambda x: getattr(np, name)(x, **_np_kw(kw)), a, dtype=dtype)
    check(lambda x: getattr(x, name)(**kw), lambda x: getattr(np, name)(x, **_np_kw(kw)), a, dtype=dtype)


def test_reduce_exclude_and_nansum_aliases():
    a = make((2, 3, 4), 'float64')
    check(lambda x: nd.sum(x, axis=1, exclude=True), lambda x: x.sum(axis=(0, 2)), a)
    check(lambda x: nd.mean(x, axis=(0, 2), exclude=True, keepdims=True), lambda x: x.mean(axis=1, keepdims=True), a)
    check(lambda x: nd.nansum(x, axis=0), lambda x: x.sum(axis=0), a)


@pytest.mark.parametrize('dtype', FLOAT)
def test_reductions_of_0d_and_1_and_empty(dtype):
    check(nd.sum, np.sum, make((), dtype), dtype=dtype)
    check(nd.max, np.max, make((1,), dtype), dtype=dtype)
    check(lambda x: nd.sum(x, axis=0), lambda x: x.sum(axis=0), make((0, 3), dtype), dtype=dtype)
    check(lambda x: nd.sum(x, axis=1), lambda x: x.sum(axis=1), make((0, 3), dtype), dtype=dtype)
    check(lambda x: nd.prod(x, axis=0), lambda x: x.prod(axis=0), make((0, 3), dtype), dtype=dtype)
    with pytest.raises(MXNetError) as e:
        nd.max(nd.zeros((0, 3)), axis=0)
    assert type(e.value) is MXNetError and 'max' in str(e.value)


@pytest.mark.parametrize('dtype', FLOAT)
def test_argmax_argmin(dtype):
    a = make((3, 4, 5), dtype)
    for axis in (0, 1, -1):
        for keep in (False, True):
            check(lambda x: nd.argmax(x, axis=axis, keepdims=keep),
                  lambda x: np.argmax(x, axis=axis, keepdims=keep), a, dtype='float32')
            check(lambda x: nd.argmin(x, axis=axis, keepdims=keep),
                  lambda x: np.argmin(x, axis=axis, keepdims=keep), a, dtype='float32')


@pytest.mark.parametrize('dtype', FLOAT)
@pytest.mark.parametrize('ord', [1, 2])
@pytest.mark.parametrize('kw', [{}, {'axis': 1}, {'axis': 0, 'keepdims': True}, {'axis': (0, 1)}], ids=str)
def test_norm(ord, kw, dtype):
    a = make((3, 4), dtype)
    ax = kw.get('axis')
    ref = (lambda x: np.abs(x).sum(axis=ax, keepdims=kw.get('keepdims', False))) if ord == 1 else \
        (lambda x: np.sqrt((x * x).sum(axis=ax, keepdims=kw.get('keepdims', False))))
    check(lambda x: nd.norm(x, ord=ord, **kw), ref, a, dtype=dtype)
    check(lambda x: x.norm(ord=ord, **kw), ref, a, dtype=dtype)
    np.testing.assert_allclose(nd.norm(nd.array([[3.0, 4.0]])).asscalar(), 5.0)


# ---- shape ops ----------------------------------------------------------------------------------
# MXNet's documented reshape examples (input shape, spec, output shape)
RESHAPE_DOC = [
    ((2, 3, 4), (4, 0, 2), (4, 3, 2)), ((2, 3, 4), (2, 0, 0), (2, 3, 4)),
    ((2, 3, 4), (6, 1, -1), (6, 1, 4)), ((2, 3, 4), (3, -1, 8), (3, 1, 8)), ((2, 3, 4), (-1,), (24,)),
    ((2, 3, 4), (-2,), (2, 3, 4)), ((2, 3, 4), (2, -2), (2, 3, 4)), ((2, 3, 4), (-2, 1, 1), (2, 3, 4, 1, 1)),
    ((2, 3, 4), (-3, 4), (6, 4)), ((2, 3, 4, 5), (-3, -3), (6, 20)), ((2, 3, 4), (0, -3), (2, 12)),
    ((2, 3, 4), (-3, -2), (6, 4)), ((2, 3, 4), (-4, 1, 2, -2), (1, 2, 3, 4)),
    ((2, 3, 4), (2, -4, -1, 3, -2), (2, 1, 3, 4)),
]


@pytest.mark.parametrize('src,spec,out', RESHAPE_DOC, ids=[f'{s}->{p}' for s, p, _ in RESHAPE_DOC])
def test_reshape_special_values_match_mxnet_docs(src, spec, out):
    a = np.arange(int(np.prod(src)), dtype=np.float32).reshape(src)
    y = nd.reshape(nd.array(a), spec)
    assert y.shape == out
    np.testing.assert_array_equal(y.asnumpy(), a.reshape(out))
    assert nd.array(a).reshape(spec).shape == out
    assert nd.array(a).reshape(*spec).shape == out
    assert nd.array(a).reshape(shape=spec).shape == out


def test_reshape_reverse():
    # MXNet: (10, 5, 4) with (-1, 0) -> (40, 5); with reverse=True -> (50, 4)
    x = nd.zeros((10, 5, 4))
    assert nd.reshape(x, (-1, 0)).shape == (40, 5)
    assert nd.reshape(x, (-1, 0), reverse=True).shape == (50, 4)
    # reverse reverses the spec token by token, so a -4 comes after its sizes (MXNet refuses
    # (-1, -4, 2, 2) with reverse=True, and so do we)
    assert nd.reshape(nd.zeros((4, 6)), (0, -1, 2, -4), reverse=True).shape == (4, 3, 2)
    with pytest.raises(MXNetError, match='reshape'):
        nd.reshape(nd.zeros((2, 3, 4)), (-1, -4, 2, 2), reverse=True)


def test_reshape_edge_shapes():
    assert nd.array(5.0).reshape((1,)).shape == (1,)
    assert nd.array([5.0]).reshape(()).shape == ()
    assert nd.zeros((0, 3)).reshape((3, -1)).shape == (3, 0)   # 0 in a spec copies a dimension
    assert nd.zeros((0, 3)).reshape((-1, 3)).shape == (0, 3)
    assert nd.zeros((2, 3)).reshape(6).shape == (6,)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_shape_ops(dtype):
    a = make((2, 3, 4), dtype)
    check(lambda x: x.reshape((4, 6)), lambda x: x.reshape(4, 6), a)
    check(lambda x: nd.reshape_like(x, nd.zeros((6, 4))), lambda x: x.reshape(6, 4), a)
    check(lambda x: x.reshape_like(nd.zeros((24,))), lambda x: x.reshape(24), a)
    check(nd.flatten, lambda x: x.reshape(2, 12), a)
    check(nd.Flatten, lambda x: x.reshape(2, 12), a)
    check(lambda x: nd.expand_dims(x, axis=-1), lambda x: x[..., None], a)
    check(lambda x: x.expand_dims(0), lambda x: x[None], a)
    check(lambda x: nd.squeeze(x), np.squeeze, make((1, 3, 1), dtype))
    check(lambda x: nd.squeeze(x, axis=2), lambda x: x.squeeze(2), make((1, 3, 1), dtype))
    check(nd.transpose, np.transpose, a)
    check(lambda x: nd.transpose(x, axes=(1, 0, 2)), lambda x: x.transpose(1, 0, 2), a)
    check(lambda x: x.transpose((2, 0, 1)), lambda x: x.transpose(2, 0, 1), a)
    check(lambda x: x.T, lambda x: x.T, a)
    check(lambda x: nd.transpose(x, axes=(-1, 0, 1)), lambda x: x.transpose(2, 0, 1), a)
    check(lambda x: nd.swapaxes(x, 0, 2), lambda x: x.swapaxes(0, 2), a)
    check(lambda x: nd.SwapAxis(x, 1, -1), lambda x: x.swapaxes(1, 2), a)
    check(lambda x: nd.broadcast_to(x, (2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)), make((3, 1), dtype))
    check(lambda x: nd.broadcast_to(x, (2, 0)), lambda x: np.broadcast_to(x, (2, 3)), make((1, 3), dtype))
    check(lambda x: x.broadcast_like(nd.zeros((5, 2, 3))), lambda x: np.broadcast_to(x, (5, 2, 3)), make((2, 1), dtype))
    check(lambda x: nd.broadcast_like(x, nd.zeros((4, 3))), lambda x: np.broadcast_to(x, (4, 3)), make((), dtype))


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_tile_repeat_flip(dtype):
    a = np.array([[1, 2], [3, 4]], dtype=dtype)
    # MXNet doc examples
    check(lambda x: nd.tile(x, (2, 3)), lambda x: np.array([[1, 2, 1, 2, 1, 2], [3, 4, 3, 4, 3, 4]] * 2), a)
    check(lambda x: nd.tile(x, (2,)), lambda x: np.tile(x, 2), a)
    check(lambda x: nd.tile(x, (2, 2, 3)), lambda x: np.tile(x, (2, 2, 3)), a)
    check(lambda x: x.tile(2), lambda x: np.tile(x, 2), a)
    check(lambda x: nd.repeat(x, 2), lambda x: np.array([1, 1, 2, 2, 3, 3, 4, 4]), a)
    check(lambda x: nd.repeat(x, 2, axis=1), lambda x: np.array([[1, 1, 2, 2], [3, 3, 4, 4]]), a)
    check(lambda x: nd.repeat(x, 2, axis=0), lambda x: np.array([[1, 2], [1, 2], [3, 4], [3, 4]]), a)
    check(lambda x: x.repeat(3, axis=-1), lambda x: np.repeat(x, 3, axis=-1), a)
    check(lambda x: nd.flip(x, axis=0), lambda x: x[::-1], a)
    check(lambda x: nd.reverse(x, axis=1), lambda x: x[:, ::-1], a)
    check(lambda x: x.flip(axis=(0, 1)), lambda x: x[::-1, ::-1], a)
    check(lambda x: nd.tile(x, (2, 1)), lambda x: np.tile(x, (2, 1)), make((0, 3), dtype))
    check(lambda x: nd.repeat(x, 2), lambda x: np.repeat(x, 2), make((), dtype))


@pytest.mark.parametrize('dtype', FLOAT + INT)
@pytest.mark.parametrize('mode', ['constant', 'edge', 'reflect'])
def test_pad(mode, dtype):
    a = make((1, 2, 3, 4), dtype)
    pw = (0, 0, 0, 0, 1, 2, 2, 1)
    pairs = [(0, 0), (0, 0), (1, 2), (2, 1)]
    kw = {'constant_values': 2} if mode == 'constant' else {}
    check(lambda x: nd.pad(x, mode=mode, pad_width=pw, constant_value=2), lambda x: np.pad(x, pairs, mode=mode, **kw), a)
    check(lambda x: x.pad(mode=mode, pad_width=(1, 1, 0, 2)), lambda x: np.pad(x, [(1, 1), (0, 2)], mode=mode),
          make((3, 4), dtype))


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_concat_stack_split(dtype):
    a, b, c = make((2, 1), dtype, seed=1), make((2, 3), dtype, seed=2), make((2, 2), dtype, seed=3)
    check(lambda x, y, z: nd.concat(x, y, z, dim=1), lambda x, y, z: np.concatenate([x, y, z], 1), a, b, c)
    check(lambda x, y: nd.concat(x, y, dim=0), lambda x, y: np.concatenate([x, y], 0), b.T, a.T)
    check(lambda x, y: nd.Concat(x, y, dim=-1), lambda x, y: np.concatenate([x, y], -1), a, b)
    check(lambda x: nd.concat(x), lambda x: x, a)
    check(lambda x, y: nd.concat(x, y, dim=0), lambda x, y: np.concatenate([x, y], 0),
          make((0, 3), dtype), b)
    check(lambda x, y: nd.stack(x, y), lambda x, y: np.stack([x, y]), b, b + 1)
    check(lambda x, y: nd.stack(x, y, axis=2), lambda x, y: np.stack([x, y], 2), b, b + 1)
    check(lambda x, y: nd.stack(x, y, axis=-1), lambda x, y: np.stack([x, y], -1), b, b + 1)
    x = make((2, 6, 3), dtype)
    parts = nd.split(nd.array(x, dtype=dtype), num_outputs=3, axis=1)
    assert isinstance(parts, list) and len(parts) == 3
    for p, q in zip(parts, np.split(x, 3, axis=1)):
        assert p.dtype == np.dtype(dtype).type
        np.testing.assert_array_equal(p.asnumpy(), q)
    parts = nd.SliceChannel(nd.array(x, dtype=dtype), num_outputs=2, axis=0, squeeze_axis=True)
    assert [p.shape for p in parts] == [(6, 3), (6, 3)]
    np.testing.assert_array_equal(parts[1].asnumpy(), x[1])
    one = nd.split(nd.array(x, dtype=dtype), num_outputs=1, axis=-1)
    assert isinstance(one, NDArray) and one.shape == x.shape


# ---- indexing -----------------------------------------------------------------------------------
KEYS = [np.s_[1], np.s_[-1], np.s_[1:3], np.s_[::-1], np.s_[::-2, 1], np.s_[None, ..., 1], np.s_[..., None],
        np.s_[1, 3], np.s_[[0, 2, 0]], np.s_[[0, 2, 0], 1:], np.s_[1, [0, 0, 4]], np.s_[[0, 1], [2, 3]],
        np.s_[[True, False, True, True]], np.s_[3:0:-2, ::3], np.s_[()], np.s_[...], np.s_[5:], np.s_[:, 2:2], np.s_[..., 1, 2], np.s_[-1, ...]]


@pytest.mark.parametrize('dtype', FLOAT + INT)
@pytest.mark.parametrize('key', KEYS, ids=[str(k) for k in KEYS])
def test_getitem(key, dtype):
    check(lambda x: x[key], lambda x: np.asarray(x[key]), make((4, 5), dtype), dtype=dtype)


def test_getitem_with_ndarray_indices():
    a = make((4, 5), 'float32')
    x = nd.array(a)
    np.testing.assert_array_equal(x[nd.array([3, 3, 1])].asnumpy(), a[[3, 3, 1]])
    np.testing.assert_array_equal(x[nd.array([3, 0], dtype='int32'), 1:].asnumpy(), a[[3, 0], 1:])
    np.testing.assert_array_equal(x[:, nd.array([[0, 1], [4, 4]])].asnumpy(), a[:, [[0, 1], [4, 4]]])
    assert x[nd.array(2, dtype='int64')].shape == (5,)
    assert nd.array(7.0)[()].shape == () and nd.array(7.0)[None].shape == (1,)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_slice_ops(dtype):
    x = np.arange(12).reshape(3, 4).astype(dtype) + 1
    # MXNet doc examples
    check(lambda a: nd.slice(a, begin=(0, 1), end=(2, 4)), lambda a: np.array([[2, 3, 4], [6, 7, 8]]), x)
    check(lambda a: nd.slice(a, begin=(None, 0), end=(None, 3), step=(-1, 2)),
          lambda a: np.array([[9, 11], [5, 7], [1, 3]]), x)
    check(lambda a: nd.slice_axis(a, axis=0, begin=1, end=3), lambda a: a[1:3], x)
    check(lambda a: nd.slice_axis(a, axis=1, begin=0, end=2), lambda a: a[:, 0:2], x)
    check(lambda a: a.slice_axis(axis=-1, begin=1, end=None), lambda a: a[:, 1:], x)
    check(lambda a: nd.slice_axis(a, axis=1, begin=-3, end=-1), lambda a: a[:, -3:-1], x)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_take(dtype):
    x = np.array([[1, 2], [3, 4], [5, 6]], dtype=dtype)
    # MXNet doc example (indices as float32, MXNet's default)
    check(lambda a: nd.take(a, nd.array([[0, 1], [1, 2]])),
          lambda a: np.array([[[1, 2], [3, 4]], [[3, 4], [5, 6]]]), x)
    check(lambda a: nd.take(a, nd.array([0, 3, -1, 2])), lambda a: a[[0, 2, 0, 2]], x)            # clip
    check(lambda a: nd.take(a, nd.array([0, 3, -1, 4]), mode='wrap'), lambda a: a[[0, 0, 2, 1]], x)
    check(lambda a: nd.take(a, nd.array([1, 1, 0]), axis=1), lambda a: a[:, [1, 1, 0]], x)
    check(lambda a: a.take(nd.array([1, 0]), axis=-1), lambda a: a[:, [1, 0]], x)
    check(lambda a: nd.take(a, nd.array([], dtype='int32')), lambda a: a[np.array([], dtype=int)], x)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_pick(dtype):
    x = np.array([[1, 2], [3, 4], [5, 6]], dtype=dtype)
    # MXNet doc examples
    check(lambda a: nd.pick(a, nd.array([0, 1]), 0), lambda a: np.array([1, 4]), x)
    check(lambda a: nd.pick(a, nd.array([0, 1, 0]), 1), lambda a: np.array([1, 4, 5]), x)
    check(lambda a: nd.pick(a, nd.array([0, 1, 0]), 1, keepdims=True), lambda a: np.array([[1], [4], [5]]), x)
    check(lambda a: nd.pick(a, nd.array([-1, 0, 2]), 1, mode='wrap'), lambda a: np.array([2, 3, 5]), x)
    check(lambda a: nd.pick(a, nd.array([-1, 0, 2]), 1, mode='clip'), lambda a: np.array([1, 3, 6]), x)
    check(lambda a: a.pick(nd.array([[1], [0], [1]])), lambda a: np.array([2, 3, 6]), x)


@pytest.mark.parametrize('dtype', ['float32', 'float64', 'int32'])
def test_one_hot(dtype):
    # MXNet doc example
    y = nd.one_hot(nd.array([1, 0, 2, 0]), 3)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.asnumpy(), [[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]])
    y = nd.one_hot(nd.array([1, 0, 2, 0], dtype=dtype), 3, on_value=8, off_value=1, dtype='int32')
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y.asnumpy(), [[1, 8, 1], [8, 1, 1], [1, 1, 8], [8, 1, 1]])
    y = nd.one_hot(nd.array([[5, 1], [-1, 2]], dtype=dtype), 3)   # out of range: all off
    assert y.shape == (2, 2, 3)
    np.testing.assert_array_equal(y.asnumpy(), [[[0, 0, 0], [0, 1, 0]], [[0, 0, 0], [0, 0, 1]]])
    assert nd.one_hot(nd.array([], dtype=dtype), 4).shape == (0, 4)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_where(dtype):
    # MXNet doc example (any non-zero condition counts as true)
    cond = np.array([[0, 1], [-1, 0]], dtype=dtype)
    x, y = np.array([[1, 2], [3, 4]], dtype=dtype), np.array([[5, 6], [7, 8]], dtype=dtype)
    check(nd.where, lambda c, a, b: np.array([[5, 2], [3, 8]]), cond, x, y, dtype=dtype)
    check(nd.where, lambda c, a, b: np.where(c != 0, a, b), np.array([[1], [0]], dtype=dtype),
          make((1, 3), dtype, seed=1), make((2, 3), dtype, seed=2), dtype=dtype)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_clip(dtype):
    x = np.arange(10).astype(dtype)
    check(lambda a: nd.clip(a, 1, 8), lambda a: np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 8]), x)   # MXNet doc
    if dtype in FLOAT:
        check(lambda a: a.clip(2.5, 6.5), lambda a: np.clip(a, 2.5, 6.5), make((3, 4), dtype))


# ---- linear algebra -----------------------------------------------------------------------------
DOT = [((3, 4), (4, 5), False, False), ((4, 3), (4, 5), True, False), ((3, 4), (5, 4), False, True),
       ((4, 3), (5, 4), True, True), ((4,), (4,), False, False), ((3, 4), (4,), False, False),
       ((4,), (4, 2), False, False), ((2, 3, 4), (4, 5), False, False), ((2, 3, 4), (4, 2, 2), False, False),
       ((0, 3), (3, 2), False, False), ((3, 0), (0, 2), False, False)]


@pytest.mark.parametrize('dtype', FLOAT + INT)
@pytest.mark.parametrize('sa,sb,ta,tb', DOT, ids=[f'{a}x{b}-{ta:d}{tb:d}' for a, b, ta, tb in DOT])
def test_dot(sa, sb, ta, tb, dtype):
    def ref(a, b):
        return np.tensordot(a.T if ta else a, b.T if tb else b, axes=1)
    check(lambda a, b: nd.dot(a, b, transpose_a=ta, transpose_b=tb), ref,
          make(sa, dtype, seed=1), make(sb, dtype, seed=2), dtype=dtype)


@pytest.mark.parametrize('dtype', FLOAT + INT)
@pytest.mark.parametrize('ta,tb', [(False, False), (True, False), (False, True), (True, True)])
def test_batch_dot(ta, tb, dtype):
    sa = (2, 4, 3) if ta else (2, 3, 4)
    sb = (2, 5, 4) if tb else (2, 4, 5)

    def ref(a, b):
        return np.matmul(a.transpose(0, 2, 1) if ta else a, b.transpose(0, 2, 1) if tb else b)
    check(lambda a, b: nd.batch_dot(a, b, transpose_a=ta, transpose_b=tb), ref,
          make(sa, dtype, seed=1), make(sb, dtype, seed=2), dtype=dtype)


@pytest.mark.parametrize('dtype', FLOAT)
def test_fully_connected(dtype):
    x, w, b = make((2, 3, 4), dtype, seed=1), make((5, 12), dtype, seed=2), make((5,), dtype, seed=3)
    check(lambda x, w, b: nd.FullyConnected(x, w, b, num_hidden=5), lambda x, w, b: x.reshape(2, 12) @ w.T + b,
          x, w, b)
    check(lambda x, w: nd.FullyConnected(x, w, no_bias=True, num_hidden=5), lambda x, w: x.reshape(2, 12) @ w.T,
          x, w)
    w2 = make((5, 4), dtype, seed=4)
    check(lambda x, w, b: nd.FullyConnected(x, w, b, flatten=False), lambda x, w, b: x @ w.T + b, x, w2, b)
    check(lambda x, w: nd.FullyConnected(x, w, flatten=False), lambda x, w: x @ w.T, x, w2)


@pytest.mark.parametrize('dtype', FLOAT + INT)
def test_cast(dtype):
    a = make((3, 4), 'float64') * 3
    for src in FLOAT:
        y = nd.cast(nd.array(a, dtype=src), dtype)
        assert y.dtype == np.dtype(dtype).type
        np.testing.assert_array_equal(y.asnumpy(), a.astype(src).astype(dtype))
        assert nd.array(a, dtype=src).astype(dtype).dtype == np.dtype(dtype).type
        assert nd.Cast(nd.array(a, dtype=src), dtype=dtype).dtype == np.dtype(dtype).type


# ---- 0-d, (1,) and 0-size arrays ----------------------------------------------------------------

def test_zero_d_arrays():
    x = nd.array(3.0)
    assert x.shape == () and x.ndim == 0 and x.size == 1
    assert x.asscalar() == 3.0 and float(x) == 3.0 and bool(x)
    assert (x + 1).shape == () and nd.exp(x).shape == ()
    assert (x * nd.ones((2,))).shape == (2,)
    assert nd.sum(x).shape == () and nd.norm(x).asscalar() == 3.0
    assert nd.expand_dims(x, 0).shape == (1,)
    assert nd.broadcast_to(x, (2, 2)).shape == (2, 2)
    assert x.T.shape == () and nd.transpose(x).shape == ()
    assert nd.dot(nd.ones(3), nd.ones(3)).shape == ()
    # MXNet code reduces its (1,)-shaped results again along axis 0: fine on a 0-d result too
    assert nd.sum(nd.sum(nd.ones((2, 2))), axis=0).asscalar() == 4.0
    assert nd.max(x, axis=-1, keepdims=True).shape == () and nd.argmax(x, axis=0).asscalar() == 0


def test_numpy_integer_arguments():
    x = nd.array(np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(nd.flip(x, np.int64(1)).asnumpy(), np.arange(6).reshape(2, 3)[:, ::-1])
    assert nd.sum(x, axis=np.int32(1)).shape == (2,)
    assert x[np.int64(1)].shape == (3,)
    assert nd.expand_dims(x, np.int64(0)).shape == (1, 2, 3)
    assert nd.reshape(x, (np.int64(3), np.int32(-1))).shape == (3, 2)
    assert nd.zeros(np.int64(3)).shape == (3,)


def test_shape_one_arrays():
    x = nd.array([4.0])
    assert x.shape == (1,) and x.asscalar() == 4.0 and int(x) == 4 and bool(x)
    assert nd.squeeze(x).shape == ()
    assert (x + nd.ones((2, 3))).shape == (2, 3)
    assert nd.sum(x, axis=0).shape == ()
    assert x[0].shape == () and x[0].asscalar() == 4.0


def test_zero_size_arrays():
    z = nd.zeros((0, 3))
    assert z.size == 0 and len(z) == 0 and list(z) == []
    for y, shape in [(nd.exp(z), (0, 3)), (z + nd.ones((1, 3)), (0, 3)), (z * 2, (0, 3)),
                     (nd.sum(z, axis=0), (3,)), (nd.sum(z, axis=1), (0,)), (z.T, (3, 0)),
                     (z.reshape((3, -1)), (3, 0)), (nd.concat(z, nd.ones((2, 3)), dim=0), (2, 3)),
                     (nd.dot(z, nd.ones((3, 2))), (0, 2)), (z[1:], (0, 3)), (nd.tile(z, (2, 2)), (0, 6)),
                     (nd.flip(z, 0), (0, 3)), (z == 0, (0, 3)), (nd.where(z, z, z), (0, 3)),
                     (nd.take(nd.ones((4, 3)), nd.array([])), (0, 3)), (nd.zeros((2, 0)).sum(), ())]:
        assert y.shape == shape
        assert y.dtype == np.float32
    assert nd.zeros((2, 0)).sum().asscalar() == 0.0


# ---- errors: always engine.MXNetError, naming the op and the shapes ----------------------------

def _fake_gpu(shape):
    return NDArray(np.zeros(shape, dtype=np.float32), Context('gpu', 0))


ERRORS = [
    ('dot-1d', lambda: nd.dot(nd.zeros(3), nd.zeros(2)), ['dot', '(3,)', '(2,)']),
    ('dot-2d', lambda: nd.dot(nd.zeros((2, 3)), nd.zeros((4, 5))), ['dot', '(2, 3)', '(4, 5)']),
    ('dot-transposed', lambda: nd.dot(nd.zeros((2, 3)), nd.zeros((2, 3)), transpose_b=False), ['dot', '(2, 3)']),
    ('dot-0d', lambda: nd.dot(nd.array(2.0), nd.zeros(3)), ['dot', '(3,)']),
    ('dot-transpose-3d', lambda: nd.dot(nd.zeros((2, 3, 4)), nd.zeros((4, 2)), transpose_a=True), ['dot']),
    ('batch_dot', lambda: nd.batch_dot(nd.zeros((2, 3, 4)), nd.zeros((2, 5, 6))), ['batch_dot', '(2, 3, 4)', '(2, 5, 6)']),
    ('batch_dot-batch', lambda: nd.batch_dot(nd.zeros((2, 3, 4)), nd.zeros((3, 4, 6))), ['batch_dot', '(3, 4, 6)']),
    ('batch_dot-2d', lambda: nd.batch_dot(nd.zeros((3, 4)), nd.zeros((4, 6))), ['batch_dot', '(3, 4)']),
    ('add', lambda: nd.add(nd.zeros((2, 3)), nd.zeros((4,))), ['add', '(2, 3)', '(4,)']),
    ('operator-sub', lambda: nd.zeros((2, 3)) - nd.zeros((3, 2)), ['subtract', '(2, 3)', '(3, 2)']),
    ('multiply', lambda: nd.zeros((2, 3)) * nd.zeros((2, 2)), ['multiply', '(2, 3)', '(2, 2)']),
    ('compare', lambda: nd.zeros((2, 3)) > nd.zeros((4,)), ['greater', '(2, 3)', '(4,)']),
    ('maximum', lambda: nd.maximum(nd.zeros((2,)), nd.zeros((3,))), ['maximum', '(2,)', '(3,)']),
    ('where', lambda: nd.where(nd.zeros((2, 3)), nd.zeros((2, 3)), nd.zeros((3, 2))), ['where', '(3, 2)']),
    ('reshape', lambda: nd.zeros((2, 3)).reshape((4,)), ['reshape', '(2, 3)', '(4,)']),
    ('reshape-infer', lambda: nd.zeros((2, 3)).reshape((-1, 4)), ['reshape', '(2, 3)']),
    ('reshape-two-minus-one', lambda: nd.zeros((2, 3)).reshape((-1, -1)), ['reshape']),
    ('reshape-minus-three', lambda: nd.zeros((2, 3)).reshape((2, -3)), ['reshape', '(2, 3)']),
    ('reshape-minus-four', lambda: nd.zeros((2, 3)).reshape((-4, 3, 1, -1)), ['reshape', '(2, 3)']),
    ('reshape_like', lambda: nd.reshape_like(nd.zeros((2, 3)), nd.zeros((5,))), ['reshape', '(2, 3)', '(5,)']),
    ('sum-axis', lambda: nd.sum(nd.zeros((2, 3)), axis=2), ['sum', 'axis 2', '(2, 3)']),
    ('mean-axis', lambda: nd.zeros((2, 3)).mean(axis=-3), ['mean', 'axis -3', '(2, 3)']),
    ('max-repeated-axis', lambda: nd.max(nd.zeros((2, 3)), axis=(1, -1)), ['max', 'repeated', '(2, 3)']),
    ('argmax-axis', lambda: nd.argmax(nd.zeros((2, 3)), axis=5), ['argmax', 'axis 5', '(2, 3)']),
    ('argmax-two-axes', lambda: nd.argmax(nd.zeros((2, 3)), axis=(0, 1)), ['argmax']),
    ('norm-ord', lambda: nd.norm(nd.zeros((2, 3)), ord=3), ['norm', 'ord']),
    ('norm-axis', lambda: nd.norm(nd.zeros((2, 3)), axis=2), ['norm', '(2, 3)']),
    ('concat', lambda: nd.concat(nd.zeros((2, 3)), nd.zeros((3, 3)), dim=1), ['concat', '(2, 3)', '(3, 3)']),
    ('concat-ndim', lambda: nd.concat(nd.zeros((2, 3)), nd.zeros((2, 3, 1))), ['concat', '(2, 3, 1)']),
    ('concat-dim', lambda: nd.concat(nd.zeros((2, 3)), nd.zeros((2, 3)), dim=2), ['concat', 'axis 2', '(2, 3)']),
    ('stack', lambda: nd.stack(nd.zeros((2, 3)), nd.zeros((3, 2))), ['concat', '(1, 2, 3)', '(1, 3, 2)']),
    ('transpose-repeat', lambda: nd.transpose(nd.zeros((2, 3)), axes=(0, 0)), ['transpose', '(0, 0)', '(2, 3)']),
    ('transpose-range', lambda: nd.transpose(nd.zeros((2, 3)), axes=(1, 2)), ['transpose', '(1, 2)', '(2, 3)']),
    ('transpose-length', lambda: nd.zeros((2, 3, 4)).transpose((1, 0)), ['transpose', '(2, 3, 4)']),
    ('swapaxes', lambda: nd.swapaxes(nd.zeros((2, 3)), 0, 2), ['swapaxes', 'axis 2', '(2, 3)']),
    ('expand_dims', lambda: nd.expand_dims(nd.zeros((2, 3)), axis=4), ['expand_dims', 'axis 4', '(2, 3)']),
    ('squeeze', lambda: nd.squeeze(nd.zeros((2, 3)), axis=1), ['squeeze', '(2, 3)']),
    ('broadcast_to', lambda: nd.broadcast_to(nd.zeros((2, 3)), (4, 3)), ['broadcast_to', '(2, 3)', '(4, 3)']),
    ('broadcast_like', lambda: nd.broadcast_like(nd.zeros((2, 3)), nd.zeros((3,))), ['broadcast_to', '(2, 3)']),
    ('repeat-axis', lambda: nd.repeat(nd.zeros((2, 3)), 2, axis=2), ['repeat', 'axis 2', '(2, 3)']),
    ('flip-axis', lambda: nd.flip(nd.zeros((2, 3)), axis=3), ['flip', 'axis 3', '(2, 3)']),
    ('pad-width', lambda: nd.pad(nd.zeros((2, 3)), pad_width=(1, 1)), ['pad', 'pad_width']),
    ('pad-reflect', lambda: nd.pad(nd.zeros((2, 3)), mode='reflect', pad_width=(0, 0, 3, 0)), ['pad', '(2, 3)']),
    ('pad-mode', lambda: nd.pad(nd.zeros((2, 3)), mode='wrap', pad_width=(0, 0, 1, 1)), ['pad', 'wrap']),
    ('split', lambda: nd.split(nd.zeros((2, 3)), num_outputs=2, axis=1), ['split', 'num_outputs=2']),
    ('split-zero', lambda: nd.split(nd.zeros((2, 3)), num_outputs=0), ['split', 'num_outputs']),
    ('stack-empty', lambda: nd.stack(), ['stack']),
    ('concat-empty', lambda: nd.concat(), ['concat']),
    ('reshape-none', lambda: nd.zeros((2, 3)).reshape((None, 3)), ['reshape', 'None']),
    ('sum-0d-axis', lambda: nd.sum(nd.array(1.0), axis=1), ['sum', 'axis 1', '0-d']),
    ('split-axis', lambda: nd.split(nd.zeros((2, 3)), num_outputs=2, axis=2), ['split', 'axis 2', '(2, 3)']),
    ('pick-index-shape', lambda: nd.pick(nd.zeros((2, 3)), nd.zeros((3,))), ['pick', '(3,)', '(2, 3)']),
    ('pick-axis', lambda: nd.pick(nd.zeros((2, 3)), nd.zeros((2,)), axis=2), ['pick', 'axis 2', '(2, 3)']),
    ('pick-mode', lambda: nd.pick(nd.zeros((2, 3)), nd.zeros((2,)), mode='raise'), ['pick', 'mode']),
    ('take-axis', lambda: nd.take(nd.zeros((2, 3)), nd.zeros((2,)), axis=2), ['take', 'axis 2', '(2, 3)']),
    ('take-mode', lambda: nd.take(nd.zeros((2, 3)), nd.zeros((2,)), mode='raise'), ['take', 'mode']),
    ('slice_axis', lambda: nd.slice_axis(nd.zeros((2, 3)), axis=2, begin=0, end=1), ['slice_axis', '(2, 3)']),
    ('getitem-int', lambda: nd.zeros((3,))[5], ['getitem', '(3,)']),
    ('getitem-too-many', lambda: nd.zeros((3,))[0, 1], ['getitem', '(3,)']),
    ('getitem-array', lambda: nd.zeros((3,))[[0, 7]], ['getitem', '(3,)']),
    ('fc-weight', lambda: nd.FullyConnected(nd.zeros((2, 3)), nd.zeros((4, 5))), ['FullyConnected', '(2, 3)', '(4, 5)']),
    ('fc-bias', lambda: nd.FullyConnected(nd.zeros((2, 3)), nd.zeros((4, 3)), nd.zeros((3,))), ['FullyConnected', '(3,)']),
    ('fc-num_hidden', lambda: nd.FullyConnected(nd.zeros((2, 3)), nd.zeros((4, 3)), num_hidden=5), ['FullyConnected', '5']),
    ('fc-0d', lambda: nd.FullyConnected(nd.zeros(()), nd.zeros((4, 3))), ['FullyConnected', '()', '(4, 3)']),
    ('not-an-array', lambda: nd.exp(np.zeros(3)), ['exp', 'ndarray']),
    ('numpy-operand', lambda: nd.add(np.zeros(3), nd.zeros(3)), ['add', 'ndarray']),
    ('astype', lambda: nd.zeros(3).astype('complex64'), ['complex64']),
    ('asscalar', lambda: nd.zeros((2, 3)).asscalar(), ['asscalar', '(2, 3)']),
    ('bool', lambda: bool(nd.zeros((2,))), ['(2,)']),
    ('ctx-add', lambda: nd.zeros((2, 3)) + _fake_gpu((2, 3)), ['add', 'cpu(0)', 'gpu(0)']),
    ('ctx-dot', lambda: nd.dot(_fake_gpu((2, 3)), nd.zeros((3, 2))), ['dot', 'cpu(0)', 'gpu(0)']),
    ('ctx-concat', lambda: nd.concat(nd.zeros((2, 3)), _fake_gpu((2, 3)), dim=0), ['concat', 'cpu(0)', 'gpu(0)']),
    ('ctx-where', lambda: nd.where(nd.zeros(2), nd.zeros(2), _fake_gpu((2,))), ['where', 'cpu(0)', 'gpu(0)']),
    ('inplace-broadcast', lambda: nd.zeros(3).__iadd__(nd.zeros((2, 3))), ['(2, 3)', '(3,)']),
]


@pytest.mark.parametrize('fn,parts', [(f, p) for _, f, p in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_are_mxnet_errors_naming_op_and_shapes(fn, parts):
    with pytest.raises(Exception) as e:
        fn()
    # an MXNetError (or its ValueError/TypeError flavours, as MXNet raises those), not NumPy's
    assert isinstance(e.value, MXNetError), f'{type(e.value).__name__}: {e.value}'
    msg = str(e.value)
    for p in parts:
        assert p in msg, f'{p!r} not in {msg!r}'


def test_error_class_is_exported():
    assert engine.MXNetError is engine.base.MXNetError
    assert issubclass(MXNetError, Exception)

