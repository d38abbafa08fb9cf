"""`mx.recordio`: reading and writing RecordIO files (the dmlc-core container MXNet's `.rec`
files use) and MXNet's image-record payload (`IRHeader` + bytes).

File layout, per record: a little-endian uint32 magic 0xced7230a, a uint32 whose upper 3 bits
are a continuation flag and lower 29 bits a length, the bytes, zero padding to 4 bytes. A
payload that holds the magic at a 4-byte-aligned offset is split there into parts (flags 1
start, 2 middle, 3 end; 0 is a whole record) and the reader puts the magic back between them,
so records never contain an aligned magic and a reader can resynchronize. An index file
(`MXIndexedRecordIO`) has one `key<TAB>offset` line per record."""
import collections
import io
import numbers
import os
import struct

import numpy as np

from .base import MXNetError

_MAGIC = 0xced7230a
_MAGIC_BYTES = struct.pack('<I', _MAGIC)
_LEN_MASK = (1 << 29) - 1


class MXRecordIO:
    """Sequential reader ('r') or writer ('w') of a RecordIO file."""

    def __init__(self, uri, flag):
        if flag not in ('r', 'w'):
            raise MXNetError(f"MXRecordIO: flag must be 'r' or 'w', got {flag!r}")
        self.uri = str(uri)
        self.flag = flag
        self.writable = flag == 'w'
        self.handle = None
        self.is_open = False
        self.pid = None
        self.open()

    def open(self):
        try:
            self.handle = open(self.uri, 'wb' if self.writable else 'rb')
        except OSError as e:
            raise MXNetError(f'MXRecordIO: cannot open {self.uri!r} for '
                             f'{"writing" if self.writable else "reading"}: {e}') from None
        self.is_open = True
        self.pid = os.getpid()

    def close(self):
        if self.is_open:
            self.handle.close()
            self.is_open = False
            self.handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # a reader handed to another process (DataLoader workers) opens the file again there:
    # a file offset shared across fork() would let the processes' reads interleave
    def __getstate__(self):
        state = self.__dict__.copy()
        state['handle'], state['is_open'] = None, False
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if not self.writable:
            self.open()

    def _check_pid(self):
        if self.pid != os.getpid():
            if self.writable:
                raise MXNetError(f'MXRecordIO: the writer of {self.uri!r} was created in process '
                                 f'{self.pid}; writing from another process is not supported')
            self.close()   # this process's copy of the parent's descriptor
            self.open()

    def reset(self):
        """Back to the first record (reopens the file; a writer starts the file again)."""
        self.close()
        self.open()

    def tell(self):
        self._require_open()
        return self.handle.tell()

    def _require_open(self):
        if not self.is_open:
            raise MXNetError(f'MXRecordIO: {self.uri!r} is closed')

    def write(self, buf):
        """Append one record (bytes)."""
        if not self.writable:
            raise MXNetError(f'MXRecordIO: {self.uri!r} is open for reading')
        self._require_open()
        self._check_pid()
        buf = bytes(buf)
        if len(buf) > _LEN_MASK:
            raise MXNetError(f'MXRecordIO.write: a record holds at most {_LEN_MASK} bytes, got {len(buf)}')
        out = self.handle
        start, n = 0, len(buf)
        # split at every 4-byte-aligned occurrence of the magic (it is dropped, the reader restores it)
        for i in range(0, n - n % 4, 4):
            if buf[i:i + 4] == _MAGIC_BYTES:
                out.write(_MAGIC_BYTES + struct.pack('<I', ((1 if start == 0 else 2) << 29) | (i - start)))
                out.write(buf[start:i])
                start = i + 4
        out.write(_MAGIC_BYTES + struct.pack('<I', ((3 if start else 0) << 29) | (n - start)))
        out.write(buf[start:])
        out.write(b'\0' * (-n % 4))

    def read(self):
        """The next record's bytes, or None at the end of the file."""
        if self.writable:
            raise MXNetError(f'MXRecordIO: {self.uri!r} is open for writing')
        self._require_open()
        self._check_pid()
        parts = []
        while True:
            head = self.handle.read(8)
            if not head:
                if parts:
                    raise self._corrupt('the file ends inside a multi-part record')
                return None
            if len(head) < 8:
                raise self._corrupt('truncated record header')
            magic, lrec = struct.unpack('<II', head)
            if magic != _MAGIC:
                raise self._corrupt(f'bad magic 0x{magic:08x}')
            cflag, length = lrec >> 29, lrec & _LEN_MASK
            data = self.handle.read(length + (-length % 4))
            if len(data) < length:
                raise self._corrupt(f'record of {length} bytes is truncated to {len(data)}')
            expected = (0, 1) if not parts else (2, 3)
            if cflag not in expected:
                raise self._corrupt(f'unexpected continuation flag {cflag}')
            parts.append(data[:length])
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(parts)

    def _corrupt(self, what):
        pos = self.handle.tell() if self.handle is not None else '?'
        return MXNetError(f'MXRecordIO: {self.uri!r} is not a valid RecordIO file near byte {pos}: {what}')


