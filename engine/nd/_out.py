"""MXNet's ``out=`` argument of the ``mx.nd`` functions: ``nd.square(x, out=y)`` writes the result
into the existing array ``y`` (which may be a view, e.g. ``g[row]``) and returns ``y``.

The op functions of ``engine/ops`` return new arrays; ``with_out`` wraps those that do not take
``out`` themselves. The result is copied into ``out`` (cast to its dtype), so ``out`` must have the
result's shape and context and dense storage. As with in-place assignment, writing a recorded
result into a buffer would drop its gradient: under ``autograd.record()`` that is an MXNetError.
"""
import functools
import inspect
import types

from .. import autograd
from ..base import MXNetError, fmt_shape
from ..ndarray import NDArray


def _write(name, res, out):
    if isinstance(out, (list, tuple)):
        if not isinstance(res, (list, tuple)) or len(res) != len(out):
            n = len(res) if isinstance(res, (list, tuple)) else 1
            raise MXNetError(f'{name}: out is a list of {len(out)} arrays but the op has {n} output(s)')
        for r, o in zip(res, out):
            _write(name, r, o)
        return out
    if not isinstance(out, NDArray):
        raise MXNetError(f'{name}: out must be an NDArray, got {type(out).__name__}')
    if not isinstance(res, NDArray):
        raise MXNetError(f'{name}: the op returns {type(res).__name__}, which cannot be written to out')
    if out.stype != 'default' or res.stype != 'default':
        raise MXNetError(f"{name}: out= takes dense arrays only (got storage {res.stype!r} into "
                         f"{out.stype!r}); convert with tostype('default')")
    if tuple(res.shape) != tuple(out.shape):
        raise MXNetError(f'{name}: out has shape {fmt_shape(out.shape)} but the result has shape '
                         f'{fmt_shape(res.shape)}')
    if res.context != out.context:
        raise MXNetError(f'{name}: out is on {out.context} but the result is on {res.context}')
    if autograd.is_recording() and (res._entry is not None or out._entry is not None):
        raise MXNetError(f'{name}: out= under autograd.record() would drop the gradient of the '
                         'result; use the returned array (y = op(x)) instead')
    if out is not res:
        out._data[...] = res._data
    return out


def with_out(fn):
    """``fn`` taking ``out=`` as well (the function itself when it already takes ``out`` or
    arbitrary keywords)."""
    if not isinstance(fn, types.FunctionType):
        return fn
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    if 'out' in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return fn

    @functools.wraps(fn)
    def call(*args, out=None, **kwargs):
        res = fn(*args, **kwargs)
        return res if out is None else _write(fn.__name__, res, out)
    call._without_out = fn
    return call


def install(namespace):
    """Wrap the op functions (those defined in engine.ops) of a module's namespace in place."""
    for name, value in list(namespace.items()):
        if name.startswith('_') or not isinstance(value, types.FunctionType):
            continue
        if (value.__module__ or '').startswith('engine.ops'):
            namespace[name] = with_out(value)
