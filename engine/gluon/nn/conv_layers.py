"""Convolution and pooling layers: channels-first (NCW / NCHW) or channels-last (NWC / NHWC)
layouts; a channels-last layer transposes to channels-first around the channels-first kernels."""
from ...base import MXNetError
from ..block import HybridBlock
from .activations import Activation, fwd

_LAYOUTS = {1: ('NCW', 'NWC'), 2: ('NCHW', 'NHWC'), 3: ('NCDHW', 'NDHWC')}


def _tuple(v, n, name):
    t = (v,) * n if isinstance(v, int) else tuple(v)
    if len(t) != n:
        raise MXNetError(f'{name}: expected {n} values, got {v}')
    return t


def _channels_last(layout, n, name, allowed=True):
    """Whether `layout` puts the channels last; None means channels first (MXNet's default)."""
    first, last = _LAYOUTS[n]
    if layout in (None, first):
        return False
    if layout == last and allowed:
        return True
    raise MXNetError(f'{name}: layout must be {first!r}' + (f' or {last!r}' if allowed else '')
                     + f', got {layout!r}')


def _to_channels_first(F, x, n):
    """(N, *spatial, C) -> (N, C, *spatial)."""
    return F.transpose(x, axes=(0, n + 1) + tuple(range(1, n + 1)))


def _to_channels_last(F, y, n):
    """(N, C, *spatial) -> (N, *spatial, C)."""
    return F.transpose(y, axes=(0,) + tuple(range(2, n + 2)) + (1,))


