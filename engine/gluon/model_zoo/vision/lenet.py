"""LeNet (the seed notebook's MNIST network, with SELU) and a multilayer perceptron."""
from ... import nn
from ...block import HybridBlock
from ._common import DEFAULT_ROOT, finish

__all__ = ['LeNet', 'MLP', 'lenet', 'mlp']


class LeNet(HybridBlock):
    """Conv(32, 3x3, pad 1) SELU MaxPool(2) Conv(32, 5x5) SELU MaxPool(2) Flatten Dense(256) SELU
    Dropout(0.5) | Dense(classes). For 1x28x28 inputs (MNIST): 233,578 parameters."""

    def __init__(self, classes=10, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            # (not in self.features.name_scope(): see AlexNet)
            self.features.add(nn.Conv2D(32, kernel_size=3, padding=1), nn.SELU(),
                              nn.MaxPool2D(pool_size=2, strides=2),
                              nn.Conv2D(32, kernel_size=5), nn.SELU(),
                              nn.MaxPool2D(pool_size=2, strides=2),
                              nn.Flatten(), nn.Dense(256), nn.SELU(), nn.Dropout(dropout))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class MLP(HybridBlock):
    """Flatten, then Dense(h, activation) for each hidden size h | Dense(classes).
    The default (784-300-10, relu) has 238,510 parameters."""

    def __init__(self, hidden_units=(300,), classes=10, activation='relu', in_units=784, **kwargs):
        super().__init__(**kwargs)
        hidden_units = (hidden_units,) if isinstance(hidden_units, int) else tuple(hidden_units)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            # (not in self.features.name_scope(): see AlexNet)
            self.features.add(nn.Flatten())
            for units in hidden_units:
                self.features.add(nn.Dense(units, activation=activation, in_units=in_units))
                in_units = units
            self.output = nn.Dense(classes, in_units=in_units)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def lenet(pretrained=False, ctx=None, root=DEFAULT_ROOT, **kwargs):
    """The seed LeNet for 1x28x28 digits (see LeNet)."""
    return finish(LeNet(**kwargs), 'lenet', pretrained, ctx, root)


def mlp(pretrained=False, ctx=None, root=DEFAULT_ROOT, **kwargs):
    """A multilayer perceptron, 784-300-10 with relu by default; `hidden_units=(...)` sets the
    hidden sizes and `in_units` the input size (0 = infer on the first call)."""
    return finish(MLP(**kwargs), 'mlp', pretrained, ctx, root)
