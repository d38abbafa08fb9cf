"""engine.distributed: data-parallel training in several processes (and machines) over MPI, with
Horovod's API for Gluon (`import engine.distributed as hvd`).

    hvd.init()
    net.initialize(ctx=ctx); net(x0)                    # shapes known
    hvd.broadcast_parameters(net.collect_params(), root_rank=0)
    trainer = hvd.DistributedTrainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    sampler = gluon.data.SplitSampler(len(ds), num_parts=hvd.size(), part_index=hvd.rank())

Launch with `mpiexec -n 4 python train.py`. The transport is mpi4py (`pip install "engine[dist]"`);
GPU gradients go through NCCL (`cupy.cuda.nccl`) when CuPy has it.
"""
from . import _mpi
from ._mpi import init, is_initialized
from .collectives import (allgather, allreduce, allreduce_, barrier, broadcast, broadcast_,
                          broadcast_parameters, grouped_allreduce_)
from .trainer import DistributedTrainer, HorovodKVStore

__all__ = ['init', 'is_initialized', 'rank', 'size', 'local_rank', 'local_size', 'allreduce',
           'allreduce_', 'grouped_allreduce_', 'allgather', 'broadcast', 'broadcast_',
           'broadcast_parameters', 'barrier', 'DistributedTrainer', 'HorovodKVStore', 'save_parameters']


def rank():
    """This process's rank in 0..size()-1."""
    return _mpi.comm().Get_rank()


def size():
    """The number of processes."""
    return _mpi.comm().Get_size()


def local_rank():
    """This process's rank among the processes of its machine (use it to pick a GPU)."""
    return _mpi.local_comm().Get_rank()


def local_size():
    return _mpi.local_comm().Get_size()


def save_parameters(block, filename):
    """Checkpoint `block`'s parameters: rank 0 writes the file (atomically, as every save does),
    the others wait until it is in place."""
    if _mpi.comm().Get_rank() == 0:
        block.save_parameters(filename)
    barrier()
