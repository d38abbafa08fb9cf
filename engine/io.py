"""`mx.io`: MXNet 1.x's data iterators (`DataIter`, `DataBatch`, `NDArrayIter`, ...), for code
written before `gluon.data`: `for batch in it: x, y = batch.data[0], batch.label[0]`."""
from collections import namedtuple

import numpy as np

from .base import MXNetError
from .ndarray import NDArray, array

_LAST_BATCH = ('pad', 'discard', 'roll_over')


class DataDesc(namedtuple('DataDesc', ['name', 'shape'])):
    """Name, shape, dtype and layout of one input of a batch."""

    def __new__(cls, name, shape, dtype=np.float32, layout='NCHW'):
        desc = super().__new__(cls, name, tuple(shape))
        desc.dtype, desc.layout = dtype, layout
        return desc

    def __repr__(self):
        return f'DataDesc[{self.name},{self.shape},{self.dtype},{self.layout}]'

    @staticmethod
    def get_batch_axis(layout):
        """The position of 'N' in a layout string (0 when no layout is given)."""
        return 0 if layout is None else layout.find('N')

    @staticmethod
    def get_list(shapes, types):
        """DataDescs from (name, shape) pairs and, optionally, (name, dtype) pairs."""
        if types is None:
            return [DataDesc(n, s) for n, s in shapes]
        dtypes = dict(types)
        return [DataDesc(n, s, dtypes[n]) for n, s in shapes]


class DataBatch:
    """One batch: lists of data and label arrays, and how many trailing samples are padding."""

    def __init__(self, data, label=None, pad=None, index=None, bucket_key=None,
                 provide_data=None, provide_label=None):
        if data is not None and not isinstance(data, (list, tuple)):
            raise MXNetError(f'DataBatch: data must be a list of arrays, got {type(data).__name__}')
        if label is not None and not isinstance(label, (list, tuple)):
            raise MXNetError(f'DataBatch: label must be a list of arrays, got {type(label).__name__}')
        self.data, self.label, self.pad, self.index = data, label, pad, index
        self.bucket_key, self.provide_data, self.provide_label = bucket_key, provide_data, provide_label

    def __str__(self):
        shapes = lambda arrays: [tuple(a.shape) for a in arrays or []]  # noqa: E731
        return f'{type(self).__name__}: data shapes: {shapes(self.data)} label shapes: {shapes(self.label)}'


class DataIter:
    """Base iterator: subclasses implement `reset` and `iter_next` + `getdata`/`getlabel`/
    `getpad`/`getindex`, or `next` directly."""

    def __init__(self, batch_size=0):
        self.batch_size = batch_size

    def __iter__(self):
        return self

    def reset(self):
        pass

    def next(self):
        if self.iter_next():
            return DataBatch(self.getdata(), self.getlabel(), pad=self.getpad(), index=self.getindex())
        raise StopIteration

    def __next__(self):
        return self.next()

    def iter_next(self):
        raise NotImplementedError(f'{type(self).__name__} must implement iter_next() or next()')

    def getdata(self):
        raise NotImplementedError(f'{type(self).__name__} must implement getdata()')

    def getlabel(self):
        return None

    def getindex(self):
        return None

    def getpad(self):
        return 0


def _named_arrays(data, default_name, what):
    """An array, list of arrays or dict name -> array as a list of (name, NumPy array)."""
    if data is None:
        return []
    if isinstance(data, (NDArray, np.ndarray)) or np.isscalar(data):
        data = [data]
    if isinstance(data, dict):
        items = sorted(data.items())         # MXNet orders named inputs by name
    elif isinstance(data, (list, tuple)):
        names = [default_name] if len(data) == 1 else [f'_{i}_{default_name}' for i in range(len(data))]
        items = list(zip(names, data))
    else:
        raise MXNetError(f'NDArrayIter: {what} must be an array, a list or a dict of arrays, '
                         f'got {type(data).__name__}')
    out = []
    for name, a in items:
        a = a.asnumpy() if isinstance(a, NDArray) else np.asarray(a)
        if a.ndim == 0:
            raise MXNetError(f'NDArrayIter: {what} {name!r} is a scalar; expected an array with a batch axis')
        out.append((name, a.astype(np.float32, copy=False)))
    return out


