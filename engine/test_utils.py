"""Helpers for tests, as MXNet's `mx.test_utils`: comparisons with per-dtype tolerances, random
inputs, finite-difference gradient checks, optimizer comparisons and environment patching.

`from engine.test_utils import *` exports what MXNet's does, `mx` and `np` included (MXNet's
tests rely on that)."""
import contextlib
import numbers
import os

import numpy as np
import numpy.random as rnd

import engine as mx   # noqa: F401  (exported: MXNet's `from mx.test_utils import *` brings `mx`)

from . import autograd
from .base import MXNetError
from .context import Context, _set_current_context, current_context
from .ndarray import NDArray, array
from .util import getenv, setenv, use_np  # noqa: F401  (exported, as in MXNet)


# ---- contexts and dtypes --------------------------------------------------------------------
def default_context():
    """The context tests run on: the current one (`set_default_context` changes it)."""
    return current_context()


def set_default_context(ctx):
    """Make `ctx` the current context of this thread (until a `with ctx:` block or another call
    changes it)."""
    _set_current_context(Context(ctx))


def default_dtype():
    return np.float32


def _tolerances(f16, f32, f64):
    out = {np.dtype(t): 0 for t in (np.bool_, np.int8, np.uint8, np.int32, np.uint32, np.int64,
                                    np.uint64)}
    out.update({np.dtype(np.float16): f16, np.dtype(np.float32): f32, np.dtype(np.float64): f64})
    return out


def default_rtols():
    """Relative tolerance per dtype when a comparison names none (MXNet's values)."""
    return _tolerances(1e-2, 1e-4, 1e-5)


def default_atols():
    """Absolute tolerance per dtype when a comparison names none (MXNet's values)."""
    return _tolerances(1e-1, 1e-3, 1e-20)


def default_numeric_eps():
    """Finite-difference step per dtype: powers of two, so x + eps drops no bits of eps."""
    return {np.dtype(np.float16): 2.0 ** -6, np.dtype(np.float32): 2.0 ** -9,
            np.dtype(np.float64): 2.0 ** -14}


def get_tolerance(dat, tol, default_tol):
    """`tol` if it is a number; else the entry for dat's dtype in `tol` (a dict) or the default."""
    if isinstance(tol, numbers.Number):
        return tol
    dtype = np.dtype(getattr(dat, 'dtype', np.asarray(dat).dtype))
    return (tol or {}).get(dtype, default_tol.get(dtype, 0))


def get_tols(x, y, rtol, atol):
    """The looser of the two operands' tolerances (e.g. float16 vs float32 uses float16's)."""
    return (max(get_tolerance(x, rtol, default_rtols()), get_tolerance(y, rtol, default_rtols())),
            max(get_tolerance(x, atol, default_atols()), get_tolerance(y, atol, default_atols())))


def get_rtol(rtol=None, dtype=np.dtype(np.float64)):
    return default_rtols()[np.dtype(dtype)] if rtol is None else rtol


def get_atol(atol=None, dtype=np.dtype(np.float64)):
    return default_atols()[np.dtype(dtype)] if atol is None else atol


def get_etol(etol=None):
    return 0 if etol is None else etol


# ---- comparisons ------------------------------------------------------------------------------
def _np(a):
    return a.asnumpy() if isinstance(a, NDArray) else np.asarray(a)


def same(a, b):
    """Whether two arrays (NumPy or NDArray) have the same shape and elements."""
    return np.array_equal(_np(a), _np(b))


def _check_shapes(a, b):
    if np.shape(a) != np.shape(b):
        raise AssertionError(f'shapes differ: {np.shape(a)} vs {np.shape(b)}')


def almost_equal(a, b, rtol=None, atol=None, equal_nan=False, use_broadcast=True):
    """Whether |a - b| <= atol + rtol * |b| everywhere (broadcasting unless told not to)."""
    a, b = _np(a), _np(b)
    if not use_broadcast:
        _check_shapes(a, b)
    return np.allclose(a, b, rtol=get_rtol(rtol), atol=get_atol(atol), equal_nan=equal_nan)


