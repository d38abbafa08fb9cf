"""Collectives on NDArrays across the MPI world, Horovod's names and semantics.

Reductions run on contiguous buffers: arrays under 512 KiB are packed into buckets of up to
ENGINE_DIST_BUCKET_MB (default 64) MiB per dtype and device, one MPI call per bucket; larger
contiguous arrays go as they are, without a copy. Host arrays go through MPI; GPU arrays through NCCL
(`nccl.py`, when CuPy has it) or else are staged through the host. float16 is summed in float32
(MPI has no half-precision sum).
"""
import json
import os

import numpy as np

from ..base import MXNetError, fmt_shape
from ..ndarray import NDArray
from . import _mpi

_pack_cache = {}   # (dtype, elements) -> reusable host bucket
# Arrays from this size go alone, in place: packing costs two copies, which lost to separate calls
# here from ~1 MiB arrays on (2 ranks, 16 x 1 MiB: 16 calls 8.2 ms, packed 16.0 ms; 16 x 64 KiB:
# 16 calls 0.78 ms, packed 0.56 ms).
_ALONE_BYTES = 1 << 19
# Larger buffers are reduced in slices of this size: on this machine (2 ranks, MPICH 5 shared
# memory) one 64 MiB Allreduce took 44-78 ms, 4 calls on 16 MiB slices (or 16 on 4 MiB) 22-45 ms;
# up to 16 MiB one call was as fast as slices.
_CHUNK_BYTES = 1 << 24


def _bucket_bytes():
    raw = os.environ.get('ENGINE_DIST_BUCKET_MB', '64')
    try:
        mb = float(raw)
    except ValueError:
        raise MXNetError(f'ENGINE_DIST_BUCKET_MB must be a number, got {raw!r}') from None
    return max(1, int(mb * (1 << 20)))


def _buckets(bufs):
    """Group buffers by (device, dtype) in order, each group cut into buckets of bounded bytes."""
    if len(bufs) == 1:
        yield bufs
        return
    limit = _bucket_bytes()
    groups = {}
    for b in bufs:
        if b.nbytes >= _ALONE_BYTES and b.dtype.char != 'e':
            yield [b]
            continue
        dev = getattr(getattr(b, 'device', None), 'id', -1) if not isinstance(b, np.ndarray) else -1
        groups.setdefault((dev, b.dtype.str), []).append(b)
    for group in groups.values():
        bucket, size = [], 0
        for b in group:
            if bucket and size + b.nbytes > limit:
                yield bucket
                bucket, size = [], 0
            bucket.append(b)
            size += b.nbytes
        if bucket:
            yield bucket


def _work_dtype(dtype):
    return np.dtype(np.float32) if dtype.char == 'e' else dtype


def _host_flat(bucket):
    """(flat host buffer, whether it is a packed copy): one contiguous float32/64 host array is
    used in place; anything else is packed into a cached buffer."""
    first = bucket[0]
    if len(bucket) == 1 and isinstance(first, np.ndarray) and first.flags.c_contiguous \
            and _work_dtype(first.dtype) == first.dtype:
        return first.reshape(-1), False
    n = sum(b.size for b in bucket)
    key = (_work_dtype(first.dtype).str, n)
    flat = _pack_cache.get(key)
    if flat is None:
        flat = _pack_cache[key] = np.empty(n, _work_dtype(first.dtype))
    o = 0
    for b in bucket:
        flat[o:o + b.size] = (b if isinstance(b, np.ndarray) else b.get()).reshape(-1)
        o += b.size
    return flat, True


def _unpack(flat, bucket):
    o = 0
    for b in bucket:
        part = flat[o:o + b.size].reshape(b.shape)
        if isinstance(b, np.ndarray):
            b[...] = part
        else:
            b.set(np.ascontiguousarray(part.astype(b.dtype, copy=False)))
        o += b.size


