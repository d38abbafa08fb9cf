"""The Trainer side of several processes: `mx.kv.create('horovod')` and `DistributedTrainer`."""
import numpy as np

from ..base import MXNetError
from ..gluon.trainer import Trainer
from ..kvstore import KVStoreBase
from . import _mpi
from .collectives import allreduce_buffers, broadcast_buffers, _check_same


class HorovodKVStore(KVStoreBase):
    """MXNet 1.9's 'horovod' store: no stored values; `pushpull` sums over the ranks (and over
    the devices of this process), `broadcast` copies the root rank's value. The Trainer's gradient
    path fuses all gradients into few allreduce calls."""
    type = 'horovod'

    def __init__(self):
        _mpi.init()
        self._updater = None

    @property
    def rank(self):
        return _mpi.comm().Get_rank()

    @property
    def num_workers(self):
        return _mpi.comm().Get_size()

    @property
    def local_rank(self):
        return _mpi.local_comm().Get_rank()

    def init(self, key, value):
        raise MXNetError("the 'horovod' kvstore keeps no values: use broadcast() and pushpull()")

    push = pull = init

    def pushpull(self, key, value, out=None, priority=0):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        self._reduce_grads([(key, values)])
        if out is not None:
            for o in (out if isinstance(out, (list, tuple)) else [out]):
                values[0].copyto(o)

    def broadcast(self, key, value, out, priority=0, root_rank=0):
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        self._broadcast_params([(key, value, outs)], root_rank)

    def _broadcast_params(self, items, root_rank=0):
        """items: (key, source array, [arrays to fill]); the shapes are checked across ranks."""
        _check_same([(str(k), v) for k, v, _ in items], root_rank, 'broadcast')
        broadcast_buffers([v._data for _, v, _ in items], root_rank)
        for _, v, outs in items:
            for o in outs:
                if o is not v:
                    v.copyto(o)

    def _reduce_grads(self, items, prescale=1.0):
        """items: (key, [grad per device]): each grad ends as the sum over devices and ranks."""
        heads = []
        for _, grads in items:
            head = grads[0]
            for g in grads[1:]:          # devices of this process first (device to device)
                head._data += g.as_in_context(head.context)._data
            heads.append(head._data)
        allreduce_buffers(heads, prescale, what='gradient allreduce')
        for _, grads in items:
            for g in grads[1:]:
                grads[0].copyto(g)

    def _barrier(self):
        with _mpi.collective('barrier'):
            _mpi.comm().Barrier()


class DistributedTrainer(Trainer):
    """Horovod's `hvd.DistributedTrainer`: a Trainer whose gradients are averaged over all ranks
    (`step(batch_size)` takes this rank's batch size). Each rank may hold several contexts.
    `gradient_predivide_factor` f divides the gradients by f before the sum and by size/f after."""

    def __init__(self, params, optimizer, optimizer_params=None, compression=None,
                 gradient_predivide_factor=1.0, prefix=None):
        if compression is not None:
            raise MXNetError('DistributedTrainer: gradient compression is not supported; leave compression=None')
        f = float(gradient_predivide_factor)
        if not f > 0:
            raise MXNetError(f'DistributedTrainer: gradient_predivide_factor must be positive, got {f!r}')
        kv = HorovodKVStore()
        super().__init__(params, optimizer, optimizer_params, kvstore=kv, update_on_kvstore=False)
        self._predivide = f
        self._scale *= f / kv.num_workers

    def _allreduce_grads(self):
        self._kvstore._reduce_grads([(i, p.list_grad()) for i, p in self._trainable()],
                                    prescale=1.0 / self._predivide)
