"""The eager executor: infer, run the kernel, wrap the outputs, record on the tape."""
import numpy as np

from . import autograd, profiler
from .base import MXNetError, fmt_shape
from .ndarray import NDArray


# Mixed input dtypes. Most kernels compute in their first input's dtype and would silently cast
# the others to it (an int32 image convolved with float weights: 5 instead of 10.47), so the
# array inputs of an op must share one dtype, as in MXNet and PyTorch; except:
#  * ops whose result is the NumPy promotion of their inputs (correct for any mix);
_PROMOTING = frozenset((
    'add', 'subtract', 'multiply', 'divide', 'modulo', 'power', 'maximum', 'minimum', 'equal',
    'not_equal', 'greater', 'greater_equal', 'lesser', 'lesser_equal', 'where', 'concat', 'dot',
    'batch_dot', 'fully_connected'))
#  * inputs holding indices, labels, masks or conditions (any dtype): their positions per op
#    (None: every input after the first).
_INDEX_INPUTS = {
    'getitem': None, '_getitem_backward': None, 'take': (1,), '_take_backward': (1,),
    'pick': (1,), '_pick_backward': (1,), 'embedding': (0,), 'embedding_backward': (1,),
    'softmax_cross_entropy': (1,), 'softmax_cross_entropy_backward': (2,), 'softmax_output': (1,),
    'max_pool2d_backward': (1,), 'max_pool2d_gather': (1,),
    'take_along_axis': (1,), '_scatter_along_axis': (1,),
}


# input names for the messages of the layers users meet most (others: by position)
_INPUT_NAMES = {'conv2d': ('data', 'weight', 'bias'), 'conv2d_transpose': ('data', 'weight', 'bias'),
                'batch_norm': ('data', 'gamma', 'beta', 'moving_mean', 'moving_var'),
                'layer_norm': ('data', 'gamma', 'beta')}


def check_dtypes(op, dtypes):
    """MXNetError unless the data inputs of `op` share one dtype (see _PROMOTING/_INDEX_INPUTS)."""
    if op.name in _PROMOTING or any(d is None for d in dtypes):   # non-arrays: refused by invoke
        return
    skip = _INDEX_INPUTS.get(op.name, ())
    data = [(i, dt) for i, dt in enumerate(dtypes) if i not in skip] if skip is not None else []
    for i, dt in data[1:]:
        if dt != data[0][1]:
            label = _INPUT_NAMES.get(op.name, ())
            names = ', '.join(f'{label[j] if j < len(label) else f"input {j}"}: {np.dtype(d).name}' for j, d in data)
            to = next((np.dtype(d).name for _, d in data if np.dtype(d).kind == 'f'), np.dtype(dt).name)
            raise MXNetError(f'{op.name}: inputs have different dtypes ({names}); this op computes '
                             f'in one dtype, so cast them to one first, e.g. x.astype({to!r})')


_cast_hook = None       # engine.amp's mixed-precision policy: casts an op's inputs first


def set_cast_hook(hook):
    global _cast_hook
    _cast_hook = hook


