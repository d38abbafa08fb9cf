"""MXNet's binary NDArray file format (what `mx.nd.save` writes), read and written with NumPy.

The layout, field by field, is in docs/ndarray_file_format.md. Every size read from a file is
checked against the bytes left before anything is allocated, so a truncated, corrupt or oversized
file is an MXNetError naming the file, the byte offset and what was expected."""
import io
import os
import struct
from typing import NamedTuple

import numpy as np

from .base import MXNetError

LIST_MAGIC = 0x112              # uint64 at offset 0 of every nd.save file
V1_MAGIC = 0xF993FAC8           # int64 shape dims, no storage type
V2_MAGIC = 0xF993FAC9           # + storage type (MXNet 1.x default)
V3_MAGIC = 0xF993FACA           # + NumPy shape semantics (0-d arrays; ndim -1 = unknown)

# mshadow type flags -> little-endian NumPy dtypes
TYPE_FLAGS = {0: '<f4', 1: '<f8', 2: '<f2', 3: 'u1', 4: '<i4', 5: 'i1', 6: '<i8', 7: '?'}
FLAG_OF = {np.dtype(v).name: k for k, v in TYPE_FLAGS.items()}
OTHER_FLAGS = {8: 'int16', 9: 'uint16', 10: 'uint32', 11: 'uint64', 12: 'bfloat16'}
STORAGE_TYPES = {0: 'default', 1: 'row_sparse', 2: 'csr'}
DEV_TYPES = {1: 'cpu', 2: 'gpu', 3: 'cpu_pinned', 5: 'cpu_shared'}
MAX_NDIM = 32                   # NumPy's limit; a larger count means a corrupt file
NUM_AUX = {1: 1, 2: 2}          # row_sparse: indices; csr: indptr, indices (MXNet's aux order)


class Sparse(NamedTuple):
    """A sparse entry: values `data` (the storage shape) and MXNet's aux arrays in file order
    (row_sparse: (indices,), csr: (indptr, indices)) of an array of `shape`."""
    stype: str
    shape: tuple
    data: np.ndarray
    aux: tuple


class _Reader:
    """Bounds-checked little-endian reads from a file of known size."""

    def __init__(self, f, size, filename):
        self.f, self.size, self.filename, self.pos = f, size, filename, 0

    def fail(self, what, at=None):
        at = self.pos if at is None else at
        raise MXNetError(f'load: {self.filename} is not a valid MXNet NDArray file: at byte offset '
                         f'{at}: {what}')

    def take(self, n, what):
        if n > self.size - self.pos:
            self.fail(f'expected {what} ({n} bytes) but only {self.size - self.pos} bytes are left '
                      '(truncated or corrupt file)')
        buf = bytearray(n)
        if self.f.readinto(buf) != n:
            self.fail(f'short read of {what}')
        self.pos += n
        return buf

    def unpack(self, fmt, what):
        return struct.unpack('<' + fmt, self.take(struct.calcsize('<' + fmt), what))

    def u64(self, what):
        return self.unpack('Q', what)[0]


def read(filename, sparse=False):
    """(arrays, names) of an nd.save file: a list of NumPy arrays and a list of their names
    (empty when the file holds an unnamed list). Sparse entries are `Sparse` parts with
    `sparse=True`, else an error naming the storage type."""
    filename = os.fspath(filename)
    with open(filename, 'rb') as f:
        return _read_from(_Reader(f, os.fstat(f.fileno()).st_size, filename), sparse)


