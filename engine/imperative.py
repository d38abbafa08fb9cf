"""The eager executor: infer, run the kernel, wrap the outputs, record on the tape."""
from . import autograd, profiler
from .base import MXNetError, fmt_shape
from .ndarray import NDArray


def invoke(op, inputs, attrs):
    """Apply `op` to `inputs` (NDArrays, or graph symbols while tracing) with `attrs` (a dict).

    Returns one NDArray, or a tuple for ops with several outputs."""
    ctx = None
    for x in inputs:
        if type(x) is not NDArray:
            if getattr(x, '_is_symbol', False):
                return x._graph_apply(op, inputs, attrs)
            if not isinstance(x, NDArray):
                raise MXNetError(f'{op.name}: expected NDArray inputs, got {type(x).__name__}')
        if ctx is None:
            ctx = x._ctx
        elif x._ctx != ctx:
            raise MXNetError(f'{op.name}: inputs are on different contexts ({ctx} and {x._ctx}); '
                             'move them with as_in_context() first')
    arrays = [x._data for x in inputs]
    try:
        shapes, dtypes = op.infer([a.shape for a in arrays], [a.dtype for a in arrays], **attrs)
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


def _profile(name, ctx, t0):
    sync = profiler.sync_for(ctx.device_type)
    if sync is not None:
        sync()
    profiler.record(f'eager:{name}', profiler.clock() - t0)
