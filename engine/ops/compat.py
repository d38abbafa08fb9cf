"""MXNet 1.x functions composed from the primitive ops (so they are differentiable and trace
like their parts): ``moveaxis`` (one axis or several), ``crop``, ``choose_element_0index``,
``onehot_encode``, ``GroupNorm``. (``concatenate``, ``add_n``, ``linspace`` and ``eye`` are in ``engine.nd``.)"""
import numpy as np

from ..base import MXNetError, MXNetValueError, fmt_shape
from . import elemwise, index, shape

__all__ = ['moveaxis', 'crop', 'choose_element_0index', 'fill_element_0index', 'onehot_encode', 'GroupNorm']


def moveaxis(tensor, source, destination):
    """Move axes ``source`` to positions ``destination`` (ints or sequences, as NumPy's); bad
    axes are ValueErrors too, as in MXNet."""
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    nd_ = len(tensor.shape)
    if len(src) != len(dst):
        raise MXNetValueError(f'moveaxis: source {source} and destination {destination} must have the '
                         'same number of axes')
    src = [_axis(a, nd_, tensor.shape) for a in src]
    dst = [_axis(a, nd_, tensor.shape) for a in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise MXNetValueError(f'moveaxis: repeated axis in source {source} or destination {destination}')
    order = [a for a in range(nd_) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return shape.transpose(tensor, tuple(order))


def _axis(a, ndim, shape_):
    if not -ndim <= int(a) < ndim:
        raise MXNetValueError(f'moveaxis: axis {a} is out of range for shape {fmt_shape(shape_)}')
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


def fill_element_0index(lhs, mhs, rhs):
    """A copy of the 2-D ``lhs`` with ``out[i, rhs[i]] = mhs[i]`` (an index outside the row fills
    nothing); the gradient reaches ``lhs`` at the kept elements and ``mhs`` at the filled ones."""
    if len(lhs.shape) != 2 or tuple(mhs.shape) != (lhs.shape[0],) or tuple(rhs.shape) != (lhs.shape[0],):
        raise MXNetError(f'fill_element_0index: expected lhs (N, K), mhs (N,) and rhs (N,), got shapes '
                         f'{fmt_shape(lhs.shape)}, {fmt_shape(mhs.shape)} and {fmt_shape(rhs.shape)}')
    mask = index.one_hot(rhs, lhs.shape[1], dtype='int32')
    out = elemwise.where(mask, shape.expand_dims(mhs, 1), lhs)
    return out if out.dtype == lhs.dtype else elemwise.cast(out, np.dtype(lhs.dtype).name)


def onehot_encode(indices, out):
    """Write the one-hot rows of ``indices`` (N,) into ``out`` (N, depth) and return ``out``."""
    if len(out.shape) != 2 or tuple(indices.shape) != (out.shape[0],):
        raise MXNetError(f'onehot_encode: expected indices (N,) and out (N, depth), got shapes '
                         f'{fmt_shape(indices.shape)} and {fmt_shape(out.shape)}')
    out[:] = index.one_hot(indices, out.shape[1], dtype=np.dtype(out.dtype).name)
    return out


def GroupNorm(data, gamma, beta, num_groups=1, eps=1e-5, output_mean_var=False, **kwargs):
    """MXNet 1.9's GroupNorm: the channels of ``data`` (N, C, ...) in ``num_groups`` groups, each
    (sample, group) normalized over its channels and positions, then scaled and shifted by
    ``gamma``/``beta`` of shape (num_groups,) (one value per group, as MXNet 1.9)."""
    from . import reduce
    num_groups = int(num_groups)
    if output_mean_var:
        raise MXNetError('GroupNorm: output_mean_var=True is not supported')
    if data.ndim < 2 or num_groups < 1 or data.shape[1] % num_groups:
        raise MXNetError(f'GroupNorm: data {fmt_shape(data.shape)} needs a channel axis 1 divisible by '
                         f'num_groups={num_groups}')
    for name, p in (('gamma', gamma), ('beta', beta)):
        if tuple(p.shape) != (num_groups,):
            raise MXNetError(f'GroupNorm: {name} must have shape ({num_groups},), got {fmt_shape(p.shape)}')
    n = data.shape[0]
    x = shape.reshape(data, (n, num_groups, -1))
    mu = reduce.mean(x, axis=2, keepdims=True)
    xc = x - mu
    var = reduce.mean(xc * xc, axis=2, keepdims=True)
    y = xc / elemwise.sqrt(var + float(eps))
    y = y * shape.reshape(gamma, (1, num_groups, 1)) + shape.reshape(beta, (1, num_groups, 1))
    return shape.reshape(y, tuple(data.shape))