def allreduce_buffers(bufs, prescale=1.0, postscale=1.0, what='allreduce'):
    """Sum raw buffers (NumPy or CuPy) over all ranks in place: sum(prescale * b) * postscale."""
    _mpi.init()
    comm, in_place = _mpi.comm(), _mpi.mpi().IN_PLACE
    if len(bufs) == 1 and prescale == postscale == 1.0:      # the common small case, direct
        b = bufs[0]
        if type(b) is np.ndarray and b.nbytes <= _CHUNK_BYTES and b.dtype.char in 'fd' \
                and b.flags.c_contiguous:
            with _mpi.collective('%s of 1 array, %d bytes', what, b.nbytes):
                comm.Allreduce(in_place, b)
            return
    for bucket in _buckets(list(bufs)):
        if not isinstance(bucket[0], np.ndarray):
            from . import nccl
            if nccl.usable():
                nccl.allreduce_bucket(bucket, prescale, postscale)
                continue
        flat, packed = _host_flat(bucket)
        if prescale != 1.0:
            flat *= prescale
        step = max(1, _CHUNK_BYTES // flat.itemsize)
        with _mpi.collective('%s of %d array(s), %d bytes', what, len(bucket), flat.nbytes):
            for lo in range(0, flat.size, step):
                comm.Allreduce(in_place, flat[lo:lo + step])
        if postscale != 1.0:
            flat *= postscale
        if packed:
            _unpack(flat, bucket)


def broadcast_buffers(bufs, root_rank=0, what='broadcast'):
    """Copy the root's raw buffers into every rank's, in place (shapes must already agree)."""
    _mpi.init()
    _check_root(root_rank)
    for bucket in _buckets(list(bufs)):
        first = bucket[0]
        if len(bucket) == 1 and isinstance(first, np.ndarray) and first.flags.c_contiguous:
            flat, packed = first.reshape(-1), False
        else:
            flat = np.concatenate([(b if isinstance(b, np.ndarray) else b.get()).reshape(-1) for b in bucket])
            packed = True
        with _mpi.collective('%s of %d array(s), %d bytes', what, len(bucket), flat.nbytes):
            _mpi.comm().Bcast(flat, root=root_rank)
        if packed:
            _unpack(flat, bucket)


def allgather_bytes(data, what='allgather'):
    """Every rank's bytes, in rank order (no pickle)."""
    _mpi.init()
    c = _mpi.comm()
    mine = np.frombuffer(bytes(data), np.uint8)
    counts = np.zeros(c.Get_size(), np.int64)
    with _mpi.collective(what):
        c.Allgather(np.array([mine.size], np.int64), counts)
        out = np.empty(int(counts.sum()), np.uint8)
        c.Allgatherv(mine, [out, counts.astype(np.int32)])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return [out[offsets[i]:offsets[i + 1]].tobytes() for i in range(c.Get_size())]


def _check_root(root_rank):
    size = _mpi.comm().Get_size()
    if not isinstance(root_rank, (int, np.integer)) or not 0 <= root_rank < size:
        raise MXNetError(f'root_rank must be a rank in 0..{size - 1}, got {root_rank!r}')


def _nd(tensor, who):
    if not isinstance(tensor, NDArray):
        raise MXNetError(f'engine.distributed.{who}: expected an NDArray, got {type(tensor).__name__}')
    return tensor


# ---- Horovod's functions ---------------------------------------------------------------------------
def allreduce_(tensor, average=True, name=None, priority=0, prescale_factor=1.0, postscale_factor=1.0):
    """Sum (or, with `average`, average) `tensor` over all ranks, in place; returns it."""
    grouped_allreduce_([tensor], average, name, priority, prescale_factor, postscale_factor)
    return tensor


def allreduce(tensor, average=True, name=None, priority=0, prescale_factor=1.0, postscale_factor=1.0):
    """The sum (or average) of `tensor` over all ranks, as a new array."""
    return allreduce_(_nd(tensor, 'allreduce').copy(), average, name, priority, prescale_factor,
                      postscale_factor)


def grouped_allreduce_(tensors, average=True, name=None, priority=0, prescale_factor=1.0,
                       postscale_factor=1.0):
    """allreduce_ of several arrays, fused into few MPI calls."""
    tensors = [_nd(t, 'grouped_allreduce_') for t in tensors]
    _mpi.init()
    post = float(postscale_factor) / (_mpi.comm().Get_size() if average else 1)
    allreduce_buffers([t._data for t in tensors], float(prescale_factor), post)
    return tensors


def broadcast_(tensor, root_rank=0, name=None, priority=0):
    """Overwrite `tensor` with the root rank's value on every rank; returns it."""
    t = _nd(tensor, 'broadcast_')
    _check_same([('tensor' if name is None else name, t)], root_rank)
    broadcast_buffers([t._data], root_rank)
    return t


def broadcast(tensor, root_rank=0, name=None, priority=0):
    return broadcast_(_nd(tensor, 'broadcast').copy(), root_rank, name, priority)


def allgather(tensor, name=None, priority=0):
    """The ranks' arrays concatenated along axis 0 (the first dimension may differ per rank)."""
    t = _nd(tensor, 'allgather')
    metas = [json.loads(m) for m in allgather_bytes(json.dumps([list(t.shape[1:]), np.dtype(t.dtype).str]).encode())]
    if any(m != metas[0] for m in metas):
        raise MXNetError('engine.distributed.allgather: the ranks disagree beyond the first dimension: '
                         + ', '.join(f'rank {r}: (n, {", ".join(map(str, m[0]))}) {np.dtype(m[1]).name}'
                                     for r, m in enumerate(metas)))
    host = np.ascontiguousarray(t._data if isinstance(t._data, np.ndarray) else t._data.get())
    c = _mpi.comm()
    counts = np.zeros(c.Get_size(), np.int64)
    inner = int(np.prod(t.shape[1:], dtype=np.int64))
    with _mpi.collective('allgather'):
        c.Allgather(np.array([t.shape[0]], np.int64), counts)
        out = np.empty((int(counts.sum()),) + tuple(t.shape[1:]), host.dtype)
        c.Allgatherv(host.reshape(-1), [out.reshape(-1), (counts * inner).astype(np.int32)])
    return NDArray(out, _cpu()).as_in_context(t.context)


def barrier():
    _mpi.init()
    with _mpi.collective('barrier'):
        _mpi.comm().Barrier()


def _cpu():
    from ..context import cpu
    return cpu()


def _check_same(named, root_rank, who='broadcast'):
    """Every rank must hold the same list of (shape, dtype) as the root: else a clear error on
    every rank (all of them see all descriptions, so none is left waiting)."""
    _mpi.init()
    _check_root(root_rank)
    mine = [[n, list(a.shape), np.dtype(a.dtype).name] for n, a in named]
    theirs = [json.loads(b) for b in allgather_bytes(json.dumps(mine).encode(), f'{who} shape check')]
    root = theirs[root_rank]
    for r, desc in enumerate(theirs):
        if len(desc) != len(root):
            raise MXNetError(f'engine.distributed.{who}: rank {r} has {len(desc)} arrays, root rank '
                             f'{root_rank} has {len(root)}; every rank must build the same model')
        for (n, s, d), (rn, rs, rd) in zip(desc, root):
            if s != rs or d != rd:
                raise MXNetError(f'engine.distributed.{who}: rank {r} has {n} of shape {fmt_shape(s)} {d}, '
                                 f'root rank {root_rank} has {rn} of shape {fmt_shape(rs)} {rd}; every '
                                 'rank must build the same model')


def broadcast_parameters(params, root_rank=0, prefix=None):
    """Make every rank's parameters (every context's copy) equal to the root rank's. `params`:
    a ParameterDict (`net.collect_params()`) or a dict of names to Parameters or NDArrays. Ranks
    whose parameters differ in count, shape or dtype get a clear error, all of them."""
    from ..gluon.parameter import Parameter
    if not hasattr(params, 'items'):
        raise MXNetError('broadcast_parameters: expected a dict of parameters (net.collect_params()), '
                         f'got {type(params).__name__}')
    named, copies = [], []
    for name, p in params.items():
        if isinstance(p, Parameter):
            if p._data is None and p._deferred is not None:
                _broadcast_when_initialized(p, root_rank)
                continue
            if p._data is None:
                raise MXNetError(f'broadcast_parameters: parameter {p.name} is not initialized; call '
                                 'initialize() first')
            arrays = p.list_data()
        elif isinstance(p, NDArray):
            arrays = [p]
        else:
            raise MXNetError(f'broadcast_parameters: {name!r} is a {type(p).__name__}, not a Parameter')
        named.append(((prefix or '') + str(name), arrays[0]))
        copies.append(arrays)
    _check_same(named, root_rank, 'broadcast_parameters')
    broadcast_buffers([a[0]._data for a in copies], root_rank, 'broadcast_parameters')
    for arrays in copies:
        for other in arrays[1:]:
            arrays[0].copyto(other)


def _broadcast_when_initialized(param, root_rank):
    """A parameter whose shape comes from the first forward pass is broadcast right after it is
    initialized there (as Horovod does): every rank reaches that point in the same order."""
    original = param._init_impl

    def init_then_broadcast(*args, **kwargs):
        original(*args, **kwargs)
        del param._init_impl            # back to the class's method
        broadcast_parameters({param.name: param}, root_rank)

    param._init_impl = init_then_broadcast
