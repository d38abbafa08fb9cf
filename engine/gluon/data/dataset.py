"""Datasets: indexable collections of samples (MXNet's `gluon.data.dataset`)."""
import numpy as np

from ...base import MXNetError
from ...ndarray import NDArray

__all__ = ['Dataset', 'SimpleDataset', 'ArrayDataset']


class Dataset:
    """Abstract dataset: implement `__getitem__(idx)` and `__len__()`.

    A sample is usually a tuple of fields, e.g. `(image, label)`.
    """

    def __getitem__(self, idx):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def filter(self, fn):
        """A dataset of the samples for which `fn(sample)` is true."""
        from .sampler import FilterSampler
        return _SampledDataset(self, FilterSampler(fn, self))

    def shard(self, num_shards, index):
        """The `index`-th of `num_shards` contiguous, almost equal parts of this dataset."""
        if not 0 <= index < num_shards:
            raise MXNetError(f'Dataset.shard: index must be in [0, num_shards={num_shards}), got {index}')
        from .sampler import SequentialSampler
        length = len(self)
        part, rest = divmod(length, num_shards)
        start = part * index + min(index, rest)
        end = start + part + (index < rest)
        return _SampledDataset(self, SequentialSampler(end - start, start))

    def take(self, count):
        """The first `count` samples (all of them when `count` is None or too large)."""
        from .sampler import SequentialSampler
        if count is None or count > len(self):
            count = len(self)
        return _SampledDataset(self, SequentialSampler(count))

    def sample(self, sampler):
        """The samples at the indices `sampler` yields (evaluated once, now)."""
        return _SampledDataset(self, sampler)

    def transform(self, fn, lazy=True):
        """A dataset whose samples are `fn(*sample)` (or `fn(sample)` for non-tuple samples).

        lazy=True applies `fn` on every access; lazy=False applies it once to every sample now.
        """
        trans = _LazyTransformDataset(self, fn)
        if lazy:
            return trans
        return SimpleDataset([trans[i] for i in range(len(trans))])

    def transform_first(self, fn, lazy=True):
        """Like `transform`, but `fn` is applied to the first field of each sample only (the
        data, leaving the label alone)."""
        return self.transform(_TransformFirstClosure(fn), lazy)


class SimpleDataset(Dataset):
    """A dataset wrapping anything with `len` and indexing (a list, a NumPy array, ...)."""

    def __init__(self, data):
        self._data = data

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        return self._data[idx]


class _LazyTransformDataset(Dataset):
    def __init__(self, data, fn):
        self._data = data
        self._fn = fn

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        item = self._data[idx]
        if isinstance(item, tuple):
            return self._fn(*item)
        return self._fn(item)


class _TransformFirstClosure:
    """Picklable `fn` on the first field only (a closure would not reach spawned workers)."""

    def __init__(self, fn):
        self._fn = fn

    def __call__(self, x, *args):
        if args:
            return (self._fn(x),) + args
        return self._fn(x)


class _SampledDataset(Dataset):
    def __init__(self, dataset, sampler):
        self._dataset = dataset
        self._sampler = sampler
        self._indices = list(iter(sampler))

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, idx):
        return self._dataset[self._indices[idx]]


def _sample(data, idx):
    # A row of an NDArray is a view on its buffer, as in MXNet (no op dispatch per sample).
    if isinstance(data, NDArray):
        return NDArray(data._data[idx], data.context)
    return data[idx]


class ArrayDataset(Dataset):
    """A dataset that zips arrays of equal length: sample `i` is `(a[i], b[i], ...)`, or just
    `a[i]` when there is a single array.

    Each argument may be an NDArray, a NumPy array, a list or any other dataset. As in MXNet, a
    1-D NDArray (typically labels) is turned into a NumPy array, so its samples are NumPy scalars.
    """

    def __init__(self, *args):
        if not args:
            raise MXNetError('ArrayDataset needs at least one array')
        lengths = []
        for i, a in enumerate(args):
            try:
                lengths.append(len(a))
            except TypeError:
                raise MXNetError(f'ArrayDataset: argument {i} ({type(a).__name__}) has no length; '
                                 'pass arrays, lists or datasets') from None
        if len(set(lengths)) > 1:
            desc = ', '.join(f'#{i}: {n}' for i, n in enumerate(lengths))
            raise MXNetError(f'ArrayDataset: all arrays must have the same length (first axis); '
                             f'got lengths {desc}')
        self._length = lengths[0]
        self._data = [a.asnumpy() if isinstance(a, NDArray) and a.ndim == 1 else a for a in args]

    def __len__(self):
        return self._length

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)) and not -self._length <= idx < self._length:
            raise IndexError(f'ArrayDataset: index {idx} out of range for {self._length} samples')
        if len(self._data) == 1:
            return _sample(self._data[0], idx)
        return tuple(_sample(d, idx) for d in self._data)


class RecordFileDataset(Dataset):
    """The records of a RecordIO file (`mx.recordio`) with its index file (`<name>.idx` beside
    `<name>.rec`): sample i is the raw bytes of the i-th indexed record."""

    def __init__(self, filename):
        import os
        from ... import recordio
        self.idx_file = os.path.splitext(filename)[0] + '.idx'
        self.filename = filename
        self._record = recordio.MXIndexedRecordIO(self.idx_file, self.filename, 'r')

    def __getitem__(self, idx):
        return self._record.read_idx(self._record.keys[idx])

    def __len__(self):
        return len(self._record.keys)
