"""Elementwise ops: unary math, scalar arithmetic, broadcasting binary arithmetic, comparisons.

Each op carries its scalar rule once, as an expression over x0, x1 (inputs) and its attributes
(engine/ops/expr.py); the graph fuser renders a chain of these into one generated kernel."""
import operator

import numpy as np

from ..base import MXNetError, as_dtype, special_module
from ..imperative import invoke
# underscored: `from .elemwise import *` puts this module's public names in mx.nd
from . import expr as _E
from .expr import x0 as _x0, x1 as _x1, x2 as _x2
from .registry import register, shape_error


def same_shape(shapes, dtypes, **attrs):
    return [shapes[0]], [dtypes[0]]


def broadcast_shape(name, shapes, dtypes):
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise shape_error(name, 'operands could not be broadcast together', *shapes) from None
    return shape, np.result_type(*dtypes)


def _cast(res, dtype, out):
    """Write a NumPy result into `out` (or return it) in the op's output dtype."""
    if isinstance(res, np.generic):  # NumPy returns scalars for 0-d inputs
        res = np.asarray(res)
    if out is not None:
        out[...] = res
        return out
    return res if res.dtype == dtype else res.astype(dtype)


# ---- unary ---------------------------------------------------------------------------

def _unary(name, fn, grad, rule, no_grad=None):
    def kernel(x, out=None):
        return _cast(fn(x), x.dtype, out)
    op = register(name, same_shape, kernel, grad, template=rule, no_grad=no_grad)

    def apply(data):
        return invoke(op, [data], {})
    apply.__name__ = name
    apply.__doc__ = f'Elementwise {name} (differentiable).' if no_grad is None else f'Elementwise {name}.'
    return apply


# d/dx erf(x) = 2/sqrt(pi) * exp(-x^2)
_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)
# why sign, rounding, comparisons and logical ops pass no gradient
_STEPS = 'piecewise constant: the derivative is 0 wherever it exists'

negative = _unary('negative', np.negative, lambda g, y, x: [-g], -_x0)
copy = _unary('copy', np.copy, lambda g, y, x: [g], _x0)
exp = _unary('exp', np.exp, lambda g, y, x: [g * y], _E.exp(_x0))
log = _unary('log', np.log, lambda g, y, x: [g / x], _E.log(_x0))
log1p = _unary('log1p', np.log1p, lambda g, y, x: [g / (x + 1.0)], _E.log1p(_x0))
expm1 = _unary('expm1', np.expm1, lambda g, y, x: [g * (y + 1.0)], _E.expm1(_x0))
sqrt = _unary('sqrt', np.sqrt, lambda g, y, x: [g * 0.5 / y], _E.sqrt(_x0))
# zero apart: under the fused kernels' arcp flag a bare 1/sqrt(x) became a reciprocal square root
# estimate, NaN at 0 and inf (NumPy: +-inf, 0); tests/ops/test_expr.py checks both
rsqrt = _unary('rsqrt', lambda x: 1.0 / np.sqrt(x), lambda g, y, x: [g * -0.5 * y * y * y],
               _E.where(_x0 == 0, 1 / _x0, 1 / _E.sqrt(_x0)))
square = _unary('square', np.square, lambda g, y, x: [g * 2.0 * x], _x0 * _x0)
reciprocal = _unary('reciprocal', np.reciprocal, lambda g, y, x: [-g * y * y], 1 / _x0)
abs = _unary('abs', np.abs, lambda g, y, x: [g * sign(x)], _E.abs(_x0))
# zero and NaN are their own sign
sign = _unary('sign', np.sign, None, _E.where(_x0 > 0, 1, _E.where(_x0 < 0, -1, _x0)), no_grad=_STEPS)
sin = _unary('sin', np.sin, lambda g, y, x: [g * cos(x)], _E.sin(_x0))
cos = _unary('cos', np.cos, lambda g, y, x: [-g * sin(x)], _E.cos(_x0))
tan = _unary('tan', np.tan, lambda g, y, x: [g * (y * y + 1.0)], _E.tan(_x0))
tanh = _unary('tanh', np.tanh, lambda g, y, x: [g * (1.0 - y * y)], _E.tanh(_x0))
sigmoid = _unary('sigmoid', lambda x: special_module(x).expit(x), lambda g, y, x: [g * y * (1.0 - y)],
                 1 / (1 + _E.exp(-_x0)))
relu = _unary('relu', lambda x: np.maximum(x, 0), lambda g, y, x: [g * (y > 0)],
              _E.max(_x0, 0))
# softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so large |x| cannot overflow
softplus = _unary('softplus', lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
                  lambda g, y, x: [g * sigmoid(x)],
                  _E.max(_x0, 0) + _E.log1p(_E.exp(-_E.abs(_x0))))
erf = _unary('erf', lambda x: special_module(x).erf(x), lambda g, y, x: [g * _TWO_OVER_SQRT_PI * exp(-(x * x))],
             _E.erf(_x0))
floor = _unary('floor', np.floor, None, _E.floor(_x0), no_grad=_STEPS)
ceil = _unary('ceil', np.ceil, None, _E.ceil(_x0), no_grad=_STEPS)
def _round_half_away(x):
    """MXNet's round: halves go away from zero (2.5 -> 3, -2.5 -> -3), unlike NumPy's rint."""
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


round = _unary('round', _round_half_away, None,
               _E.where(_E.abs(_x0 - _E.trunc(_x0)) >= 0.5, _E.trunc(_x0) + _E.copysign(1, _x0), _E.trunc(_x0)),
               no_grad=_STEPS)
trunc = _unary('trunc', np.trunc, None, _E.trunc(_x0), no_grad=_STEPS)
logical_not = _unary('logical_not', lambda x: np.logical_not(x), None, _E.where(_x0 == 0, 1, 0),
                     no_grad=_STEPS)
softrelu = softplus


def _cast_kernel(x, dtype, out=None):
    return _cast(x.astype(dtype), np.dtype(dtype), out)


_cast_op = register('cast', lambda s, d, dtype: ([s[0]], [np.dtype(dtype)]), _cast_kernel,
                    lambda g, y, x, dtype: [cast(g, dtype=np.dtype(x.dtype).name)],
                    template=_x0)


def cast(data, dtype):
    return invoke(_cast_op, [data], {'dtype': as_dtype(dtype).name})


Cast = cast


# ---- ops with a scalar attribute -----------------------------------------------------------

def _int_checked(name, fn, divisor=1):
    """`fn(a, b)` refusing integer division by zero (NumPy would give INT_MIN or 0 silently; MXNet
    dies of SIGFPE); `divisor` is the position of the divisor. Float division keeps IEEE inf/nan.
    The check costs one pass, on integer inputs only."""
    def checked(a, b):
        dts = [np.dtype(v.dtype) if hasattr(v, 'dtype') else np.asarray(v).dtype for v in (a, b)]  # (CuPy too)
        if all(d.kind in 'iub' for d in dts) and bool(((a, b)[divisor] == 0).any()):
            raise MXNetError(f'{name}: integer division by zero (dtypes {dts[0].name} and {dts[1].name}); cast '
                             'to a float dtype for inf/nan results')
        return fn(a, b)
    return checked


def _scalar_op(name, fn, grad, rule, no_grad=None):
    def kernel(x, scalar, out=None):
        return _cast(fn(x, x.dtype.type(scalar)), x.dtype, out)
    return register(name, same_shape, kernel, grad, no_grad=no_grad, template=rule)


_SCALAR = _E.attr('scalar')


_plus_scalar = _scalar_op('_plus_scalar', np.add, lambda g, y, x, scalar: [g], _x0 + _SCALAR)
_rminus_scalar = _scalar_op('_rminus_scalar', lambda x, s: s - x, lambda g, y, x, scalar: [-g], _SCALAR - _x0)
_mul_scalar = _scalar_op('_mul_scalar', np.multiply, lambda g, y, x, scalar: [g * scalar], _x0 * _SCALAR)
_div_scalar = _scalar_op('_div_scalar', _int_checked('divide', np.divide),
                         lambda g, y, x, scalar: [g / scalar], _x0 / _SCALAR)
_rdiv_scalar = _scalar_op('_rdiv_scalar', _int_checked('divide', lambda x, s: s / x, divisor=0),
                          lambda g, y, x, scalar: [-g * y / x], _SCALAR / _x0)
_power_scalar = _scalar_op('_power_scalar', np.power,
                           lambda g, y, x, scalar: [g * scalar * x ** (scalar - 1.0)], _x0 ** _SCALAR)
_rpower_scalar = _scalar_op('_rpower_scalar', lambda x, s: np.power(s, x),
                            lambda g, y, x, scalar: [g * y * float(np.log(scalar))], _SCALAR ** _x0)
_maximum_scalar = _scalar_op('_maximum_scalar', np.maximum,
                             lambda g, y, x, scalar: [g * (x >= scalar)], _E.max(_x0, _SCALAR))
_minimum_scalar = _scalar_op('_minimum_scalar', np.minimum,
                             lambda g, y, x, scalar: [g * (x <= scalar)], _E.min(_x0, _SCALAR))
