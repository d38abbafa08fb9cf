"""`mx.gluon.contrib.nn`: Concurrent / HybridConcurrent (children on one input, outputs
concatenated), Identity, and SyncBatchNorm on one device."""
from ...block import Block
from ...model_zoo.vision._common import HybridConcurrent
from ...nn.basic_layers import BatchNorm, Identity
from ....base import MXNetError

__all__ = ['Concurrent', 'HybridConcurrent', 'Identity', 'SyncBatchNorm']


class Concurrent(Block):
    """Runs every child on the same input and concatenates their outputs along `axis`."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix, params)
        self.axis = axis

    add = HybridConcurrent.add
    __len__ = HybridConcurrent.__len__
    __getitem__ = HybridConcurrent.__getitem__

    def forward(self, x):
        from .... import nd
        return nd.concat(*[block(x) for block in self._children.values()], dim=self.axis)


class SyncBatchNorm(BatchNorm):
    """MXNet's cross-device batch normalization (statistics over the whole batch split across
    `num_devices` devices). With one device (the default here: the engine has no cross-device
    reduction inside a layer) it is BatchNorm over axis 1; more devices are refused, since
    per-device statistics would silently differ from the synchronized ones."""

    def __init__(self, in_channels=0, num_devices=None, momentum=0.9, epsilon=1e-5, center=True,
                 scale=True, use_global_stats=False, beta_initializer='zeros', gamma_initializer='ones',
                 running_mean_initializer='zeros', running_variance_initializer='ones', **kwargs):
        if num_devices not in (None, 1):
            raise MXNetError(f'SyncBatchNorm: num_devices={num_devices} is not supported (statistics '
                             'are not synchronized across devices here); use num_devices=1, or '
                             'BatchNorm per device')
        super().__init__(axis=1, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
                         use_global_stats=use_global_stats, beta_initializer=beta_initializer,
                         gamma_initializer=gamma_initializer,
                         running_mean_initializer=running_mean_initializer,
                         running_variance_initializer=running_variance_initializer,
                         in_channels=in_channels, **kwargs)
