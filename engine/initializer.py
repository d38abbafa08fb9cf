"""Parameter initializers (``mx.init``), with MXNet 1.x names and semantics.

An initializer is called as ``init(name, arr)`` and fills the NDArray ``arr`` in place. With a
plain name it picks the rule from the name's suffix, as MXNet does: ``*weight`` gets the
initializer's own rule (``_init_weight``); ``*bias``, ``*beta``, ``*running_mean``/``*moving_mean``
become 0; ``*gamma``, ``*running_var``/``*moving_var`` become 1. Called with an
:class:`InitDesc` whose ``attrs['__init__']`` names an initializer (how Gluon parameters carry
their own ``init``), that initializer's ``_init_weight`` fills the array whatever the name.

Random draws come from ``engine.random.generator(ctx)`` of the array's context, so
``mx.random.seed`` makes them reproducible.
"""
import json
import re

import numpy as np

from . import random as _random
from .base import MXNetError, fmt_shape
from .context import cpu
from .ndarray import NDArray
from .registry import Registry

__all__ = ['InitDesc', 'Initializer', 'Zero', 'One', 'Constant', 'Uniform', 'Normal', 'Xavier',
           'MSRAPrelu', 'Orthogonal', 'Bilinear', 'LSTMBias', 'Load', 'Mixed', 'register',
           'alias', 'create']

_REGISTRY = Registry('initializer', lambda: Initializer)
register, alias = _REGISTRY.register, _REGISTRY.alias   # mx.init.register / mx.init.alias('zeros')


def create(init, **kwargs):
    """An initializer from an instance (returned as is), a class, a registered name
    ('xavier', 'zeros', 'normal', ...) or the JSON string of ``Initializer.dumps()``."""
    if isinstance(init, (Initializer, Mixed, Load)):
        return init
    if isinstance(init, type) and issubclass(init, Initializer):
        return _construct(init, kwargs)
    if isinstance(init, str):
        name = init
        if init.lstrip().startswith('['):
            try:
                name, json_kwargs = json.loads(init)
            except (ValueError, TypeError) as e:
                raise MXNetError(f'initializer.create: cannot parse {init!r}: {e}') from None
            kwargs = {**json_kwargs, **kwargs}
        return _construct(_REGISTRY.get(name), kwargs)
    raise MXNetError(f'initializer.create: expected an Initializer, its class or its name, '
                     f'got {type(init).__name__}')


def _construct(klass, kwargs):
    try:
        return klass(**kwargs)
    except TypeError as e:
        raise MXNetError(f'initializer {klass.__name__}: bad arguments {sorted(kwargs)}: {e}') from None


class InitDesc(str):
    """A parameter name with attributes: ``attrs['__init__']`` (an initializer or its name) is the
    parameter's own initializer; ``global_init`` the initializer the whole model was given."""

    def __new__(cls, name, attrs=None, global_init=None):
        ret = super().__new__(cls, name)
        ret.attrs = attrs or {}
        ret.global_init = global_init
        return ret


# ---- writing into arrays --------------------------------------------------------------------

def _shape(arr):
    if isinstance(arr, (NDArray, np.ndarray)):
        return tuple(arr.shape)
    raise MXNetError(f'initializer: expected an NDArray to fill, got {type(arr).__name__}')


def _context(arr):
    return arr.context if isinstance(arr, NDArray) else cpu()


def _assign(arr, values):
    """arr[...] = values, converted to the array's dtype and device."""
    if isinstance(arr, NDArray):
        buf = arr._data
        if not isinstance(buf, np.ndarray) and isinstance(values, np.ndarray):
            values = arr.context.xp.asarray(values)
    else:
        buf = arr
    if hasattr(values, 'astype'):
        values = values.astype(buf.dtype, copy=False)
    buf[...] = values


def _uniform(arr, low, high):
    return _random.generator(_context(arr)).uniform(low, high, size=_shape(arr))


def _normal(arr, loc, scale):
    return _random.generator(_context(arr)).normal(loc, scale, size=_shape(arr))


# ---- the base class ----------------------------------------------------------------------------

