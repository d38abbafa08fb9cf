"""NDArray: a buffer (NumPy or CuPy array) plus its context and its autograd entry."""
import builtins
import ctypes

import numpy as np

from . import autograd
from .base import MXNetError, MXNetValueError, as_dtype, fmt_shape
from .context import Context, context_of, current_context

py_slice = builtins.slice   # MXNet's name for the builtin (this module's users import it)
# MXNet's storage type ids (the '__storage_type__' attribute of symbol variables)
_STORAGE_TYPE_STR_TO_ID = {'undefined': -1, 'default': 0, 'row_sparse': 1, 'csr': 2}


class NDArray:
    """An n-dimensional array on a device. Operators and methods dispatch to the op library."""
    __slots__ = ('_data', '_ctx', '_entry', '__weakref__')
    __array_priority__ = 1000.0  # NumPy scalars on the left defer to our reflected operators

    def __init__(self, data, ctx=None):
        self._data = data
        # without an explicit context, the buffer says where it lives (a NumPy buffer wrapped
        # inside `with mx.gpu(0):` is still on the CPU)
        self._ctx = ctx or context_of(data)
        self._entry = None

    # ---- basic properties -------------------------------------------------
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype.type)
    size = property(lambda self: int(self._data.size))
    ndim = property(lambda self: self._data.ndim)
    context = property(lambda self: self._ctx)
    ctx = context

    @property
    def T(self):
        return _ops.transpose(self)

    @property
    def grad(self):
        leaf = self._entry[0] if self._entry else None
        return leaf.grad if isinstance(leaf, autograd.Leaf) else None

    @property
    def _fresh_grad(self):
        """MXNet's flag: a backward pass wrote this variable's gradient since it was cleared."""
        leaf = self._entry[0] if self._entry else None
        return isinstance(leaf, autograd.Leaf) and leaf.fresh

    @_fresh_grad.setter
    def _fresh_grad(self, value):
        leaf = self._entry[0] if self._entry else None
        if not isinstance(leaf, autograd.Leaf):
            raise MXNetError('_fresh_grad: the array is not a variable (call attach_grad first)')
        leaf.fresh = bool(value)

    def __len__(self):
        if self.ndim == 0:
            raise MXNetError('len() of a 0-d NDArray')
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        body = str(self.asnumpy())
        shape = 'x'.join(str(s) for s in self.shape) or '1'
        return f'\n{body}\n<NDArray {shape} @{self._ctx}>'

    # ---- conversion --------------------------------------------------------
    def asnumpy(self):
        """A NumPy copy of the values (as in MXNet: writing into it leaves the array unchanged).
        `np.asarray(x)` is the zero-copy route for a CPU array (a view of its buffer)."""
        d = self._data
        return d.copy() if isinstance(d, np.ndarray) else d.get()

    def asscalar(self):
        """The value of a size-1 array as a NumPy scalar of its dtype (as MXNet)."""
        if self.size != 1:
            raise MXNetValueError(f'asscalar: array has shape {fmt_shape(self.shape)}; only size-1 '
                                  'arrays convert to a scalar')
        return self.asnumpy().reshape(())[()]

    def item(self):
        """The value of a size-1 array as a Python scalar (as NumPy's item)."""
        return self.asscalar().item()

    def __bool__(self):
        # MXNet: an empty array is False, a size-1 array its value, any other size ambiguous
        if self.size == 0:
            return False
        if self.size != 1:
            raise MXNetValueError(f'the truth value of an NDArray of shape {fmt_shape(self.shape)} '
                                  'is ambiguous; use .asscalar() on a size-1 array or reduce it first')
        return bool(self.asscalar())

    def __float__(self):
        return float(self.asscalar())

    def __int__(self):
        return int(self.asscalar())

    def __index__(self):
        if np.dtype(self.dtype).kind not in 'iub':
            raise MXNetError('only integer NDArrays can be used as an index')
        return int(self.asscalar())

    def __array__(self, dtype=None, copy=None):
        # zero-copy for CPU arrays unless a copy or another dtype is asked for (NumPy protocol)
        d = self._data
        a = d if isinstance(d, np.ndarray) else d.get()
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __dlpack__(self, **kwargs):
        # zero-copy export (engine/dlpack.py): np.from_dlpack(x), torch.from_dlpack(x)
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def to_dlpack_for_read(self):
        return self._data.__dlpack__()

    to_dlpack_for_write = to_dlpack_for_read

    def astype(self, dtype, copy=True):
        dt = as_dtype(dtype)
        if not copy and dt == self._data.dtype:
            return self
        return _ops.cast(self, dtype=dt.name)

    def copy(self):
        return _ops.copy(self)

    # MXNet's storage type: 'default' (dense); the sparse subclasses are in ndarray_sparse.py
    stype = 'default'

    def tostype(self, stype):
        """A copy in storage type 'default', 'row_sparse' or 'csr' (MXNet's cast_storage)."""
        from .ndarray_sparse import cast_storage
        return cast_storage(self, stype)

    def copyto(self, other):
        """Copy into another NDArray (same shape) or onto a Context; returns the target."""
        if isinstance(other, Context):
            if other.device_type == 'cpu' and self._ctx.device_type == 'cpu' and other != self._ctx:
                return NDArray(self._data.copy(), other)   # CPU contexts share the host: copy
            return self.as_in_context(other) if other != self._ctx else self.copy()
        if not isinstance(other, NDArray):
            raise MXNetError(f'copyto: expected an NDArray or a Context, got {type(other).__name__}')
        if other.shape != self.shape:
            raise MXNetError(f'copyto: shape mismatch {fmt_shape(self.shape)} -> {fmt_shape(other.shape)}')
        other._data[...] = _move(self._data, other._ctx)
        return other

    def as_in_context(self, ctx):
        """This array on `ctx` (itself when already there); differentiable across devices."""
        if ctx == self._ctx:
            return self
        out = NDArray(_move(self._data, ctx), ctx)
        if autograd.is_recording() and self._entry is not None:
            autograd.record_op(_ToContext(self._ctx), [self], {}, [out])
        return out

    def wait_to_read(self):
        """Block until the kernels writing this array have finished (GPU kernels run
        asynchronously; CPU ones have finished when they return)."""
        if self._ctx.device_type == 'gpu':
            with self._ctx.scope():
                self._ctx.xp.cuda.get_current_stream().synchronize()

    wait_to_write = wait_to_read

    # ---- autograd ------------------------------------------------------------
    def attach_grad(self, grad_req='write', stype=None):
        """Mark as a variable: gradients computed under record() land in `.grad`."""
        if grad_req not in ('write', 'add', 'null'):
            raise MXNetError(f"attach_grad: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        if stype not in (None, 'default'):   # a sparse gradient buffer (row_sparse, csr)
            from . import ndarray_sparse
            if stype not in ('row_sparse', 'csr'):
                raise MXNetError(f"attach_grad: gradient storage type {stype!r} is not supported; "
                                 "use 'default', 'row_sparse' or 'csr'")
            g = ndarray_sparse.zeros(stype, self.shape, self._ctx, self.dtype)
            self._entry = (autograd.Leaf(g, grad_req), 0)
            return
        with self._ctx.scope():
            g = NDArray(self._ctx.xp.zeros_like(self._data), self._ctx)
        self._entry = (autograd.Leaf(g, grad_req), 0)

    def detach(self):
        return NDArray(self._data, self._ctx)

    def backward(self, out_grad=None, retain_graph=False, train_mode=True):
        autograd.backward(self, out_grad, retain_graph, train_mode)

    # ---- indexing ------------------------------------------------------------------
    # ---- pickling: MXNet's state {'handle': raw NDArray bytes}, read by the bounds-checked
    # parser of the file format (never unpickled code); sparse arrays keep their slot state
    def __getstate__(self):
        if self.stype != 'default':
            return object.__getstate__(self)
        from .ndarray_file import entry_bytes
        return {'handle': bytearray(entry_bytes(self.asnumpy())),
                'context': (self._ctx.device_type, self._ctx.device_id)}

    def __setstate__(self, state):
        if isinstance(state, tuple):        # a sparse array's slot state
            for k, v in state[1].items():
                object.__setattr__(self, k, v)
            return
        if not isinstance(state, dict) or 'handle' not in state:
            raise MXNetError("NDArray.__setstate__: expected {'handle': bytes}")
        from .ndarray_file import read_entry
        a = read_entry(state['handle'], 'the pickled NDArray')
        self._data, self._ctx, self._entry = np.array(a), Context('cpu', 0), None
        dev = state.get('context')          # this engine's pickles: back on their device if present
        if isinstance(dev, tuple) and len(dev) == 2 and dev[0] == 'cpu' and isinstance(dev[1], int) and dev[1] >= 0:
            self._ctx = Context('cpu', dev[1])
        elif isinstance(dev, tuple) and len(dev) == 2 and dev[0] == 'gpu':
            from .context import num_gpus
            if isinstance(dev[1], int) and 0 <= dev[1] < num_gpus():
                moved = self.as_in_context(Context('gpu', dev[1]))
                self._data, self._ctx = moved._data, moved._ctx

    @staticmethod
    def _basic_indexing_slice_is_contiguous(slc_key, shape):
        """Whether ``x[slc_key]`` (a basic key: ints and slices, one per leading axis) of a
        C-contiguous array of ``shape`` is C-contiguous again (NumPy's rule: every axis longer
        than 1 has the stride of the axes after it, or the result is empty)."""
        key = slc_key if isinstance(slc_key, tuple) else (slc_key,)
        if len(key) > len(shape):
            raise MXNetError(f'too many indices ({len(key)}) for shape {fmt_shape(shape)}')
        strides, acc = [], 1
        for n in reversed(shape):
            strides.insert(0, acc)
            acc *= n
        dims, steps = [], []
        for i, n in enumerate(shape):
            k = key[i] if i < len(key) else builtins.slice(None)
            if isinstance(k, builtins.slice):
                dims.append(len(range(*k.indices(n))))
                steps.append(strides[i] * (k.step if k.step is not None else 1))
            elif isinstance(k, (int, np.integer)):
                continue
            else:
                raise MXNetError(f'_basic_indexing_slice_is_contiguous: {k!r} is not an int or a slice')
        if 0 in dims:
            return True
        expect = 1
        for d, st in zip(reversed(dims), reversed(steps)):
            if d == 1:
                continue
            if st != expect:
                return False
            expect *= d
        return True

    def __getitem__(self, key):
        return _ops.getitem(self, key)

    def __setitem__(self, key, value):
        if autograd.is_recording() and (self._entry is not None or
                                        (isinstance(value, NDArray) and value._entry is not None)):
            # not differentiable: writing a recorded value into a buffer would drop its gradient
            # the message starts as MXNet's, which code (and MXNet's tests) match on
            raise MXNetError('Inplace operations (+=, -=, x[:]=, etc) are not supported when recording with '
                             'autograd: in-place assignment to or from an array that is part of a recorded '
                             'graph; build a new array instead (e.g. with where/concat/stack)')
        if isinstance(value, (list, tuple)):   # as MXNet: a sequence assigns like an array of it
            value = np.asarray(value, dtype=self.dtype)
        v = value._data if isinstance(value, NDArray) else value
        if isinstance(value, NDArray) and value._ctx != self._ctx:
            v = _move(v, self._ctx)
        elif isinstance(value, np.ndarray) and self._ctx.device_type != 'cpu':
            v = _move(v, self._ctx)   # a host array written into a device buffer: copy it over
        if any(isinstance(k, (NDArray, list, np.ndarray)) for k in (key if isinstance(key, tuple) else (key,))):
            # integer-array parts as int64 (MXNet indices are often float32 arrays), in range
            # (CuPy would wrap an out-of-range index around) and boolean masks of the right shape
            template, arrays = _ops.index.encode_key(key, self._ctx, self.shape, 'setitem')
            idx = [a._data.astype(np.int64, copy=False) for a in arrays]
            _ops.index._check_index_arrays('setitem', template, idx, self.shape)
            key = _ops.index.decode_key(template, idx)
        if getattr(v, 'ndim', 0) > 0 and v.size == 1:
            v = v.reshape(())   # as MXNet: a one-element array assigns like its value (NumPy 2
            #                     refuses a (1,) array for a single element)
        try:
            self._data[key] = v
        except (IndexError, ValueError, TypeError) as e:
            why = _setitem_words(key, self.shape) or e
            raise MXNetError(f'setitem: cannot assign to index {key!r} of an array of shape '
                             f'{fmt_shape(self.shape)}: {why}') from None

    # ---- arithmetic ------------------------------------------------------------
    def __add__(self, o): return _ops.add(self, o)
    def __radd__(self, o): return _ops.add(self, o)
    def __sub__(self, o): return _ops.subtract(self, o)
    def __rsub__(self, o): return _ops.subtract(o, self)
    def __mul__(self, o): return _ops.multiply(self, o)
    def __rmul__(self, o): return _ops.multiply(self, o)
    def __truediv__(self, o): return _ops.divide(self, o)
    def __rtruediv__(self, o): return _ops.divide(o, self)
    def __mod__(self, o): return _ops.modulo(self, o)
    def __rmod__(self, o): return _ops.modulo(o, self)
    def __pow__(self, o): return _ops.power(self, o)
    def __rpow__(self, o): return _ops.power(o, self)
    def __neg__(self): return _ops.negative(self)
    def __abs__(self): return _ops.abs(self)
    def __eq__(self, o): return _ops.equal(self, o)
    def __ne__(self, o): return _ops.not_equal(self, o)
    def __gt__(self, o): return _ops.greater(self, o)
    def __ge__(self, o): return _ops.greater_equal(self, o)
    def __lt__(self, o): return _ops.lesser(self, o)
    def __le__(self, o): return _ops.lesser_equal(self, o)
    __hash__ = object.__hash__

    def _inplace(self, fn, o):
        # Outside recording, update the buffer (parameters are updated this way);
        # while recording, rebind to a new array so the tape stays correct.
        res = fn(self, o)
        if autograd.is_recording() and (self._entry is not None or res._entry is not None):
            return res
        if res.shape != self.shape:
            raise MXNetError(f'in-place {fn.__name__}: the result has shape {fmt_shape(res.shape)}, '
                             f'which does not fit the array of shape {fmt_shape(self.shape)}')
        self._data[...] = res._data
        return self

    def __iadd__(self, o): return self._inplace(_ops.add, o)
    def __isub__(self, o): return self._inplace(_ops.subtract, o)
    def __imul__(self, o): return self._inplace(_ops.multiply, o)
    def __itruediv__(self, o): return self._inplace(_ops.divide, o)

    # ---- shape helpers that take MXNet's varargs forms --------------------------------
    def reshape(self, *shape, **kw):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not shape and 'shape' in kw:
            shape = kw.pop('shape')
        return _ops.reshape(self, shape, **kw)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)


