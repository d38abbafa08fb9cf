"""VGG ("Very Deep Convolutional Networks for Large-Scale Image Recognition"), with and without
batch normalization. vgg16: 138,357,544 parameters, vgg16_bn: 138,365,992 (1000 classes)."""
from .... import initializer as init
from ... import nn
from ...block import HybridBlock
from ._common import DEFAULT_ROOT, finish

__all__ = ['VGG', 'get_vgg', 'vgg11', 'vgg13', 'vgg16', 'vgg19',
           'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn']

# layers per stage, channels per stage
vgg_spec = {11: ([1, 1, 2, 2, 2], [64, 128, 256, 512, 512]),
            13: ([2, 2, 2, 2, 2], [64, 128, 256, 512, 512]),
            16: ([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]),
            19: ([2, 2, 4, 4, 4], [64, 128, 256, 512, 512])}


class VGG(HybridBlock):
    """3x3 convolutions (+ BatchNorm) + ReLU in five stages, each ending in a 2x2 max-pool, then
    two Dense(4096) + Dropout and the output Dense. Reference sizes assume 3x224x224 inputs (the
    first Dense infers its input size; any input of at least 32x32 runs)."""

    def __init__(self, layers, filters, classes=1000, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if len(layers) != len(filters):
            raise ValueError(f'VGG: {len(layers)} stage lengths but {len(filters)} stage widths')
        with self.name_scope():
            self.features = self._make_features(layers, filters, batch_norm)
            self.features.add(nn.Dense(4096, activation='relu', weight_initializer='normal',
                                       bias_initializer='zeros'))
            self.features.add(nn.Dropout(rate=0.5))
            self.features.add(nn.Dense(4096, activation='relu', weight_initializer='normal',
                                       bias_initializer='zeros'))
            self.features.add(nn.Dropout(rate=0.5))
            self.output = nn.Dense(classes, weight_initializer='normal', bias_initializer='zeros')

    @staticmethod
    def _make_features(layers, filters, batch_norm):
        featurizer = nn.HybridSequential(prefix='')
        conv_init = init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2)
        for num, channels in zip(layers, filters):
            for _ in range(num):
                featurizer.add(nn.Conv2D(channels, kernel_size=3, padding=1,
                                         weight_initializer=conv_init, bias_initializer='zeros'))
                if batch_norm:
                    featurizer.add(nn.BatchNorm())
                featurizer.add(nn.Activation('relu'))
            featurizer.add(nn.MaxPool2D(strides=2))
        return featurizer

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_vgg(num_layers, pretrained=False, ctx=None, root=DEFAULT_ROOT, **kwargs):
    """VGG with 11, 13, 16 or 19 layers (`batch_norm=True` adds BatchNorm after each conv);
    `pretrained=True` loads `<root>/vgg<num_layers>[_bn].params`."""
    if num_layers not in vgg_spec:
        raise ValueError(f'VGG: invalid number of layers {num_layers}; options are {sorted(vgg_spec)}')
    layers, filters = vgg_spec[num_layers]
    net = VGG(layers, filters, **kwargs)
    name = f'vgg{num_layers}' + ('_bn' if kwargs.get('batch_norm') else '')
    return finish(net, name, pretrained, ctx, root)


def vgg11(**kwargs):
    return get_vgg(11, **kwargs)


def vgg13(**kwargs):
    return get_vgg(13, **kwargs)


def vgg16(**kwargs):
    return get_vgg(16, **kwargs)


def vgg19(**kwargs):
    return get_vgg(19, **kwargs)


def vgg11_bn(**kwargs):
    return get_vgg(11, batch_norm=True, **kwargs)


def vgg13_bn(**kwargs):
    return get_vgg(13, batch_norm=True, **kwargs)


def vgg16_bn(**kwargs):
    return get_vgg(16, batch_norm=True, **kwargs)


def vgg19_bn(**kwargs):
    return get_vgg(19, batch_norm=True, **kwargs)