class Initializer:
    """Base class. Subclasses implement ``_init_weight(name, arr)``; the other parameter kinds
    (bias, gamma, beta, running statistics) have fixed rules chosen by name."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._verbose = False
        self._print_func = None

    def set_verbosity(self, verbose=False, print_func=None):
        """Print each initialized array's name and norm (``print_func(arr) -> str`` customizes it)."""
        self._verbose = verbose
        self._print_func = print_func or (lambda a: str(float(np.sqrt(np.mean(np.square(
            a.asnumpy() if isinstance(a, NDArray) else a))))))
        return self

    def _verbose_print(self, desc, kind, arr):
        if self._verbose and self._print_func:
            print(f'Initialized {desc} as {kind}: {self._print_func(arr)}')

    def dumps(self):
        """``'["name", {kwargs}]'``: a string ``create`` turns back into this initializer."""
        return json.dumps([type(self).__name__.lower(), self._kwargs])

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in self._kwargs.items())
        return f'{type(self).__name__}({args})'

    def __eq__(self, other):
        return type(self) is type(other) and self._kwargs == other._kwargs

    __hash__ = object.__hash__

    def __call__(self, desc, arr):
        _shape(arr)
        if isinstance(desc, InitDesc):
            if desc.global_init is None:
                desc.global_init = self
            own = desc.attrs.get('__init__', '')
            if own:
                chosen = create(own)
                if isinstance(chosen, Initializer):
                    chosen._init_weight(desc, arr)
                    chosen._verbose_print(desc, own, arr)
                else:  # Mixed / Load pick per name
                    chosen(str(desc), arr)
                return
        if not isinstance(desc, str):
            raise MXNetError(f'initializer: expected the parameter name (str) first, got '
                             f'{type(desc).__name__}')
        self._init_by_name(desc, arr)

    def _init_by_name(self, name, arr):
        if name.startswith('upsampling'):
            self._init_bilinear(name, arr)
        elif name.startswith('stn_loc') and name.endswith('weight'):
            self._init_zero(name, arr)
        elif name.startswith('stn_loc') and name.endswith('bias'):
            self._init_loc_bias(name, arr)
        elif name.endswith('bias'):
            self._init_bias(name, arr)
        elif name.endswith('gamma'):
            self._init_gamma(name, arr)
        elif name.endswith('beta'):
            self._init_beta(name, arr)
        elif name.endswith('weight'):
            self._init_weight(name, arr)
        elif name.endswith(('running_mean', 'moving_mean', 'moving_inv_var', 'moving_avg')):
            self._init_zero(name, arr)
        elif name.endswith(('running_var', 'moving_var')):
            self._init_one(name, arr)
        elif name.endswith('min'):
            self._init_zero(name, arr)
        elif name.endswith('max'):
            self._init_one(name, arr)
        else:
            self._init_default(name, arr)
            return
        self._verbose_print(name, type(self).__name__, arr)

    # ---- the fixed rules --------------------------------------------------------------------
    def _init_zero(self, _, arr):
        _assign(arr, 0.0)

    def _init_one(self, _, arr):
        _assign(arr, 1.0)

    def _init_bias(self, _, arr):
        _assign(arr, 0.0)

    def _init_gamma(self, _, arr):
        _assign(arr, 1.0)

    def _init_beta(self, _, arr):
        _assign(arr, 0.0)

    def _init_bilinear(self, _, arr):
        _assign(arr, _bilinear_kernel(_shape(arr)))

    def _init_loc_bias(self, _, arr):
        shape = _shape(arr)
        if shape[0] != 6:
            raise MXNetError(f'initializer: stn_loc bias must have 6 entries, got shape {fmt_shape(shape)}')
        _assign(arr, np.array([1.0, 0, 0, 0, 1.0, 0]))

    def _init_weight(self, name, arr):
        raise NotImplementedError(f'{type(self).__name__} must implement _init_weight')

    def _init_default(self, name, _):
        raise MXNetError(
            f'initializer {type(self).__name__}: unknown initialization pattern for {name!r}. By name, '
            'only parameters ending in "weight", "bias", "gamma", "beta", "running_mean"/"moving_mean" '
            'and "running_var"/"moving_var" are known; give this parameter its own init '
            '(e.g. Parameter(..., init=mx.init.Zero())) or use mx.init.Mixed.')


