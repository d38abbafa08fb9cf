"""3-d convolution, transposed convolution and pooling on NCDHW data, composed from the 2-d ops.

* convolution: one 2-d convolution per depth tap ``i`` of the kernel, on the depth slices
  ``i*dilate, i*dilate + stride, ...`` folded into the batch, summed over the taps;
* transposed convolution: one 2-d transposed convolution per tap, each result spread over the
  output depths ``d*stride + i*dilate`` (zeros interleaved), summed, then cropped by ``pad``;
* pooling: a box is the product of a depth range and an (H, W) window, and max, sum and mean
  (with or without the padding counted) separate over such a product, so a 2-d pooling over
  (H, W) is followed by a 1-d pooling over D.

So gradients (first and higher order), hybridization and both devices come from the 2-d ops.
"""
from kernels.composed.shapes import conv_out_size, conv_transpose_out_size

from ..base import MXNetError, fmt_shape
from .index import slice as _slice
from .index import slice_axis
from .shape import concat, expand_dims, pad, reshape, transpose

_TO_BATCH = (0, 2, 1, 3, 4)   # (N, C, D, H, W) <-> (N, D, C, H, W)


def _check(op, data, weight=None):
    if data.ndim != 5:
        raise MXNetError(f'{op}: expects a 5-d NCDHW input, got shape {fmt_shape(data.shape)}')
    if weight is not None and weight.ndim != 5:
        raise MXNetError(f'{op}: a 3-d kernel needs a 5-d weight, got shape {fmt_shape(weight.shape)}')


def convolution3d(data, weight, bias, stride, pad_, dilate, num_group, act=None):
    """``data`` (N, C, D, H, W), ``weight`` (O, C/num_group, kd, kh, kw); 3-tuples."""
    from .nn import Activation, Convolution
    _check('Convolution', data, weight)
    N, C, D, H, W = data.shape
    O, cg, kd = weight.shape[:3]
    if cg * num_group != C:
        raise MXNetError(f'Convolution: weight {fmt_shape(weight.shape)} expects {cg * num_group} input '
                         f'channels (num_group={num_group}), data {fmt_shape(data.shape)} has {C}')
    (sd, sh, sw), (pd, ph, pw), (dd, dh, dw) = stride, pad_, dilate
    x = pad(data, 'constant', (0, 0, 0, 0, pd, pd, 0, 0, 0, 0)) if pd else data
    Do = conv_out_size(D, kd, sd, pd, dd)
    if Do < 1:
        raise MXNetError(f'Convolution: the kernel depth {kd} (dilate {dd}) exceeds the padded input depth '
                         f'{D + 2 * pd} (data {fmt_shape(data.shape)})')
    acc = None
    for i in range(kd):
        xs = _slice(x, (None, None, i * dd), (None, None, i * dd + (Do - 1) * sd + 1), (None, None, sd))
        xs = reshape(transpose(xs, _TO_BATCH), (N * Do, C, H, W))
        ws = reshape(slice_axis(weight, 2, i, i + 1), (O, cg) + tuple(weight.shape[3:]))
        y = Convolution(xs, ws, None, stride=(sh, sw), pad=(ph, pw), dilate=(dh, dw),
                        num_filter=O, num_group=num_group, no_bias=True)
        acc = y if acc is None else acc + y
    y = transpose(reshape(acc, (N, Do) + tuple(acc.shape[1:])), _TO_BATCH)
    if bias is not None:
        y = y + reshape(bias, (1, O, 1, 1, 1))
    return y if act is None else Activation(y, act_type=act)


def deconvolution3d(data, weight, bias, stride, pad_, dilate, adj, num_group):
    """``data`` (N, C, D, H, W), ``weight`` (C, O/num_group, kd, kh, kw); 3-tuples."""
    from .nn import Deconvolution, full_like
    _check('Deconvolution', data, weight)
    N, C, D, H, W = data.shape
    og, kd = weight.shape[1:3]
    if weight.shape[0] != C:
        raise MXNetError(f'Deconvolution: weight {fmt_shape(weight.shape)} expects {weight.shape[0]} input '
                         f'channels, data {fmt_shape(data.shape)} has {C}')
    (sd, sh, sw), (pd, ph, pw), (dd, dh, dw), (ad, ah, aw) = stride, pad_, dilate, adj
    full = conv_transpose_out_size(D, kd, sd, 0, dd, ad)  # output depth before the crop by pad
    Do = full - 2 * pd
    if Do < 1:
        raise MXNetError(f'Deconvolution: pad {pd} leaves no output depth (data {fmt_shape(data.shape)}, '
                         f'weight {fmt_shape(weight.shape)})')
    xs = reshape(transpose(data, _TO_BATCH), (N * D, C, H, W))
    acc = None
    for i in range(kd):
        ws = reshape(slice_axis(weight, 2, i, i + 1), (C, og) + tuple(weight.shape[3:]))
        y = Deconvolution(xs, ws, None, stride=(sh, sw), pad=(ph, pw), dilate=(dh, dw), adj=(ah, aw),
                          num_filter=og * num_group, num_group=num_group, no_bias=True)
        y = reshape(y, (N, D) + tuple(y.shape[1:]))                   # (N, D, O, Ho, Wo)
        if sd > 1:   # depth d lands at d*sd: interleave sd-1 zero slices after each input depth
            e = expand_dims(y, 2)
            zeros = full_like(concat(*[e] * (sd - 1), dim=2), 0.0)
            y = reshape(concat(e, zeros, dim=2), (N, D * sd) + tuple(y.shape[2:]))
            y = slice_axis(y, 1, 0, (D - 1) * sd + 1)
        before, after = i * dd, full - ((D - 1) * sd + 1) - i * dd
        y = pad(y, 'constant', (0, 0, before, after, 0, 0, 0, 0, 0, 0))
        acc = y if acc is None else acc + y
    if pd:
        acc = slice_axis(acc, 1, pd, pd + Do)
    y = transpose(acc, _TO_BATCH)
    if bias is not None:
        y = y + reshape(bias, (1, -1, 1, 1, 1))
    return y


