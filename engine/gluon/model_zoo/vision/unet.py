"""U-Net ("U-Net: Convolutional Networks for Biomedical Image Segmentation"), as in the seed
brain-MRI notebook: `depth` levels; level i has base_filters * 2**i channels; each level is two
3x3 convs (padding 1) + ReLU with dropout between them; the encoder max-pools by 2 between levels;
each decoder level upsamples with a 2x2 stride-2 transposed conv, concatenates the encoder's
feature map of the same level (skip connection) and applies a conv block; a final 1x1 conv +
sigmoid gives per-pixel probabilities. Height and width must be divisible by 2**(depth - 1)."""
from ....base import MXNetError
from ... import nn
from ...block import HybridBlock
from ._common import DEFAULT_ROOT, finish

__all__ = ['UNet', 'UNetFeatures', 'UNetUpBlock', 'unet']


def _conv_block(in_channels, channels, dropout):
    out = nn.HybridSequential(prefix='')
    out.add(nn.Conv2D(channels, kernel_size=3, padding=1, in_channels=in_channels),
            nn.Activation('relu'), nn.Dropout(dropout),
            nn.Conv2D(channels, kernel_size=3, padding=1, in_channels=channels),
            nn.Activation('relu'))
    return out


class UNetUpBlock(HybridBlock):
    """Transposed conv (x2 resolution, in_channels -> channels), concat with the skip connection
    (channels more), then a conv block back to `channels`."""

    def __init__(self, in_channels, channels, dropout, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.up = nn.Conv2DTranspose(channels, kernel_size=2, strides=2, in_channels=in_channels)
            self.conv_block = _conv_block(2 * channels, channels, dropout)

    def hybrid_forward(self, F, x, bridge):
        return self.conv_block(F.concat(self.up(x), bridge, dim=1))


class UNetFeatures(HybridBlock):
    """The encoder-decoder: returns the last decoder level's feature map (base_filters channels,
    the input's resolution)."""

    def __init__(self, depth=5, base_filters=64, in_channels=3, dropout=0.6, **kwargs):
        super().__init__(**kwargs)
        if depth < 1:
            raise ValueError(f'UNet: depth must be >= 1, got {depth}')
        self._depth = depth
        widths = [base_filters * 2 ** i for i in range(depth)]
        with self.name_scope():
            self.down_path = nn.HybridSequential(prefix='down_')
            with self.down_path.name_scope():
                prev = in_channels
                for w in widths:
                    self.down_path.add(_conv_block(prev, w, dropout))
                    prev = w
            self.pool = nn.MaxPool2D(pool_size=2, strides=2)
            self.up_path = nn.HybridSequential(prefix='up_')
            with self.up_path.name_scope():
                for w in reversed(widths[:-1]):
                    self.up_path.add(UNetUpBlock(prev, w, dropout))
                    prev = w

    def hybrid_forward(self, F, x):
        factor = 2 ** (self._depth - 1)
        if len(x.shape) != 4 or x.shape[2] % factor or x.shape[3] % factor:
            raise MXNetError(f'UNet(depth={self._depth}): expects (N, C, H, W) inputs with H and W '
                             f'divisible by {factor}, got shape {tuple(x.shape)}')
        bridges = []
        for i in range(len(self.down_path)):
            x = self.down_path[i](x)
            if i != len(self.down_path) - 1:
                bridges.append(x)
                x = self.pool(x)
        for i, bridge in enumerate(reversed(bridges)):
            x = self.up_path[i](x, bridge)
        return x


class UNet(HybridBlock):
    """features (UNetFeatures) | output: 1x1 conv to `classes` channels + sigmoid."""

    def __init__(self, depth=5, base_filters=64, in_channels=3, classes=1, dropout=0.6, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = UNetFeatures(depth, base_filters, in_channels, dropout)
            self.output = nn.HybridSequential(prefix='')
            self.output.add(nn.Conv2D(classes, kernel_size=1, in_channels=base_filters),
                            nn.Activation('sigmoid'))

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def unet(pretrained=False, ctx=None, root=DEFAULT_ROOT, **kwargs):
    """The seed U-Net: `unet(depth=5, base_filters=64, in_channels=3, classes=1, dropout=0.6)`;
    `pretrained=True` loads `<root>/unet.params`."""
    return finish(UNet(**kwargs), 'unet', pretrained, ctx, root)
