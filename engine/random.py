"""Random number generation: one seeded generator per device (`mx.random.seed`)."""
import numpy as np

from .base import as_dtype
from .context import current_context
from .ndarray import NDArray, _ctx, _shape

_generators = {}


def seed(seed_state, ctx='all'):
    """Seed the generators (all devices, or one context) so draws are reproducible."""
    if ctx == 'all':
        _generators.clear()
        _generators['seed'] = int(seed_state)
    else:
        _generators[ctx] = _make(ctx, int(seed_state))


def _make(ctx, s):
    if ctx.device_type == 'cpu':
        return np.random.default_rng(s)
    return ctx.xp.random.RandomState(s)


def generator(ctx=None):
    """The generator for a context (NumPy Generator on the CPU, CuPy RandomState on a GPU)."""
    ctx = ctx or current_context()
    g = _generators.get(ctx)
    if g is None:
        base = _generators.get('seed')
        g = _generators[ctx] = _make(ctx, None if base is None else base + 7919 * ctx.device_id)
    return g


def _draw(fn, shape, ctx, dtype):
    ctx = _ctx(ctx)
    dt = as_dtype(dtype)
    return NDArray(fn(generator(ctx), _shape(shape)).astype(dt, copy=False), ctx)


def normal(loc=0.0, scale=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    return _draw(lambda g, s: g.normal(loc, scale, s), shape, ctx, dtype)


def uniform(low=0.0, high=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    return _draw(lambda g, s: g.uniform(low, high, s), shape, ctx, dtype)


def randint(low, high, shape=(1,), dtype='int32', ctx=None, **kwargs):
    def draw(g, s):
        return g.integers(low, high, s) if hasattr(g, 'integers') else g.randint(low, high, s)
    return _draw(draw, shape, ctx, dtype)


def shuffle(data):
    """A copy of `data` with its first axis randomly permuted."""
    perm = generator(data.context).permutation(data.shape[0])
    return NDArray(data._data[perm], data.context)
