"""Samplers: iterables of dataset indices (MXNet's `gluon.data.sampler`).

Randomness (RandomSampler here, random transforms in `vision.transforms`) comes from one NumPy
Generator, `data_rng()`. It follows `mx.random.seed(s)`: after a seed call the next draw starts a
fresh generator derived from `s`, so shuffling and augmentation are reproducible; without a seed it
draws fresh OS entropy. DataLoader worker processes get their own generator derived from the main
one (see dataloader.py), so no two workers repeat the same augmentation.
"""
import numpy as np

from ...base import MXNetError

__all__ = ['Sampler', 'SequentialSampler', 'RandomSampler', 'BatchSampler', 'FilterSampler',
           'IntervalSampler', 'SplitSampler', 'DistributedSampler', 'data_rng']

# Key under which the data generator lives in engine.random's generator table. `mx.random.seed`
# clears that table, which is how a re-seed (even with the same value) is noticed here.
_RNG_KEY = '_gluon_data'
# Decorrelates the data stream from the CPU op stream, which default_rng(seed) already uses.
_SALT = 0x6D78_6461


def _random_table():
    try:
        from ... import random as _random
    except ImportError:  # pragma: no cover - engine.random is part of the engine
        return None
    return _random._generators


_fallback = {}


def _stream(key, salt):
    table = _random_table()
    if table is None:
        table = _fallback
    g = table.get(key)
    if g is None:
        seed = table.get('seed')
        g = np.random.default_rng(None if seed is None else [int(seed) & (2**63 - 1), salt])
        table[key] = g
    return g


def data_rng():
    """The NumPy Generator used for shuffling and random augmentation."""
    return _stream(_RNG_KEY, _SALT)


def _worker_seed():
    """A base seed for one pass of DataLoader workers, from a stream of its own so that the
    shuffling order after `mx.random.seed` does not depend on num_workers."""
    return int(_stream(_RNG_KEY + '_workers', _SALT + 1).integers(2**63))


def _set_data_rng(generator):
    """Install `generator` as the data generator of this process (used in worker processes)."""
    table = _random_table()
    if table is None:
        table = _fallback
    table[_RNG_KEY] = generator


def _check_length(length, who):
    try:
        n = int(length)
    except (TypeError, ValueError):
        raise MXNetError(f'{who}: length must be a non-negative integer, got {length!r}') from None
    if n < 0 or n != length:
        raise MXNetError(f'{who}: length must be a non-negative integer, got {length!r}')
    return n


class Sampler:
    """Base class: an iterable over dataset indices with a known length."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """Indices `start, start+1, ..., start+length-1` in order."""

    def __init__(self, length, start=0):
        self._length = _check_length(length, 'SequentialSampler')
        self._start = int(start)

    def __iter__(self):
        return iter(range(self._start, self._start + self._length))

    def __len__(self):
        return self._length

    def __repr__(self):
        return f'SequentialSampler(length={self._length}, start={self._start})'


class RandomSampler(Sampler):
    """Every index in `[0, length)` exactly once per pass, in a new random order each pass."""

    def __init__(self, length):
        self._length = _check_length(length, 'RandomSampler')

    def __iter__(self):
        return iter(data_rng().permutation(self._length).tolist())

    def __len__(self):
        return self._length

    def __repr__(self):
        return f'RandomSampler(length={self._length})'


class FilterSampler(Sampler):
    """Indices of the samples of `dataset` for which `fn(sample)` is true."""

    def __init__(self, fn, dataset):
        self._fn = fn
        self._dataset = dataset
        self._indices = [i for i in range(len(dataset)) if fn(dataset[i])]

    def __iter__(self):
        return iter(self._indices)

    def __len__(self):
        return len(self._indices)


class IntervalSampler(Sampler):
    """`0, k, 2k, ..., 1, k+1, ...`: every `interval`-th index; with rollover, then the ones
    starting at 1, 2, ... so every index is visited once."""

    def __init__(self, length, interval, rollover=True):
        self._length = _check_length(length, 'IntervalSampler')
        if int(interval) < 1 or (self._length and interval > self._length):
            raise MXNetError(f'IntervalSampler: interval must be in [1, length={self._length}], '
                             f'got {interval}')
        self._interval = int(interval)
        self._rollover = bool(rollover)

    def __iter__(self):
        for start in range(self._interval if self._rollover else 1):
            yield from range(start, self._length, self._interval)

    def __len__(self):
        if self._rollover:
            return self._length
        return (self._length + self._interval - 1) // self._interval


def _check_part(num_parts, part_index, who):
    if not isinstance(num_parts, (int, np.integer)) or num_parts < 1:
        raise MXNetError(f'{who}: num_parts must be a positive integer, got {num_parts!r}')
    if not isinstance(part_index, (int, np.integer)) or not 0 <= part_index < num_parts:
        raise MXNetError(f'{who}: part_index must be in 0..{num_parts - 1}, got {part_index!r}')
    return int(num_parts), int(part_index)


class SplitSampler(Sampler):
    """Part `part_index` of `num_parts` equal contiguous parts of `[0, length)` (the remainder
    `length % num_parts` is left out so that every rank runs the same number of batches), for
    one rank of data-parallel training: `SplitSampler(len(ds), hvd.size(), hvd.rank())`. With
    `shuffle`, the part's indices come in a new order each pass (data_rng, per process)."""

    def __init__(self, length, num_parts=1, part_index=0, shuffle=False):
        self._length = _check_length(length, 'SplitSampler')
        self._parts, self._index = _check_part(num_parts, part_index, 'SplitSampler')
        self._size = self._length // self._parts
        self._shuffle = bool(shuffle)

    def __iter__(self):
        start = self._index * self._size
        if self._shuffle:
            return iter((start + data_rng().permutation(self._size)).tolist())
        return iter(range(start, start + self._size))

    def __len__(self):
        return self._size

    def __repr__(self):
        return f'SplitSampler(length={self._length}, num_parts={self._parts}, part_index={self._index})'


