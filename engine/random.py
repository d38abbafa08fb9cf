"""Random number generation: one seeded generator per device (`mx.random.seed`)."""
import numpy as np

from .base import MXNetError, as_dtype
from .context import current_context
from .ndarray import NDArray, _ctx, _shape, allocate

_generators = {}


def seed(seed_state, ctx='all'):
    """Seed the generators (all devices, or one context) so draws are reproducible."""
    if ctx == 'all':
        _generators.clear()
        _generators['seed'] = int(seed_state)
    else:
        _generators[ctx] = _make(ctx, int(seed_state))


class DeviceGenerator:
    """A CuPy RandomState (on one GPU) answering to NumPy Generator's method names too.

    The engine and the kernels are written against `np.random.Generator` (`random`, `integers`,
    `standard_normal`, `normal`, `uniform`, `permutation`); CuPy's RandomState has all but
    `random` and `integers` under those names (CuPy's own Generator lacks `normal` and
    `permutation`), and other RandomState methods are reached unchanged. Array draws land on the
    generator's device whatever device is current. Scalar draws (`size=None` to `random` or
    `integers`, e.g. the seed of a dropout mask's counter-based stream) come from a host
    generator with the same seed: NumPy scalars as NumPy returns them, with no device round trip."""

    def __init__(self, ctx, seed_state):
        self.ctx = ctx
        self._host = np.random.default_rng(seed_state)
        with ctx.scope():
            self._state = ctx.xp.random.RandomState(seed_state)

    def random(self, size=None, dtype=np.float64):
        if size is None:
            return self._host.random(dtype=dtype)
        with self.ctx.scope():
            return self._state.random_sample(size, dtype)

    def integers(self, low, high=None, size=None, dtype=np.int64):
        if size is None:
            return self._host.integers(low, high, dtype=dtype)
        if high is None:   # NumPy's integers(n) draws from [0, n)
            low, high = 0, low
        with self.ctx.scope():
            return self._state.randint(low, high, size, dtype)

    def __getattr__(self, name):
        if name.startswith('_'):   # e.g. `_state` itself before __init__ set it (copy, pickle)
            raise AttributeError(name)
        method = getattr(self._state, name)
        if not callable(method):
            return method

        def on_device(*args, **kwargs):
            with self.ctx.scope():
                return method(*args, **kwargs)
        on_device.__name__ = name
        return on_device


def _make(ctx, s):
    if ctx.device_type == 'cpu':
        return np.random.default_rng(s)
    return DeviceGenerator(ctx, s)


def generator(ctx=None):
    """The generator for a context (NumPy Generator on the CPU, a DeviceGenerator on a GPU)."""
    ctx = ctx or current_context()
    g = _generators.get(ctx)
    if g is None:
        base = _generators.get('seed')
        g = _generators[ctx] = _make(ctx, None if base is None else base + 7919 * ctx.device_id)
    return g


def _draw(what, fn, shape, ctx, dtype):
    """`fn(generator, shape, dtype)` drawing directly in `dtype` (a float32 request never
    allocates float64 first: that would double its memory)."""
    ctx = _ctx(ctx)
    dt, shape = as_dtype(dtype), _shape(shape, what)
    with ctx.scope():
        a = allocate(what, lambda: fn(generator(ctx), shape, dt), shape, dt)
    return NDArray(a, ctx)


def _float_draw(g, draw, shape, dt, scale, shift):
    # Generators draw float32 or float64 only; float16 is drawn as float32 and cast
    src = dt if dt in (np.float32, np.float64) else np.dtype(np.float32)
    a = draw(g, shape, src)
    a *= src.type(scale)
    a += src.type(shift)
    return a if src == dt else a.astype(dt)


def normal(loc=0.0, scale=1.0, shape=None, dtype=None, ctx=None, **kwargs):
    if isinstance(loc, NDArray) or isinstance(scale, NDArray):   # one distribution per element
        return sample_normal(loc, scale, shape, dtype)
    shape = (1,) if shape is None else shape
    return _draw('random.normal', lambda g, s, dt: _float_draw(
        g, lambda g, s, t: g.standard_normal(s, dtype=t), s, dt, scale, loc), shape, ctx, dtype)


def uniform(low=0.0, high=1.0, shape=None, dtype=None, ctx=None, **kwargs):
    if isinstance(low, NDArray) or isinstance(high, NDArray):   # one distribution per element
        return sample_uniform(low, high, shape, dtype)
    shape = (1,) if shape is None else shape
    return _draw('random.uniform', lambda g, s, dt: _float_draw(
        g, lambda g, s, t: g.random(s, dtype=t), s, dt, high - low, low), shape, ctx, dtype)