# mod takes the sign of the divisor (NumPy / Python / MXNet)
_mod_scalar = _scalar_op('_mod_scalar', _int_checked('modulo', np.mod),
                         lambda g, y, x, scalar: [g], _x0 % _SCALAR)
# d(s mod x)/dx = -floor(s / x) (away from the jumps)
_rmod_scalar = _scalar_op('_rmod_scalar', _int_checked('modulo', lambda x, s: np.mod(s, x), divisor=0),
                          lambda g, y, x, scalar: [-g * floor(scalar / x)], _SCALAR % _x0)

# comparisons give 1 or 0 in the operands' dtype
_CMP = {'equal': (np.equal, operator.eq), 'not_equal': (np.not_equal, operator.ne),
        'greater': (np.greater, operator.gt), 'greater_equal': (np.greater_equal, operator.ge),
        'lesser': (np.less, operator.lt), 'lesser_equal': (np.less_equal, operator.le)}
_cmp_scalar = {k: _scalar_op(f'_{k}_scalar', f, None, _E.where(cmp(_x0, _SCALAR), 1, 0), no_grad=_STEPS)
               for k, (f, cmp) in _CMP.items()}


def clip(data, a_min, a_max):
    return invoke(_clip, [data], {'a_min': float(a_min), 'a_max': float(a_max)})


_clip = register('clip', same_shape,
                 lambda x, a_min, a_max, out=None: _cast(np.clip(x, a_min, a_max), x.dtype, out),
                 lambda g, y, x, a_min, a_max: [g * (x >= a_min) * (x <= a_max)],
                 template=_E.min(_E.max(_x0, _E.attr('a_min')), _E.attr('a_max')))


# ---- broadcasting binary ops --------------------------------------------------------------

def _binary_infer(name):
    def infer(shapes, dtypes, **attrs):
        shape, dtype = broadcast_shape(name, shapes, dtypes)
        return [shape], [dtype]
    return infer


def _binary_op(name, fn, grad, rule, no_grad=None):
    def kernel(a, b, out=None):
        return _cast(fn(a, b), np.result_type(a.dtype, b.dtype), out)
    return register(name, _binary_infer(name), kernel, grad, no_grad=no_grad, template=rule)


def _reduce_to(g, x):
    """Sum a broadcast gradient back to the shape of the input it came from."""
    return g if g.shape == x.shape else sum_to(g, x.shape)


_add = _binary_op('add', np.add, lambda g, y, a, b: [_reduce_to(g, a), _reduce_to(g, b)], _x0 + _x1)
_sub = _binary_op('subtract', np.subtract,
                  lambda g, y, a, b: [_reduce_to(g, a), _reduce_to(-g, b)], _x0 - _x1)
_mul = _binary_op('multiply', np.multiply,
                  lambda g, y, a, b: [_reduce_to(g * b, a), _reduce_to(g * a, b)], _x0 * _x1)
_div = _binary_op('divide', _int_checked('divide', np.divide),
                  lambda g, y, a, b: [_reduce_to(g / b, a), _reduce_to(-g * y / b, b)], _x0 / _x1)
_pow = _binary_op('power', np.power,
                  lambda g, y, a, b: [_reduce_to(g * b * a ** (b - 1.0), a),
                                      _reduce_to(g * y * log(a), b)],
                  _x0 ** _x1)
# a mod b = a - b * floor(a / b): d/da = 1, d/db = -floor(a / b) (away from the jumps)
_mod = _binary_op('modulo', _int_checked('modulo', np.mod),
                  lambda g, y, a, b: [_reduce_to(g, a), _reduce_to(-g * floor(a / b), b)], _x0 % _x1)
_max = _binary_op('maximum', np.maximum,
                  lambda g, y, a, b: [_reduce_to(g * (a >= b), a), _reduce_to(g * (a < b), b)],
                  _E.max(_x0, _x1))
_min = _binary_op('minimum', np.minimum,
                  lambda g, y, a, b: [_reduce_to(g * (a <= b), a), _reduce_to(g * (a > b), b)],
                  _E.min(_x0, _x1))
_cmp_binary = {k: _binary_op(k, f, None, _E.where(cmp(_x0, _x1), 1, 0), no_grad=_STEPS)
               for k, (f, cmp) in _CMP.items()}


def _is_array(x):
    return hasattr(x, '_entry') or getattr(x, '_is_symbol', False)


def _scalar(x, name):
    if isinstance(x, (bool, int, float, np.number)):
        return float(x)
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return float(x)
    raise MXNetError(f'{name}: expected an NDArray or a Python scalar operand, got {type(x).__name__}')


