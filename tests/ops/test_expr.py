"""The scalar rules of elementwise ops (engine/ops/expr.py) and their two renderers.

* Numba: every op's rule, rendered as the fuser renders it (float32 groups with float32 literals
  and vecmath's fast float32 math), compiled in a loop like a fused kernel and run on negative,
  zero, small, large, overflowing, infinite and NaN values in float32 and float64, gives the op's
  NumPy kernel's result.
* CUDA C: every rule renders to the C expected for the node's type (typed literals, the float or
  the double functions; maximum/minimum as NaN-propagating selects, as NumPy's). That the sources compile with nvcc and compute the kernels' values on
  the host is tests/gpu/test_cuda_fusion_compile.py's and test_cuda_fusion_host.py's work.
"""
import itertools
import re

import numpy as np
import pytest

from engine.base import MXNetError
from engine.ops import expr as E
from engine.ops.expr import attr, where, x0, x1
from engine.ops.registry import REGISTRY

RULES = sorted(n for n, op in REGISTRY.items() if op.template is not None)
SAMPLES = [-np.inf, -1e4, -50.0, -2.5, -1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0, 2.5, 50.0, 100.0, 1e4, np.inf,
           np.nan]
# float32: vecmath's fexp/flog are within a few ulp of libm; float64 runs libm itself
TOL = {np.float32: dict(rtol=4e-6, atol=1e-30), np.float64: dict(rtol=1e-13, atol=1e-300)}


def _attrs(op, dtype, shape):
    """Attribute values for a rule: every number it reads, plus cast's dtype and reshape's shape."""
    # not 0.5: NumPy computes x ** 0.5 as sqrt(x), NaN at -inf where C's pow (Numba, CUDA) gives +inf
    values = {'scalar': [-1.5, 0.25, 2.0], 'a_min': [-1.0], 'a_max': [2.0], 'slope': [0.1, -0.3],
              'value': [3.0]}
    names = E.attributes(op.template)
    fixed = {'cast': {'dtype': np.dtype(dtype).name}, 'reshape': {'shape': shape}}.get(op.name, {})
    return [dict(zip(names, combo), **fixed) for combo in itertools.product(*(values[n] for n in names))]


def _inputs(op, dtype):
    """Every combination of the samples over the op's inputs (where's condition: 0 or not)."""
    n = 3 if op.name == 'where' else max(E.arity(op.template), 1)
    grid = np.array(list(itertools.product(SAMPLES, repeat=min(n, 2))), dtype=dtype).T
    if op.name == 'where':
        grid = np.stack([(np.arange(grid.shape[1]) % 2).astype(dtype), *grid])
    return [np.ascontiguousarray(g) for g in grid]


_compiled = {}


def _numba_loop(source, n_inputs):
    """The rule in a loop over flat arrays, compiled as the fuser compiles its kernels."""
    key = (source, n_inputs)
    if key not in _compiled:
        from engine.graph.fusion import _HEADER
        params = ', '.join([f'in{i}' for i in range(n_inputs)] + ['y'])
        loads = ''.join(f'        x{i} = in{i}[i]\n' for i in range(n_inputs))
        text = (f"{_HEADER}@njit(fastmath=FAST, error_model='numpy')\ndef kernel({params}):\n"
                f"    for i in range(y.shape[0]):\n{loads}        y[i] = {source}\n")
        ns = {}
        exec(compile(text, '<rule>', 'exec'), ns)
        _compiled[key] = ns['kernel']
    return _compiled[key]


@pytest.mark.parametrize('dtype', [np.float32, np.float64], ids=['float32', 'float64'])
@pytest.mark.parametrize('name', RULES)
def test_numba_rendering_computes_the_kernel(name, dtype):
    pytest.importorskip('numba')
    op = REGISTRY[name]
    ins = _inputs(op, dtype)
    for attrs in _attrs(op, dtype, ins[0].shape):
        source = E.numba_source(op.template, [f'x{i}' for i in range(len(ins))], attrs,
                                float32=dtype is np.float32)
        with np.errstate(all='ignore'):
            want = op.kernel('cpu')(*ins, **attrs)
        got = np.full(want.shape, 7, dtype)
        _numba_loop(source, len(ins))(*ins, got)
        bad = ~np.isclose(got, want, equal_nan=True, **TOL[dtype])
        assert not bad.any(), (f'{name} {attrs} ({np.dtype(dtype).name}): {source}\n'
                               f'inputs {[a[bad][:5] for a in ins]}: got {got[bad][:5]}, want {want[bad][:5]}')


