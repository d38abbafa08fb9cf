"""Collectives on NDArrays across the MPI world, Horovod's names and semantics.

Reductions run on contiguous buffers: arrays under 512 KiB are packed into buckets of up to
ENGINE_DIST_BUCKET_MB (default 64) MiB per dtype and device, one MPI call per bucket; larger
contiguous arrays go as they are, without a copy. Host arrays go through MPI; GPU arrays through NCCL
(`nccl.py`, when CuPy has it) or else are staged through the host. float16 is summed in float32
(MPI has no half-precision sum).
"""
import json
import os
import weakref
from collections import OrderedDict

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
# NumPy dtype (native byte order) -> MPI datatype, filled once MPI is loaded. Naming the datatype
# spares mpi4py parsing the buffer's format string on every call (one process: 0.44 -> 0.37 us
# per 4 KiB call); keying by the dtype object is ~20 ns cheaper than by its type code.
_MPI_TYPES = {}
_ndarray = np.ndarray   # a module global: read per call on the small-allreduce path
# The world, its size, its watchdog and MPI.IN_PLACE, read once (init() sets them, for good)
_comm = _size = _watch = _IN_PLACE = None
# Host buffer lists seen lately (the Trainer's gradients, step after step) -> how they are reduced
_plans = OrderedDict()
_PLANS_KEPT = 4


def _world():
    """The communicator, MPI initialized on first use."""
    global _comm, _size, _watch, _IN_PLACE
    if _comm is None:
        _mpi.init()
        MPI = _mpi.mpi()
        _MPI_TYPES.update({np.dtype(c): t for c, t in (('f', MPI.FLOAT), ('d', MPI.DOUBLE),
                           ('i', MPI.INT), ('l', MPI.LONG), ('q', MPI.LONG_LONG))})
        _IN_PLACE, _watch, _size = MPI.IN_PLACE, _mpi._state['watch'], _mpi.comm().Get_size()
        _comm = _mpi.comm()
    return _comm


def _bucket_bytes():
    raw = os.environ.get('ENGINE_DIST_BUCKET_MB', '64')
    try:
        mb = float(raw)
    except ValueError:
        raise MXNetError(f'ENGINE_DIST_BUCKET_MB must be a number, got {raw!r}') from None
    return max(1, int(mb * (1 << 20)))


def _buckets(bufs):
    """Group buffers by (device, dtype) in order, each group cut into buckets of bounded bytes;
    yields lists of indices into `bufs`."""
    if len(bufs) == 1:
        yield [0]
        return
    limit = _bucket_bytes()
    groups = {}
    for i, b in enumerate(bufs):
        if b.nbytes >= _ALONE_BYTES and b.dtype.char != 'e':
            yield [i]
            continue
        dev = getattr(getattr(b, 'device', None), 'id', -1) if not isinstance(b, np.ndarray) else -1
        groups.setdefault((dev, b.dtype.str), []).append(i)
    for group in groups.values():
        bucket, size = [], 0
        for i in group:
            if bucket and size + bufs[i].nbytes > limit:
                yield bucket
                bucket, size = [], 0
            bucket.append(i)
            size += bufs[i].nbytes
        if bucket:
            yield bucket


def _work_dtype(dtype):
    return np.dtype(np.float32) if dtype.char == 'e' else dtype


def _check_scalable(dtype, what):
    if dtype.kind not in 'fc':
        raise MXNetError(f'engine.distributed {what}: averaging or scale factors need floating-point '
                         f'arrays, got {dtype.name} (use average=False and factors of 1)')


def _pack_buffer(dtype, n):
    key = (dtype.str, n)
    flat = _pack_cache.get(key)
    if flat is None:
        flat = _pack_cache[key] = np.empty(n, dtype)
    return flat