def randint(low, high, shape=(1,), dtype='int32', ctx=None, **kwargs):
    if as_dtype(dtype).kind not in 'iu' or not low < high:
        raise MXNetError(f'random.randint: needs an integer dtype and low < high, got dtype={dtype}, '
                         f'low={low}, high={high}')
    return _draw('random.randint', lambda g, s, dt: g.integers(low, high, s, dtype=dt), shape, ctx, dtype)


def shuffle(data):
    """A copy of `data` with its first axis randomly permuted."""
    perm = generator(data.context).permutation(data.shape[0])
    with data.context.scope():
        return NDArray(data._data[perm], data.context)


# ---- the rest of MXNet's nd.random: randn and the non-uniform distributions ----------------

def randn(*shape, loc=0.0, scale=1.0, dtype=None, ctx=None, **kwargs):
    """Normal draws of shape ``shape`` given as positional sizes: ``randn(2, 3)``."""
    return normal(loc, scale, shape or (1,), dtype, ctx)


def _check_params(what, **conds):
    bad = [k for k, ok in conds.items() if not ok]
    if bad:
        raise MXNetError(f'{what}: invalid parameter(s) {", ".join(bad)}')


def _generic_draw(what, draw, shape, ctx, dtype):
    # NumPy's gamma/poisson/... draw float64 or int64; cast to the requested dtype (float32 by default)
    return _draw(what, lambda g, s, dt: draw(g, s).astype(dt, copy=False), shape, ctx, dtype)


