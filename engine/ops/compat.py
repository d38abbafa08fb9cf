"""MXNet 1.x functions composed from the primitive ops (so they are differentiable and trace
like their parts): ``moveaxis`` (one axis or several), ``crop``, ``choose_element_0index``,
``onehot_encode``. (``concatenate``, ``add_n``, ``linspace`` and ``eye`` are in ``engine.nd``.)"""
import numpy as np

from ..base import MXNetError, fmt_shape
from . import index, shape

__all__ = ['moveaxis', 'crop', 'choose_element_0index', 'onehot_encode']


def moveaxis(tensor, source, destination):
    """Move axes ``source`` to positions ``destination`` (ints or sequences, as NumPy's)."""
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    nd_ = len(tensor.shape)
    if len(src) != len(dst):
        raise MXNetError(f'moveaxis: source {source} and destination {destination} must have the '
                         'same number of axes')
    src = [_axis(a, nd_, tensor.shape) for a in src]
    dst = [_axis(a, nd_, tensor.shape) for a in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise MXNetError(f'moveaxis: repeated axis in source {source} or destination {destination}')
    order = [a for a in range(nd_) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return shape.transpose(tensor, tuple(order))


def _axis(a, ndim, shape_):
    if not -ndim <= int(a) < ndim:
        raise MXNetError(f'moveaxis: axis {a} is out of range for shape {fmt_shape(shape_)}')
    return int(a) % ndim


def crop(data, begin, end, step=None):
    """MXNet's deprecated alias of ``slice``."""
    return index.slice(data, begin, end, step)


def choose_element_0index(lhs, rhs):
    """``out[i] = lhs[i, rhs[i]]`` for a 2-D ``lhs`` (the old name of ``pick`` on axis 1)."""
    if len(lhs.shape) != 2 or tuple(rhs.shape) != (lhs.shape[0],):
        raise MXNetError(f'choose_element_0index: expected lhs (N, K) and rhs (N,), got shapes '
                         f'{fmt_shape(lhs.shape)} and {fmt_shape(rhs.shape)}')
    return index.pick(lhs, rhs, axis=1)


def onehot_encode(indices, out):
    """Write the one-hot rows of ``indices`` (N,) into ``out`` (N, depth) and return ``out``."""
    if len(out.shape) != 2 or tuple(indices.shape) != (out.shape[0],):
        raise MXNetError(f'onehot_encode: expected indices (N,) and out (N, depth), got shapes '
                         f'{fmt_shape(indices.shape)} and {fmt_shape(out.shape)}')
    out[:] = index.one_hot(indices, out.shape[1], dtype=np.dtype(out.dtype).name)
    return out