_PY_SCALAR = {   # two Python scalars give a Python scalar, as in MXNet's nd functions
    'add': operator.add, 'subtract': operator.sub, 'multiply': operator.mul,
    'divide': operator.truediv, 'power': operator.pow, 'modulo': operator.mod,
    'maximum': lambda x, y: x if x > y else y, 'minimum': lambda x, y: x if x < y else y,
    'equal': lambda x, y: 1 if x == y else 0, 'not_equal': lambda x, y: 1 if x != y else 0,
    'greater': lambda x, y: 1 if x > y else 0, 'greater_equal': lambda x, y: 1 if x >= y else 0,
    'lesser': lambda x, y: 1 if x < y else 0, 'lesser_equal': lambda x, y: 1 if x <= y else 0,
}


def _arith(name, op, scalar_op, rscalar_op):
    """A public binary function taking arrays or Python scalars on either side."""
    def apply(lhs, rhs):
        if _is_array(lhs) and _is_array(rhs):
            return invoke(op, [lhs, rhs], {})
        if _is_array(lhs):
            return scalar_op(lhs, _scalar(rhs, name))
        if _is_array(rhs):
            return rscalar_op(rhs, _scalar(lhs, name))
        if name in _PY_SCALAR:
            _scalar(lhs, name), _scalar(rhs, name)     # both numbers, else a clear error
            return _PY_SCALAR[name](lhs, rhs)
        raise MXNetError(f'{name}: at least one operand must be an NDArray')
    apply.__name__ = name
    return apply


def _s(op):
    return lambda x, s: invoke(op, [x], {'scalar': s})


add = _arith('add', _add, _s(_plus_scalar), _s(_plus_scalar))
subtract = _arith('subtract', _sub, lambda x, s: invoke(_plus_scalar, [x], {'scalar': -s}),
                  _s(_rminus_scalar))
multiply = _arith('multiply', _mul, _s(_mul_scalar), _s(_mul_scalar))
divide = _arith('divide', _div, _s(_div_scalar), _s(_rdiv_scalar))
power = _arith('power', _pow, lambda x, s: square(x) if s == 2.0 else invoke(_power_scalar, [x], {'scalar': s}),
               _s(_rpower_scalar))
modulo = _arith('modulo', _mod, _s(_mod_scalar), _s(_rmod_scalar))
maximum = _arith('maximum', _max, _s(_maximum_scalar), _s(_maximum_scalar))
minimum = _arith('minimum', _min, _s(_minimum_scalar), _s(_minimum_scalar))

_FLIP = {'greater': 'lesser', 'greater_equal': 'lesser_equal', 'lesser': 'greater',
         'lesser_equal': 'greater_equal', 'equal': 'equal', 'not_equal': 'not_equal'}


def _compare(name):
    return _arith(name, _cmp_binary[name], _s(_cmp_scalar[name]), _s(_cmp_scalar[_FLIP[name]]))


equal, not_equal, greater, greater_equal, lesser, lesser_equal = (
    _compare(n) for n in ('equal', 'not_equal', 'greater', 'greater_equal', 'lesser', 'lesser_equal'))
broadcast_add, broadcast_sub, broadcast_mul, broadcast_div = add, subtract, multiply, divide
broadcast_plus, broadcast_minus, broadcast_power = add, subtract, power
broadcast_maximum, broadcast_minimum = maximum, minimum
broadcast_equal, broadcast_greater, broadcast_lesser = equal, greater, lesser
elemwise_add, elemwise_sub, elemwise_mul, elemwise_div = add, subtract, multiply, divide


# ---- where -----------------------------------------------------------------------------

def _where_infer(shapes, dtypes):
    shape, _ = broadcast_shape('where', shapes, dtypes)
    return [shape], [np.result_type(dtypes[1], dtypes[2])]


def _where_kernel(c, x, y, out=None):
    return _cast(np.where(c != 0, x, y), np.result_type(x.dtype, y.dtype), out)


def _where_grad(g, out, c, x, y):
    zero = g * 0.0
    return [None, _reduce_to(where(c, g, zero), x), _reduce_to(where(c, zero, g), y)]


_where = register('where', _where_infer, _where_kernel, _where_grad,
                  template=_E.where(_x0 != 0, _x1, _x2))


def where(condition, x, y):
    """Elementwise x where condition is non-zero, else y (broadcasting)."""
    return invoke(_where, [condition, x, y], {})


from .shape import sum_to  # noqa: E402  (gradient rules of binary ops reduce with it)