def pooling3d(data, kernel, pool_type, stride, pad_, pooling_convention, count_include_pad):
    """Max/avg/sum pooling of NCDHW data: 2-d over (H, W), then 1-d over D."""
    from .nn import Pooling
    _check('Pooling', data)
    N, C, D, H, W = data.shape
    (kd, kh, kw), (sd, sh, sw), (pd, ph, pw) = kernel, stride, pad_
    kw_ = dict(pool_type=pool_type, pooling_convention=pooling_convention,
               count_include_pad=count_include_pad)
    y = Pooling(reshape(transpose(data, _TO_BATCH), (N * D, C, H, W)), kernel=(kh, kw),
                stride=(sh, sw), pad=(ph, pw), **kw_)                  # (N*D, C, Ho, Wo)
    Ho, Wo = y.shape[2:]
    y = transpose(reshape(y, (N, D, C * Ho * Wo)), (0, 2, 1))         # (N, C*Ho*Wo, D)
    y = Pooling(y, kernel=(kd,), stride=(sd,), pad=(pd,), **kw_)       # (N, C*Ho*Wo, Do)
    Do = y.shape[2]
    return transpose(reshape(transpose(y, (0, 2, 1)), (N, Do, C, Ho, Wo)), _TO_BATCH)


# ---- entry points from nn.Convolution / Deconvolution / Pooling for 5-d data ------------------

def check_layout(op, data, layout):
    if layout not in (None, 'NCDHW'):
        raise MXNetError(f"{op}: layout={layout!r} is not supported for a 5-d input (only 'NCDHW'; "
                         "gluon.nn layers take 'NDHWC')")
    return data.ndim - 2


def convolution(data, weight, bias, kernel, stride, dilate, pad_, num_filter, num_group, no_bias,
                layout, act):
    from .nn import _spatial, _tuple
    check_layout('Convolution', data, layout)
    _check('Convolution', data, weight)
    if kernel is not None and _tuple(kernel, 3) != tuple(weight.shape[2:]):
        raise MXNetError(f'Convolution: kernel={kernel} does not match weight shape {fmt_shape(weight.shape)}')
    if num_filter is not None and weight.shape[0] != num_filter:
        raise MXNetError(f'Convolution: num_filter={num_filter} but weight has shape {fmt_shape(weight.shape)}')
    return convolution3d(data, weight, None if no_bias else bias,
                         _spatial('Convolution', 'stride', stride, 1, 3),
                         _spatial('Convolution', 'pad', pad_, 0, 3),
                         _spatial('Convolution', 'dilate', dilate, 1, 3), int(num_group), act)


def deconvolution(data, weight, bias, kernel, stride, dilate, pad_, adj, num_filter, num_group, no_bias,
                  layout):
    from .nn import _spatial, _tuple
    check_layout('Deconvolution', data, layout)
    _check('Deconvolution', data, weight)
    if kernel is not None and _tuple(kernel, 3) != tuple(weight.shape[2:]):
        raise MXNetError(f'Deconvolution: kernel={kernel} does not match weight shape {fmt_shape(weight.shape)}')
    if num_filter is not None and weight.shape[1] * int(num_group) != num_filter:
        raise MXNetError(f'Deconvolution: num_filter={num_filter} but weight {fmt_shape(weight.shape)} with '
                         f'num_group={num_group} gives {weight.shape[1] * int(num_group)} output channels')
    return deconvolution3d(data, weight, None if no_bias else bias,
                           _spatial('Deconvolution', 'stride', stride, 1, 3),
                           _spatial('Deconvolution', 'pad', pad_, 0, 3),
                           _spatial('Deconvolution', 'dilate', dilate, 1, 3),
                           _spatial('Deconvolution', 'adj', adj, 0, 3), int(num_group))


def pooling(data, kernel, pool_type, stride, pad_, pooling_convention, count_include_pad, layout):
    from .nn import _spatial, _tuple
    return pooling3d(data, _tuple(kernel, 3), pool_type, _spatial('Pooling', 'stride', stride, 1, 3),
                     _spatial('Pooling', 'pad', pad_, 0, 3), pooling_convention, count_include_pad)
