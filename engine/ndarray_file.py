"""MXNet's binary NDArray file format (what `mx.nd.save` writes), read and written with NumPy.

The layout, field by field, is in docs/ndarray_file_format.md. Every size read from a file is
checked against the bytes left before anything is allocated, so a truncated, corrupt or oversized
file is an MXNetError naming the file, the byte offset and what was expected."""
import os
import struct

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


def read(filename):
    """(arrays, names) of an nd.save file: a list of NumPy arrays and a list of their names
    (empty when the file holds an unnamed list)."""
    filename = os.fspath(filename)
    with open(filename, 'rb') as f:
        r = _Reader(f, os.fstat(f.fileno()).st_size, filename)
        magic, _reserved = r.unpack('QQ', 'the file header (uint64 magic 0x112, uint64 reserved)')
        if magic != LIST_MAGIC:
            r.fail(f'file header magic is {magic:#x}, expected {LIST_MAGIC:#x}', at=0)
        count = r.u64('the number of arrays (uint64)')
        if count * 12 > r.size - r.pos:     # each array takes at least 12 bytes
            r.fail(f'the file claims {count} arrays (at least 12 bytes each) but only '
                   f'{r.size - r.pos} bytes are left')
        arrays = [_read_array(r, i) for i in range(count)]
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


def _read_array(r, i):
    at = r.pos
    magic = r.unpack('I', f'array {i}: its magic number (uint32)')[0]
    if magic in (V2_MAGIC, V3_MAGIC):
        stype = r.unpack('i', f'array {i}: storage type (int32)')[0]
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
    arrays = [_writable(a, i) for i, a in enumerate(arrays)]
    magic = V3_MAGIC if any(a.ndim == 0 for a in arrays) else V2_MAGIC
    f.write(struct.pack('<QQQ', LIST_MAGIC, 0, len(arrays)))
    for a in arrays:
        f.write(struct.pack(f'<Iii{a.ndim}q', magic, 0, a.ndim, *a.shape))
        f.write(struct.pack('<iii', 1, 0, FLAG_OF[a.dtype.name]))   # saved as cpu(0)
        f.write(np.ascontiguousarray(a, a.dtype.newbyteorder('<')).tobytes())
    names = list(names or [])
    f.write(struct.pack('<Q', len(names)))
    for n in names:
        raw = n.encode('utf-8')
        f.write(struct.pack('<Q', len(raw)) + raw)


def _writable(a, i):
    a = np.asarray(a)
    if a.dtype.name not in FLAG_OF:
        raise MXNetError(f'save: array {i} has dtype {a.dtype.name}, which the MXNet NDArray '
                         f'format cannot hold; expected one of {sorted(FLAG_OF)}')
    if a.ndim > MAX_NDIM:
        raise MXNetError(f'save: array {i} has {a.ndim} dimensions (at most {MAX_NDIM})')
    return a
