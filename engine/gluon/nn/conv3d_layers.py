"""3-d convolution and pooling layers (NCDHW, or NDHWC for the layers that take channels-last
layouts): the 1-d/2-d layer classes with three spatial axes; `nd.Convolution`/`Deconvolution`/
`Pooling` run 5-d data through engine/ops/nn3d.py."""
from .conv_layers import _Conv, _GlobalPool, _Pool

__all__ = ['Conv3D', 'Conv3DTranspose', 'MaxPool3D', 'AvgPool3D', 'GlobalMaxPool3D',
           'GlobalAvgPool3D']


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