class _Conv(HybridBlock):
    """Shared by Conv1D/Conv2D/Conv2DTranspose: weight (channels, in_channels/groups, *kernel)."""
    _ndim, _op, _transpose = 2, 'Convolution', False
    _alias = 'conv'

    def __init__(self, channels, kernel_size, strides=1, padding=0, dilation=1, groups=1,
                 layout=None, activation=None, use_bias=True, weight_initializer=None,
                 bias_initializer='zeros', in_channels=0, output_padding=0, prefix=None, params=None):
        super().__init__(prefix, params)
        n, name = self._ndim, type(self).__name__
        # channels-last convs keep MXNet's weight layout (O, *kernel, I) for those layouts
        self._last = _channels_last(layout, n, name, allowed=not self._transpose)
        self._channels, self._in_channels, self._groups = channels, in_channels, groups
        self._kw = dict(kernel=_tuple(kernel_size, n, name), stride=_tuple(strides, n, name),
                        pad=_tuple(padding, n, name), dilate=_tuple(dilation, n, name),
                        num_filter=channels, num_group=groups)
        if self._transpose:
            self._kw['adj'] = _tuple(output_padding, n, name)
        self._activation = activation
        with self.name_scope():
            self.weight = self.params.get('weight', shape=self._weight_shape(in_channels),
                                          init=weight_initializer, allow_deferred_init=True)
            self.bias = (self.params.get('bias', shape=(channels,), init=bias_initializer,
                                         allow_deferred_init=True) if use_bias else None)
            # as MXNet: the activation is a child block named after it ('conv0_relu_fwd')
            self.act = Activation(activation, prefix=f'{activation}_') if activation is not None else None

    def _weight_shape(self, in_channels):
        k = self._kw['kernel']
        if self._transpose:
            return (in_channels, self._channels // self._groups) + k
        cin = in_channels // self._groups if in_channels else 0
        return (self._channels,) + k + (cin,) if self._last else (self._channels, cin) + k

    def infer_shape(self, x, *args):
        if x.ndim != self._ndim + 2:
            raise MXNetError(f'{type(self).__name__}: expected a {self._ndim + 2}-d input '
                             f'({_LAYOUTS[self._ndim][self._last]}), got shape {x.shape}')
        c = x.shape[-1 if self._last else 1]
        if c % self._groups:
            raise MXNetError(f'{type(self).__name__}: {c} input channels are not divisible by '
                             f'groups={self._groups}')
        self.weight.shape = self._weight_shape(c)

    def hybrid_forward(self, F, x, weight, bias=None):
        n = self._ndim
        if self._last:
            x, weight = _to_channels_first(F, x, n), _to_channels_first(F, weight, n)
        y = getattr(F, self._op)(x, weight, bias, no_bias=bias is None, **self._kw, **fwd(F))
        y = y if self.act is None else self.act(y)
        return _to_channels_last(F, y, n) if self._last else y

    def _repr_args(self):
        w = self.weight.shape
        cin = (w[0] if self._transpose else w[-1 if self._last else 1] * self._groups) or None
        return (f'{cin} -> {self._channels}, kernel_size={self._kw["kernel"]}, '
                f'stride={self._kw["stride"]}, padding={self._kw["pad"]}')


class Conv1D(_Conv):
    _ndim = 1


class Conv2D(_Conv):
    _ndim = 2


class Conv2DTranspose(_Conv):
    _ndim, _op, _transpose = 2, 'Deconvolution', True


class _Pool(HybridBlock):
    _ndim, _type, _global = 2, 'max', False
    _alias = 'pool'

    def __init__(self, pool_size=2, strides=None, padding=0, ceil_mode=False, layout=None,
                 count_include_pad=True, prefix=None, params=None):
        super().__init__(prefix, params)
        n, name = self._ndim, type(self).__name__
        self._last = _channels_last(layout, n, name)
        pool = _tuple(pool_size, n, name)
        self._kw = dict(kernel=pool, stride=_tuple(strides if strides is not None else pool, n, name),
                        pad=_tuple(padding, n, name), pool_type=self._type, global_pool=self._global,
                        pooling_convention='full' if ceil_mode else 'valid',
                        count_include_pad=count_include_pad)

    def hybrid_forward(self, F, x):
        if not self._last:
            return F.Pooling(x, **self._kw, **fwd(F))
        n = self._ndim
        return _to_channels_last(F, F.Pooling(_to_channels_first(F, x, n), **self._kw), n)

    def _repr_args(self):
        if self._global:
            return ''
        return f'size={self._kw["kernel"]}, stride={self._kw["stride"]}, padding={self._kw["pad"]}'


class MaxPool1D(_Pool):
    _ndim = 1


class MaxPool2D(_Pool):
    _ndim = 2


class AvgPool1D(_Pool):
    _ndim, _type = 1, 'avg'


class AvgPool2D(_Pool):
    _ndim, _type = 2, 'avg'


class ReflectionPad2D(HybridBlock):
    """Pads the two spatial axes of an (N, C, H, W) input by reflection: `padding` on every
    side, or MXNet's 8-tuple pad_width (which must leave N and C unpadded)."""

    def __init__(self, padding=0, prefix=None, params=None):
        super().__init__(prefix, params)
        pad = (0, 0, 0, 0) + (int(padding),) * 4 if isinstance(padding, int) else tuple(padding)
        if len(pad) != 8 or any(pad[:4]):
            raise MXNetError(f'ReflectionPad2D: padding must be an int or an 8-tuple with zeros '
                             f'for N and C, got {padding!r}')
        self._padding = pad

    def hybrid_forward(self, F, x):
        return F.pad(x, mode='reflect', pad_width=self._padding)


class _GlobalPool(_Pool):
    _global = True

    def __init__(self, layout=None, prefix=None, params=None):
        super().__init__(1, None, 0, layout=layout, prefix=prefix, params=params)


class GlobalMaxPool1D(_GlobalPool):
    _ndim = 1


class GlobalMaxPool2D(_GlobalPool):
    _ndim = 2


class GlobalAvgPool1D(_GlobalPool):
    _ndim, _type = 1, 'avg'


class GlobalAvgPool2D(_GlobalPool):
    _ndim, _type = 2, 'avg'
