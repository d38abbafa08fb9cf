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


def _draw(fn, shape, ctx, dtype):
    ctx = _ctx(ctx)
    dt = as_dtype(dtype)
    with ctx.scope():
        return NDArray(fn(generator(ctx), _shape(shape)).astype(dt, copy=False), ctx)


def normal(loc=0.0, scale=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    return _draw(lambda g, s: g.normal(loc, scale, s), shape, ctx, dtype)


def uniform(low=0.0, high=1.0, shape=(1,), dtype=None, ctx=None, **kwargs):
    return _draw(lambda g, s: g.uniform(low, high, s), shape, ctx, dtype)


def randint(low, high, shape=(1,), dtype='int32', ctx=None, **kwargs):
    return _draw(lambda g, s: g.integers(low, high, s), shape, ctx, dtype)


def shuffle(data):
    """A copy of `data` with its first axis randomly permuted."""
    perm = generator(data.context).permutation(data.shape[0])
    with data.context.scope():
        return NDArray(data._data[perm], data.context)
