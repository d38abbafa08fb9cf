"""Sparse storage (MXNet's `mx.nd.sparse`): `RowSparseNDArray`, `CSRNDArray` and the few
operations Gluon training uses on them (dot, cast_storage, row_sparse gradients and their
optimizer updates). Sparse arrays live on the CPU; their kernels are SciPy's and NumPy's.

A sparse array is an `NDArray` subclass (so `isinstance(x, mx.nd.NDArray)` holds, as in MXNet)
whose dense buffer `_data` is a sentinel that raises a clear error when engine code reads it.
A registered op given a sparse array runs on a dense copy (MXNet's storage fallback, in
`imperative.invoke`; the copy is a recorded `cast_storage`, so gradients come back in the
array's storage); any other dense code path fails loudly instead of reading garbage.
"""
import builtins
import numpy as np

from . import autograd
from .base import MXNetError, as_dtype, fmt_shape
from .context import Context, current_context
from .ndarray import NDArray

__all__ = ['BaseSparseNDArray', 'RowSparseNDArray', 'CSRNDArray', 'csr_matrix', 'row_sparse_array',
           'zeros', 'empty', 'array', 'dot', 'cast_storage', 'embedding']

STYPES = ('default', 'row_sparse', 'csr')
_IDX = np.int64   # MXNet's indices/indptr dtype


class _NoDense:
    """The `_data` of a sparse array: any use (shape, indexing, arithmetic) is an MXNetError."""
    __slots__ = ('stype', 'shape_')

    def __init__(self, stype, shape):
        self.stype, self.shape_ = stype, shape

    def _refuse(self, *args, **kwargs):
        raise MXNetError(f"this operation reads a dense buffer, but the array has storage type "
                         f"{self.stype!r} (shape {fmt_shape(self.shape_)}); it takes dense arrays only: "
                         "convert with .tostype('default') first")

    def __getattr__(self, name):
        self._refuse()

    __getitem__ = __setitem__ = __array__ = __iadd__ = __len__ = _refuse


def _check_stype(stype, what):
    if stype not in STYPES:
        raise MXNetError(f"{what}: unknown storage type {stype!r}; expected one of {list(STYPES)}")


def _cpu(ctx, what):
    ctx = current_context() if ctx is None else Context(ctx)
    if ctx.device_type != 'cpu':
        raise MXNetError(f'{what}: sparse arrays live on the CPU only (got ctx={ctx}); keep sparse '
                         'data on mx.cpu() or convert with tostype("default") before moving it')
    return ctx