def _setitem_words(key, shape):
    """getitem's own words for a bad key (None when they do not cover it: NumPy's then)."""
    try:
        return _ops.index._index_words(_ops.index.encode_key(key)[0], shape)
    except MXNetError:
        return None


class _ToContext:
    """Tape op of a copy between devices: the gradient travels back to the source device."""
    differentiable, multi_output, name = True, False, 'to_context'

    def __init__(self, src):
        self.src = src

    def grad(self, g, out, x):
        return [g.as_in_context(self.src)]


def _move(data, ctx):
    """Copy a raw buffer onto `ctx` (host <-> device, or device -> device)."""
    if ctx.device_type == 'cpu':
        return data if isinstance(data, np.ndarray) else data.get()
    xp = ctx.xp
    with ctx.scope():
        if isinstance(data, xp.ndarray):
            # asarray would return a buffer of another GPU unchanged; copy() lands on the
            # current device (a peer copy)
            return data if data.device.id == ctx.device_id else data.copy()
        return xp.asarray(data)


# ---- creation ------------------------------------------------------------------------
def _ctx(ctx):
    return current_context() if ctx is None else Context(ctx)


def _shape(shape, what='shape'):
    """A user shape as a tuple of non-negative ints; `what` names the caller in errors."""
    try:
        s = (int(shape),) if np.isscalar(shape) else tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise MXNetError(f'{what}: shape {shape!r} must be an integer or a sequence of integers') from None
    if any(v < 0 for v in s):
        raise MXNetError(f'{what}: shape {s} has a negative dimension')
    return s


