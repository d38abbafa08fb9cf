"""AlexNet ("One weird trick for parallelizing convolutional neural networks", the single-GPU
variant used by MXNet and torchvision): 61,100,840 parameters for 1000 classes."""
from ... import nn
from ...block import HybridBlock
from ._common import DEFAULT_ROOT, finish

__all__ = ['AlexNet', 'alexnet']


class AlexNet(HybridBlock):
    """Expects 3x224x224 inputs for the reference sizes (the first Dense infers its input size,
    so any input of at least 63x63 runs)."""

    def __init__(self, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            # Created in the net's scope: MXNet entered self.features.name_scope() here, a no-op
            # for a prefix='' block there, but this engine opens a fresh name counter, so the
            # output Dense would also be named dense0 and collect_params() would collide.
            self.features.add(nn.Conv2D(64, kernel_size=11, strides=4, padding=2, activation='relu'))
            self.features.add(nn.MaxPool2D(pool_size=3, strides=2))
            self.features.add(nn.Conv2D(192, kernel_size=5, padding=2, activation='relu'))
            self.features.add(nn.MaxPool2D(pool_size=3, strides=2))
            self.features.add(nn.Conv2D(384, kernel_size=3, padding=1, activation='relu'))
            self.features.add(nn.Conv2D(256, kernel_size=3, padding=1, activation='relu'))
            self.features.add(nn.Conv2D(256, kernel_size=3, padding=1, activation='relu'))
            self.features.add(nn.MaxPool2D(pool_size=3, strides=2))
            self.features.add(nn.Flatten())
            self.features.add(nn.Dense(4096, activation='relu'))
            self.features.add(nn.Dropout(0.5))
            self.features.add(nn.Dense(4096, activation='relu'))
            self.features.add(nn.Dropout(0.5))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def alexnet(pretrained=False, ctx=None, root=DEFAULT_ROOT, **kwargs):
    """AlexNet; `pretrained=True` loads `<root>/alexnet.params`."""
    return finish(AlexNet(**kwargs), 'alexnet', pretrained, ctx, root)
