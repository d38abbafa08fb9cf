"""Scalar expressions of elementwise ops: each op writes its rule once, as a small tree, and the
fusers render that tree to Numba (Python) source or to CUDA C.

A rule is built with Python operators and the calls below over the inputs x0, x1, x2 and the
node's attributes, e.g. `where(x0 > 0, x0, attr('slope') * expm1(x0))`. Rendering is given the
operands' names (the fuser's temporaries), the node's attribute values and its dtype; every
per-language and per-dtype choice lives in the renderers, not in the ops:

* Numba, float32 groups: literals are `F(...)` (a float64 literal would promote the whole
  expression to float64) and exp/expm1/log call the vectorizable float32 math of
  kernels/cpu/vecmath.py (Numba's math.exp is one scalar libm call per element);
* CUDA: literals carry the node's C type (`0.5f` / `0.5`: a double literal would turn float
  arithmetic into double, an int would mix argument types) and calls are the float or double
  functions (`expf` / `exp`).

Comparisons give booleans: they may only be a `where` condition, so a value is always a number.
"""
import builtins
import math

from ..base import MXNetError

# what the rendered Numba source refers to (the fuser puts these lines at the top of each file)
NUMBA_PRELUDE = ('import math\nimport numpy as np\nfrom kernels.cpu.vecmath import fexp, fexpm1, flog\n\n'
                 'F = np.float32\n')

_BINARY = {'add': '+', 'sub': '-', 'mul': '*', 'div': '/'}
_COMPARE = {'lt': '<', 'le': '<=', 'gt': '>', 'ge': '>=', 'eq': '==', 'ne': '!='}
_CALLS = {'exp': 1, 'log': 1, 'log1p': 1, 'expm1': 1, 'sqrt': 1, 'sin': 1, 'cos': 1, 'tan': 1,
          'tanh': 1, 'erf': 1, 'floor': 1, 'ceil': 1, 'trunc': 1, 'abs': 1,
          'max': 2, 'min': 2, 'copysign': 2}


def _operator(op, reflected=False):
    """The method behind a Python operator: `x0 - 1` is sub(x0, 1), `1 - x0` (reflected) sub(1, x0)."""
    def method(self, other):
        return Expr(op, (_expr(other), self) if reflected else (self, _expr(other)))
    return method


class Expr:
    """One node of a scalar expression: `op` with child expressions `args`; leaves carry `value`
    (an input index, an attribute name or a number)."""
    __slots__ = ('op', 'args', 'value')

    def __init__(self, op, args=(), value=None):
        self.op, self.args, self.value = op, tuple(args), value

    __add__, __radd__ = _operator('add'), _operator('add', reflected=True)
    __sub__, __rsub__ = _operator('sub'), _operator('sub', reflected=True)
    __mul__, __rmul__ = _operator('mul'), _operator('mul', reflected=True)
    __truediv__, __rtruediv__ = _operator('div'), _operator('div', reflected=True)
    __pow__, __rpow__ = _operator('pow'), _operator('pow', reflected=True)
    __mod__, __rmod__ = _operator('mod'), _operator('mod', reflected=True)
    __lt__, __le__, __gt__ = _operator('lt'), _operator('le'), _operator('gt')
    __ge__, __eq__, __ne__ = _operator('ge'), _operator('eq'), _operator('ne')

    def __neg__(self):
        return Expr('neg', (self,))

    # __eq__ builds an expression, so hashing falls back to identity
    __hash__ = object.__hash__

    def __bool__(self):
        # `x0 > 0 and ...` or `if x0 > 0:` in a rule would silently pick one branch at build time
        raise TypeError('a scalar expression has no truth value: branch with where(cond, a, b)')

    def __repr__(self):
        return numba_source(self, [f'x{i}' for i in range(arity(self))],
                            {a: _AttrName(a) for a in attributes(self)})

    def walk(self):
        yield self
        for a in self.args:
            yield from a.walk()


class _AttrName(str):
    """An attribute shown by name in repr (`{scalar}`) instead of a value."""
    def __repr__(self):
        return '{' + self + '}'


