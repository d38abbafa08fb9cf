"""Small helpers of gluon.utils."""
import warnings

import numpy as np

from ..base import MXNetError, MXNetValueError
from ..ndarray import NDArray


def split_data(data, num_slice, batch_axis=0, even_split=True):
    """Split a batch into `num_slice` parts along `batch_axis`. With even_split=False the sizes
    differ by at most one, the larger parts first (as MXNet and np.array_split: 10 into 3 is
    4, 3, 3)."""
    size = data.shape[batch_axis]
    if even_split and size % num_slice:
        raise MXNetValueError(
            f'split_data: data of shape {tuple(data.shape)} cannot be split evenly into {num_slice} '
            f'slices along axis {batch_axis}; use a batch size that is a multiple of {num_slice} '
            'or even_split=False')
    each, extra = divmod(size, num_slice)
    bounds = np.cumsum([0] + [each + 1] * extra + [each] * (num_slice - extra)).tolist()
    from ..ops import slice_axis
    return [slice_axis(data, batch_axis, bounds[i], bounds[i + 1]) for i in range(num_slice)]


def split_and_load(data, ctx_list, batch_axis=0, even_split=True):
    """Split a batch and move each part to one of the contexts (a list of Contexts, or one)."""
    from ..context import Context
    if isinstance(ctx_list, Context):
        ctx_list = [ctx_list]
    ctx_list = list(ctx_list)
    if not ctx_list or not all(isinstance(c, Context) for c in ctx_list):
        raise MXNetError(f'split_and_load: ctx_list must be a non-empty list of Contexts, got {ctx_list!r}')
    if not isinstance(data, NDArray):
        from ..ndarray import array
        data = array(np.asarray(data))
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    parts = split_data(data, len(ctx_list), batch_axis, even_split)
    return [p.as_in_context(c) for p, c in zip(parts, ctx_list)]


def clip_global_norm(arrays, max_norm, check_isfinite=True):
    """Scale arrays in place so their joint L2 norm is at most max_norm. Returns the norm: a
    float, or (as MXNet, no blocking read) a (1,) NDArray with check_isfinite=False; with
    check_isfinite a NaN/inf norm is a UserWarning (the arrays are then left unscaled)."""
    if not arrays:
        raise MXNetError('clip_global_norm: expected a non-empty list of arrays')
    total = float(np.sqrt(sum(float((np.asarray(a).astype(np.float64) ** 2).sum()) for a in arrays)))
    if check_isfinite and not np.isfinite(total):
        warnings.warn(UserWarning('nan or inf is detected. Clipping results will be undefined.'),
                      stacklevel=2)
    if not check_isfinite:
        from ..ndarray import array
        norm = array([total], ctx=arrays[0].context, dtype=arrays[0].dtype)
    if total > max_norm:
        scale = max_norm / (total + 1e-8)
        for a in arrays:
            a *= scale
    return total if check_isfinite else norm