class MXIndexedRecordIO(MXRecordIO):
    """RecordIO with an index file, for random access by key (`read_idx`, `write_idx`)."""

    def __init__(self, idx_path, uri, flag, key_type=int):
        self.idx_path = str(idx_path)
        self.idx = {}
        self.keys = []
        self.key_type = key_type
        self.fidx = None
        super().__init__(uri, flag)

    def open(self):
        super().open()
        self.idx, self.keys = {}, []
        if self.writable:
            self.fidx = open(self.idx_path, 'w')
            return
        self.fidx = None
        try:
            with open(self.idx_path) as f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    fields = line.split('\t')
                    try:
                        key, pos = self.key_type(fields[0]), int(fields[1])
                    except (ValueError, IndexError):
                        raise MXNetError(f'MXIndexedRecordIO: {self.idx_path!r} line {n}: expected '
                                         f'"key<TAB>offset", got {line[:80]!r}') from None
                    if pos < 0:
                        raise MXNetError(f'MXIndexedRecordIO: {self.idx_path!r} line {n}: negative offset')
                    if key not in self.idx:
                        self.keys.append(key)
                    self.idx[key] = pos
        except OSError as e:
            super().close()
            raise MXNetError(f'MXIndexedRecordIO: cannot read the index {self.idx_path!r}: {e}') from None

    def close(self):
        if self.fidx is not None:
            self.fidx.close()
            self.fidx = None
        super().close()

    def __getstate__(self):
        state = super().__getstate__()
        state['fidx'] = None
        return state

    def seek(self, idx):
        """Position the reader at the record of key `idx`."""
        if self.writable:
            raise MXNetError('MXIndexedRecordIO.seek: the file is open for writing')
        self._check_pid()
        if idx not in self.idx:
            raise MXNetError(f'MXIndexedRecordIO: no record with key {idx!r} in {self.idx_path!r}')
        self.handle.seek(self.idx[idx])

    def read_idx(self, idx):
        """The record of key `idx`."""
        self.seek(idx)
        return self.read()

    def write_idx(self, idx, buf):
        """Append a record under key `idx` (written to the index file)."""
        key = self.key_type(idx)
        pos = self.tell()
        self.write(buf)
        self.fidx.write(f'{key}\t{pos}\n')
        self.idx[key] = pos
        self.keys.append(key)


# ---- image records ------------------------------------------------------------------------------
IRHeader = collections.namedtuple('HEADER', ['flag', 'label', 'id', 'id2'])
"""flag: number of float labels stored after the header (0: the one `label` field is it);
label: a float or an array of floats; id, id2: record ids (uint64)."""
_IR_FORMAT = 'IfQQ'
_IR_SIZE = struct.calcsize(_IR_FORMAT)


def pack(header, s):
    """The bytes of an image record: `header` (IRHeader) and the payload `s`. An array label
    is stored as float32 values after the header (flag = their number)."""
    header = IRHeader(*header)
    label = header.label
    if isinstance(label, numbers.Number):
        head = struct.pack(_IR_FORMAT, 0, float(label), int(header.id), int(header.id2))
        return head + bytes(s)
    label = np.asarray(label, dtype=np.float32).reshape(-1)
    head = struct.pack(_IR_FORMAT, label.size, 0.0, int(header.id), int(header.id2))
    return head + label.tobytes() + bytes(s)


def unpack(s):
    """(IRHeader, payload bytes) of an image record; an array label comes back as float32."""
    s = bytes(s)
    if len(s) < _IR_SIZE:
        raise MXNetError(f'recordio.unpack: a record is at least {_IR_SIZE} bytes, got {len(s)}')
    header = IRHeader(*struct.unpack(_IR_FORMAT, s[:_IR_SIZE]))
    s = s[_IR_SIZE:]
    if header.flag > 0:
        if len(s) < 4 * header.flag:
            raise MXNetError(f'recordio.unpack: the header announces {header.flag} labels, the record '
                             f'holds {len(s) // 4}')
        header = header._replace(label=np.frombuffer(s[:4 * header.flag], dtype=np.float32).copy())
        s = s[4 * header.flag:]
    return header, s


def unpack_img(s, iscolor=-1):
    """(IRHeader, image as a NumPy array) of an image record. As MXNet's (OpenCV's) the image is
    (H, W, 3) in BGR order for color images, (H, W) for grayscale; iscolor 1 forces color, 0
    grayscale, -1 keeps the stored kind."""
    from PIL import Image
    header, payload = unpack(s)
    try:
        im = Image.open(io.BytesIO(payload))
        im.load()
    except Exception as e:
        raise MXNetError(f'recordio.unpack_img: cannot decode the image ({type(e).__name__}: {e})') from None
    if iscolor == 1 or (iscolor == -1 and im.mode not in ('L', 'I;16', 'I', 'F', '1')):
        return header, np.asarray(im.convert('RGB'))[:, :, ::-1].copy()
    return header, np.asarray(im.convert('L'))


def pack_img(header, img, quality=95, img_fmt='.jpg'):
    """An image record of `img` ((H, W, 3) BGR as MXNet's/OpenCV's, or (H, W)) encoded as JPEG
    (quality 0-100) or PNG (quality: compression level 0-9)."""
    from PIL import Image
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise MXNetError(f'recordio.pack_img: expected a uint8 (H, W) or (H, W, 3) image, got '
                         f'{img.dtype} {img.shape}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    im = Image.fromarray(img[:, :, ::-1] if img.ndim == 3 else img)
    fmt = img_fmt.lower().lstrip('.')
    buf = io.BytesIO()
    if fmt in ('jpg', 'jpeg'):
        im.save(buf, 'JPEG', quality=int(quality))
    elif fmt == 'png':
        im.save(buf, 'PNG', compress_level=int(quality) if 0 <= int(quality) <= 9 else 3)
    else:
        raise MXNetError(f"recordio.pack_img: img_fmt must be '.jpg' or '.png', got {img_fmt!r}")
    return pack(header, buf.getvalue())