def allocate(what, fn, shape, dtype):
    """`fn()` allocating an array of `shape`/`dtype`; running out of memory is an MXNetError
    with the request's size (NumPy says MemoryError, CuPy OutOfMemoryError, a MemoryError too)."""
    try:
        return fn()
    except MemoryError:
        n = float(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
        raise MXNetError(f'{what}: cannot allocate an array of shape {fmt_shape(shape)} {np.dtype(dtype).name} '
                         f'({n / 2 ** 30:.3g} GiB)') from None


def array(source_array, ctx=None, dtype=None):
    """A new NDArray from a list, NumPy array or NDArray (float32 unless the source is an NDArray
    or `dtype` says otherwise, as in MXNet)."""
    ctx = _ctx(ctx)
    if isinstance(source_array, NDArray):
        dtype = source_array.dtype if dtype is None else dtype
        source_array = np.asarray(source_array)   # np.array below copies
    dt = as_dtype(dtype)
    try:
        a = np.array(source_array, dtype=dt)
    except (ValueError, TypeError) as e:
        raise MXNetError(f'array: cannot convert {type(source_array).__name__} to an NDArray: {e}') from None
    return NDArray(_move(a, ctx) if ctx.device_type != 'cpu' else a, ctx)


def _fill(what, shape, ctx, dtype, value, out=None):
    """A new array of `shape` holding `value` (None: uninitialized), or `out` filled with it
    (as MXNet's `out=`: the same array comes back)."""
    if out is not None:
        return _fill_out(what, shape, ctx, dtype, value, out)
    ctx = _ctx(ctx)
    xp = ctx.xp
    shape, dt = _shape(shape, what), as_dtype(dtype)
    with ctx.scope():   # CuPy allocates on the current device
        if value is None:
            return NDArray(allocate(what, lambda: xp.empty(shape, dtype=dt), shape, dt), ctx)
        return NDArray(allocate(what, lambda: xp.full(shape, value, dtype=dt), shape, dt), ctx)


def _fill_out(what, shape, ctx, dtype, value, out):
    if not isinstance(out, NDArray):
        raise MXNetError(f'{what}: out must be an NDArray, got {type(out).__name__}')
    if _shape(shape) != out.shape:
        raise MXNetError(f'{what}: shape {fmt_shape(_shape(shape))} does not match out of shape '
                         f'{fmt_shape(out.shape)}')
    if dtype is not None and as_dtype(dtype) != np.dtype(out.dtype):
        raise MXNetError(f'{what}: dtype {as_dtype(dtype).name} does not match out of dtype '
                         f'{np.dtype(out.dtype).name}')
    if ctx is not None and Context(ctx) != out.context:
        raise MXNetError(f'{what}: ctx {Context(ctx)} does not match out on {out.context}')
    if value is not None:
        out[:] = value
    return out


def zeros(shape, ctx=None, dtype=None, out=None, stype=None, **kwargs):
    if stype not in (None, 'default'):
        from .ndarray_sparse import zeros as sparse_zeros
        return sparse_zeros(stype, shape, ctx, dtype)
    return _fill('zeros', shape, ctx, dtype, 0, out)


def ones(shape, ctx=None, dtype=None, out=None, **kwargs):
    return _fill('ones', shape, ctx, dtype, 1, out)


def empty(shape, ctx=None, dtype=None, out=None):
    return _fill('empty', shape, ctx, dtype, None, out)


def full(shape, val, ctx=None, dtype=None, out=None, **kwargs):
    return _fill('full', shape, ctx, dtype, val, out)


def arange(start, stop=None, step=1.0, repeat=1, ctx=None, dtype=None, **kwargs):
    ctx = _ctx(ctx)
    if step == 0 or int(repeat) < 1:
        raise MXNetError(f'arange: step must be nonzero and repeat >= 1, got start={start}, stop={stop}, '
                         f'step={step}, repeat={repeat}')
    with ctx.scope():
        a = ctx.xp.arange(start, stop, step, dtype=as_dtype(dtype))
        if repeat != 1:
            a = ctx.xp.repeat(a, repeat)
    return NDArray(a, ctx)


def eye(N, M=0, k=0, ctx=None, dtype=None, **kwargs):
    """An N x M (M=0: N x N) array with ones on the k-th diagonal."""
    ctx = _ctx(ctx)
    with ctx.scope():
        return NDArray(ctx.xp.eye(int(N), int(M) or None, int(k), dtype=as_dtype(dtype)), ctx)


def linspace(start, stop, num, endpoint=True, ctx=None, dtype=None):
    """`num` evenly spaced values from start to stop (stop excluded with endpoint=False)."""
    ctx = _ctx(ctx)
    with ctx.scope():
        return NDArray(ctx.xp.linspace(start, stop, int(num), endpoint=endpoint,
                                       dtype=as_dtype(dtype)), ctx)


def from_numpy(ndarray, zero_copy=True):
    """An NDArray from a NumPy array; with zero_copy the two share memory and, as in MXNet, the
    NumPy array becomes read-only (write through the NDArray)."""
    if not isinstance(ndarray, np.ndarray):
        raise MXNetError(f'from_numpy: expected a NumPy array, got {type(ndarray).__name__}')
    if not zero_copy:
        return array(ndarray, dtype=ndarray.dtype)
    if not ndarray.flags.c_contiguous:      # a ValueError too, as MXNet
        raise MXNetValueError(f'from_numpy: zero_copy needs a C-contiguous array (shape '
                         f'{fmt_shape(ndarray.shape)}); pass zero_copy=False or np.ascontiguousarray')
    as_dtype(ndarray.dtype)     # an unsupported dtype is an error here, not later
    ndarray.flags.writeable = False
    return NDArray(_writable_alias(ndarray), Context('cpu'))


def _writable_alias(a):
    """A writable array over a's memory that keeps `a` alive: NumPy will not make a writable
    view of a read-only array (from_numpy may see the same source twice), MXNet's shared
    buffer is writable regardless."""
    raw = (ctypes.c_char * a.nbytes).from_address(a.ctypes.data)
    raw.source = a
    return np.frombuffer(raw, dtype=a.dtype).reshape(a.shape)


def zeros_like(data, out=None, **kwargs):
    return _fill_like('zeros_like', data, 0, out)


def ones_like(data, out=None, **kwargs):
    return _fill_like('ones_like', data, 1, out)


def _fill_like(what, data, value, out):
    """An array of data's shape, dtype and context holding `value`; on a Symbol being traced
    (F.zeros_like inside a hybridized block) the full_like op, which the graph records."""
    if not isinstance(data, NDArray):
        if getattr(data, '_is_symbol', False) and out is None:
            return _ops.full_like(data, value)
        raise MXNetError(f'{what}: expected an NDArray, got {type(data).__name__}')
    if out is not None:
        return _fill_out(what, data.shape, None, data.dtype, value, out)
    if data.stype != 'default':   # as MXNet: zeros keep the sparse storage, ones are dense
        from . import ndarray_sparse
        if value == 0:
            return ndarray_sparse.zeros(data.stype, data.shape, data._ctx, data.dtype)
        return NDArray(np.full(data.shape, value, data.dtype), data._ctx)
    with data._ctx.scope():
        return NDArray(data._ctx.xp.full_like(data._data, value), data._ctx)


from . import ops as _ops  # noqa: E402  (the op library needs NDArray defined first)

for _name in _ops.METHODS:
    setattr(NDArray, _name, getattr(_ops, _name))