def _expr(v):
    if isinstance(v, Expr):
        return v
    if isinstance(v, (bool, int, float)):
        return Expr('const', value=float(v))
    raise TypeError(f'a scalar expression takes expressions and Python numbers, not {type(v).__name__}')


x0, x1, x2 = (Expr('input', value=i) for i in range(3))


def attr(name):
    """The node's attribute `name` (a number), rendered as a literal of the node's dtype."""
    return Expr('attr', value=name)


def where(cond, a, b):
    if cond.op not in _COMPARE:
        raise TypeError(f'where: the condition must be a comparison, got {cond.op}')
    return Expr('where', (cond, _expr(a), _expr(b)))


def _call(name):
    def call(*args):
        if len(args) != _CALLS[name]:
            raise TypeError(f'{name} takes {_CALLS[name]} argument(s), got {len(args)}')
        return Expr(name, [_expr(a) for a in args])
    call.__name__ = name
    return call


exp, log, log1p, expm1, sqrt = (_call(n) for n in ('exp', 'log', 'log1p', 'expm1', 'sqrt'))
sin, cos, tan, tanh, erf = (_call(n) for n in ('sin', 'cos', 'tan', 'tanh', 'erf'))
floor, ceil, trunc, abs, max, min, copysign = (
    _call(n) for n in ('floor', 'ceil', 'trunc', 'abs', 'max', 'min', 'copysign'))


# ---- what a rule reads ----------------------------------------------------------------------

def reads(expr):
    """Indices of the inputs the rule reads (full_like's reads none: only its input's shape)."""
    return sorted({e.value for e in expr.walk() if e.op == 'input'})


def arity(expr):
    """How many inputs the rule takes (1 + the highest index it reads; 0 for a constant rule)."""
    return 1 + builtins.max(reads(expr), default=-1)


def attributes(expr):
    """Names of the attributes the rule reads, in first-use order."""
    return list(dict.fromkeys(e.value for e in expr.walk() if e.op == 'attr'))


def branches_or_calls(expr):
    """Whether evaluating the rule takes more than plain arithmetic (a call or a branch)."""
    return any(e.op in _CALLS or e.op == 'where' for e in expr.walk())


def _attr_value(name, attrs):
    if name not in attrs:
        raise MXNetError(f"elementwise rule reads attribute '{name}', which the node does not have "
                         f"(attributes: {sorted(attrs)})")
    return attrs[name]


# ---- Numba ----------------------------------------------------------------------------------

# calls whose Numba spelling is not math.<name>: the fast float32 versions, the builtins, and
# NumPy's floor/ceil/trunc (math.floor returns an int in Numba)
_NUMBA_F32 = {'exp': 'fexp', 'expm1': 'fexpm1', 'log': 'flog'}
_NUMBA_CALL = {'abs': 'abs', 'floor': 'np.floor', 'ceil': 'np.ceil', 'trunc': 'np.trunc'}
# NumPy's maximum/minimum: NaN if either operand is (Python's max/min return the first operand
# when the second is NaN); as selects, the loops still vectorize
_PICK = {'max': '>', 'min': '<'}


def numba_source(expr, operands, attrs, float32=False):
    """The rule as a Python expression for a Numba kernel. `operands[i]` is the source of input
    i; `float32` when every value of the fused group is float32."""
    def lit(v):
        if isinstance(v, _AttrName):
            return repr(v)
        v = float(v)
        if math.isnan(v):
            text = 'math.nan'
        elif math.isinf(v):
            text = 'math.inf' if v > 0 else '-math.inf'
        else:
            text = repr(v)
        if float32:
            return f'F({text})'
        return f'({text})' if text.startswith('-') else text

    def go(e):
        op, a = e.op, e.args
        if op == 'input':
            return operands[e.value]
        if op == 'attr':
            return lit(_attr_value(e.value, attrs))
        if op == 'const':
            return lit(e.value)
        if op == 'neg':
            return f'(-{go(a[0])})'
        if op in _BINARY or op in _COMPARE:
            return f'({go(a[0])} {_BINARY.get(op) or _COMPARE[op]} {go(a[1])})'
        if op == 'pow':
            return f'({go(a[0])} ** {go(a[1])})'
        if op == 'mod':   # Python's float % takes the divisor's sign, as NumPy's mod does
            return f'({go(a[0])} % {go(a[1])})'
        if op == 'where':
            return f'({go(a[1])} if {go(a[0])} else {go(a[2])})'
        if op in _PICK:
            x, y = go(a[0]), go(a[1])
            return f'({x} if ({x} != {x} or {x} {_PICK[op]} {y}) else {y})'
        name = (float32 and _NUMBA_F32.get(op)) or _NUMBA_CALL.get(op) or f'math.{op}'
        return f'{name}({", ".join(_strip(go(x)) for x in a)})'
    return _strip(go(expr))