def invoke(op, inputs, attrs):
    """Apply `op` to `inputs` (NDArrays, or graph symbols while tracing) with `attrs` (a dict).

    Returns one NDArray, or a tuple for ops with several outputs."""
    if _cast_hook is not None and op.name != 'cast':
        inputs = _cast_hook(op, inputs)
    ctx = None
    for x in inputs:
        if type(x) is not NDArray:
            if getattr(x, '_is_symbol', False):   # tracing: the same dtype rule, then a graph node
                check_dtypes(op, [getattr(v, 'dtype', None) for v in inputs])
                return x._graph_apply(op, inputs, attrs)
            if not isinstance(x, NDArray):
                raise MXNetError(f'{op.name}: expected NDArray inputs, got {type(x).__name__}')
            if x.stype != 'default':   # sparse arrays (engine/ndarray_sparse.py): storage fallback
                return invoke(op, _densified(op.name, inputs), attrs)
        if ctx is None:
            ctx = x._ctx
        elif x._ctx != ctx:
            raise MXNetError(f'{op.name}: inputs are on different contexts ({ctx} and {x._ctx}); '
                             'move them with as_in_context() first')
    arrays = [x._data for x in inputs]
    in_dtypes = [a.dtype for a in arrays]
    if len(in_dtypes) > 1 and in_dtypes.count(in_dtypes[0]) != len(in_dtypes):
        check_dtypes(op, in_dtypes)
    try:
        shapes, dtypes = op.infer([a.shape for a in arrays], in_dtypes, **attrs)
    except MXNetError:
        raise
    except Exception as e:  # a shape rule tripping over input it did not expect
        ins = ', '.join(fmt_shape(a.shape) for a in arrays)
        raise MXNetError(f'{op.name}: invalid inputs (shapes {ins}) for attributes {attrs}: '
                         f'{type(e).__name__}: {e}') from e
    try:
        kernel = op.kernel(ctx.device_type)
        t0 = profiler.clock() if profiler._state['on'] else None
        if ctx.device_type == 'cpu':
            res = kernel(*arrays, **attrs)
        else:
            with ctx.scope():   # CuPy allocates and launches on the current device
                res = kernel(*arrays, **attrs)
        if t0 is not None:
            _profile(op.name, ctx, t0)
    except MXNetError:
        raise
    except MemoryError:
        raise _out_of_memory(op, shapes, dtypes, ctx) from None
    except Exception as e:
        ins = ', '.join(f'{fmt_shape(a.shape)} {a.dtype}' for a in arrays)
        where = '' if ctx.device_type == 'cpu' else f' on {ctx}'
        raise MXNetError(f'{op.name}: kernel failed{where} on inputs [{ins}] with {attrs}: '
                         f'{type(e).__name__}: {e}') from e
    outs = res if op.multi_output else (res,)
    wrapped = []
    for a, s, d in zip(outs, shapes, dtypes):
        if a.shape != s or a.dtype != d:
            raise MXNetError(f'{op.name}: kernel produced {fmt_shape(a.shape)} {a.dtype}, shape '
                             f'rule says {fmt_shape(s)} {d} (engine bug)')
        wrapped.append(NDArray(a, ctx))
    if autograd.is_recording() and op.differentiable:
        autograd.record_op(op, inputs, attrs, wrapped)
    return tuple(wrapped) if op.multi_output else wrapped[0]


def _densified(op_name, inputs):
    """MXNet's storage fallback: a dense op given sparse arrays runs on dense copies of them
    (its outputs are dense). The conversions are `cast_storage`, recorded while recording, so
    gradients go back to the sparse arrays in their own storage."""
    from .ndarray_sparse import cast_storage
    out = []
    for x in inputs:
        if isinstance(x, NDArray) and x.stype != 'default':
            try:
                x = cast_storage(x, 'default')
            except MemoryError:
                gib = float(np.prod(x.shape, dtype=np.float64)) * np.dtype(x.dtype).itemsize / 2 ** 30
                raise MXNetError(f'{op_name}: out of memory making a dense copy ({gib:.3g} GiB) of a '
                                 f'{x.stype} input of shape {fmt_shape(x.shape)}; this op has no '
                                 'sparse kernel') from None
        out.append(x)
    return out


def _out_of_memory(op, shapes, dtypes, ctx):
    outs = ', '.join(f'{fmt_shape(s)} {np.dtype(d).name}' for s, d in zip(shapes, dtypes))
    gib = sum(float(np.prod(s, dtype=np.float64)) * np.dtype(d).itemsize for s, d in zip(shapes, dtypes)) / 2 ** 30
    return MXNetError(f'{op.name}: out of memory on {ctx} allocating its outputs [{outs}] ({gib:.3g} GiB)')


def _profile(name, ctx, t0):
    sync = profiler.sync_for(ctx.device_type)
    if sync is not None:
        sync()
    profiler.record(f'eager:{name}', profiler.clock() - t0)