def _slices(flat):
    """Buffer specs covering the 1-D `flat` in slices of at most _CHUNK_BYTES (a bare array where
    the table has no MPI type for its dtype: mpi4py finds one)."""
    t = _MPI_TYPES.get(flat.dtype)
    step = max(1, _CHUNK_BYTES // flat.itemsize)
    return [flat[lo:lo + step] if t is None else [flat[lo:lo + step], t]
            for lo in range(0, flat.size, step)]


class _HostPlan:
    """How one list of host buffers is reduced, kept while the same arrays come back (a Trainer's
    gradients are the same arrays every step): buckets of small arrays, each packed into a buffer
    with its MPI specs and member views built once; large contiguous arrays in place."""

    def __init__(self, bufs):
        self.refs = [weakref.ref(b) for b in bufs]
        self.packed = []     # (member indices, flat, [spec per slice], [view of flat per member])
        self.alone = []      # indices of arrays reduced in place
        for idx in _buckets(bufs):
            b = bufs[idx[0]]
            work = _work_dtype(b.dtype)
            if len(idx) == 1 and b.flags.c_contiguous and work == b.dtype:
                self.alone.append(idx[0])
                continue
            flat = _pack_buffer(work, sum(bufs[i].size for i in idx))
            views, o = [], 0
            for i in idx:
                views.append(flat[o:o + bufs[i].size].reshape(bufs[i].shape))
                o += bufs[i].size
            self.packed.append((idx, flat, _slices(flat), views))
        self.nbytes = sum(b.nbytes for b in bufs)

    def matches(self, bufs):
        for r, b in zip(self.refs, bufs):
            if r() is not b:
                return False
        return True

    def run(self, comm, bufs, prescale, postscale):
        in_place = _IN_PLACE
        for idx, flat, specs, views in self.packed:
            np.concatenate([bufs[i] for i in idx], axis=None, out=flat)
            if prescale != 1.0:
                flat *= prescale
            for spec in specs:
                comm.Allreduce(in_place, spec)
            if postscale != 1.0:
                flat *= postscale
            for i, v in zip(idx, views):
                bufs[i][...] = v
        for i in self.alone:
            b = bufs[i]
            if prescale != 1.0:
                b *= prescale
            for spec in _slices(b.reshape(-1)):
                comm.Allreduce(in_place, spec)
            if postscale != 1.0:
                b *= postscale


def _host_plan(bufs):
    """The cached plan for this exact list of host arrays (a new one when any array changed)."""
    key = tuple(map(id, bufs))
    plan = _plans.get(key)
    if plan is None or not plan.matches(bufs):
        plan = _plans[key] = _HostPlan(bufs)
        while len(_plans) > _PLANS_KEPT:
            _plans.popitem(last=False)
    return plan


def _is_host(b):
    return type(b) is np.ndarray


def allreduce_buffers(bufs, prescale=1.0, postscale=1.0, what='allreduce'):
    """Sum raw buffers (NumPy or CuPy) over all ranks in place: sum(prescale * b) * postscale."""
    if len(bufs) == 1 and prescale == 1.0 and _comm is not None:
        # one contiguous host array of an MPI type straight to one call: this is the per-call
        # cost of a small allreduce, so the checks are few and the watchdog record is inlined
        b = bufs[0]
        if type(b) is _ndarray and b.flags.c_contiguous:
            t, n = _MPI_TYPES.get(b.dtype), b.nbytes
            if t is not None and n <= _CHUNK_BYTES and (postscale == 1.0 or b.dtype.kind == 'f'):
                w = _watch
                if w is not None:
                    w.busy = ('%s of 1 array, %d bytes', what, n)    # as _mpi.collective
                try:
                    _comm.Allreduce(_IN_PLACE, [b, t])
                finally:
                    if w is not None:
                        w.busy = None
                if postscale != 1.0:
                    b *= postscale
                return
    _allreduce_general(list(bufs), prescale, postscale, what)


def _allreduce_general(bufs, prescale, postscale, what):
    comm = _world()
    if prescale != 1.0 or postscale != 1.0:
        for b in bufs:
            _check_scalable(b.dtype, what)
    if all(map(_is_host, bufs)):
        plan = _host_plan(bufs) if len(bufs) > 1 else _HostPlan(bufs)   # one-offs stay out of the cache
        with _mpi.collective('%s of %d array(s), %d bytes', what, len(bufs), plan.nbytes):
            plan.run(comm, bufs, prescale, postscale)
        return
    for idx in _buckets(bufs):
        bucket = [bufs[i] for i in idx]
        if not isinstance(bucket[0], np.ndarray):
            from . import nccl
            if nccl.usable():
                nccl.allreduce_bucket(bucket, prescale, postscale)
                continue
        _staged_bucket(comm, bucket, prescale, postscale, what)


def _staged_bucket(comm, bucket, prescale, postscale, what):
    """One bucket with device arrays, reduced through a host copy."""
    work = _work_dtype(bucket[0].dtype)
    flat = _pack_buffer(work, sum(b.size for b in bucket))
    o = 0
    for b in bucket:
        flat[o:o + b.size] = (b if isinstance(b, np.ndarray) else b.get()).reshape(-1)
        o += b.size
    if prescale != 1.0:
        flat *= prescale
    with _mpi.collective('%s of %d array(s), %d bytes', what, len(bucket), flat.nbytes):
        for spec in _slices(flat):
            comm.Allreduce(_IN_PLACE, spec)
    if postscale != 1.0:
        flat *= postscale
    _unpack(flat, bucket)


def _unpack(flat, bucket):
    o = 0
    for b in bucket:
        part = flat[o:o + b.size].reshape(b.shape)
        if isinstance(b, np.ndarray):
            b[...] = part
        else:
            b.set(np.ascontiguousarray(part.astype(b.dtype, copy=False)))
        o += b.size


def broadcast_buffers(bufs, root_rank=0, what='broadcast'):
    """Copy the root's raw buffers into every rank's, in place (shapes must already agree)."""
    _mpi.init()
    _check_root(root_rank)
    bufs = list(bufs)
    for idx in _buckets(bufs):
        bucket = [bufs[i] for i in idx]
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
def _postscale(average, postscale_factor):
    if _comm is None:
        _world()
    return float(postscale_factor) / _size if average else float(postscale_factor)


def allreduce_(tensor, average=True, name=None, priority=0, prescale_factor=1.0, postscale_factor=1.0):
    """Sum (or, with `average`, average) `tensor` over all ranks, in place; returns it."""
    t = _nd(tensor, 'allreduce_')
    allreduce_buffers([t._data], float(prescale_factor), _postscale(average, postscale_factor))
    return t


def allreduce(tensor, average=True, name=None, priority=0, prescale_factor=1.0, postscale_factor=1.0):
    """The sum (or average) of `tensor` over all ranks, as a new array."""
    t = _nd(tensor, 'allreduce')
    if type(t) is NDArray and type(t._data) is np.ndarray:
        # a NumPy copy, C-ordered (a strided input too), is as fast here as MPI's out-of-place form
        out = t._data.copy()
        allreduce_buffers([out], float(prescale_factor), _postscale(average, postscale_factor))
        return NDArray(out, t._ctx)
    return allreduce_(t.copy(), average, name, priority, prescale_factor, postscale_factor)


def grouped_allreduce_(tensors, average=True, name=None, priority=0, prescale_factor=1.0,
                       postscale_factor=1.0):
    """allreduce_ of several arrays, fused into few MPI calls."""
    tensors = [_nd(t, 'grouped_allreduce_') for t in tensors]
    allreduce_buffers([t._data for t in tensors], float(prescale_factor),
                      _postscale(average, postscale_factor))
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