def read_bytes(buf, sparse=False):
    """`read` of an nd.save file's contents held in memory (bytes, bytearray or memoryview)."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise MXNetError(f'load_frombuffer: expected bytes, got {type(buf).__name__}')
    buf = bytes(buf)
    return _read_from(_Reader(io.BytesIO(buf), len(buf), 'the buffer'), sparse)


def _read_from(r, sparse):
    magic, _reserved = r.unpack('QQ', 'the file header (uint64 magic 0x112, uint64 reserved)')
    if magic != LIST_MAGIC:
        r.fail(f'file header magic is {magic:#x}, expected {LIST_MAGIC:#x}', at=0)
    count = r.u64('the number of arrays (uint64)')
    if count * 12 > r.size - r.pos:     # each array takes at least 12 bytes
        r.fail(f'the file claims {count} arrays (at least 12 bytes each) but only '
               f'{r.size - r.pos} bytes are left')
    arrays = [_read_array(r, i, sparse) for i in range(count)]
    names = _read_names(r, count)
    if r.pos != r.size:
        r.fail(f'{r.size - r.pos} unexpected bytes after the last name')
    return arrays, names


def _read_names(r, count):
    at = r.pos
    n = r.u64('the number of names (uint64)')
    if n not in (0, count):
        r.fail(f'{n} names for {count} arrays (expected 0 or {count})', at=at)
    names = []
    for i in range(n):
        at = r.pos
        length = r.u64(f'the length of name {i} (uint64)')
        raw = r.take(length, f'name {i}')
        try:
            names.append(raw.decode('utf-8'))
        except UnicodeDecodeError:
            r.fail(f'name {i} is not UTF-8 text', at=at)
        if names[-1] in names[:-1]:
            r.fail(f'name {names[-1]!r} appears twice', at=at)
    return names


def _read_array(r, i, sparse=False):
    at = r.pos
    magic = r.unpack('I', f'array {i}: its magic number (uint32)')[0]
    if magic in (V2_MAGIC, V3_MAGIC):
        stype = r.unpack('i', f'array {i}: storage type (int32)')[0]
        if stype in NUM_AUX and sparse and magic == V2_MAGIC:
            return _read_sparse(r, i, stype)
        if stype != 0:
            kind = STORAGE_TYPES.get(stype, f'unknown storage type {stype}')
            r.fail(f'array {i} has {kind} storage; only dense (default storage) arrays can be '
                   'loaded (convert it with tostype("default") in MXNet before saving)', at=at + 4)
        shape = _read_shape(r, i, magic == V3_MAGIC)
    elif magic == V1_MAGIC:
        shape = _read_shape(r, i, False)
    elif magic <= MAX_NDIM:             # before V1: the magic is ndim, then uint32 dims
        shape = r.unpack(f'{magic}I', f'array {i}: {magic} uint32 dimensions')
        shape = shape or None
    else:
        r.fail(f'array {i}: magic {magic:#x} is none of the NDArray versions '
               f'({V1_MAGIC:#x}, {V2_MAGIC:#x}, {V3_MAGIC:#x})', at=at)
    if shape is None:
        r.fail(f'array {i} is an empty NDArray handle (no shape, no data), which cannot be '
               'loaded as an array', at=at)
    dev_type, _dev_id, flag = r.unpack('iii', f'array {i}: context (int32 type, int32 id) and '
                                       'dtype flag (int32)')
    if dev_type not in DEV_TYPES:
        r.fail(f'array {i}: device type {dev_type} is not one of {DEV_TYPES}', at=r.pos - 12)
    if flag not in TYPE_FLAGS:
        name = OTHER_FLAGS.get(flag, 'an unknown type')
        r.fail(f'array {i}: dtype flag {flag} ({name}) is not supported; expected one of '
               f'{ {k: np.dtype(v).name for k, v in TYPE_FLAGS.items()} }', at=r.pos - 4)
    dtype = np.dtype(TYPE_FLAGS[flag])
    size = 1
    for d in shape:
        size *= d
    data = r.take(size * dtype.itemsize, f'array {i}: data of shape {tuple(shape)} {dtype.name}')
    if flag == 7:                       # bytes other than 0/1 must still read as True
        return (np.frombuffer(data, np.uint8) != 0).reshape(shape)
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder('='), copy=False).reshape(shape)


def _read_sparse(r, i, stype):
    """The rest of a sparse entry (after its storage type): storage shape, shape, context,
    dtype flag, per aux array its type flag and shape, the values, the aux arrays."""
    kind = STORAGE_TYPES[stype]
    _read_shape(r, i, False)          # the storage shape (see below)
    shape = _read_shape(r, i, False)
    if shape is None:
        r.fail(f'array {i} ({kind}) has no shape')
    dev_type, _dev_id, flag = r.unpack('iii', f'array {i}: context and dtype flag (int32 x 3)')
    if dev_type not in DEV_TYPES or flag not in TYPE_FLAGS:
        r.fail(f'array {i} ({kind}): device type {dev_type} / dtype flag {flag} not supported', at=r.pos - 12)
    aux_meta = []
    for k in range(NUM_AUX[stype]):
        at = r.pos
        aflag = r.unpack('i', f'array {i}: aux {k} type flag (int32)')[0]
        if aflag not in TYPE_FLAGS or np.dtype(TYPE_FLAGS[aflag]).kind not in 'iu':
            r.fail(f'array {i} ({kind}): aux {k} type flag {aflag} is not an integer type', at=at)
        aux_meta.append((np.dtype(TYPE_FLAGS[aflag]), _read_shape(r, i, False) or ()))
    # the values' shape follows the indices' length (MXNet may record the storage shape as
    # unknown, a 0 dimension, and infers it so too)
    idx_shape = aux_meta[-1][1]
    if len(idx_shape) != 1 or (stype == 2 and len(shape) != 2) or (stype == 1 and not shape):
        r.fail(f'array {i} ({kind}): indices of shape {tuple(idx_shape)} for an array of shape {tuple(shape)}')
    storage = tuple(idx_shape) + (tuple(shape[1:]) if stype == 1 else ())
    data = _read_block(r, f'array {i}: {kind} values', storage, np.dtype(TYPE_FLAGS[flag]))
    aux = tuple(_read_block(r, f'array {i}: {kind} aux {k}', s, dt).astype(np.int64)
                for k, (dt, s) in enumerate(aux_meta))
    return Sparse(kind, tuple(shape), data, aux)


def _read_block(r, what, shape, dtype):
    size = 1
    for d in shape:
        size *= d
    data = r.take(size * dtype.itemsize, f'{what} of shape {tuple(shape)} {dtype.name}')
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder('='), copy=False).reshape(shape)


def _read_shape(r, i, np_shape):
    """A TShape: int32 ndim then ndim dims. None for an empty handle (ndim 0 before V3,
    ndim -1 or an unknown dim in V3)."""
    at = r.pos
    ndim = r.unpack('i', f'array {i}: ndim (int32)')[0]
    if np_shape and ndim == -1 or not np_shape and ndim == 0:
        return None
    if not 0 <= ndim <= MAX_NDIM:
        r.fail(f'array {i}: ndim {ndim} is out of range (0..{MAX_NDIM})', at=at)
    shape = r.unpack(f'{ndim}q', f'array {i}: {ndim} int64 dimensions')
    if np_shape and -1 in shape:
        return None
    if any(d < 0 for d in shape):
        r.fail(f'array {i}: negative dimension in shape {shape}', at=at + 4)
    return shape


def write(f, arrays, names=None):
    """Write NumPy arrays (and their names, or None for an unnamed list) in the layout MXNet 1.x
    writes. V2 entries unless some array is 0-d: then every entry is V3 (as npx.save writes), since
    MXNet refuses files that mix the two semantics."""
    arrays = [a if isinstance(a, Sparse) else _writable(a, i) for i, a in enumerate(arrays)]
    magic = V3_MAGIC if any(not isinstance(a, Sparse) and a.ndim == 0 for a in arrays) else V2_MAGIC
    if magic == V3_MAGIC and any(isinstance(a, Sparse) for a in arrays):
        raise MXNetError('save: sparse arrays and 0-d arrays cannot share a file (MXNet stores 0-d '
                         'arrays with NumPy shape semantics, which have no sparse storage)')
    f.write(struct.pack('<QQQ', LIST_MAGIC, 0, len(arrays)))
    for a in arrays:
        if isinstance(a, Sparse):
            _write_sparse(f, a)
            continue
        _write_dense(f, a, magic)
    names = list(names or [])
    f.write(struct.pack('<Q', len(names)))
    for n in names:
        raw = n.encode('utf-8')
        f.write(struct.pack('<Q', len(raw)) + raw)


def _write_dense(f, a, magic):
    f.write(struct.pack(f'<Iii{a.ndim}q', magic, 0, a.ndim, *a.shape))
    f.write(struct.pack('<iii', 1, 0, FLAG_OF[a.dtype.name]))   # saved as cpu(0)
    f.write(np.ascontiguousarray(a, a.dtype.newbyteorder('<')).tobytes())


def entry_bytes(a):
    """One dense array as MXNet's raw NDArray bytes (an entry of the file format, no header):
    the state of a pickled NDArray."""
    a = _writable(a, 0)
    f = io.BytesIO()
    _write_dense(f, a, V3_MAGIC if a.ndim == 0 else V2_MAGIC)
    return f.getvalue()


def read_entry(buf, what='the NDArray bytes'):
    """The dense NumPy array of `entry_bytes` output (or MXNet's), bounds-checked."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise MXNetError(f'{what}: expected bytes, got {type(buf).__name__}')
    buf = bytes(buf)
    r = _Reader(io.BytesIO(buf), len(buf), what)
    a = _read_array(r, 0)
    if r.pos != r.size:
        r.fail(f'{r.size - r.pos} unexpected bytes after the array')
    return a


def _write_sparse(f, a):
    data = _writable(a.data, 'values')
    shape = lambda s: struct.pack(f'<i{len(s)}q', len(s), *s)   # noqa: E731  (a TShape)
    stype = {v: k for k, v in STORAGE_TYPES.items()}[a.stype]
    f.write(struct.pack('<Ii', V2_MAGIC, stype) + shape(data.shape) + shape(a.shape))
    f.write(struct.pack('<iii', 1, 0, FLAG_OF[data.dtype.name]))
    for x in a.aux:
        f.write(struct.pack('<i', FLAG_OF['int64']) + shape(x.shape))
    f.write(np.ascontiguousarray(data, data.dtype.newbyteorder('<')).tobytes())
    for x in a.aux:
        f.write(np.ascontiguousarray(x, '<i8').tobytes())


def _writable(a, i):
    a = np.asarray(a)
    if a.dtype.name not in FLAG_OF:
        raise MXNetError(f'save: array {i} has dtype {a.dtype.name}, which the MXNet NDArray '
                         f'format cannot hold; expected one of {sorted(FLAG_OF)}')
    if a.ndim > MAX_NDIM:
        raise MXNetError(f'save: array {i} has {a.ndim} dimensions (at most {MAX_NDIM})')
    return a