class DistributedSampler(Sampler):
    """Rank `part_index`'s share of one permutation of `[0, length)` that every rank draws alike
    from `seed` and the epoch (`set_epoch(e)` before each pass): indices `perm[part_index::num_parts]`,
    so the ranks together visit each sample once per pass. The last `length % num_parts` samples
    of the permutation are dropped so every rank has the same count."""

    def __init__(self, length, num_parts=1, part_index=0, shuffle=True, seed=0):
        self._length = _check_length(length, 'DistributedSampler')
        self._parts, self._index = _check_part(num_parts, part_index, 'DistributedSampler')
        self._shuffle = bool(shuffle)
        self._seed = int(seed)
        self._epoch = 0

    def set_epoch(self, epoch):
        self._epoch = int(epoch)

    def __iter__(self):
        n = len(self) * self._parts
        if self._shuffle:
            order = np.random.default_rng([self._seed, self._epoch]).permutation(self._length)
        else:
            order = np.arange(self._length)
        return iter(order[:n][self._index::self._parts].tolist())

    def __len__(self):
        return self._length // self._parts

    def __repr__(self):
        return (f'DistributedSampler(length={self._length}, num_parts={self._parts}, '
                f'part_index={self._index}, seed={self._seed}, epoch={self._epoch})')


_LAST_BATCH = ('keep', 'discard', 'rollover')


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of `batch_size`.

    last_batch: what to do with a final batch smaller than `batch_size`:
      'keep' yields it, 'discard' drops it, 'rollover' carries its indices over to the front of
      the next pass.
    """

    def __init__(self, sampler, batch_size, last_batch='keep'):
        try:
            bs = int(batch_size)
        except (TypeError, ValueError):
            bs = 0
        if bs < 1 or bs != batch_size:
            raise MXNetError(f'BatchSampler: batch_size must be a positive integer, got {batch_size!r}')
        if last_batch not in _LAST_BATCH:
            raise MXNetError(f"BatchSampler: last_batch must be one of 'keep', 'discard' or "
                             f"'rollover', got {last_batch!r}")
        self._sampler = sampler
        self._batch_size = bs
        self._last_batch = last_batch
        self._prev = []

    def __iter__(self):
        batch, self._prev = self._prev, []
        for i in self._sampler:
            batch.append(i)
            if len(batch) == self._batch_size:
                yield batch
                batch = []
        if batch:
            if self._last_batch == 'keep':
                yield batch
            elif self._last_batch == 'rollover':
                self._prev = batch

    def __len__(self):
        n, bs = len(self._sampler), self._batch_size
        if self._last_batch == 'keep':
            return (n + bs - 1) // bs
        if self._last_batch == 'discard':
            return n // bs
        return (n + len(self._prev)) // bs

    def __repr__(self):
        return (f'BatchSampler({self._sampler!r}, batch_size={self._batch_size}, '
                f'last_batch={self._last_batch!r})')
