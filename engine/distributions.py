"""Probability distributions built from engine ops (in the spirit of TensorFlow Probability's
`tfd.Normal` and `torch.distributions.Normal`).

A distribution holds its parameters as NDArrays (or Python numbers) and computes everything with
ops, so it is differentiable under `autograd.record()` and works unchanged inside the
`hybrid_forward` of a hybridized block (where the parameters are graph values):

    import engine as mx
    from engine import nd, autograd
    from engine.distributions import Normal

    loc, raw = nd.zeros(5), nd.zeros(5)
    loc.attach_grad(); raw.attach_grad()
    with autograd.record():
        dist = Normal(loc, 1e-3 + nd.softplus(raw))
        nll = -dist.log_prob(y).mean()          # maximum likelihood: minimize this
    nll.backward()

Shapes follow NumPy broadcasting: `batch_shape` is the broadcast of the parameters' shapes,
`sample(shape)` returns `shape + batch_shape`. Samples are reparameterized
(`loc + scale * eps`, eps ~ N(0, 1)), so gradients flow from a sample to `loc` and `scale`.
The standard-normal noise comes from the stateful op `random_normal_like`, so a
hybridized block draws fresh noise on every call, seeded by `mx.random.seed`.
"""
import math
import numbers

import numpy as np

from . import nd
from .base import MXNetError

__all__ = ['Distribution', 'Normal', 'kl_divergence']

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


standard_normal_like = nd.random_normal_like


# ---- helpers that accept NDArrays, graph values and Python numbers ------------------------------

def _is_number(v):
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


def _shape(v):
    return () if _is_number(v) else tuple(v.shape)


def _check_param(v, name, cls):
    if _is_number(v) or (hasattr(v, 'shape') and hasattr(v, '__add__')):
        return float(v) if _is_number(v) else v
    if isinstance(v, np.ndarray):
        return nd.array(v, dtype=v.dtype if v.dtype.kind == 'f' else 'float32')
    raise MXNetError(f'{cls}: {name} must be an NDArray or a number, got {type(v).__name__}')


def _log(v):
    return math.log(v) if _is_number(v) else nd.log(v)


def _broadcast(v, shape, like=None):
    """`v` broadcast to `shape` (a number becomes an array shaped like `like`)."""
    if _is_number(v):
        if like is None:
            return nd.full(shape, v) if shape else v
        return like * 0.0 + v
    return v if tuple(v.shape) == tuple(shape) else nd.broadcast_to(v, shape)


class Distribution:
    """Base class. Subclasses define `log_prob`, `sample`, `mean`, `variance`, `entropy`."""
    has_grad = True

    def __init__(self, F=None, validate_args=False):
        self.F = F or nd
        self._validate = validate_args

    @property
    def batch_shape(self):
        raise NotImplementedError

    def log_prob(self, value):
        raise NotImplementedError

    def prob(self, value):
        lp = self.log_prob(value)
        return math.exp(lp) if _is_number(lp) else nd.exp(lp)

    pdf = prob

    def sample(self, shape=()):
        raise NotImplementedError

    def sample_n(self, n):
        return self.sample((int(n),))

    def rsample(self, shape=()):
        """A reparameterized sample (gradients flow to the parameters); `sample` already is one."""
        return self.sample(shape)

    @property
    def mean(self):
        raise NotImplementedError

    @property
    def variance(self):
        raise NotImplementedError

    @property
    def stddev(self):
        v = self.variance
        return math.sqrt(v) if _is_number(v) else nd.sqrt(v)

    def entropy(self):
        raise NotImplementedError


