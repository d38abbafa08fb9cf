"""`mx.kv`: key-value stores that sum values pushed from several devices (MXNet's KVStore).

`create('local')` reduces on the host, `create('device')` on the device of the first value (on
CPU contexts both are the same in-place NumPy sums; on GPUs 'device' reduces GPU-to-GPU).
`create('horovod')` is `engine.distributed`'s store: the same calls, summed across processes.
With an optimizer set (`set_optimizer`), `push` updates the stored weight and `pull` hands it out.
"""
import numpy as np

from .base import MXNetError, fmt_shape
from .context import cpu
from .ndarray import NDArray, _move

__all__ = ['KVStore', 'KVStoreBase', 'TestStore', 'create']

_REGISTERED = {}   # lower-cased name -> a KVStoreBase subclass (KVStoreBase.register)


def create(name='local'):
    """A KVStore by name: 'local', 'device' (one process, several devices) or 'horovod'
    (several processes over MPI, see engine.distributed)."""
    if isinstance(name, KVStoreBase):
        return name
    if not isinstance(name, str):
        raise MXNetError(f'kv.create: expected a name, got {type(name).__name__}')
    if name in ('local', 'device', 'local_allreduce_cpu', 'local_allreduce_device'):
        return KVStore('device' if name.endswith('device') else 'local')
    if name == 'horovod':
        from .distributed import HorovodKVStore
        return HorovodKVStore()
    if name.lower() in _REGISTERED:
        return _REGISTERED[name.lower()]()
    if name.startswith('dist') or name == 'nccl':
        raise MXNetError(f"kv.create({name!r}): parameter-server and NCCL stores are not provided; "
                         "train several processes with mx.kv.create('horovod') or engine.distributed "
                         '(MPI, with NCCL on GPUs) and launch them with mpiexec')
    raise MXNetError(f"kv.create: unknown KVStore type {name!r}; expected 'local', 'device', 'horovod' "
                     f"or a registered store {sorted(_REGISTERED)}")


class KVStoreBase:
    """What every store answers: its type, this worker's rank and the number of workers."""
    OPTIMIZER = 'optimizer'
    type = 'base'

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1

    def is_capable(self, capability):
        return False

    def set_gradient_compression(self, compression_params):
        raise MXNetError(f'{type(self).__name__}: gradient compression is not supported (it would '
                         'change the gradients silently); train without compression_params')

    @staticmethod
    def register(klass):
        """Register a KVStoreBase subclass under its lower-cased class name, so that
        ``kv.create(name)`` builds it (usable as a decorator; MXNet's KVStoreBase.register)."""
        if not (isinstance(klass, type) and issubclass(klass, KVStoreBase)):
            raise MXNetError(f'KVStoreBase.register: expected a KVStoreBase subclass, got {klass!r}')
        name = klass.__name__.lower()
        if name in ('local', 'device', 'horovod'):
            raise MXNetError(f'KVStoreBase.register: {name!r} names a built-in store')
        _REGISTERED[name] = klass
        return klass

    # ---- the Trainer's calls, through the public API (a registered store implements broadcast
    # and pushpull; the built-in stores override these with their own paths) ----------------------
    def _reduce_grads(self, items):
        for k, grads in items:
            self.pushpull(k, grads, out=grads)

    def _broadcast_params(self, items):
        for k, v, outs in items:
            self.broadcast(k, v, out=outs)

    def _update_params(self, items):
        raise MXNetError(f'{type(self).__name__}: this store cannot run the optimizer; use '
                         'update_on_kvstore=False')


@KVStoreBase.register
class TestStore(KVStoreBase):
    """MXNet's minimal store for testing custom stores: one process, values summed on the first
    value's device; it does not run optimizers."""
    type = 'teststore'

    def broadcast(self, key, value, out, priority=0):
        srcs = dict(_pairs(key, value, 'broadcast'))
        for k, o in _pairs(key, out, 'broadcast'):
            src = _one(srcs[k], k, 'broadcast')
            for dst in _list(o):
                _check_shape(dst, src, k, 'broadcast')
                dst._data[...] = _move(src._data, dst.context)

    def pushpull(self, key, value, out=None, priority=0):
        outs = dict(_pairs(key, value if out is None else out, 'pushpull'))
        for k, v in _pairs(key, value, 'pushpull'):
            vals = _list(v)
            first = _one(vals, k, 'pushpull')
            buf = NDArray(first._data.copy(), first.context)
            total = _reduce(vals, buf, k)
            for dst in _list(outs[k]):
                _check_shape(dst, total, k, 'pushpull')
                dst._data[...] = _move(total._data, dst.context)


