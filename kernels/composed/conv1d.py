"""1-D convolutions as 2-D ones over (N, C, 1, W) views, for any module of conv2d kernels.

kernels/cpu/conv.py and kernels/cuda/conv.py each end with
``globals().update(conv1d_kernels(<the module>))``: the reshapes are the same on both devices,
only the 2-D kernels differ. Works on NumPy and CuPy arrays alike (reshape, flags, item copy).
"""


def _one(v):
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def _attrs_1d(stride, pad, dilate):
    return (1, _one(stride)), (0, _one(pad)), (1, _one(dilate))


def _as_2d(a):
    return None if a is None else a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])


def _out_2d(out):
    # only a contiguous out reshapes to a view the 2-D kernel can write; others get a copy back
    return _as_2d(out) if out is not None and out.flags.c_contiguous else None


def _back_to_1d(res, out):
    """The 2-D result as (N, C, W). A contiguous ``out`` already holds it (its 2-D view was the
    output buffer); any other ``out`` gets a copy."""
    res = res.reshape(res.shape[0], res.shape[1], res.shape[3])
    if out is None:
        return res
    if not out.flags.c_contiguous:
        out[...] = res
    return out


def conv1d_kernels(k2d):
    """The conv1d_* kernels (name -> function) built on the conv2d_* functions of module `k2d`."""

    def conv1d_forward(x, w, b, stride, pad, dilate, groups, act=None, out=None):
        """x: (N, C, W); w: (K, C // groups, kw); stride/pad/dilate: int or 1-tuple."""
        s, p, d = _attrs_1d(stride, pad, dilate)
        y = k2d.conv2d_forward(_as_2d(x), _as_2d(w), b, s, p, d, groups, act, out=_out_2d(out))
        return _back_to_1d(y, out)

    def conv1d_backward_data(dy, w, x_shape, stride, pad, dilate, groups, out=None):
        s, p, d = _attrs_1d(stride, pad, dilate)
        N, C, W = x_shape
        dx = k2d.conv2d_backward_data(_as_2d(dy), _as_2d(w), (N, C, 1, W), s, p, d, groups,
                                      out=_out_2d(out))
        return _back_to_1d(dx, out)

    def conv1d_backward_weight(dy, x, w_shape, stride, pad, dilate, groups, out=None):
        s, p, d = _attrs_1d(stride, pad, dilate)
        K, Cg, kw = w_shape
        dw = k2d.conv2d_backward_weight(_as_2d(dy), _as_2d(x), (K, Cg, 1, kw), s, p, d, groups,
                                        out=_out_2d(out))
        return _back_to_1d(dw, out)

    def conv1d_transpose_forward(x, w, b, stride, pad, dilate, output_padding, groups, out=None):
        """x: (N, C_in, W); w: (C_in, C_out // groups, kw)."""
        s, p, d = _attrs_1d(stride, pad, dilate)
        y = k2d.conv2d_transpose_forward(_as_2d(x), _as_2d(w), b, s, p, d, (0, _one(output_padding)),
                                         groups, out=_out_2d(out))
        return _back_to_1d(y, out)

    def conv1d_transpose_backward_data(dy, w, x_shape, stride, pad, dilate, groups, out=None):
        s, p, d = _attrs_1d(stride, pad, dilate)
        N, C, W = x_shape
        dx = k2d.conv2d_transpose_backward_data(_as_2d(dy), _as_2d(w), (N, C, 1, W), s, p, d, groups,
                                                out=_out_2d(out))
        return _back_to_1d(dx, out)

    def conv1d_transpose_backward_weight(dy, x, w_shape, stride, pad, dilate, groups, out=None):
        s, p, d = _attrs_1d(stride, pad, dilate)
        Cin, Cog, kw = w_shape
        dw = k2d.conv2d_transpose_backward_weight(_as_2d(dy), _as_2d(x), (Cin, Cog, 1, kw), s, p, d,
                                                  groups, out=_out_2d(out))
        return _back_to_1d(dw, out)

    # the bias gradient sums over every axis but the channel: the 2-D kernel takes (N, K, W) as is
    kernels = dict(conv1d_forward=conv1d_forward, conv1d_backward_data=conv1d_backward_data,
                   conv1d_backward_weight=conv1d_backward_weight,
                   conv1d_backward_bias=k2d.conv2d_backward_bias,
                   conv1d_transpose_forward=conv1d_transpose_forward,
                   conv1d_transpose_backward_data=conv1d_transpose_backward_data,
                   conv1d_transpose_backward_weight=conv1d_transpose_backward_weight,
                   conv1d_transpose_backward_bias=k2d.conv2d_backward_bias)
    for name, fn in kernels.items():
        fn.__module__ = k2d.__name__
    return kernels