class Normal(Distribution):
    """The normal (Gaussian) distribution N(loc, scale^2).

    loc, scale: NDArrays (any broadcast-compatible shapes), graph values inside a hybridized block,
    or Python numbers. scale must be positive; `validate_args=True` checks it (eagerly).
    """

    def __init__(self, loc=0.0, scale=1.0, F=None, validate_args=False):
        super().__init__(F, validate_args)
        self.loc = _check_param(loc, 'loc', 'Normal')
        self.scale = _check_param(scale, 'scale', 'Normal')
        try:
            self._batch_shape = tuple(np.broadcast_shapes(_shape(self.loc), _shape(self.scale)))
        except ValueError:
            raise MXNetError(f'Normal: loc of shape {_shape(self.loc)} and scale of shape '
                             f'{_shape(self.scale)} do not broadcast together') from None
        if validate_args:
            self._check_scale()

    def _check_scale(self):
        s = self.scale
        if _is_number(s):
            bad = not s > 0
        elif getattr(s, '_is_symbol', False):
            return  # no values while tracing
        else:
            bad = not bool((np.asarray(s) > 0).all())
        if bad:
            raise MXNetError('Normal: scale must be positive')

    def __repr__(self):
        return f'Normal(batch_shape={self._batch_shape})'

    @property
    def batch_shape(self):
        return self._batch_shape

    # ---- moments ---------------------------------------------------------------------------
    @property
    def mean(self):
        return _broadcast(self.loc, self._batch_shape,
                          None if _is_number(self.scale) else self.scale)

    @property
    def stddev(self):
        return _broadcast(self.scale, self._batch_shape,
                          None if _is_number(self.loc) else self.loc)

    @property
    def variance(self):
        s = self.stddev
        return s * s if _is_number(s) else nd.square(s)

    # ---- densities -------------------------------------------------------------------------
    def log_prob(self, value):
        """log N(value | loc, scale^2) = -((value - loc) / scale)^2 / 2 - log(scale) - log(2 pi) / 2,
        elementwise with broadcasting."""
        if self._validate:
            self._check_scale()
        value = _check_param(value, 'value', 'Normal.log_prob')
        z = (value - self.loc) / self.scale
        sq = z * z if _is_number(z) else nd.square(z)
        return -0.5 * sq - _log(self.scale) - _HALF_LOG_2PI

    def cdf(self, value):
        """P(X <= value) = (1 + erf((value - loc) / (scale sqrt 2))) / 2."""
        value = _check_param(value, 'value', 'Normal.cdf')
        z = (value - self.loc) / (self.scale * math.sqrt(2.0))
        return 0.5 * (1.0 + (math.erf(z) if _is_number(z) else nd.erf(z)))

    def entropy(self):
        """Differential entropy log(scale) + (1 + log(2 pi)) / 2, shaped like batch_shape."""
        h = _log(self.scale) + 0.5 + _HALF_LOG_2PI
        if _is_number(h):
            return h if not self._batch_shape else nd.full(self._batch_shape, h)
        return _broadcast(h, self._batch_shape)

    # ---- sampling --------------------------------------------------------------------------
    def sample(self, shape=()):
        """Draws of shape `shape + batch_shape`, reparameterized: loc + scale * eps."""
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)
        full = shape + self._batch_shape
        if _is_number(self.loc) and _is_number(self.scale):
            return nd.random.normal(self.loc, self.scale, shape=full)
        template = self.loc if not _is_number(self.loc) else self.scale
        if tuple(template.shape) != full:
            template = nd.broadcast_to(template, full)
        eps = standard_normal_like(template)
        return eps * self.scale + self.loc


def kl_divergence(p, q):
    """KL(p || q) for two Normal distributions, elementwise:
    log(sq / sp) + (sp^2 + (mp - mq)^2) / (2 sq^2) - 1/2."""
    if not (isinstance(p, Normal) and isinstance(q, Normal)):
        raise MXNetError(f'kl_divergence: implemented for Normal and Normal, got '
                         f'{type(p).__name__} and {type(q).__name__}')
    d = p.loc - q.loc
    ratio = p.scale / q.scale
    r2 = ratio * ratio
    d2 = d * d
    return -_log(ratio) + 0.5 * (r2 + d2 / (q.scale * q.scale)) - 0.5
