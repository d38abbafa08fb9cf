"""Pooling kernels composed from a device's primitive ones: global pooling, and 1-D pooling as
2-D pooling over (N, C, 1, W) views.

kernels/cpu/pool.py and kernels/cuda/pool.py each end with
``globals().update(derived_pool_kernels(<the module>))``: the composition is the same on both
devices, only the primitive 2-D kernels differ.
"""


def pair(v):
    """(h, w) from an int or a pair."""
    return (int(v), int(v)) if isinstance(v, (int, float)) or getattr(v, "ndim", 1) == 0 else (int(v[0]), int(v[1]))


def _nc1w(a):
    return None if a is None else a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])


def _out_nc1w(out, fn):
    """4-D view of a 1-D output buffer; it must be contiguous, or the view would be a copy and
    the result would never reach ``out``."""
    if out is not None and not out.flags.c_contiguous:
        raise ValueError(f"{fn}: out (shape {tuple(out.shape)}) must be C-contiguous")
    return _nc1w(out)


def _ncw(a):
    return a.reshape(a.shape[0], a.shape[1], a.shape[3])


def _shape4(x_shape):
    return (x_shape[0], x_shape[1], 1, x_shape[2])


def derived_pool_kernels(k2d):
    """Global and 1-D pooling kernels (name -> function) built on the 2-D ones of module `k2d`."""

    def global_pool2d_forward(x, pool_type="avg", out=None):
        """Global max/avg pooling of NCHW x to (N, C, 1, 1)."""
        if pool_type == "avg":
            return k2d.adaptive_avg_pool2d_forward(x, (1, 1), out)
        H, W = x.shape[-2:]
        return k2d.pool2d_forward(x, (H, W), (H, W), 0, pool_type, out=out)

    def global_pool2d_backward(dy, x, pool_type="avg", out=None):
        """Gradient of global pooling; max recomputes the argmax from x (one cheap read of x)."""
        if pool_type == "avg":
            return k2d.adaptive_avg_pool2d_backward(dy, x.shape, out)
        if pool_type != "max":
            raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
        H, W = x.shape[-2:]
        _, idx = k2d.max_pool2d_forward(x, (H, W), (H, W), 0)
        return k2d.max_pool2d_backward(dy, idx, x.shape, out)

    def pool1d_forward(x, kernel, stride, pad=0, pool_type="max", ceil_mode=False,
                       count_include_pad=True, out=None):
        """1-D max/avg pooling of NCW x (no index)."""
        y = k2d.pool2d_forward(_nc1w(x), (1, kernel), (1, stride), (0, pad), pool_type, ceil_mode,
                               count_include_pad, _out_nc1w(out, "pool1d_forward"))
        return _ncw(y)

    def max_pool1d_forward(x, kernel, stride, pad=0, ceil_mode=False, out=None, out_index=None):
        """1-D max pooling of NCW x; returns (y, idx) with idx int32 indices into W."""
        fn = "max_pool1d_forward"
        y, idx = k2d.max_pool2d_forward(_nc1w(x), (1, kernel), (1, stride), (0, pad), ceil_mode,
                                        _out_nc1w(out, fn), _out_nc1w(out_index, fn))
        return _ncw(y), _ncw(idx)

    def max_pool1d_backward(dy, idx, x_shape, out=None):
        """Gradient of 1-D max pooling."""
        return _ncw(k2d.max_pool2d_backward(_nc1w(dy), _nc1w(idx), _shape4(x_shape),
                                            _out_nc1w(out, "max_pool1d_backward")))

    def avg_pool1d_forward(x, kernel, stride, pad=0, ceil_mode=False, count_include_pad=True,
                           out=None):
        """1-D average pooling of NCW x."""
        return _ncw(k2d.avg_pool2d_forward(_nc1w(x), (1, kernel), (1, stride), (0, pad), ceil_mode,
                                           count_include_pad, _out_nc1w(out, "avg_pool1d_forward")))

    def avg_pool1d_backward(dy, x_shape, kernel, stride, pad=0, ceil_mode=False,
                            count_include_pad=True, out=None):
        """Gradient of 1-D average pooling."""
        return _ncw(k2d.avg_pool2d_backward(_nc1w(dy), _shape4(x_shape), (1, kernel), (1, stride),
                                            (0, pad), ceil_mode, count_include_pad,
                                            _out_nc1w(out, "avg_pool1d_backward")))

    def global_pool1d_forward(x, pool_type="avg", out=None):
        """Global max/avg pooling of NCW x to (N, C, 1)."""
        return _ncw(global_pool2d_forward(_nc1w(x), pool_type,
                                              _out_nc1w(out, "global_pool1d_forward")))

    def global_pool1d_backward(dy, x, pool_type="avg", out=None):
        """Gradient of 1-D global pooling."""
        return _ncw(global_pool2d_backward(_nc1w(dy), _nc1w(x), pool_type,
                                               _out_nc1w(out, "global_pool1d_backward")))

    kernels = dict(global_pool2d_forward=global_pool2d_forward, global_pool2d_backward=global_pool2d_backward,
                   pool1d_forward=pool1d_forward, max_pool1d_forward=max_pool1d_forward,
                   max_pool1d_backward=max_pool1d_backward, avg_pool1d_forward=avg_pool1d_forward,
                   avg_pool1d_backward=avg_pool1d_backward, global_pool1d_forward=global_pool1d_forward,
                   global_pool1d_backward=global_pool1d_backward)
    for fn in kernels.values():
        fn.__module__ = k2d.__name__
    return kernels