def _bilinear_kernel(shape):
    """The bilinear-upsampling filter MXNet's Bilinear initializer builds (for deconvolution)."""
    if len(shape) != 4:
        raise MXNetError(f'Bilinear initializer needs a 4-D weight, got shape {fmt_shape(shape)}')
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    x = np.arange(shape[3])
    y = np.arange(shape[2])
    kern = np.outer(1 - np.abs(y / f - c), 1 - np.abs(x / f - c))
    return np.broadcast_to(kern, shape)


# ---- the initializers -----------------------------------------------------------------------

@register
@alias('zeros')
class Zero(Initializer):
    """Fill with 0."""

    def _init_weight(self, _, arr):
        _assign(arr, 0.0)


@register
@alias('ones')
class One(Initializer):
    """Fill with 1."""

    def _init_weight(self, _, arr):
        _assign(arr, 1.0)


@register
class Constant(Initializer):
    """Fill with ``value`` (a number, or an array broadcastable to the parameter's shape)."""

    def __init__(self, value):
        if isinstance(value, NDArray):
            value = value.asnumpy()
        kw = value.tolist() if isinstance(value, np.ndarray) else value
        super().__init__(value=kw)
        self.value = value

    def _init_weight(self, name, arr):
        value = np.asarray(self.value)
        shape = _shape(arr)
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise MXNetError(f'Constant initializer: value of shape {fmt_shape(value.shape)} does not '
                             f'broadcast to parameter {name} of shape {fmt_shape(shape)}') from None
        _assign(arr, value)


@register
class Uniform(Initializer):
    """Uniform on [-scale, scale]."""

    def __init__(self, scale=0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _, arr):
        _assign(arr, _uniform(arr, -self.scale, self.scale))


@register
class Normal(Initializer):
    """Normal with mean 0 and standard deviation ``sigma``."""

    def __init__(self, sigma=0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _, arr):
        _assign(arr, _normal(arr, 0.0, self.sigma))


def _fans(name, shape, who):
    """(fan_in, fan_out) of a weight: (shape[1], shape[0]) times the receptive-field size."""
    if len(shape) < 2:
        raise MXNetError(f'{who} initializer cannot be applied to {name!r} of shape {fmt_shape(shape)}: '
                         'it needs a weight with at least 2 dimensions (give biases/vectors another init)')
    hw = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
    return shape[1] * hw, shape[0] * hw


@register
class Xavier(Initializer):
    """Glorot/Xavier: variance scaled by the fan. ``scale = sqrt(magnitude / factor)`` with factor
    the fan-in ('in'), fan-out ('out') or their mean ('avg'); values uniform on [-scale, scale]
    (``rnd_type='uniform'``) or normal with standard deviation ``scale`` ('gaussian')."""

    def __init__(self, rnd_type='uniform', factor_type='avg', magnitude=3):
        if rnd_type not in ('uniform', 'gaussian'):
            raise MXNetError(f"Xavier: rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ('avg', 'in', 'out'):
            raise MXNetError(f"Xavier: factor_type must be 'avg', 'in' or 'out', got {factor_type!r}")
        if not magnitude > 0:
            raise MXNetError(f'Xavier: magnitude must be positive, got {magnitude!r}')
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name, arr):
        fan_in, fan_out = _fans(name, _shape(arr), type(self).__name__)
        factor = {'avg': (fan_in + fan_out) / 2.0, 'in': fan_in, 'out': fan_out}[self.factor_type]
        scale = np.sqrt(self.magnitude / factor)
        if self.rnd_type == 'uniform':
            _assign(arr, _uniform(arr, -scale, scale))
        else:
            _assign(arr, _normal(arr, 0.0, scale))


@register
class MSRAPrelu(Xavier):
    """He/MSRA initialization for (P)ReLU nets: Gaussian Xavier with
    ``magnitude = 2 / (1 + slope^2)`` (``slope`` is the PReLU negative slope)."""

    def __init__(self, factor_type='avg', slope=0.25):
        super().__init__('gaussian', factor_type, 2.0 / (1 + slope ** 2))
        self._kwargs = {'factor_type': factor_type, 'slope': slope}