class BaseSparseNDArray(NDArray):
    """Common part of the sparse arrays: values plus index arrays (NumPy, on the CPU)."""
    __slots__ = ('_sshape', '_values', '_aux')
    stype = None

    def __init__(self, values, aux, shape, ctx=None):
        ctx = _cpu(ctx, type(self).__name__)
        super().__init__(_NoDense(self.stype, shape), ctx)
        self._sshape, self._values, self._aux = tuple(int(s) for s in shape), values, aux

    shape = property(lambda self: self._sshape)
    dtype = property(lambda self: self._values.dtype.type)
    size = property(lambda self: int(np.prod(self._sshape, dtype=np.int64)))
    ndim = property(lambda self: len(self._sshape))

    @property
    def data(self):
        """The stored values (a copy, as MXNet's)."""
        return NDArray(self._values.copy(), self._ctx)

    @property
    def indices(self):
        return NDArray(self._aux[0].copy(), self._ctx)

    def asnumpy(self):
        return self._dense()

    def __array__(self, dtype=None, copy=None):
        d = self._dense()
        return d if dtype is None else d.astype(dtype)

    def __repr__(self):
        return (f'\n<{type(self).__name__} {"x".join(map(str, self.shape))} @{self._ctx}>')

    def tostype(self, stype):
        return cast_storage(self, stype)

    def todense(self):
        return cast_storage(self, 'default')

    def copy(self):
        return type(self)(self._values.copy(), tuple(a.copy() for a in self._aux), self._sshape, self._ctx)

    def detach(self):
        return type(self)(self._values, self._aux, self._sshape, self._ctx)

    def astype(self, dtype, copy=True):
        dt = as_dtype(dtype)
        if not copy and dt == self._values.dtype:
            return self
        return type(self)(self._values.astype(dt), tuple(a.copy() for a in self._aux), self._sshape, self._ctx)

    def as_in_context(self, ctx):
        _cpu(ctx, 'as_in_context')
        return self if ctx == self._ctx else self._on(ctx)

    def _on(self, ctx):
        """A copy on the (CPU) context `ctx`."""
        return type(self)(self._values.copy(), tuple(a.copy() for a in self._aux), self._sshape, ctx)

    def copyto(self, other):
        if isinstance(other, Context):
            _cpu(other, 'copyto')
            return self._on(other)
        if not isinstance(other, NDArray) or other.shape != self.shape:
            raise MXNetError(f'copyto: expected an NDArray of shape {fmt_shape(self.shape)}, got '
                             f'{getattr(other, "shape", type(other).__name__)}')
        if other.stype == 'default':
            other._data[...] = self._dense()
        else:
            other._assign(cast_storage(self, other.stype))
        return other

    def _assign(self, src):
        """Make this array hold `src`'s values (same stype and shape), keeping its identity
        (a parameter's gradient object stays the same across steps)."""
        if type(src) is not type(self) or src.shape != self.shape:
            raise MXNetError(f'cannot assign a {src.stype} array of shape {fmt_shape(src.shape)} to a '
                             f'{self.stype} array of shape {fmt_shape(self.shape)}')
        self._values = src._values.astype(self._values.dtype, copy=False)
        self._aux = src._aux

    def attach_grad(self, grad_req='write', stype=None):
        """As NDArray's; the gradient buffer has this array's storage type unless `stype` says
        otherwise (MXNet's default). Dense ops read a sparse array through a recorded dense copy
        (storage fallback), whose gradient comes back converted to this storage."""
        if grad_req not in ('write', 'add', 'null'):
            raise MXNetError(f"attach_grad: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        stype = self.stype if stype is None else stype
        if stype == 'default':
            g = NDArray(np.zeros(self._sshape, self._values.dtype), self._ctx)
        else:
            _check_stype(stype, 'attach_grad')
            g = zeros(stype, self._sshape, self._ctx, self._values.dtype)
        self._entry = (autograd.Leaf(g, grad_req), 0)

    def _inplace(self, fn, o):
        # x op= y: the dense op (storage fallback), its result stored back in this array's
        # storage (the array object stays the same); while recording, a new array as for dense
        res = fn(self, o)
        if autograd.is_recording() and (self._entry is not None or res._entry is not None):
            return res
        if res.shape != self.shape:
            raise MXNetError(f'in-place {fn.__name__}: the result has shape {fmt_shape(res.shape)}, '
                             f'which does not fit the {self.stype} array of shape {fmt_shape(self.shape)}')
        self._assign(cast_storage(res.astype(self.dtype, copy=False), self.stype))
        return self

    def __setitem__(self, key, value):
        raise MXNetError(f'setitem: assignment into a {self.stype} array is not supported; build a new '
                         'one (nd.sparse.csr_matrix / row_sparse_array) or convert with tostype("default")')

    def wait_to_read(self):
        pass


class RowSparseNDArray(BaseSparseNDArray):
    """Rows `indices` (sorted, unique, int64) of a (N, ...) array hold `data` (len(indices), ...);
    every other row is zero."""
    __slots__ = ()
    stype = 'row_sparse'

    def _dense(self):
        out = np.zeros(self._sshape, self._values.dtype)
        out[self._aux[0]] = self._values
        return out

    def retain(self, indices):
        """Only the rows in `indices` (MXNet's sparse.retain)."""
        keep = np.isin(self._aux[0], np.asarray(indices).astype(_IDX))
        return RowSparseNDArray(self._values[keep], (self._aux[0][keep],), self._sshape, self._ctx)

    # row_sparse + row_sparse stays row_sparse (gradients of a weight used twice add up this way);
    # with a dense array the sum is dense. A dense left operand defers here (subclass' __radd__).
    # Other sums (and any sum while recording with a variable in it) are the dense op on dense
    # copies (storage fallback), recorded as usual.
    def __add__(self, other):
        recorded = autograd.is_recording() and (
            self._entry is not None or getattr(other, '_entry', None) is not None)
        if isinstance(other, RowSparseNDArray) and not recorded:
            return _rsp_add(self, other)
        return NDArray.__add__(self, other)

    def __radd__(self, other):
        recorded = autograd.is_recording() and (
            self._entry is not None or getattr(other, '_entry', None) is not None)
        if isinstance(other, RowSparseNDArray) and not recorded:
            return _rsp_add(other, self)
        return NDArray.__radd__(self, other)


class CSRNDArray(BaseSparseNDArray):
    """A 2-D compressed sparse row matrix: row i's values are data[indptr[i]:indptr[i+1]] at
    columns indices[indptr[i]:indptr[i+1]]."""
    __slots__ = ()
    stype = 'csr'

    @property
    def indptr(self):
        return NDArray(self._aux[1].copy(), self._ctx)

    def _scipy(self):
        import scipy.sparse as sp
        return sp.csr_matrix((self._values, self._aux[0], self._aux[1]), shape=self._sshape)

    def asscipy(self):
        return self._scipy().copy()

    def __getitem__(self, key):
        """Rows as a CSRNDArray, as MXNet: a contiguous slice of axis 0, or one row (1, N).
        (A CSR array whose gradient is being recorded is sliced as a dense copy, recorded.)"""
        if autograd.is_recording() and self._entry is not None:
            return super().__getitem__(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = self._sshape[0]
            if not -n <= int(key) < n:
                raise MXNetError(f'CSRNDArray: row index {key} is out of range for shape {self._sshape}')
            key = builtins.slice(int(key) % n, int(key) % n + 1)
        if not isinstance(key, builtins.slice):
            raise MXNetError(f'CSRNDArray: index {key!r} is not supported; CSRNDArray takes a contiguous '
                             'slice of axis 0 or a row index (convert with .tostype("default") first)')
        if key.step not in (None, 1):
            raise MXNetError('CSRNDArray only supports continuous slicing on axis 0 (step 1)')
        return _from_scipy(self._scipy()[key], self._ctx, self.dtype)

    def _dense(self):
        return self._scipy().toarray()


# ---- creation ----------------------------------------------------------------------------------
def _np(x, dtype=None):
    if isinstance(x, BaseSparseNDArray):
        raise MXNetError('expected a dense array or a list, got a sparse array')
    a = np.array(x.asnumpy() if isinstance(x, NDArray) else x)
    return a if dtype is None else a.astype(dtype, copy=False)


def _value_dtype(dtype, source):
    if dtype is not None:
        return as_dtype(dtype)
    return source.dtype if isinstance(source, (np.ndarray, NDArray)) and np.dtype(source.dtype).kind == 'f' \
        else np.dtype(np.float32)


def csr_matrix(arg1, shape=None, ctx=None, dtype=None):
    """A CSRNDArray from (data, indices, indptr) with `shape`, (data, (row, col)) coordinates,
    a SciPy sparse matrix, a dense 2-D array (NDArray/NumPy/list), another CSRNDArray, or a
    shape (all zeros)."""
    import scipy.sparse as sp
    if isinstance(arg1, CSRNDArray):
        return arg1.astype(dtype or arg1.dtype).copy()
    if isinstance(arg1, tuple) and len(arg1) == 2 and all(isinstance(s, (int, np.integer)) for s in arg1):
        return zeros('csr', arg1, ctx, dtype)
    if isinstance(arg1, tuple) and len(arg1) == 2:          # (data, (row, col))
        data, (row, col) = arg1
        if shape is None:
            raise MXNetError('csr_matrix: (data, (row, col)) needs shape=')
        m = sp.coo_matrix((_np(data), (_np(row, _IDX), _np(col, _IDX))), shape=shape).tocsr()
        return _from_scipy(m, ctx, _value_dtype(dtype, data))
    if isinstance(arg1, tuple) and len(arg1) == 3:          # (data, indices, indptr)
        if shape is None:
            raise MXNetError('csr_matrix: (data, indices, indptr) needs shape=')
        data, indices, indptr = _np(arg1[0]), _np(arg1[1], _IDX), _np(arg1[2], _IDX)
        _check_csr(data, indices, indptr, _shape2(shape))
        return CSRNDArray(data.astype(_value_dtype(dtype, arg1[0])), (indices, indptr), shape, ctx)
    if sp.issparse(arg1):
        return _from_scipy(arg1.tocsr(), ctx, _value_dtype(dtype, arg1))
    if isinstance(arg1, RowSparseNDArray):
        return cast_storage(arg1, 'csr')
    dense = _np(arg1)
    if dense.ndim != 2:
        raise MXNetError(f'csr_matrix: a dense source must be 2-D, got shape {fmt_shape(dense.shape)}')
    return _from_scipy(sp.csr_matrix(dense), ctx, _value_dtype(dtype, arg1))


def _shape2(shape):
    s = tuple(int(v) for v in shape)
    if len(s) != 2 or min(s) < 0:
        raise MXNetError(f'csr_matrix: shape must be 2-D and non-negative, got {s}')
    return s


def _check_csr(data, indices, indptr, shape):
    """Refuse malformed CSR parts (SciPy would read out of bounds or silently misplace values)."""
    bad = None
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1 or len(data) != len(indices):
        bad = 'data and indices must be 1-D of one length, indptr 1-D'
    elif len(indptr) != shape[0] + 1 or indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0):
        bad = f'indptr must have {shape[0] + 1} non-decreasing entries from 0 to {len(data)}'
    elif indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
        bad = f'column indices must be in [0, {shape[1]})'
    if bad:
        raise MXNetError(f'csr_matrix: {bad}; got data {fmt_shape(data.shape)}, indices '
                         f'{fmt_shape(indices.shape)}, indptr {fmt_shape(indptr.shape)} for shape {shape}')


def _from_scipy(m, ctx, dtype):
    m = m.copy()
    m.sum_duplicates()      # canonical: sorted, unique column indices per row
    return CSRNDArray(m.data.astype(dtype), (m.indices.astype(_IDX), m.indptr.astype(_IDX)), m.shape, ctx)


def row_sparse_array(arg1, shape=None, ctx=None, dtype=None):
    """A RowSparseNDArray from (data, indices) with `shape` (data: (len(indices), *shape[1:]);
    indices are sorted and duplicate rows summed), a dense array, another RowSparseNDArray, or a
    shape (all zeros)."""
    if isinstance(arg1, RowSparseNDArray):
        return arg1.astype(dtype or arg1.dtype).copy()
    if isinstance(arg1, tuple) and all(isinstance(s, (int, np.integer)) for s in arg1):
        return zeros('row_sparse', arg1, ctx, dtype)
    if isinstance(arg1, tuple) and len(arg1) == 2:
        if shape is None:
            raise MXNetError('row_sparse_array: (data, indices) needs shape=')
        data, idx = _np(arg1[0]), _np(arg1[1])
        shape = tuple(int(s) for s in shape)
        if idx.ndim != 1 or data.shape != (len(idx),) + shape[1:]:
            raise MXNetError(f'row_sparse_array: data must have shape (len(indices),) + shape[1:] = '
                             f'{fmt_shape((len(idx),) + shape[1:])}, got data {fmt_shape(data.shape)}, '
                             f'indices {fmt_shape(idx.shape)}')
        return _rsp_rows(data.astype(_value_dtype(dtype, arg1[0])), idx, shape, ctx, 'row_sparse_array')
    if isinstance(arg1, CSRNDArray):
        return cast_storage(arg1, 'row_sparse')
    dense = _np(arg1).astype(_value_dtype(dtype, arg1))
    return cast_storage(NDArray(dense, _cpu(ctx, 'row_sparse_array')), 'row_sparse')


def _rsp_rows(data, idx, shape, ctx, what):
    """A RowSparseNDArray from rows `data` at (unsorted, maybe repeated) row numbers `idx`:
    sorted and deduplicated, repeated rows summed."""
    if idx.dtype.kind == 'f' and np.any(idx != np.floor(idx)):
        raise MXNetError(f'{what}: row indices must be integers')
    idx = idx.astype(_IDX)
    if idx.size and (idx.min() < 0 or idx.max() >= shape[0]):
        raise MXNetError(f'{what}: row index {int(idx.min() if idx.min() < 0 else idx.max())} is out of '
                         f'range for shape {fmt_shape(shape)}')
    uniq, inv = np.unique(idx, return_inverse=True)
    if len(uniq) == len(idx):
        order = np.argsort(idx, kind='stable')
        return RowSparseNDArray(np.ascontiguousarray(data[order]), (uniq,), shape, ctx)
    out = np.zeros((len(uniq),) + data.shape[1:], data.dtype)
    np.add.at(out, inv.reshape(-1), data)
    return RowSparseNDArray(out, (uniq,), shape, ctx)


def _rsp_add(a, b):
    if a.shape != b.shape:
        raise MXNetError(f'add: row_sparse arrays of shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)}')
    dt = np.result_type(a._values, b._values)
    return _rsp_rows(np.concatenate([a._values.astype(dt), b._values.astype(dt)]),
                     np.concatenate([a._aux[0], b._aux[0]]), a.shape, a._ctx, 'add')


def from_parts(stype, shape, data, aux, ctx=None):
    """A sparse array from a file's parts (MXNet's aux order: row_sparse (indices,), csr
    (indptr, indices)); malformed parts (unsorted or out-of-range rows, a bad indptr) are refused."""
    if stype == 'csr':
        if len(shape) != 2:
            raise MXNetError(f'load: a csr array must be 2-D, got shape {fmt_shape(shape)}')
        return csr_matrix((data, aux[1], aux[0]), shape=shape, ctx=ctx, dtype=data.dtype)
    idx = aux[0]
    if idx.ndim != 1 or data.shape != (len(idx),) + tuple(shape[1:]) or \
            (idx.size and (idx[0] < 0 or idx[-1] >= shape[0] or np.any(np.diff(idx) <= 0))):
        raise MXNetError(f'load: malformed row_sparse array of shape {fmt_shape(shape)}: values '
                         f'{fmt_shape(data.shape)}, indices {fmt_shape(idx.shape)} (expected increasing rows '
                         f'in [0, {shape[0]}) and values of shape (len(indices),) + shape[1:])')
    return RowSparseNDArray(np.array(data), (np.array(idx, _IDX),), shape, ctx)


def zeros(stype, shape, ctx=None, dtype=None, **kwargs):
    """An all-zero array of storage type `stype` (MXNet's nd.sparse.zeros)."""
    _check_stype(stype, 'zeros')
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    dt = as_dtype(dtype)
    if stype == 'default':
        from .ndarray import zeros as dense_zeros
        return dense_zeros(shape, ctx, dt)
    if stype == 'row_sparse':
        if not shape:
            raise MXNetError('zeros: a row_sparse array needs at least one dimension')
        return RowSparseNDArray(np.zeros((0,) + shape[1:], dt), (np.zeros(0, _IDX),), shape, ctx)
    shape = _shape2(shape)
    return CSRNDArray(np.zeros(0, dt), (np.zeros(0, _IDX), np.zeros(shape[0] + 1, _IDX)), shape, ctx)


empty = zeros


def array(source_array, ctx=None, dtype=None):
    """A sparse copy of a sparse array or a SciPy sparse matrix (MXNet's nd.sparse.array)."""
    import scipy.sparse as sp
    if isinstance(source_array, RowSparseNDArray):
        return row_sparse_array(source_array, ctx=ctx, dtype=dtype)
    if isinstance(source_array, CSRNDArray) or sp.issparse(source_array):
        return csr_matrix(source_array, ctx=ctx, dtype=dtype)
    raise MXNetError(f'sparse.array: expected a sparse NDArray or a SciPy sparse matrix, got '
                     f'{type(source_array).__name__} (use nd.array for dense data)')


# ---- storage conversion (differentiable: the gradient goes back in the source's storage) ------
def cast_storage(x, stype):
    """`x` converted to storage type `stype` (a copy; MXNet's cast_storage / tostype)."""
    _check_stype(stype, 'tostype')
    if not isinstance(x, NDArray):
        raise MXNetError(f'cast_storage: expected an NDArray, got {type(x).__name__}')
    src = x.stype
    if src == stype:
        out = x.copy()
    elif stype == 'default':
        out = NDArray(x._dense(), x._ctx)
    else:
        _cpu(x.context, f'tostype({stype!r})')
        a = x._dense() if src != 'default' else x.asnumpy()
        if stype == 'csr':
            if a.ndim != 2:
                raise MXNetError(f'tostype: csr storage is 2-D only, got shape {fmt_shape(a.shape)}')
            import scipy.sparse as sp
            out = _from_scipy(sp.csr_matrix(a), x._ctx, a.dtype)
        else:
            if a.ndim == 0:
                raise MXNetError('tostype: a row_sparse array needs at least one dimension')
            rows = np.flatnonzero(a.reshape(a.shape[0], -1).any(axis=1)).astype(_IDX)
            out = RowSparseNDArray(np.ascontiguousarray(a[rows]), (rows,), a.shape, x._ctx)
    if autograd.is_recording() and x._entry is not None and src != stype:
        autograd.record_op(_CastStorage(src), [x], {}, [out])
    return out


class _CastStorage:
    """Tape op of a storage conversion: the gradient goes back converted to the source's storage
    (dense sources get dense gradients; a sparse source, such as a sparse variable read by a
    dense op, gets its gradient's non-zero rows or entries, exact values of every element)."""
    differentiable, multi_output, name = True, False, 'cast_storage'

    def __init__(self, src):
        self.src = src

    def grad(self, g, out, x):
        return [g if g.stype == self.src else cast_storage(g, self.src)]


def _dense_np(x):
    return x._dense() if isinstance(x, BaseSparseNDArray) else np.asarray(x)


# ---- dot -----------------------------------------------------------------------------------------
def dot(lhs, rhs, transpose_a=False, transpose_b=False):
    """Matrix product with sparse operands (MXNet's nd.sparse.dot), CPU kernels from SciPy:

    * dot(csr, dense) -> dense; dot(csr, dense, transpose_a=True) -> row_sparse holding the rows
      of the csr's non-empty columns (the gradient of a sparse linear layer's weight);
    * dot(row_sparse, dense) -> dense (transpose_a too);
    * dot(dense, csr) -> dense (transpose_a too).
    transpose_b transposes a dense rhs. Differentiable w.r.t. the dense operand (a dense weight
    attached with attach_grad(stype='row_sparse') gets a row_sparse gradient from dot(csr, w)).
    A row_sparse rhs is read through a recorded dense copy (MXNet's storage fallback; its
    gradient comes back row_sparse)."""
    for x in (lhs, rhs):
        if not isinstance(x, NDArray):
            raise MXNetError(f'sparse.dot: expected NDArrays, got {type(x).__name__}')
    if rhs.stype == 'row_sparse':
        rhs = cast_storage(rhs, 'default')
    kinds = (lhs.stype, rhs.stype)
    ok = kinds in (('csr', 'default'), ('row_sparse', 'default'), ('default', 'csr'), ('default', 'default'))
    if not ok or lhs.ndim != 2 or rhs.ndim != 2 or (transpose_b and rhs.stype != 'default'):
        raise MXNetError(f'sparse.dot: storage types ({kinds[0]}, {kinds[1]}) with shapes '
                         f'{fmt_shape(lhs.shape)}, {fmt_shape(rhs.shape)}, transpose_a={transpose_a}, '
                         f'transpose_b={transpose_b} are not supported; supported: 2-D dot(csr, dense), '
                         'dot(row_sparse, dense) (both with transpose_a, transpose_b), '
                         'dot(dense, csr) (with transpose_a)')
    if kinds == ('default', 'default'):
        from .ops import dot as dense_dot
        return dense_dot(lhs, rhs, transpose_a=transpose_a, transpose_b=transpose_b)
    if lhs.context != rhs.context:
        raise MXNetError(f'sparse.dot: operands on {lhs.context} and {rhs.context}')
    m, k = lhs.shape[::-1] if transpose_a else lhs.shape
    k2, n = rhs.shape[::-1] if transpose_b else rhs.shape
    if k != k2:
        raise MXNetError(f'sparse.dot: inner dimensions differ: ({kinds[0]}) {fmt_shape(lhs.shape)}'
                         f'{".T" if transpose_a else ""} x ({kinds[1]}) {fmt_shape(rhs.shape)}'
                         f'{".T" if transpose_b else ""}')
    if lhs.dtype != rhs.dtype:
        raise MXNetError(f'sparse.dot: operands have dtypes {np.dtype(lhs.dtype).name} and '
                         f'{np.dtype(rhs.dtype).name}; cast them to one first')
    out = _dot_kernel(lhs, rhs, transpose_a, transpose_b, (m, n))
    if autograd.is_recording() and (lhs._entry is not None or rhs._entry is not None):
        autograd.record_op(_SparseDot(), [lhs, rhs], {'transpose_a': transpose_a, 'transpose_b': transpose_b}, [out])
    return out


def _dot_kernel(lhs, rhs, ta, tb, shape):
    ctx = lhs.context
    if lhs.stype == 'default':                     # dense x csr = (csr^T x dense^T)^T
        d = np.asarray(lhs)
        return NDArray(np.ascontiguousarray((rhs._scipy().T @ (d.T if not ta else d)).T), ctx)
    b = np.asarray(rhs)
    b = b.T if tb else b
    if lhs.stype == 'row_sparse':
        rows, vals = lhs._aux[0], lhs._values
        if ta:                                     # (rows of lhs)^T x the matching rows of b
            return NDArray(np.ascontiguousarray(vals.T @ b[rows]), ctx)
        out = np.zeros(shape, np.result_type(vals, b))
        out[rows] = vals @ b
        return NDArray(out, ctx)
    if not ta:
        return NDArray(np.asarray(lhs._scipy() @ b), ctx)
    # csr^T x dense: only the csr's non-empty columns give non-zero rows; compute just those
    import scipy.sparse as sp
    cols, pos = np.unique(lhs._aux[0], return_inverse=True)
    compact = sp.csr_matrix((lhs._values, pos.reshape(-1), lhs._aux[1]), shape=(lhs.shape[0], len(cols)))
    vals = np.asarray(compact.T @ b)
    return RowSparseNDArray(np.ascontiguousarray(vals), (cols.astype(_IDX),), shape, ctx)


class _SparseDot:
    """Tape op of sparse.dot; gradients go to the dense operand (sparse arrays take none)."""
    differentiable, multi_output, name = True, False, 'sparse.dot'

    def grad(self, g, out, lhs, rhs, transpose_a, transpose_b):
        if autograd.is_recording():
            raise MXNetError('sparse.dot: second-order gradients (create_graph=True) are not supported')
        g = g if g.stype == 'default' else cast_storage(g, 'default')
        if lhs.stype == 'default':                 # out = op(D) x C: dD = g x C^T (transposed back)
            c, gn = rhs._scipy(), np.asarray(g)
            gl = np.asarray(c @ gn.T) if transpose_a else np.asarray((c @ gn.T).T)
            return [NDArray(np.ascontiguousarray(gl), g.context), None]
        # out = op(S) x op(B): dB = op(S)^T g (transposed back when transpose_b)
        gb = dot(lhs, g, transpose_a=not transpose_a)
        if transpose_b:
            gb = NDArray(np.ascontiguousarray(_dense_np(gb).T), g.context)
        return [None, gb]


# ---- Embedding with a row_sparse weight gradient ----------------------------------------------------
def embedding(data, weight):
    """The rows of `weight` at `data` (as nd.Embedding), recorded so that the weight's gradient is
    a RowSparseNDArray of the rows used (sorted, unique, repeated rows' gradients summed)."""
    from .ops import Embedding as dense_embedding
    with autograd.pause(train_mode=autograd.is_training()):
        out = dense_embedding(data, weight)
    if autograd.is_recording() and weight._entry is not None:
        autograd.record_op(_SparseEmbedding(), [data, weight], {}, [out])
    return out


class _SparseEmbedding:
    differentiable, multi_output, name = True, False, 'Embedding(sparse_grad=True)'

    def grad(self, g, out, data, weight):
        if autograd.is_recording():
            raise MXNetError('Embedding(sparse_grad=True): second-order gradients (create_graph=True) '
                             'are not supported; use sparse_grad=False')
        gd = np.asarray(g)
        idx = np.asarray(data)
        if idx.dtype.kind == 'f':      # float indices select rows as the forward's: truncated
            idx = idx.astype(np.int64)
        rows = _rsp_rows(gd.reshape(-1, gd.shape[-1]), idx.reshape(-1), weight.shape, g.context,
                         'Embedding(sparse_grad=True) backward')
        return [None, rows.astype(weight.dtype, copy=False)]


# ---- gradients landing in a variable (autograd.backward) ---------------------------------------------
def write_grad(leaf, g):
    """Store gradient `g` (None: none reached) in `leaf.grad` by its grad_req, when either is sparse.
    A dense gradient never silently fills a row_sparse buffer: which rows it touched is unknown."""
    buf = leaf.grad
    if buf.stype == 'default':               # a sparse gradient into a dense buffer: its values
        if leaf.grad_req == 'add':
            buf._data += g._dense()
        else:
            buf._data[...] = g._dense()
        return
    if g is None:
        if leaf.grad_req == 'write':
            buf._assign(zeros(buf.stype, buf.shape, buf.context, buf.dtype))
        return
    if g.stype != buf.stype and buf.stype == 'csr':
        g = cast_storage(g, 'csr')           # a csr buffer only stores values: convert them
    if g.stype != buf.stype:
        raise MXNetError(
            f'backward: a {g.stype} gradient of shape {fmt_shape(g.shape)} reached a variable whose '
            f'gradient storage is {buf.stype} (grad_stype / attach_grad(stype=...)). Dense gradients come '
            'from dense ops using the weight and from hybridized blocks, whose compiled backward is '
            "dense: call such a block without hybridize(), or use sparse_grad=False / grad_stype='default'")
    if leaf.grad_req == 'add':
        g = _rsp_add(buf, g) if buf.stype == 'row_sparse' else _csr_add(buf, g)
    buf._assign(g)


def _csr_add(a, b):
    m = (a._scipy() + b._scipy()).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return _from_scipy(m, a.context, a.dtype)