def assert_almost_equal(a, b, rtol=None, atol=None, names=('a', 'b'), equal_nan=False,
                        use_broadcast=True, mismatches=(10, 10)):
    """Assert |a - b| <= atol + rtol * |b| elementwise. Unset tolerances come from the dtypes of
    a and b (the looser of the two, see `default_rtols`/`default_atols`); shapes broadcast unless
    `use_broadcast=False`. The message gives the largest violation and where it is."""
    if not use_broadcast:
        _check_shapes(a, b)
    rtol, atol = get_tols(a, b, rtol, atol)
    a, b = _np(a), _np(b)
    if a.dtype == np.bool_ and b.dtype == np.bool_:
        np.testing.assert_equal(a, b)
        return
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    try:
        a_b, b_b = np.broadcast_arrays(a, b)
    except ValueError:
        raise AssertionError(f'{names[0]} and {names[1]} have shapes {a.shape} and {b.shape}, '
                             'which do not broadcast') from None
    a64, b64 = a_b.astype(np.float64), b_b.astype(np.float64)
    diff = np.where(a64 == b64, 0.0, np.abs(a64 - b64))
    if equal_nan:
        diff = np.where(np.isnan(a64) & np.isnan(b64), 0.0, diff)
    violation = np.nan_to_num(diff / (atol + rtol * np.abs(b64) + 1e-20), nan=np.inf)
    where = np.unravel_index(np.argmax(violation), violation.shape)
    count = int(np.sum(violation > 1))
    raise AssertionError(
        f'{names[0]} and {names[1]} differ beyond rtol={rtol:g}, atol={atol:g}: {count} of '
        f'{violation.size} elements; largest error {float(violation[where]):g}x the tolerance at '
        f'{tuple(int(i) for i in where)}: {names[0]}={a_b[where]!r}, {names[1]}={b_b[where]!r}')


