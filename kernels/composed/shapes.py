"""Output sizes of convolutions and pooling, and the (outer, K, inner) split of a shape at an
axis: shared by both devices' kernels and the ops' shape rules."""


def conv_out_size(size, k, s, p, d):
    """Output length of a convolution along one axis."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_out_hw(H, W, kernel, stride, pad, dilate):
    """(OH, OW) of a 2-D convolution of an H x W input."""
    return (conv_out_size(H, kernel[0], stride[0], pad[0], dilate[0]),
            conv_out_size(W, kernel[1], stride[1], pad[1], dilate[1]))


def conv_transpose_out_size(size, k, s, p, d, output_padding):
    """Output length of a transposed convolution along one axis."""
    return (size - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


def pool_output_size(n, k, s, p, ceil_mode=False):
    """Output length of one spatial axis of size n for kernel k, stride s, pad p."""
    if not ceil_mode:
        return (n + 2 * p - k) // s + 1
    o = -(-(n + 2 * p - k) // s) + 1
    if (o - 1) * s >= n + p:  # last window would start in the right padding
        o -= 1
    return o


def pool_out_hw(x_shape, kernel, stride, pad, ceil_mode):
    """(OH, OW) of a 2-D pooling of an input of shape (..., H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    return (pool_output_size(x_shape[-2], kh, sh, ph, ceil_mode),
            pool_output_size(x_shape[-1], kw, sw, pw, ceil_mode))


def split_axis(shape, axis, fn="split_axis"):
    """(outer, K, inner) sizes for reducing ``shape`` over ``axis`` (negative counts from the end);
    ValueError naming kernel ``fn`` for an axis out of range."""
    nd = len(shape)
    if not -nd <= axis < nd:
        raise ValueError(f"{fn}: axis {axis} is out of range for shape "
                         f"{tuple(int(s) for s in shape)}")
    axis %= nd
    outer = inner = 1
    for s in shape[:axis]:
        outer *= int(s)
    for s in shape[axis + 1:]:
        inner *= int(s)
    return outer, int(shape[axis]), inner