class KVStore(KVStoreBase):
    """One process, several devices: `init(key, value)`, then `push` a value per device (summed),
    `pull` into a value per device, `pushpull` both at once, `broadcast` = init + pull."""

    def __init__(self, kind='local'):
        self.type = kind
        self._store = {}
        self._merge = {}
        self._updater = None

    def is_capable(self, capability):
        return capability == KVStoreBase.OPTIMIZER

    # ---- API ----------------------------------------------------------------------------------
    def init(self, key, value):
        for k, v in _pairs(key, value, 'init'):
            if k in self._store:
                raise MXNetError(f'KVStore.init: key {k!r} is already initialized')
            first = _one(v, k, 'init')
            ctx = cpu() if self.type == 'local' else first.context
            self._store[k] = NDArray(_move(first._data, ctx).copy(), ctx)

    def push(self, key, value, priority=0):
        for k, v in _pairs(key, value, 'push'):
            stored = self._get(k, 'push')
            merged = _reduce(_list(v), self._merge_buffer(k, stored), k)
            if self._updater is not None:
                self._updater(k, merged, stored)
            elif merged is not stored:
                stored._data[...] = merged._data

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        if out is None:
            raise MXNetError('KVStore.pull: give out= (the arrays to fill)')
        for k, o in _pairs(key, out, 'pull'):
            stored = self._get(k, 'pull')
            for dst in _list(o):
                _check_shape(dst, stored, k, 'pull')
                dst._data[...] = _move(stored._data, dst.context)

    def pushpull(self, key, value, out=None, priority=0):
        """Push `value` and pull the result into `out` (into `value` itself when out is None)."""
        self.push(key, value, priority)
        self.pull(key, value if out is None else out, priority)

    def broadcast(self, key, value, out, priority=0):
        """Initialize `key` with `value` and copy it into every array of `out`."""
        self.init(key, value)
        self.pull(key, out, priority)

    # ---- the Trainer's gradient path: all trainable parameters at once --------------------------
    def _reduce_grads(self, items):
        """items: (key, [grad per device]); each grad then holds the sum."""
        for k, grads in items:
            if any(g.stype != 'default' for g in grads):
                raise MXNetError(f'KVStore: key {k!r} has row_sparse gradients; with several contexts they '
                                 'are summed only where the store runs the optimizer (Trainer with '
                                 'update_on_kvstore=True, the default), not by allreduce_grads')
            self.pushpull(k, grads)

    def _broadcast_params(self, items):
        """items: (key, source array, [arrays to fill])."""
        for k, v, outs in items:
            self.broadcast(k, v, out=outs)

    def _update_params(self, items):
        """items: (key, [grad per device], [weight per device]): sum, update once, hand out.
        The stored weight is first refreshed from the first copy, so that a weight changed
        outside the store (set_data, load_parameters) is what the optimizer updates."""
        for k, grads, weights in items:
            stored = self._get(k, 'push')
            stored._data[...] = _move(weights[0]._data, stored.context)
            self.push(k, grads)
            self.pull(k, out=weights)

    def set_optimizer(self, optimizer):
        from .optimizer import get_updater
        self._updater = get_updater(optimizer)

    def _set_updater(self, updater):
        self._updater = updater

    def save_optimizer_states(self, fname, dump_optimizer=False):
        from .serialization import atomic_write
        if self._updater is None:
            raise MXNetError('KVStore.save_optimizer_states: no optimizer was set (set_optimizer)')
        data = self._updater.get_states(dump_optimizer=dump_optimizer)
        atomic_write(fname, lambda f: f.write(data))

    def load_optimizer_states(self, fname):
        if self._updater is None:
            raise MXNetError('KVStore.load_optimizer_states: no optimizer was set (set_optimizer)')
        with open(fname, 'rb') as f:
            self._updater.set_states(f.read())

    def _merge_buffer(self, key, stored):
        """Where pushed values are summed (the stored weight itself when no optimizer runs)."""
        if self._updater is None:
            return stored
        buf = self._merge.get(key)
        if buf is None:
            buf = self._merge[key] = NDArray(stored.context.xp.empty_like(stored._data), stored.context)
        return buf

    def _get(self, key, what):
        if key not in self._store:
            raise MXNetError(f'KVStore.{what}: key {key!r} was not initialized (call init first)')
        return self._store[key]


def _reduce(values, buf, key):
    """The sum of `values` (one array per device), computed where `buf` lives. A single value
    on that device is returned as is; otherwise the sum is written into `buf` with in-place adds
    (GPU values reach another GPU by a peer copy, not through the host)."""
    for v in values:
        _check_shape(v, buf, key, 'push')
    if len(values) == 1 and values[0].context == buf.context:
        return values[0]
    if any(v.stype != 'default' for v in values):   # row_sparse gradients (host): a row-wise sum
        total = values[0]
        for v in values[1:]:
            total = total + v
        if total.stype == 'default':
            raise MXNetError(f'KVStore.push: key {key!r}: row_sparse and dense values cannot be summed '
                             'into a row_sparse gradient')
        return total
    ctx, out = buf.context, buf._data
    with ctx.scope():
        out[...] = _move(values[0]._data, ctx)
        for v in values[1:]:
            ctx.xp.add(out, _move(v._data, ctx), out=out)
    return buf


def _check_shape(v, stored, key, what):
    if not isinstance(v, NDArray):
        raise MXNetError(f'KVStore.{what}: key {key!r}: expected NDArrays, got {type(v).__name__}')
    if v.shape != stored.shape:
        raise MXNetError(f'KVStore.{what}: key {key!r} holds shape {fmt_shape(stored.shape)}, got an '
                         f'array of shape {fmt_shape(v.shape)}')


def _list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _one(v, key, what):
    vs = _list(v)
    if not vs or not isinstance(vs[0], NDArray):
        raise MXNetError(f'KVStore.{what}: key {key!r}: expected an NDArray value')
    return vs[0]


def _pairs(key, value, what):
    """(key, value-for-that-key) pairs: one key with an array (or a list, one per device), or a
    list of keys with a list of such values."""
    if isinstance(key, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(key):
            raise MXNetError(f'KVStore.{what}: {len(key)} keys need a list of {len(key)} values')
        keys, values = list(key), list(value)
    else:
        keys, values = [key], [value]
    for k in keys:
        if not isinstance(k, (int, str)) or isinstance(k, bool):
            raise MXNetError(f'KVStore.{what}: keys are ints or strs, got {k!r}')
    return [(k.decode() if isinstance(k, bytes) else k, v) for k, v in zip(keys, values)]
