"""Data loading (MXNet's `gluon.data`): datasets, samplers, the DataLoader and `vision`."""
from .dataloader import DataLoader, default_batchify_fn, default_mp_batchify_fn  # noqa: F401
from .dataset import ArrayDataset, Dataset, RecordFileDataset, SimpleDataset  # noqa: F401
from .sampler import (BatchSampler, DistributedSampler, FilterSampler, IntervalSampler,  # noqa: F401
                      RandomSampler, Sampler, SequentialSampler, SplitSampler)
from . import vision  # noqa: F401,E402