def assert_allclose(a, b, rtol=1e-07, atol=0, equal_nan=True):
    assert_almost_equal(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def assert_almost_equal_ignore_nan(a, b, rtol=None, atol=None, names=('a', 'b')):
    """assert_almost_equal where a NaN in either operand is not compared."""
    a, b = np.copy(_np(a)), np.copy(_np(b))
    nan = np.isnan(a) | np.isnan(b)
    a[nan], b[nan] = 0, 0
    assert_almost_equal(a, b, rtol, atol, names)


def assert_exception(f, exception_type, *args, **kwargs):
    """Assert that f(*args, **kwargs) raises `exception_type`."""
    try:
        f(*args, **kwargs)
    except exception_type:
        return
    raise AssertionError(f'{getattr(f, "__name__", f)} did not raise {exception_type.__name__}')


def compare_ndarray_tuple(t1, t2, rtol=None, atol=None):
    """assert_almost_equal over (nested tuples of) arrays; None on either side is skipped."""
    if t1 is None or t2 is None:
        return
    if isinstance(t1, (tuple, list)):
        for a, b in zip(t1, t2):
            compare_ndarray_tuple(a, b, rtol, atol)
    else:
        assert_almost_equal(t1, t2, rtol=rtol, atol=atol)


# ---- random inputs ---------------------------------------------------------------------------
def random_arrays(*shapes):
    """Standard-normal float32 NumPy arrays, one per shape (a single array for one shape)."""
    arrays = [np.array(rnd.randn(*s), dtype=default_dtype()) for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def random_uniform_arrays(*shapes, low=0.0, high=1.0, dtype=None):
    return [rnd.uniform(low, high, size=s).astype(dtype or default_dtype()) for s in shapes]


def random_sample(population, k):
    """k distinct elements of `population` in random order."""
    if not 0 <= k <= len(population):
        raise MXNetError(f'random_sample: k={k} outside [0, {len(population)}]')
    chosen = list(population)
    rnd.shuffle(chosen)
    return chosen[:k]


def rand_ndarray(shape, stype='default', density=None, dtype=None, modifier_func=None,
                 shuffle_csr_indices=False, distribution=None, ctx=None):
    """A standard-normal NDArray of `shape`. stype 'row_sparse' keeps each row with probability
    `density` (default: a random density), 'csr' (2-D) each element; the rest are zeros."""
    if stype not in ('default', 'row_sparse', 'csr'):
        raise MXNetError(f"rand_ndarray: unknown storage type {stype!r}; expected 'default', "
                         "'row_sparse' or 'csr'")
    data = np.asarray(random_arrays(tuple(shape)))
    if stype != 'default':
        density = rnd.rand() if density is None else density
        keep_shape = (data.shape[0],) + (1,) * (data.ndim - 1) if stype == 'row_sparse' else data.shape
        data = data * (rnd.rand(*keep_shape) < density)
    if modifier_func is not None:     # on the stored values (sparse: the non-zeros only)
        nz = data != 0 if stype != 'default' else np.ones(data.shape, bool)
        data[nz] = np.vectorize(modifier_func, otypes=[data.dtype])(data[nz])
    out = array(data, ctx=ctx or default_context(), dtype=dtype)
    return out if stype == 'default' else out.tostype(stype)


def rand_shape_2d(dim0=10, dim1=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return rnd.randint(low, dim0 + 1), rnd.randint(low, dim1 + 1)


def rand_shape_3d(dim0=10, dim1=10, dim2=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return rnd.randint(low, dim0 + 1), rnd.randint(low, dim1 + 1), rnd.randint(low, dim2 + 1)


def rand_shape_nd(num_dim, dim=10, allow_zero_size=False):
    """A random shape of `num_dim` sizes, each in [1, dim] ([0, dim] with allow_zero_size)."""
    return tuple(int(s) for s in rnd.randint(0 if allow_zero_size else 1, dim + 1, size=num_dim))


def np_reduce(dat, axis, keepdims, numpy_reduce_func):
    """Reduce `dat` over `axis` (int, list or None) one axis at a time with a NumPy reducer."""
    axes = [axis] if isinstance(axis, int) else (list(axis) if axis is not None else
                                                 list(range(dat.ndim)))
    axes = [a % dat.ndim for a in axes]
    ret = dat
    for a in sorted(axes, reverse=True):
        ret = numpy_reduce_func(ret, axis=a)
    if keepdims:
        ret = np.reshape(ret, [1 if i in axes else s for i, s in enumerate(dat.shape)])
    return ret


# ---- environment ------------------------------------------------------------------------------
@contextlib.contextmanager
def environment(*args):
    """Set environment variables for the body of a `with` block, restoring them afterwards:
    `environment('NAME', 'value')` or `environment({'A': '1', 'B': None})` (None unsets)."""
    if len(args) == 1 and isinstance(args[0], dict):
        changes = dict(args[0])
    elif len(args) == 2:
        changes = {args[0]: args[1]}
    else:
        raise MXNetError('environment: expected (name, value) or one dict of name -> value')
    saved = {k: os.environ.get(k) for k in changes}

    def apply(values):
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
    apply(changes)
    try:
        yield
    finally:
        apply(saved)


@contextlib.contextmanager
def discard_stderr():
    """Silence file descriptor 2 (Python's and native code's stderr) inside a `with` block."""
    import sys
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def retry(n):
    """Decorator: run a stochastic test up to n times, failing only if every run fails."""
    def decorate(f):
        def wrapper(*args, **kwargs):
            for i in range(n):
                try:
                    return f(*args, **kwargs)
                except AssertionError:
                    if i == n - 1:
                        raise
        return wrapper
    return decorate


# ---- optimizers -------------------------------------------------------------------------------
def compare_optimizer(opt1, opt2, shape, dtype, w_stype='default', g_stype='default',
                      rtol=1e-4, atol=1e-5, compare_states=True, ntensors=1):
    """Apply one update of opt1 and of opt2 to the same random weight and gradient and compare
    the states and the updated weights. `shape` a list: opt2 updates the `ntensors` weights in
    one multi-tensor call, opt1 one at a time."""
    ctx = default_context()
    if not isinstance(shape, list):
        # opt2 gets the given storage types, opt1 the same values dense (MXNet's arrangement)
        w2 = (mx.random.uniform(shape=shape, ctx=ctx, dtype=dtype) if w_stype == 'default' else
              rand_ndarray(shape, w_stype, density=1, dtype=dtype))
        g2 = (mx.random.uniform(shape=shape, ctx=ctx, dtype=dtype) if g_stype == 'default' else
              rand_ndarray(shape, g_stype, dtype=dtype))
        w1, g1 = w2.copy().tostype('default'), g2.copy().tostype('default')
        s1 = opt1.create_state_multi_precision(0, w1)
        s2 = opt2.create_state_multi_precision(0, w2)
        if compare_states:
            compare_ndarray_tuple(s1, s2)
        opt1.update_multi_precision(0, w1, g1, s1)
        opt2.update_multi_precision(0, w2, g2, s2)
        if compare_states:
            compare_ndarray_tuple(s1, s2, rtol=rtol, atol=atol)
        assert_almost_equal(w1, w2, rtol=rtol, atol=atol)
        return
    w1 = [mx.random.uniform(shape=s, ctx=ctx, dtype=dtype) for s in shape]
    g1 = [mx.random.uniform(shape=s, ctx=ctx, dtype=dtype) for s in shape]
    w2, g2 = [w.copy() for w in w1], [g.copy() for g in g1]
    s2 = [opt2.create_state_multi_precision(0, w2[i]) for i in range(ntensors)]
    opt2.update_multi_precision(list(range(ntensors)), w2, g2, s2)
    for i in range(ntensors):
        s1 = opt1.create_state_multi_precision(i, w1[i])
        opt1.update_multi_precision(i, w1[i], g1[i], s1)
        if compare_states:
            compare_ndarray_tuple(s1, s2[i], rtol, atol)
        compare_ndarray_tuple(w1[i], w2[i], rtol, atol)


# ---- gradients --------------------------------------------------------------------------------
def numeric_gradient(fn, arrays, heads, eps=1e-6, which=None):
    """Central differences of sum(fn(*arrays) * heads) w.r.t. the float64 inputs in `which`."""
    grads = {}
    for k in (range(len(arrays)) if which is None else which):
        x = arrays[k]
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):  # index x itself: reshape(-1) copies a non-contiguous array
            old = x[i]
            x[i] = old + eps
            up = _scalar_objective(fn, arrays, heads)
            x[i] = old - eps
            down = _scalar_objective(fn, arrays, heads)
            x[i] = old
            g[i] = (up - down) / (2 * eps)
        grads[k] = g
    return grads


def _by_name(values, names, what):
    """A dict or a list (in `names` order) of arrays as a list in `names` order."""
    if isinstance(values, dict):
        missing = [n for n in names if n not in values]
        if missing:
            raise MXNetError(f'check_numeric_gradient: {what} {missing} have no value')
        return [values[n] for n in names]
    values = list(values or [])
    if len(values) != len(names):
        raise MXNetError(f'check_numeric_gradient: {len(values)} {what} given, the symbol has {names}')
    return values


def _symbol_function(sym, location, aux_states, grad_nodes, train):
    """(function of the symbol's arguments, their values, indices of those to differentiate)."""
    from .symbol.executor import evaluate
    args, aux_names = sym.list_arguments(), sym.list_auxiliary_states()
    values = _by_name(location, args, 'arguments')
    aux = dict(zip(aux_names, [_np(a) for a in _by_name(aux_states or {}, aux_names, 'auxiliary states')]))
    if grad_nodes is not None:
        unknown = [n for n in grad_nodes if n not in args]
        if unknown:
            raise MXNetError(f'check_numeric_gradient: grad_nodes {unknown} are not arguments {args}')
        grad_nodes = [args.index(n) for n in grad_nodes]

    def fn(*arrays):
        env = dict(zip(args, arrays))
        env.update({k: array(v, dtype=arrays[0].dtype) for k, v in aux.items()})  # fresh: BN updates them
        with autograd.train_mode() if train else autograd.predict_mode():
            outs = evaluate(sym, env)
        return outs[0] if len(outs) == 1 else tuple(outs)
    return fn, values, grad_nodes


def _outputs(fn, arrays):
    out = fn(*[array(a, dtype=a.dtype) for a in arrays])
    return [out] if isinstance(out, NDArray) else list(out)


def _scalar_objective(fn, arrays, heads):
    return sum(float(np.sum(o.asnumpy().astype(np.float64) * h)) for o, h in zip(_outputs(fn, arrays), heads))


def check_numeric_gradient(fn, location, grad_inputs=None, eps=None, rtol=1e-5, atol=1e-7, seed=0,
                           numeric_eps=None, grad_nodes=None, aux_states=None, use_forward_train=True,
                           **_unused):
    """Compare autograd gradients of `fn` with central finite differences, in float64.

    fn: a callable taking NDArrays and returning an NDArray or a tuple of them, or an `mx.sym`
    Symbol (MXNet's form: location is a dict name -> array or a list in list_arguments() order,
    aux_states likewise, grad_nodes names the arguments to differentiate; forward in training
    mode unless use_forward_train=False). location: the inputs, NumPy arrays or NDArrays (floats
    cast to float64). grad_inputs (or grad_nodes): indices of the inputs to differentiate,
    default all float ones. eps (or numeric_eps): the step, 1e-6. A random head gradient weights
    the outputs so every output element matters."""
    if getattr(fn, '_is_mx_symbol', False):
        fn, location, grad_nodes = _symbol_function(fn, location, aux_states, grad_nodes, use_forward_train)
    if not callable(fn):
        raise MXNetError(f'check_numeric_gradient: expected a function of NDArrays or an mx.sym '
                         f'Symbol, got {type(fn).__name__}')
    eps = eps or numeric_eps or 1e-6
    grad_inputs = grad_inputs if grad_inputs is not None else grad_nodes
    rng = np.random.default_rng(seed)
    arrays = [_np(x) for x in location]
    arrays = [np.array(a, dtype=np.float64) if a.dtype.kind == 'f' else np.array(a) for a in arrays]
    idx = [i for i, a in enumerate(arrays) if a.dtype.kind == 'f'] if grad_inputs is None else list(grad_inputs)
    heads = [rng.standard_normal(o.shape) for o in _outputs(fn, arrays)]
    nds = [array(a, dtype=a.dtype) for a in arrays]
    for i in idx:
        nds[i].attach_grad()
    with autograd.record():
        out = fn(*nds)
    outs = [out] if isinstance(out, NDArray) else list(out)
    autograd.backward(outs, [array(h, dtype=np.float64) for h in heads])
    numeric = numeric_gradient(fn, arrays, heads, eps, idx)
    for i in idx:
        np.testing.assert_allclose(nds[i].grad.asnumpy(), numeric[i], rtol=rtol, atol=atol,
                                   err_msg=f'gradient of input {i}: autograd vs finite differences')
