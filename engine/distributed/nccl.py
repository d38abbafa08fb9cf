"""GPU allreduce through NCCL (`cupy.cuda.nccl`), one communicator per device, bootstrapped over
MPI (rank 0's unique id is broadcast). CuPy is imported on first use only, so this module imports
(and its dtype table is tested) on machines without a GPU."""
import os

import numpy as np

from ..base import MXNetError
from . import _mpi

_comms = {}   # CUDA device id -> NcclCommunicator

_DTYPES = {'float16': 'NCCL_FLOAT16', 'float32': 'NCCL_FLOAT32', 'float64': 'NCCL_FLOAT64',
           'int8': 'NCCL_INT8', 'uint8': 'NCCL_UINT8', 'int32': 'NCCL_INT32', 'int64': 'NCCL_INT64'}


def _nccl():
    try:
        from cupy.cuda import nccl
    except ImportError as e:
        raise MXNetError(f'NCCL is not available: CuPy with NCCL support is needed ({e})') from None
    return nccl


def usable():
    """Whether GPU buffers go through NCCL (ENGINE_DIST_NCCL=0 stages them through the host)."""
    if os.environ.get('ENGINE_DIST_NCCL', '1') == '0':
        return False
    try:
        _nccl()
    except MXNetError:
        return False
    return True


def dtype_code(nccl, dtype):
    name = _DTYPES.get(np.dtype(dtype).name)
    if name is None:
        raise MXNetError(f'NCCL cannot reduce {np.dtype(dtype).name} arrays; supported: {sorted(_DTYPES)}')
    return getattr(nccl, name)


def communicator(device_id):
    """The NCCL communicator of all ranks for this rank's device (created collectively)."""
    comm = _comms.get(device_id)
    if comm is None:
        nccl, world = _nccl(), _mpi.comm()
        uid = np.zeros(128, np.int64)
        if world.Get_rank() == 0:
            uid[:] = nccl.get_unique_id()
        import cupy
        with _mpi.collective('NCCL bootstrap'), cupy.cuda.Device(device_id):
            world.Bcast(uid, root=0)
            comm = nccl.NcclCommunicator(world.Get_size(), tuple(int(x) for x in uid), world.Get_rank())
        _comms[device_id] = comm
    return comm


def allreduce_bucket(bucket, prescale=1.0, postscale=1.0):
    """Sum same-dtype CuPy arrays of one device over all ranks, in place, as one NCCL call."""
    import cupy
    nccl = _nccl()
    dev = bucket[0].device.id
    with cupy.cuda.Device(dev):
        single = len(bucket) == 1 and bucket[0].flags.c_contiguous
        flat = bucket[0].reshape(-1) if single else cupy.concatenate([b.reshape(-1) for b in bucket])
        if prescale != 1.0:
            flat *= prescale
        stream = cupy.cuda.get_current_stream()
        with _mpi.collective('NCCL allreduce of %d array(s), %d bytes', len(bucket), flat.nbytes):
            communicator(dev).allReduce(flat.data.ptr, flat.data.ptr, flat.size,
                                        dtype_code(nccl, flat.dtype), nccl.NCCL_SUM, stream.ptr)
            stream.synchronize()
        if postscale != 1.0:
            flat *= postscale
        if not single:
            o = 0
            for b in bucket:
                b[...] = flat[o:o + b.size].reshape(b.shape)
                o += b.size