def exponential(scale=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Exponential draws with mean ``scale`` (rate ``1/scale``)."""
    if isinstance(scale, NDArray):
        return _sample('random.exponential', lambda g, s, size: g.exponential(s, size), [scale], shape, dtype)
    _check_params('random.exponential', **{f'scale={scale} (must be > 0)': scale > 0})
    return _generic_draw('random.exponential', lambda g, s: g.exponential(scale, s), shape, ctx, dtype)


def gamma(alpha=1.0, beta=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Gamma draws with shape ``alpha`` and scale ``beta``."""
    if isinstance(alpha, NDArray) or isinstance(beta, NDArray):
        return sample_gamma(alpha, beta, shape, dtype)
    _check_params('random.gamma', **{f'alpha={alpha} (must be > 0)': alpha > 0,
                                     f'beta={beta} (must be > 0)': beta > 0})
    return _generic_draw('random.gamma', lambda g, s: g.gamma(alpha, beta, s), shape, ctx, dtype)


def poisson(lam=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Poisson draws with rate ``lam`` (integers, returned as floats by default as in MXNet)."""
    if isinstance(lam, NDArray):
        return sample_poisson(lam, shape, dtype)
    _check_params('random.poisson', **{f'lam={lam} (must be >= 0)': lam >= 0})
    return _generic_draw('random.poisson', lambda g, s: g.poisson(lam, s), shape, ctx, dtype)


def negative_binomial(k=1, p=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Failures before the ``k``-th success of trials succeeding with probability ``p``."""
    if isinstance(k, NDArray) or isinstance(p, NDArray):
        return sample_negative_binomial(k, p, shape, dtype)
    _check_params('random.negative_binomial', **{f'k={k} (must be > 0)': k > 0,
                                                 f'p={p} (must be in (0, 1])': 0 < p <= 1})
    return _generic_draw('random.negative_binomial', lambda g, s: g.negative_binomial(k, p, s),
                         shape, ctx, dtype)


def generalized_negative_binomial(mu=1.0, alpha=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Negative binomial with mean ``mu`` and dispersion ``alpha`` (variance mu + alpha*mu^2),
    drawn as Poisson(Gamma(1/alpha, alpha*mu)); alpha = 0 is Poisson(mu)."""
    if isinstance(mu, NDArray) or isinstance(alpha, NDArray):
        return sample_generalized_negative_binomial(mu, alpha, shape, dtype)
    _check_params('random.generalized_negative_binomial',
                  **{f'mu={mu} (must be >= 0)': mu >= 0, f'alpha={alpha} (must be >= 0)': alpha >= 0})

    def draw(g, s):
        rate = g.gamma(1.0 / alpha, alpha * mu, s) if alpha > 0 and mu > 0 else mu
        return g.poisson(rate, s)
    return _generic_draw('random.generalized_negative_binomial', draw, shape, ctx, dtype)


def multinomial(data, shape=None, get_prob=False, out=None, dtype='int32', **kwargs):
    """Category indices drawn from the distributions in the last axis of ``data`` (..., k):
    output ``data.shape[:-1] + shape``. ``get_prob=True`` also returns the log-probabilities of
    the draws (differentiable with respect to ``data``, for REINFORCE-style gradients)."""
    from . import ops
    if not isinstance(data, NDArray) or data.ndim < 1:
        raise MXNetError('random.multinomial: data must be an NDArray of probabilities (..., k)')
    sample = () if shape is None else ((int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape))
    p = np.asarray(data).astype(np.float64)
    if (p < 0).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-4):
        raise MXNetError(f'random.multinomial: each row of data (shape {data.shape}) must be a '
                         'probability distribution (non-negative, summing to 1)')
    batch = p.shape[:-1]
    ctx = data.context
    with ctx.scope():   # drawn on the data's device with its generator
        xp = ctx.xp
        cum = xp.cumsum(data._data.astype(np.float64), axis=-1)
        cum = cum.reshape(batch + (1,) * len(sample) + p.shape[-1:])
        u = generator(ctx).random(batch + sample)
        idx = xp.minimum((cum < u[..., None]).sum(-1), p.shape[-1] - 1)
        res = NDArray(idx.astype(as_dtype(dtype)), ctx)
    if out is not None:
        out[:] = res
        res = out
    if not get_prob:
        return res
    d = data
    if sample:
        d = ops.broadcast_to(ops.reshape(d, batch + (1,) * len(sample) + p.shape[-1:]),
                             batch + sample + p.shape[-1:])
    return res, ops.log(ops.pick(d, res.astype(data.dtype), axis=-1))



# ---- per-element parameters (MXNet's sample_* ops; nd.random.* with NDArray parameters) -----

def _sample(what, draw, params, shape, dtype):
    """Draws of shape ``P + shape`` where the parameters are NDArrays of one shape P (numbers
    broadcast): element [i..., j...] comes from the distribution of parameters [i...]."""
    arrays = [p for p in params if isinstance(p, NDArray)]
    ref = arrays[0]
    for p in arrays[1:]:
        if p.shape != ref.shape or p.context != ref.context:
            raise MXNetError(f'{what}: parameter arrays must share one shape and context, got '
                             f'{ref.shape} on {ref.context} and {p.shape} on {p.context}')
    extra = () if shape is None else _shape(shape, what)
    dt = as_dtype(dtype) if dtype is not None else (
        ref._data.dtype if ref._data.dtype.kind == 'f' else np.dtype(np.float32))
    ctx = ref.context
    with ctx.scope():
        xp = ctx.xp
        vals = [p._data.astype(np.float64).reshape(ref.shape + (1,) * len(extra))
                if isinstance(p, NDArray) else float(p) for p in params]
        a = draw(generator(ctx), *vals, tuple(ref.shape) + extra)
        return NDArray(xp.asarray(a).astype(dt), ctx)


def _positive(what, **named):
    for name, v in named.items():
        vals = v.asnumpy() if isinstance(v, NDArray) else np.asarray(v)
        if not (vals > 0).all():
            raise MXNetError(f'{what}: {name} must be > 0 everywhere')


def sample_normal(mu, sigma, shape=None, dtype=None, **kwargs):
    return _sample('sample_normal', lambda g, m, s, size: g.normal(m, s, size), [mu, sigma], shape, dtype)


def sample_uniform(low, high, shape=None, dtype=None, **kwargs):
    return _sample('sample_uniform', lambda g, lo, hi, size: g.uniform(lo, hi, size), [low, high], shape, dtype)


def sample_gamma(alpha, beta, shape=None, dtype=None, **kwargs):
    _positive('sample_gamma', alpha=alpha, beta=beta)
    return _sample('sample_gamma', lambda g, a, b, size: g.gamma(a, b, size), [alpha, beta], shape, dtype)


def sample_exponential(lam, shape=None, dtype=None, **kwargs):
    """Exponential draws with rate ``lam`` (mean 1/lam; MXNet's sample_exponential)."""
    _positive('sample_exponential', lam=lam)
    return _sample('sample_exponential', lambda g, r, size: g.exponential(1.0 / r, size), [lam], shape, dtype)


def sample_poisson(lam, shape=None, dtype=None, **kwargs):
    return _sample('sample_poisson', lambda g, r, size: g.poisson(r, size), [lam], shape, dtype)


def sample_negative_binomial(k, p, shape=None, dtype=None, **kwargs):
    _positive('sample_negative_binomial', k=k, p=p)
    return _sample('sample_negative_binomial', lambda g, k_, p_, size: g.negative_binomial(k_, p_, size),
                   [k, p], shape, dtype)


def sample_generalized_negative_binomial(mu, alpha, shape=None, dtype=None, **kwargs):
    def draw(g, m, a, size):
        xp = np if isinstance(g, np.random.Generator) else g.ctx.xp
        safe = xp.where(a > 0, a, 1.0)
        rate = xp.where(a > 0, g.gamma(1.0 / safe, safe * m, size), m * xp.ones(size))
        return g.poisson(rate, size)
    return _sample('sample_generalized_negative_binomial', draw, [mu, alpha], shape, dtype)
