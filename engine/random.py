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


def normal(loc=0.0, scale=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    return _draw('random.normal', lambda g, s, dt: _float_draw(
        g, lambda g, s, t: g.standard_normal(s, dtype=t), s, dt, scale, loc), shape, ctx, dtype)


def uniform(low=0.0, high=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
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
    _check_params('random.exponential', **{f'scale={scale} (must be > 0)': scale > 0})
    return _generic_draw('random.exponential', lambda g, s: g.exponential(scale, s), shape, ctx, dtype)


def gamma(alpha=1.0, beta=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Gamma draws with shape ``alpha`` and scale ``beta``."""
    _check_params('random.gamma', **{f'alpha={alpha} (must be > 0)': alpha > 0,
                                     f'beta={beta} (must be > 0)': beta > 0})
    return _generic_draw('random.gamma', lambda g, s: g.gamma(alpha, beta, s), shape, ctx, dtype)


def poisson(lam=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Poisson draws with rate ``lam`` (integers, returned as floats by default as in MXNet)."""
    _check_params('random.poisson', **{f'lam={lam} (must be >= 0)': lam >= 0})
    return _generic_draw('random.poisson', lambda g, s: g.poisson(lam, s), shape, ctx, dtype)


def negative_binomial(k=1, p=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Failures before the ``k``-th success of trials succeeding with probability ``p``."""
    _check_params('random.negative_binomial', **{f'k={k} (must be > 0)': k > 0,
                                                 f'p={p} (must be in (0, 1])': 0 < p <= 1})
    return _generic_draw('random.negative_binomial', lambda g, s: g.negative_binomial(k, p, s),
                         shape, ctx, dtype)


def generalized_negative_binomial(mu=1.0, alpha=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    """Negative binomial with mean ``mu`` and dispersion ``alpha`` (variance mu + alpha*mu^2),
    drawn as Poisson(Gamma(1/alpha, alpha*mu)); alpha = 0 is Poisson(mu)."""
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

