"""SqueezeNet 1.0 and 1.1 ("SqueezeNet: AlexNet-level accuracy with 50x fewer parameters"):
1,248,424 and 1,235,496 parameters for 1000 classes.

The output ends with global average pooling where MXNet wrote AvgPool2D(13): identical for the
reference 224x224 inputs (13x13 final maps), and it also runs on smaller or larger images."""
from ... import nn
from ...block import HybridBlock
from ._common import DEFAULT_ROOT, HybridConcurrent, finish

__all__ = ['SqueezeNet', 'get_squeezenet', 'squeezenet1_0', 'squeezenet1_1']


def _make_fire_conv(channels, kernel_size, padding=0):
    out = nn.HybridSequential(prefix='')
    out.add(nn.Conv2D(channels, kernel_size, padding=padding), nn.Activation('relu'))
    return out


def _make_fire(squeeze_channels, expand1x1_channels, expand3x3_channels):
    """Fire module: 1x1 squeeze + ReLU, then 1x1 and 3x3 expansions (+ ReLU) concatenated."""
    out = nn.HybridSequential(prefix='')
    out.add(_make_fire_conv(squeeze_channels, 1))
    paths = HybridConcurrent(axis=1, prefix='')
    paths.add(_make_fire_conv(expand1x1_channels, 1))
    paths.add(_make_fire_conv(expand3x3_channels, 3, 1))
    out.add(paths)
    return out


class SqueezeNet(HybridBlock):
    """`version` '1.0' or '1.1' (1.1: 3x3 stem with 64 channels and earlier pooling, ~2.4x
    less computation)."""

    def __init__(self, version, classes=1000, **kwargs):
        super().__init__(**kwargs)
        if version not in ('1.0', '1.1'):
            raise ValueError(f"SqueezeNet: unsupported version {version!r}; options are '1.0' and '1.1'")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            f = self.features
            if version == '1.0':
                f.add(nn.Conv2D(96, kernel_size=7, strides=2), nn.Activation('relu'))
                f.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
                f.add(_make_fire(16, 64, 64), _make_fire(16, 64, 64), _make_fire(32, 128, 128))
                f.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
                f.add(_make_fire(32, 128, 128), _make_fire(48, 192, 192), _make_fire(48, 192, 192),
                      _make_fire(64, 256, 256))
                f.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
                f.add(_make_fire(64, 256, 256))
            else:
                f.add(nn.Conv2D(64, kernel_size=3, strides=2), nn.Activation('relu'))
                f.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
                f.add(_make_fire(16, 64, 64), _make_fire(16, 64, 64))
                f.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
                f.add(_make_fire(32, 128, 128), _make_fire(32, 128, 128))
                f.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
                f.add(_make_fire(48, 192, 192), _make_fire(48, 192, 192), _make_fire(64, 256, 256),
                      _make_fire(64, 256, 256))
            f.add(nn.Dropout(0.5))

            self.output = nn.HybridSequential(prefix='')
            self.output.add(nn.Conv2D(classes, kernel_size=1), nn.Activation('relu'),
                            nn.GlobalAvgPool2D(), nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_squeezenet(version, pretrained=False, ctx=None, root=DEFAULT_ROOT, **kwargs):
    """SqueezeNet '1.0' or '1.1'; `pretrained=True` loads `<root>/squeezenet<version>.params`."""
    return finish(SqueezeNet(version, **kwargs), f'squeezenet{version}', pretrained, ctx, root)


def squeezenet1_0(**kwargs):
    return get_squeezenet('1.0', **kwargs)


def squeezenet1_1(**kwargs):
    return get_squeezenet('1.1', **kwargs)