# ---- CUDA C ---------------------------------------------------------------------------------

_C_FLOAT_TYPES = ('float', 'double')
_C_CALL = {'abs': 'fabs'}   # max/min: NaN-propagating selects (_PICK), C's fmax/fmin drop a NaN
# IEEE special values as bit patterns (no division by zero in the source, no math.h macros)
_SPECIAL = {'inf': '__longlong_as_double(0x7ff0000000000000LL)',
            'nan': '__longlong_as_double(0x7ff8000000000000LL)'}


def c_literal(value, ctype):
    """A number as a C expression of type `ctype` ('float' or 'double'): the exact repr of the
    float with the type's suffix; inf and nan from their bit patterns."""
    v = float(value)
    if math.isnan(v):
        return f'(({ctype}){_SPECIAL["nan"]})'
    if math.isinf(v):
        return f'(({ctype})({"" if v > 0 else "-"}{_SPECIAL["inf"]}))'
    text = repr(math.fabs(v))
    if not any(c in text for c in '.eE'):
        text += '.0'
    text += 'f' if ctype == 'float' else ''
    return text if math.copysign(1.0, v) > 0 else f'(-{text})'


def cuda_source(expr, operands, attrs, ctype):
    """The rule as a CUDA C expression computed in `ctype` (the node's output type, 'float' or
    'double'). `operands[i]` is the source of input i, already converted where it should be."""
    if ctype not in _C_FLOAT_TYPES:
        raise MXNetError(f"CUDA rendering of an elementwise rule: computes in float or double, not '{ctype}'")
    suffix = 'f' if ctype == 'float' else ''

    def fn(name):
        return _C_CALL.get(name, name) + suffix

    def go(e):
        op, a = e.op, e.args
        if op == 'input':
            return operands[e.value]
        if op == 'attr':
            return c_literal(_attr_value(e.value, attrs), ctype)
        if op == 'const':
            return c_literal(e.value, ctype)
        if op == 'neg':
            return f'(-{go(a[0])})'
        if op in _BINARY or op in _COMPARE:
            return f'({go(a[0])} {_BINARY.get(op) or _COMPARE[op]} {go(a[1])})'
        if op == 'pow':
            return f'{fn("pow")}({_strip(go(a[0]))}, {_strip(go(a[1]))})'
        if op == 'mod':   # NumPy's: C's fmod (exact, the dividend's sign) moved to the divisor's sign
            y, r, zero = go(a[1]), f'{fn("fmod")}({_strip(go(a[0]))}, {_strip(go(a[1]))})', c_literal(0, ctype)
            return f'(({r} != {zero} && ({r} < {zero}) != ({y} < {zero})) ? {r} + {y} : {r})'
        if op == 'where':
            return f'({go(a[0])} ? {go(a[1])} : {go(a[2])})'
        if op in _PICK:
            x, y = go(a[0]), go(a[1])
            return f'(({x} != {x} || {x} {_PICK[op]} {y}) ? {x} : {y})'
        return f'{fn(op)}({", ".join(_strip(go(x)) for x in a)})'
    return _strip(go(expr))


def _strip(text):
    """Drop the outer parentheses of a rendered binary expression (it is a whole right-hand side)."""
    if text.startswith('(') and text.endswith(')'):
        depth = 0
        for i, c in enumerate(text):
            depth += c == '('
            depth -= c == ')'
            if depth == 0 and i < len(text) - 1:
                return text
        return text[1:-1]
    return text