@pytest.mark.parametrize('name', RULES)
def test_float32_numba_rendering_stays_float32(name):
    """A float64 literal or math.exp in a float32 group would compute it in float64."""
    op = REGISTRY[name]
    attrs = _attrs(op, np.float32, (2,))[0]
    source = E.numba_source(op.template, ['a0', 'a1', 'a2'], attrs, float32=True)
    bare = re.sub(r'F\([^()]*\)', '', source)
    assert not re.search(r'(?<![\w.])\d', bare), source          # every literal is F(...)
    assert not re.search(r'math\.(exp|expm1|log)\(', source), source


_NUMBER = re.compile(r'(?<![\w.])(\d+\.\d*(?:e[-+]?\d+)?)(f?)(?![\w.])')
_CALL = re.compile(r'\b([a-z_][a-z0-9_]*)\(')
# CUDA's double-precision math; the float versions add an f (expf, fmaxf, ...)
_DOUBLE_MATH = {'exp', 'log', 'log1p', 'expm1', 'sqrt', 'sin', 'cos', 'tan', 'tanh', 'erf', 'floor',
                'ceil', 'trunc', 'fabs', 'copysign', 'pow', 'fmod'}


@pytest.mark.parametrize('ctype', ['float', 'double'])
@pytest.mark.parametrize('name', RULES)
def test_cuda_rendering_is_typed_c(name, ctype):
    op = REGISTRY[name]
    attrs = _attrs(op, np.float32, (2,))[0]
    source = E.cuda_source(op.template, ['a0', 'a1', 'a2'], attrs, ctype)
    assert '**' not in source and ' if ' not in source and 'math.' not in source, source
    assert source.count('(') == source.count(')'), source
    for number, suffix in _NUMBER.findall(source):
        assert suffix == ('f' if ctype == 'float' else ''), f'{number}{suffix} in {source}'
    want = _DOUBLE_MATH if ctype == 'double' else {f + 'f' for f in _DOUBLE_MATH}
    assert set(_CALL.findall(source)) <= want, source


def test_rules_render_structurally():
    rule = where(x0 > 0, x0, attr('slope') * E.expm1(x0))
    assert E.numba_source(rule, ['t3'], {'slope': -0.5}) == 't3 if (t3 > 0.0) else ((-0.5) * math.expm1(t3))'
    assert E.numba_source(rule, ['t3'], {'slope': -0.5}, float32=True) == \
        't3 if (t3 > F(0.0)) else (F(-0.5) * fexpm1(t3))'
    assert E.cuda_source(rule, ['a0'], {'slope': -0.5}, 'float') == '(a0 > 0.0f) ? a0 : ((-0.5f) * expm1f(a0))'
    assert E.cuda_source(x0 % x1, ['a0', 'a1'], {}, 'double') == \
        '(fmod(a0, a1) != 0.0 && (fmod(a0, a1) < 0.0) != (a1 < 0.0)) ? fmod(a0, a1) + a1 : fmod(a0, a1)'
    # operands are substituted as given, whatever their text (no pattern matching on names)
    assert E.numba_source(x1 - x0, ['x1', 'x10'], {}) == 'x10 - x1'
    inf = '((float)(-__longlong_as_double(0x7ff0000000000000LL)))'
    assert E.cuda_source(E.max(x0, attr('scalar')), ['((float)a1)'], {'scalar': float('-inf')}, 'float') == \
        f'(((float)a1) != ((float)a1) || ((float)a1) > {inf}) ? ((float)a1) : {inf}'
    assert E.numba_source(x0 + attr('scalar'), ['a0'], {'scalar': float('nan')}) == 'a0 + math.nan'
    assert (E.arity(rule), E.attributes(rule), E.reads(attr('value'))) == (1, ['slope'], [])
    assert repr(rule) == 'x0 if (x0 > 0.0) else ({slope} * math.expm1(x0))'


def test_rule_mistakes_are_refused():
    with pytest.raises(TypeError, match='no truth value'):
        bool(x0 > 0)
    with pytest.raises(TypeError, match='condition must be a comparison'):
        where(x0 + 1, x0, x1)
    with pytest.raises(TypeError, match='max takes 2'):
        E.max(x0)
    with pytest.raises(TypeError, match='not str'):
        x0 + 'a'
    with pytest.raises(MXNetError, match="reads attribute 'slope'.*attributes: \\['scalar'\\]"):
        E.numba_source(attr('slope') * x0, ['a0'], {'scalar': 1.0})
    with pytest.raises(MXNetError, match="float or double, not 'int'"):
        E.cuda_source(x0, ['a0'], {}, 'int')
