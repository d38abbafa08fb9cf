"""`mx.nd._internal`: the few MXNet internal array functions user code calls directly.

`_crop_assign(lhs, rhs, begin, end)` / `_slice_assign`: a copy of ``lhs`` whose region
``begin:end(:step)`` holds ``rhs``; `_crop_assign_scalar(data, scalar, begin, end)` /
`_slice_assign_scalar`: the region holds ``scalar``. With ``out=`` the result is written there
(``out=lhs`` updates in place, as MXNet's tests do). They run eagerly: an array that is part of a
recorded graph is refused (as any in-place write is), never silently cut off from its gradient."""
import builtins

from ..base import MXNetError, fmt_shape
from ..ndarray import NDArray

__all__ = ['_crop_assign', '_crop_assign_scalar', '_slice_assign', '_slice_assign_scalar']


def _region(name, shape, begin, end, step):
    begin, end = tuple(begin), tuple(end)
    step = tuple(step) if step is not None else ()
    if len(begin) != len(end) or len(begin) > len(shape) or len(step) > len(begin):
        raise MXNetError(f'{name}: begin {begin}, end {end} and step {step} must have one entry per '
                         f'leading axis of the data {fmt_shape(shape)}')
    key = []
    for i, (b, e) in enumerate(zip(begin, end)):
        s = step[i] if i < len(step) and step[i] is not None else 1
        if s == 0:
            raise MXNetError(f'{name}: step of axis {i} is 0')
        key.append(builtins.slice(b, e, s))
    return tuple(key)


def _assign(name, data, value, begin, end, step, out):
    if not isinstance(data, NDArray):
        raise MXNetError(f'{name}: data must be an NDArray, got {type(data).__name__}')
    key = _region(name, data.shape, begin, end, step)
    region = data[key].shape
    if isinstance(value, NDArray) and tuple(value.shape) != tuple(region):
        raise MXNetError(f'{name}: the assigned array has shape {fmt_shape(value.shape)} but the '
                         f'region {key} of the data {fmt_shape(data.shape)} has shape {fmt_shape(region)}')
    res = data.copy()
    res[key] = value
    if out is None:
        return res
    if not isinstance(out, NDArray) or tuple(out.shape) != tuple(data.shape):
        raise MXNetError(f'{name}: out must be an NDArray of shape {fmt_shape(data.shape)}')
    out[:] = res
    return out


def _crop_assign(lhs, rhs, begin, end, step=None, out=None, name=None):
    return _assign('_crop_assign', lhs, rhs, begin, end, step, out)


def _crop_assign_scalar(data, scalar=0.0, begin=(), end=(), step=None, out=None, name=None):
    return _assign('_crop_assign_scalar', data, float(scalar), begin, end, step, out)


_slice_assign, _slice_assign_scalar = _crop_assign, _crop_assign_scalar