@register
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix (Saxe et al.) from the SVD of a random ``(shape[0], prod(shape[1:]))``
    matrix, times ``scale``; its rows (or columns, whichever are fewer) are orthonormal."""

    def __init__(self, scale=1.414, rand_type='uniform'):
        if rand_type not in ('uniform', 'normal'):
            raise MXNetError(f"Orthogonal: rand_type must be 'uniform' or 'normal', got {rand_type!r}")
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, name, arr):
        shape = _shape(arr)
        if len(shape) < 2:
            raise MXNetError(f'Orthogonal initializer needs a weight with at least 2 dimensions, '
                             f'got {name!r} of shape {fmt_shape(shape)}')
        nout, nin = shape[0], int(np.prod(shape[1:]))
        g = _random.generator(cpu())
        tmp = g.uniform(-1.0, 1.0, (nout, nin)) if self.rand_type == 'uniform' else \
            g.normal(0.0, 1.0, (nout, nin))
        u, _, v = np.linalg.svd(tmp, full_matrices=False)
        res = u if u.shape == tmp.shape else v
        _assign(arr, self.scale * res.reshape(shape))


@register
class Bilinear(Initializer):
    """Bilinear-interpolation filters, for a deconvolution that upsamples."""

    def _init_weight(self, _, arr):
        _assign(arr, _bilinear_kernel(_shape(arr)))


@register
class LSTMBias(Initializer):
    """LSTM bias: 0 except the forget-gate quarter (the second of i, f, c, o), set to
    ``forget_bias``."""

    def __init__(self, forget_bias=1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name, arr):
        shape = _shape(arr)
        if len(shape) != 1 or shape[0] % 4:
            raise MXNetError(f'LSTMBias: {name!r} must be a vector of 4*hidden entries, got '
                             f'{fmt_shape(shape)}')
        values = np.zeros(shape)
        h = shape[0] // 4
        values[h:2 * h] = self.forget_bias
        _assign(arr, values)


class Load:
    """Initialize from a dict of name -> array (names may carry MXNet's 'arg:'/'aux:' prefixes);
    parameters not in it fall back to ``default_init``."""

    def __init__(self, param, default_init=None, verbose=False):
        if not isinstance(param, dict):
            raise MXNetError(f'Load: expected a dict of name -> array, got {type(param).__name__}')
        self.param = {}
        for name, value in param.items():
            if name.startswith(('arg:', 'aux:')):
                name = name[4:]
            self.param[name] = value.asnumpy() if isinstance(value, NDArray) else np.asarray(value)
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name, arr):
        name = str(name)
        if name in self.param:
            shape = _shape(arr)
            if self.param[name].shape != shape:
                raise MXNetError(f'Load: parameter {name!r} has shape {fmt_shape(shape)} but the loaded '
                                 f'array has shape {fmt_shape(self.param[name].shape)}')
            _assign(arr, self.param[name])
            if self.verbose:
                print(f'Initialized {name} by loading')
        elif self.default_init is None:
            raise MXNetError(f'Load: no value for parameter {name!r} and no default_init given')
        else:
            create(self.default_init)(name, arr)


class Mixed:
    """Pick the initializer by regular expression on the parameter name: the first of
    ``patterns`` that matches (``re.match``) selects the corresponding ``initializers`` entry."""

    def __init__(self, patterns, initializers):
        if len(patterns) != len(initializers):
            raise MXNetError(f'Mixed: {len(patterns)} patterns but {len(initializers)} initializers')
        try:
            self.map = [(re.compile(p), create(i)) for p, i in zip(patterns, initializers)]
        except re.error as e:
            raise MXNetError(f'Mixed: bad pattern: {e}') from None

    def __call__(self, name, arr):
        for prog, init in self.map:
            if prog.match(str(name)):
                init(str(name), arr)
                return
        raise MXNetError(f'Mixed: parameter name {str(name)!r} matched none of the patterns '
                         f'{[p.pattern for p, _ in self.map]}; add a ".*" pattern last as a default')
