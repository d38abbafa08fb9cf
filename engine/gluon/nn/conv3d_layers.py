"""3-d convolution and pooling layers (NCDHW, or NDHWC for the convolution and pooling layers
that take channels-last layouts), GroupNorm and ReflectionPad2D. The 3-d layers are the 1-d/2-d
layer classes with three spatial axes: `nn.Convolution`/`Pooling` run 5-d data through
engine/ops/nn3d.py."""
from ...base import MXNetError
from ..block import HybridBlock
from .conv_layers import _Conv, _GlobalPool, _Pool

__all__ = ['Conv3D', 'Conv3DTranspose', 'MaxPool3D', 'AvgPool3D', 'GlobalMaxPool3D',
           'GlobalAvgPool3D', 'GroupNorm', 'ReflectionPad2D']


class Conv3D(_Conv):
    _ndim = 3


class Conv3DTranspose(_Conv):
    _ndim, _op, _transpose = 3, 'Deconvolution', True


class MaxPool3D(_Pool):
    _ndim = 3

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding=0, ceil_mode=False, layout=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, ceil_mode, layout, **kwargs)


class AvgPool3D(_Pool):
    _ndim, _type = 3, 'avg'

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding=0, ceil_mode=False, layout=None,
                 count_include_pad=True, **kwargs):
        super().__init__(pool_size, strides, padding, ceil_mode, layout, count_include_pad, **kwargs)


class GlobalMaxPool3D(_GlobalPool):
    _ndim = 3


class GlobalAvgPool3D(_GlobalPool):
    _ndim, _type = 3, 'avg'


class GroupNorm(HybridBlock):
    """Group normalization (Wu & He 2018) as MXNet 1.9: the channels in ``num_groups`` groups,
    each normalized over its channels and positions; ``gamma``/``beta`` have one value per group
    (shape (num_groups,), MXNet 1.9's parameters)."""

    def __init__(self, num_groups=1, epsilon=1e-5, center=True, scale=True, beta_initializer='zeros',
                 gamma_initializer='ones', prefix=None, params=None):
        super().__init__(prefix, params)
        if int(num_groups) < 1:
            raise MXNetError(f'GroupNorm: num_groups must be >= 1, got {num_groups}')
        self._num_groups, self._eps = int(num_groups), epsilon
        with self.name_scope():
            self.gamma = self.params.get('gamma', grad_req='write' if scale else 'null',
                                         shape=(self._num_groups,), init=gamma_initializer)
            self.beta = self.params.get('beta', grad_req='write' if center else 'null',
                                        shape=(self._num_groups,), init=beta_initializer)

    def hybrid_forward(self, F, x, gamma, beta):
        return F.GroupNorm(x, gamma, beta, num_groups=self._num_groups, eps=self._eps)

    def _repr_args(self):
        return f'num_groups={self._num_groups}, eps={self._eps}'


class ReflectionPad2D(HybridBlock):
    """Pads the two spatial axes of NCHW data by reflection; ``padding`` is an int (all four
    sides) or MXNet's 8-tuple pad_width (the first four, for N and C, must be 0)."""

    def __init__(self, padding=0, prefix=None, params=None):
        super().__init__(prefix, params)
        if isinstance(padding, int):
            padding = (0, 0, 0, 0, padding, padding, padding, padding)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 8 or any(padding[:4]) or min(padding) < 0:
            raise MXNetError(f'ReflectionPad2D: padding must be an int or 8 values (0, 0, 0, 0, top, '
                             f'bottom, left, right), got {padding}')
        self._padding = padding

    def hybrid_forward(self, F, x):
        if x.ndim != 4:
            raise MXNetError(f'ReflectionPad2D: expects a 4-d NCHW input, got shape {x.shape}')
        return F.pad(x, mode='reflect', pad_width=self._padding)