class NDArrayIter(DataIter):
    """Batches over in-memory arrays. `last_batch_handle`: 'pad' (the last batch is filled from the
    start and `batch.pad` says by how many), 'discard' (drop the incomplete batch) or 'roll_over'
    (its samples open the next epoch's first batch). Arrays are float32, as in MXNet."""

    def __init__(self, data, label=None, batch_size=1, shuffle=False, last_batch_handle='pad',
                 data_name='data', label_name='softmax_label', layout='NCHW'):
        super().__init__(batch_size)
        if last_batch_handle not in _LAST_BATCH:
            raise MXNetError(f'NDArrayIter: last_batch_handle must be one of {_LAST_BATCH}, '
                             f'got {last_batch_handle!r}')
        if int(batch_size) < 1:
            raise MXNetError(f'NDArrayIter: batch_size must be >= 1, got {batch_size}')
        self.data = _named_arrays(data, data_name, 'data')
        if not self.data:
            raise MXNetError('NDArrayIter: data is empty')
        self.label = _named_arrays(label, label_name, 'label')
        self.num_data = len(self.data[0][1])
        for name, a in self.data + self.label:
            if len(a) != self.num_data:
                raise MXNetError(f'NDArrayIter: {name!r} has {len(a)} samples, '
                                 f'{self.data[0][0]!r} has {self.num_data}')
        if last_batch_handle == 'discard' and self.num_data < batch_size:
            raise MXNetError(f'NDArrayIter: batch_size {batch_size} is larger than the data '
                             f'({self.num_data} samples) and last_batch_handle is discard')
        self.shuffle, self.last_batch_handle, self.layout = shuffle, last_batch_handle, layout
        self._carry = None         # roll_over: sample indices left from the previous epoch
        self.hard_reset()

    def _descs(self, arrays):
        return [DataDesc(n, (self.batch_size,) + a.shape[1:], a.dtype, self.layout) for n, a in arrays]

    @property
    def provide_data(self):
        return self._descs(self.data)

    @property
    def provide_label(self):
        return self._descs(self.label)

    def hard_reset(self):
        """Start over, forgetting any rolled-over samples."""
        self._carry = None
        self._start_epoch()

    def reset(self):
        if self.last_batch_handle == 'roll_over':
            left = self._order[len(self._batches) * self.batch_size:]
            self._carry = left if len(left) else None
        self._start_epoch()

    def _start_epoch(self):
        order = np.random.permutation(self.num_data) if self.shuffle else np.arange(self.num_data)
        if self._carry is not None:
            order = np.concatenate([self._carry, order])
            self._carry = None
        n, b = len(order), self.batch_size
        if self.last_batch_handle == 'pad' and n % b:
            order = np.concatenate([order, np.resize(order, b - n % b)])
            self._pad_last = b - n % b
        else:
            self._pad_last = 0
        self._order = order
        self._batches = [order[i:i + b] for i in range(0, len(order) - b + 1, b)]
        self._next = 0

    def iter_next(self):
        if self._next >= len(self._batches):
            return False
        self._current = self._batches[self._next]
        self._next += 1
        return True

    def getdata(self):
        return [array(a[self._current]) for _, a in self.data]

    def getlabel(self):
        return [array(a[self._current]) for _, a in self.label]

    def getpad(self):
        return self._pad_last if self._next == len(self._batches) else 0

    def getindex(self):
        return None


class ResizeIter(DataIter):
    """Makes an epoch of `data_iter` exactly `size` batches long, restarting it when it ends."""

    def __init__(self, data_iter, size, reset_internal=True):
        super().__init__(data_iter.batch_size)
        self.data_iter, self.size, self.reset_internal = data_iter, size, reset_internal
        self.provide_data = getattr(data_iter, 'provide_data', None)
        self.provide_label = getattr(data_iter, 'provide_label', None)
        self._count, self._batch = 0, None

    def reset(self):
        self._count = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self):
        if self._count >= self.size:
            return False
        try:
            self._batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            self._batch = self.data_iter.next()
        self._count += 1
        return True

    def next(self):
        if self.iter_next():
            return self._batch
        raise StopIteration

    def getdata(self):
        return self._batch.data

    def getlabel(self):
        return self._batch.label

    def getpad(self):
        return self._batch.pad

    def getindex(self):
        return self._batch.index
