"""Neural-network ops: activations, convolution, pooling, softmax family, normalization,
dropout, embedding. Kernels live in kernels/cpu and their CUDA twins in kernels/cuda (called with
one pattern through backends.per_device); this file declares shapes and gradients."""
import numpy as np

from kernels.composed.shapes import conv_out_size, conv_transpose_out_size, pool_output_size

from .. import autograd
from ..base import MXNetError, array_module, fmt_shape, special_module
from ..imperative import invoke
from . import elemwise as ew, expr as E
from .elemwise import _cast, same_shape, where
from .expr import x0
from .reduce import mean, sum as _sum
from . import nn3d
from .backends import per_device
from .registry import register, shape_error
from .shape import _ndim_axis, broadcast_to, expand_dims, reshape

# ---- activations (elementwise, fusable) -------------------------------------------------

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def _act_op(name, fn, grad, rule):
    return register(name, same_shape, lambda x, out=None, **a: _cast(fn(x, **a), x.dtype, out), grad,
                    template=rule)


_softsign = _act_op('softsign', lambda x: x / (1 + np.abs(x)),
                    lambda g, y, x: [g / ew.square(ew.abs(x) + 1.0)], x0 / (1 + E.abs(x0)))
_leaky = _act_op('leaky_relu', lambda x, slope: np.where(x > 0, x, x * x.dtype.type(slope)),
                 lambda g, y, x, slope: [where(x > 0, g, g * slope)], E.where(x0 > 0, x0, E.attr('slope') * x0))
_elu = _act_op('elu', lambda x, slope: np.where(x > 0, x, x.dtype.type(slope) * np.expm1(np.minimum(x, 0))),
               lambda g, y, x, slope: [where(x > 0, g, g * (y + slope))],
               E.where(x0 > 0, x0, E.attr('slope') * E.expm1(x0)))
_selu = _act_op('selu', lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
                lambda g, y, x: [where(x > 0, g * _SELU_SCALE, g * (y + _SELU_SCALE * _SELU_ALPHA))],
                _SELU_SCALE * E.where(x0 > 0, x0, _SELU_ALPHA * E.expm1(x0)))


def _gelu_grad(g, y, x):
    cdf = (ew.erf(x * _INV_SQRT2) + 1.0) * 0.5
    pdf = ew.exp(ew.square(x) * -0.5) * _INV_SQRT_2PI
    return [g * (cdf + x * pdf)]


def _gelu_fn(x):
    return 0.5 * x * (1.0 + special_module(x).erf(x * _INV_SQRT2))


_gelu = _act_op('gelu', _gelu_fn, _gelu_grad, 0.5 * x0 * (1 + E.erf(x0 * _INV_SQRT2)))

_ACTIVATIONS = {'relu': ew.relu, 'sigmoid': ew.sigmoid, 'tanh': ew.tanh, 'softrelu': ew.softplus,
                'softsign': lambda x: invoke(_softsign, [x], {})}


def Activation(data, act_type='relu'):
    """relu, sigmoid, tanh, softrelu or softsign."""
    fn = _ACTIVATIONS.get(act_type)
    if fn is None:
        raise MXNetError(f'Activation: unknown act_type {act_type!r}; expected one of {sorted(_ACTIVATIONS)}')
    return fn(data)


def softsign(data):
    return invoke(_softsign, [data], {})


def LeakyReLU(data, gamma=None, act_type='leaky', slope=0.25, lower_bound=0.125, upper_bound=0.334):
    """leaky, prelu (learned `gamma` per channel), elu, selu or gelu."""
    if act_type == 'leaky':
        return invoke(_leaky, [data], {'slope': float(slope)})
    if act_type == 'elu':
        return invoke(_elu, [data], {'slope': float(slope)})
    if act_type == 'selu':
        return invoke(_selu, [data], {})
    if act_type == 'gelu':
        return invoke(_gelu, [data], {})
    if act_type == 'prelu':
        if gamma is None:
            raise MXNetError('LeakyReLU: act_type prelu needs gamma')
        c = data.shape[1] if data.ndim >= 2 else 1
        if gamma.ndim != 1 or gamma.shape[0] not in (1, c):
            raise MXNetError(f'LeakyReLU: prelu gamma must have shape (1,) or ({c},) (one slope per channel of '
                             f'the input {fmt_shape(data.shape)}), got {fmt_shape(gamma.shape)}')
        g = gamma if gamma.shape[0] == 1 or data.ndim < 2 else reshape(gamma, (1, -1) + (1,) * (data.ndim - 2))
        return where(data > 0, data, data * g)
    raise MXNetError(f"LeakyReLU: unknown act_type {act_type!r}; expected leaky, prelu, elu, selu or gelu")


def leaky_relu(data, slope=0.01):
    return invoke(_leaky, [data], {'slope': float(slope)})


def selu(data):
    return invoke(_selu, [data], {})


def elu(data, alpha=1.0):
    return invoke(_elu, [data], {'slope': float(alpha)})


def gelu(data):
    return invoke(_gelu, [data], {})


# ---- identity-like helpers ---------------------------------------------------------------

_stop = register('stop_gradient', same_shape, lambda x, out=None: _cast(x.copy(), x.dtype, out),
                 no_grad='blocks gradients by definition', template=x0)


def stop_gradient(data):
    """Identity that blocks gradients (MXNet's BlockGrad)."""
    return invoke(_stop, [data], {})


BlockGrad = stop_gradient

_full_like = register('full_like', lambda s, d, value: ([s[0]], [d[0]]),
                      lambda x, value, out=None: _cast(np.full_like(x, value), x.dtype, out),
                      no_grad='reads only the shape and dtype of its input',
                      template=E.attr('value'))


def full_like(data, value):
    return invoke(_full_like, [data], {'value': float(value)})


# ---- convolution ---------------------------------------------------------------------------

def _check_conv_attrs(name, x, w, stride, pad, dilate, groups):
    if len(x) != 4:
        raise shape_error(name, 'expects a 4-d (N, C, H, W) input', x)
    if min(stride) < 1 or min(dilate) < 1 or min(pad) < 0:
        raise MXNetError(f'{name}: stride and dilate must be >= 1 and pad >= 0, got stride={stride} '
                         f'pad={pad} dilate={dilate}')
    if groups < 1 or x[1] % groups:
        raise MXNetError(f'{name}: {x[1]} input channels are not divisible by num_group={groups}')


def _conv_infer(shapes, dtypes, stride, pad, dilate, groups, act):
    x, w = shapes[0], shapes[1]
    _check_conv_attrs('Convolution', x, w, stride, pad, dilate, groups)
    if len(w) != 4 or w[1] * groups != x[1] or w[0] % groups:
        raise shape_error('Convolution', f'weight must be (num_filter, {x[1] // groups}, kh, kw) with '
                          f'num_filter divisible by num_group={groups}', x, w)
    if len(shapes) == 3 and tuple(shapes[2]) != (w[0],):
        raise shape_error('Convolution', f'bias must be ({w[0]},)', shapes[2])
    oh, ow = (conv_out_size(x[2 + i], w[2 + i], stride[i], pad[i], dilate[i]) for i in range(2))
    if oh < 1 or ow < 1:
        raise MXNetError(f'Convolution: kernel {w[2:]} (dilate {dilate}) is larger than the padded input '
                         f'{x[2] + 2 * pad[0]}x{x[3] + 2 * pad[1]}')
    return [(x[0], w[0], oh, ow)], [dtypes[0]]


def _conv_kernel(K):
    def conv2d(x, w, b=None, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1, act=None, out=None):
        return K.conv.conv2d_forward(x, w, b, stride, pad, dilate, groups, act=act, out=out)
    return conv2d


def _conv_grad(g, y, x, w, *b, stride, pad, dilate, groups, act):
    if act == 'relu':
        g = g * (y > 0)
    a = dict(stride=stride, pad=pad, dilate=dilate, groups=groups)
    dx = invoke(_conv_bwd_data, [g, w], dict(a, x_shape=x.shape))
    dw = invoke(_conv_bwd_weight, [g, x], dict(a, w_shape=w.shape))
    return [dx, dw] + ([invoke(_conv_bwd_bias, [g], {})] if b else [])


def _conv_bwd_data_grad(gg, g, w, a):
    # backward_data is linear in g and in w: <gg, convT(g; w)> = <conv(gg; w), g>
    return [invoke(_conv, [gg, w], dict(a, act=None)), invoke(_conv_bwd_weight, [g, gg], dict(a, w_shape=w.shape))]


def _conv_bwd_weight_grad(gg, g, x, a):
    # backward_weight is linear in g and in x: <gg, corr(g, x)> = <g, conv(x; gg)>
    return [invoke(_conv, [x, gg], dict(a, act=None)), invoke(_conv_bwd_data, [g, gg], dict(a, x_shape=x.shape))]


def _expect_shape(name, what, got, want):
    if tuple(got) != tuple(want):
        raise MXNetError(f'{name}: {what} has shape {fmt_shape(got)}, but the attributes and the other '
                         f'inputs imply {fmt_shape(want)}')


def _implied(name, rule, shapes, dtypes, **attrs):
    """The first output shape the forward `rule` gives; its errors are reported as `name`'s."""
    try:
        return rule(shapes, dtypes, **attrs)[0][0]
    except MXNetError as e:
        raise MXNetError(f'{name}: attributes and inputs do not fit: {e}') from None


def _attr_shape(name, attr, shape, ndim=4):
    # attribute shapes come from graph files too: never trust them to be well formed
    if len(shape) != ndim or min(shape, default=1) < 0:
        raise MXNetError(f'{name}: {attr}={tuple(shape)} must be {ndim} non-negative sizes')
    return tuple(int(v) for v in shape)


def _conv_bwd_data_infer(shapes, dtypes, x_shape, **a):
    x = _attr_shape('conv2d_backward_data', 'x_shape', x_shape)
    y = _implied('conv2d_backward_data', _conv_infer, [x, shapes[1]], dtypes, act=None, **a)
    _expect_shape('conv2d_backward_data', 'the output gradient', shapes[0], y)
    return [x], [dtypes[0]]


def _conv_bwd_weight_infer(shapes, dtypes, w_shape, **a):
    w = _attr_shape('conv2d_backward_weight', 'w_shape', w_shape)
    y = _implied('conv2d_backward_weight', _conv_infer, [shapes[1], w], dtypes, act=None, **a)
    _expect_shape('conv2d_backward_weight', 'the output gradient', shapes[0], y)
    return [w], [dtypes[0]]


def _conv_bwd_bias_infer(shapes, dtypes):
    if len(shapes[0]) != 4:
        raise shape_error('conv2d_backward_bias', 'expects a 4-d output gradient', shapes[0])
    return [(shapes[0][1],)], [dtypes[0]]


_conv = register('conv2d', _conv_infer, kernels=per_device(_conv_kernel), grad=_conv_grad)
_conv_bwd_data = register(
    'conv2d_backward_data', _conv_bwd_data_infer,
    kernels=per_device(lambda K: lambda g, w, x_shape, stride, pad, dilate, groups, out=None:
                       K.conv.conv2d_backward_data(g, w, x_shape, stride, pad, dilate, groups, out=out)),
    grad=lambda gg, y, g, w, x_shape, stride, pad, dilate, groups: _conv_bwd_data_grad(
        gg, g, w, dict(stride=stride, pad=pad, dilate=dilate, groups=groups)))
_conv_bwd_weight = register(
    'conv2d_backward_weight', _conv_bwd_weight_infer,
    kernels=per_device(lambda K: lambda g, x, w_shape, stride, pad, dilate, groups, out=None:
                       K.conv.conv2d_backward_weight(g, x, w_shape, stride, pad, dilate, groups, out=out)),
    grad=lambda gg, y, g, x, w_shape, stride, pad, dilate, groups: _conv_bwd_weight_grad(
        gg, g, x, dict(stride=stride, pad=pad, dilate=dilate, groups=groups)))
_conv_bwd_bias = register(
    'conv2d_backward_bias', _conv_bwd_bias_infer,
    kernels=per_device(lambda K: lambda g, out=None: K.conv.conv2d_backward_bias(g, out=out)),
    grad=lambda gg, y, g: [broadcast_to(reshape(gg, (1, -1, 1, 1)), g.shape)])


def _tuple(v, n):
    return (int(v),) * n if np.isscalar(v) else tuple(int(i) for i in v)


def _spatial(op, attr, v, default, n):
    """An n-tuple attribute; None or () mean `default` (MXNet's empty default), but 0 stays 0, so
    the shape rule refuses it instead of silently using the default."""
    if v is None or (not np.isscalar(v) and len(v) == 0):
        v = default
    t = _tuple(v, n)
    if len(t) != n:
        raise MXNetError(f'{op}: {attr}={v} must have {n} entries for {n}-d spatial input')
    return t


def _unsupported(op, given, defaults):
    """MXNet options not implemented here are refused unless left at their defaults: ignoring
    them would silently change the result."""
    for k, default in defaults.items():
        if k in given and given[k] is not None and given[k] != default:
            raise MXNetError(f'{op}: {k}={given[k]!r} is not supported (only {default!r})')


def _channels_first(op, data, layout):
    nsp = data.ndim - 2
    if nsp not in (1, 2):
        raise MXNetError(f'{op}: expects NCW or NCHW input, got shape {fmt_shape(data.shape)}')
    if layout not in (None, ('NCW', 'NCHW')[nsp - 1]):
        raise MXNetError(f"{op}: layout={layout!r} is not supported for a {nsp + 2}-d input (only "
                         f"{('NCW', 'NCHW')[nsp - 1]!r}; gluon.nn layers take channels-last layouts)")
    return nsp


def Convolution(data, weight, bias=None, kernel=None, stride=None, dilate=None, pad=None,
                num_filter=None, num_group=1, no_bias=False, layout=None, act=None, **kwargs):
    """MXNet's Convolution (1-d on NCW or 2-d on NCHW); weight (num_filter, C/num_group, *kernel)."""
    if data.ndim == 5:   # 3-d, composed from 2-d convolutions (nn3d.py)
        return nn3d.convolution(data, weight, bias, kernel, stride, dilate, pad, num_filter, num_group,
                                no_bias, layout, act)
    nsp = _channels_first('Convolution', data, layout)
    if kernel is not None and tuple(_tuple(kernel, nsp)) != tuple(weight.shape[2:]):
        raise MXNetError(f'Convolution: kernel={kernel} does not match weight shape {fmt_shape(weight.shape)}')
    if num_filter is not None and weight.shape[0] != num_filter:
        raise MXNetError(f'Convolution: num_filter={num_filter} but weight has shape {fmt_shape(weight.shape)}')
    attrs = dict(stride=_spatial('Convolution', 'stride', stride, 1, nsp),
                 pad=_spatial('Convolution', 'pad', pad, 0, nsp),
                 dilate=_spatial('Convolution', 'dilate', dilate, 1, nsp), groups=int(num_group), act=act)
    inputs = [data, weight] + ([] if no_bias or bias is None else [bias])
    if nsp == 1:
        return _as_1d(_conv, inputs, attrs)
    return invoke(_conv, inputs, attrs)


def _as_1d(op, inputs, attrs, weight_index=1):
    """Run a 2-d op on 1-d data by viewing (N, C, W) as (N, C, 1, W)."""
    x = reshape(inputs[0], inputs[0].shape[:2] + (1,) + inputs[0].shape[2:])
    w = inputs[weight_index]
    w = reshape(w, w.shape[:2] + (1,) + w.shape[2:])
    a = {k: ((1,) + v if k in ('stride', 'dilate', 'adj') else (0,) + v if k == 'pad' else v)
         for k, v in attrs.items()}
    y = invoke(op, [x, w] + inputs[2:], a)
    return reshape(y, y.shape[:2] + y.shape[3:])


# ---- transposed convolution ----------------------------------------------------------------

def _deconv_infer(shapes, dtypes, stride, pad, dilate, adj, groups):
    x, w = shapes[0], shapes[1]
    _check_conv_attrs('Deconvolution', x, w, stride, pad, dilate, groups)
    if len(w) != 4 or w[0] != x[1]:
        raise shape_error('Deconvolution', f'weight must be ({x[1]}, num_filter/num_group, kh, kw)', x, w)
    if any(not 0 <= a < s for a, s in zip(adj, stride)):
        raise MXNetError(f'Deconvolution: adj must be >= 0 and smaller than stride, got adj={adj} '
                         f'stride={stride}')
    k = w[1] * groups
    if len(shapes) == 3 and tuple(shapes[2]) != (k,):
        raise shape_error('Deconvolution', f'bias must be ({k},)', shapes[2])
    size = [conv_transpose_out_size(x[2 + i], w[2 + i], stride[i], pad[i], dilate[i], adj[i]) for i in range(2)]
    if min(size) < 1:
        raise MXNetError(f'Deconvolution: output size {size} is not positive')
    return [(x[0], k, size[0], size[1])], [dtypes[0]]


def _deconv_kernel(K):
    def conv2d_transpose(x, w, b=None, stride=(1, 1), pad=(0, 0), dilate=(1, 1), adj=(0, 0), groups=1,
                         out=None):
        return K.conv.conv2d_transpose_forward(x, w, b, stride, pad, dilate, adj, groups, out=out)
    return conv2d_transpose


def _deconv_grad(g, y, x, w, *b, stride, pad, dilate, adj, groups):
    a = dict(stride=stride, pad=pad, dilate=dilate, groups=groups)
    dx = invoke(_deconv_bwd_data, [g, w], dict(a, x_shape=x.shape))
    dw = invoke(_deconv_bwd_weight, [g, x], dict(a, w_shape=w.shape))
    return [dx, dw] + ([invoke(_conv_bwd_bias, [g], {})] if b else [])


def _deconv_bwd_check(name, x, w, g, a):
    # the forward's adj is not an attribute here: g may exceed the adj-free size by < stride
    y = _implied(name, _deconv_infer, [x, w], [np.float32] * 2, adj=(0, 0), **a)
    if len(g) != 4 or tuple(g[:2]) != y[:2] or not all(0 <= g[i] - y[i] < a['stride'][i - 2] for i in (2, 3)):
        raise MXNetError(f'{name}: the output gradient has shape {fmt_shape(g)}, but the attributes and '
                         f'the other inputs imply {fmt_shape(y)} (plus adj < stride {a["stride"]})')


def _deconv_bwd_data_infer(shapes, dtypes, x_shape, **a):
    x = _attr_shape('conv2d_transpose_backward_data', 'x_shape', x_shape)
    _deconv_bwd_check('conv2d_transpose_backward_data', x, shapes[1], shapes[0], a)
    return [x], [dtypes[0]]


def _deconv_bwd_weight_infer(shapes, dtypes, w_shape, **a):
    w = _attr_shape('conv2d_transpose_backward_weight', 'w_shape', w_shape)
    _deconv_bwd_check('conv2d_transpose_backward_weight', shapes[1], w, shapes[0], a)
    return [w], [dtypes[0]]


def _deconv_bwd_data_grad(gg, g, w, a):
    # the transposed conv's backward_data is the plain conv(g; w), linear in g and in w
    return [invoke(_conv_bwd_data, [gg, w], dict(a, x_shape=g.shape)),
            invoke(_conv_bwd_weight, [gg, g], dict(a, w_shape=w.shape))]


def _deconv_bwd_weight_grad(gg, g, x, a):
    # the transposed conv's backward_weight is conv2d_backward_weight(x, g): <gg, r> = <x, conv(g; gg)>
    return [invoke(_conv_bwd_data, [x, gg], dict(a, x_shape=g.shape)), invoke(_conv, [g, gg], dict(a, act=None))]


_deconv = register('conv2d_transpose', _deconv_infer, kernels=per_device(_deconv_kernel), grad=_deconv_grad)
_deconv_bwd_data = register(
    'conv2d_transpose_backward_data', _deconv_bwd_data_infer,
    kernels=per_device(lambda K: lambda g, w, x_shape, stride, pad, dilate, groups, out=None:
                       K.conv.conv2d_transpose_backward_data(g, w, x_shape, stride, pad, dilate, groups,
                                                             out=out)),
    grad=lambda gg, y, g, w, x_shape, stride, pad, dilate, groups: _deconv_bwd_data_grad(
        gg, g, w, dict(stride=stride, pad=pad, dilate=dilate, groups=groups)))
_deconv_bwd_weight = register(
    'conv2d_transpose_backward_weight', _deconv_bwd_weight_infer,
    kernels=per_device(lambda K: lambda g, x, w_shape, stride, pad, dilate, groups, out=None:
                       K.conv.conv2d_transpose_backward_weight(g, x, w_shape, stride, pad, dilate, groups,
                                                               out=out)),
    grad=lambda gg, y, g, x, w_shape, stride, pad, dilate, groups: _deconv_bwd_weight_grad(
        gg, g, x, dict(stride=stride, pad=pad, dilate=dilate, groups=groups)))


def Deconvolution(data, weight, bias=None, kernel=None, stride=None, dilate=None, pad=None, adj=None,
                  target_shape=None, num_filter=None, num_group=1, no_bias=True, layout=None, **kwargs):
    """MXNet's Deconvolution; weight (C_in, num_filter/num_group, *kernel)."""
    if data.ndim == 5 and not (target_shape is not None and len(target_shape)):   # 3-d: nn3d.py
        return nn3d.deconvolution(data, weight, bias, kernel, stride, dilate, pad, adj, num_filter, num_group,
                                  no_bias, layout)
    nsp = _channels_first('Deconvolution', data, layout)
    if target_shape is not None and len(target_shape):
        raise MXNetError(f'Deconvolution: target_shape={tuple(target_shape)} is not supported; give pad and '
                         'adj for that output size instead')
    attrs = dict(stride=_spatial('Deconvolution', 'stride', stride, 1, nsp),
                 pad=_spatial('Deconvolution', 'pad', pad, 0, nsp),
                 dilate=_spatial('Deconvolution', 'dilate', dilate, 1, nsp),
                 adj=_spatial('Deconvolution', 'adj', adj, 0, nsp), groups=int(num_group))
    inputs = [data, weight] + ([] if no_bias or bias is None else [bias])
    if nsp == 1:
        return _as_1d(_deconv, inputs, attrs)
    return invoke(_deconv, inputs, attrs)


# ---- pooling -------------------------------------------------------------------------------

def _pool_infer(name):
    def infer(shapes, dtypes, kernel, stride, pad, ceil_mode, **attrs):
        x = shapes[0]
        if len(x) != 4:
            raise shape_error(name, 'expects a 4-d (N, C, H, W) input', x)
        if min(stride) < 1 or min(pad) < 0 or min(kernel) < 1:
            raise MXNetError(f'{name}: kernel and stride must be >= 1 and pad >= 0 '
                             f'(kernel={kernel}, stride={stride}, pad={pad})')
        if any(p >= k for p, k in zip(pad, kernel)):
            # a window lying wholly in the padding would give -inf (max) or 0 (avg)
            raise MXNetError(f'{name}: pad must be smaller than the kernel (kernel={kernel}, pad={pad})')
        if any(kernel[i] > x[2 + i] + 2 * pad[i] for i in range(2)):
            raise MXNetError(f'{name}: kernel {kernel} is larger than the padded input '
                             f'{x[2] + 2 * pad[0]}x{x[3] + 2 * pad[1]}')
        oh, ow = (pool_output_size(x[2 + i], kernel[i], stride[i], pad[i], ceil_mode) for i in range(2))
        outs = [(x[0], x[1], oh, ow)]
        return (outs + outs, [dtypes[0], np.dtype(np.int32)]) if name == 'max_pool2d' else (outs, [dtypes[0]])
    return infer


def _max_pool_bwd_infer(shapes, dtypes, x_shape):
    x = _attr_shape('max_pool2d_backward', 'x_shape', x_shape)
    g, idx = shapes
    if len(g) != 4 or tuple(idx) != tuple(g) or tuple(g[:2]) != x[:2] or np.dtype(dtypes[1]) != np.int32:
        raise MXNetError(f'max_pool2d_backward: expects the output gradient and int32 argmax of one '
                         f'shape (N, C, OH, OW) with N, C of x_shape={fmt_shape(x)}; got '
                         f'{fmt_shape(g)} and {fmt_shape(idx)} {np.dtype(dtypes[1]).name}')
    return [x], [dtypes[0]]


def _avg_pool_bwd_infer(shapes, dtypes, x_shape, **a):
    x = _attr_shape('avg_pool2d_backward', 'x_shape', x_shape)
    y = _implied('avg_pool2d_backward', _pool_infer('avg_pool2d'), [x], dtypes, **a)
    _expect_shape('avg_pool2d_backward', 'the output gradient', shapes[0], y)
    return [x], [dtypes[0]]


_max_pool = register(
    'max_pool2d', _pool_infer('max_pool2d'), multi_output=True,
    kernels=per_device(lambda K: lambda x, kernel, stride, pad, ceil_mode, out=None:
                       K.pool.max_pool2d_forward(x, kernel, stride, pad, ceil_mode,
                                                 *(() if out is None else out))),
    grad=lambda gs, ys, x, kernel, stride, pad, ceil_mode:
    [invoke(_max_pool_bwd, [gs[0], ys[1]], {'x_shape': x.shape})])
_max_pool_bwd = register(
    'max_pool2d_backward', _max_pool_bwd_infer,
    kernels=per_device(lambda K: lambda g, idx, x_shape, out=None:
                       K.pool.max_pool2d_backward(g, idx, x_shape, out=out)),
    grad=lambda gg, y, g, idx, x_shape: [invoke(_max_pool_gather, [gg, idx], {}), None])


def _max_pool_gather_infer(shapes, dtypes):
    x, idx = shapes
    if len(x) != 4 or len(idx) != 4 or tuple(idx[:2]) != tuple(x[:2]) or np.dtype(dtypes[1]) != np.int32:
        raise MXNetError(f'max_pool2d_gather: expects an (N, C, H, W) array and int32 argmax (N, C, OH, OW); '
                         f'got {fmt_shape(x)} and {fmt_shape(idx)} {np.dtype(dtypes[1]).name}')
    return [tuple(idx)], [dtypes[0]]


def _max_pool_gather_kernel(x, idx, out=None):
    """x[n, c] at each window's argmax (idx: flat positions in the H*W plane)."""
    xp = array_module(x)
    p = idx.shape[0] * idx.shape[1]
    y = xp.take_along_axis(x.reshape(p, -1), idx.reshape(p, -1).astype(np.intp), axis=1)
    return _cast(y.reshape(idx.shape), x.dtype, out)


# max_pool2d_backward scatters by the saved argmax; its adjoint (and so its gradient) is this gather
_max_pool_gather = register(
    'max_pool2d_gather', _max_pool_gather_infer, _max_pool_gather_kernel,
    grad=lambda g, y, x, idx: [invoke(_max_pool_bwd, [g, idx], {'x_shape': x.shape}), None])
_avg_pool = register(
    'avg_pool2d', _pool_infer('avg_pool2d'),
    kernels=per_device(lambda K: lambda x, kernel, stride, pad, ceil_mode, count_include_pad, out=None:
                       K.pool.avg_pool2d_forward(x, kernel, stride, pad, ceil_mode, count_include_pad,
                                                 out=out)),
    grad=lambda g, y, x, **a: [invoke(_avg_pool_bwd, [g], dict(a, x_shape=x.shape))])
_avg_pool_bwd = register(
    'avg_pool2d_backward', _avg_pool_bwd_infer,
    kernels=per_device(lambda K: lambda g, x_shape, kernel, stride, pad, ceil_mode, count_include_pad,
                       out=None: K.pool.avg_pool2d_backward(g, x_shape, kernel, stride, pad, ceil_mode,
                                                            count_include_pad, out=out)),
    grad=lambda gg, y, g, x_shape, **a: [invoke(_avg_pool, [gg], a)])


def Pooling(data, kernel=(1, 1), pool_type='max', global_pool=False, stride=None, pad=None,
            pooling_convention='valid', count_include_pad=True, layout=None, **kwargs):
    """MXNet's Pooling: max/avg, 1-d, 2-d or 3-d, 'valid' (floor) or 'full' (ceil) output size."""
    nsp = nn3d.check_layout('Pooling', data, layout) if data.ndim == 5 else _channels_first('Pooling', data, layout)
    if pool_type not in ('max', 'avg', 'sum'):
        raise MXNetError(f"Pooling: pool_type must be 'max', 'avg' or 'sum', got {pool_type!r}")
    if global_pool:
        axes = tuple(range(2, data.ndim))
        if 0 in data.shape[2:]:
            raise MXNetError(f'Pooling: global {pool_type} pooling of an empty {fmt_shape(data.shape[2:])} '
                             f'map (input shape {fmt_shape(data.shape)})')
        return (_max_reduce(data, axes) if pool_type == 'max'
                else mean(data, axis=axes, keepdims=True) if pool_type == 'avg'
                else _sum(data, axis=axes, keepdims=True))
    if pooling_convention not in ('valid', 'full'):
        raise MXNetError(f"Pooling: pooling_convention must be 'valid' or 'full', got {pooling_convention!r}")
    if data.ndim == 5:   # 3-d: 2-d pooling over (H, W), then 1-d over D (nn3d.py)
        return nn3d.pooling(data, kernel, pool_type, stride, pad, pooling_convention, count_include_pad, layout)
    k = _spatial('Pooling', 'kernel', kernel, 1, nsp)
    attrs = dict(kernel=k, stride=_spatial('Pooling', 'stride', stride, 1, nsp),   # MXNet's default: 1
                 pad=_spatial('Pooling', 'pad', pad, 0, nsp),
                 ceil_mode=pooling_convention == 'full')
    x = data if nsp == 2 else reshape(data, data.shape[:2] + (1,) + data.shape[2:])
    if nsp == 1:
        attrs = {k_: ((1,) + v if k_ in ('kernel', 'stride') else (0,) + v if k_ == 'pad' else v)
                 for k_, v in attrs.items()}
    if pool_type == 'max':
        y = invoke(_max_pool, [x], attrs)[0]
    else:
        y = invoke(_avg_pool, [x], dict(attrs, count_include_pad=bool(count_include_pad)))
        if pool_type == 'sum':
            y = y * float(np.prod(attrs['kernel']))
    return y if nsp == 2 else reshape(y, y.shape[:2] + y.shape[3:])


def _max_reduce(data, axes):
    from .reduce import max as _max
    return _max(data, axis=axes, keepdims=True)


# ---- softmax family --------------------------------------------------------------------------

def _axis_infer(name):
    def infer(shapes, dtypes, axis, **a):
        if not -len(shapes[0]) <= axis < len(shapes[0]):
            raise shape_error(name, f'axis {axis} out of range', shapes[0])
        return [shapes[0]], [dtypes[0]]
    return infer


def _softmax_bwd_infer(name):
    def infer(shapes, dtypes, axis):
        _expect_shape(name, 'the output gradient', shapes[0], shapes[1])
        return _axis_infer(name)(shapes[1:], dtypes[1:], axis)
    return infer


_softmax = register('softmax', _axis_infer('softmax'),
                    kernels=per_device(lambda K: lambda x, axis, out=None: K.softmax.softmax(x, axis, out=out)),
                    grad=lambda g, y, x, axis: [invoke(_softmax_bwd, [g, y], {'axis': axis})])
_softmax_bwd = register('softmax_backward', _softmax_bwd_infer('softmax_backward'),
                        kernels=per_device(lambda K: lambda g, y, axis, out=None:
                                           K.softmax.softmax_backward(g, y, axis, out=out)),
                        grad=lambda gg, r, g, y, axis: _softmax_bwd_grad(gg, g, y, axis))
_log_softmax = register('log_softmax', _axis_infer('log_softmax'),
                        kernels=per_device(lambda K: lambda x, axis, out=None:
                                           K.softmax.log_softmax(x, axis, out=out)),
                        grad=lambda g, y, x, axis: [invoke(_log_softmax_bwd, [g, y], {'axis': axis})])
_log_softmax_bwd = register(
    'log_softmax_backward', _softmax_bwd_infer('log_softmax_backward'),
    kernels=per_device(lambda K: lambda g, y, axis, out=None: K.softmax.log_softmax_backward(g, y, axis, out=out)),
    grad=lambda gg, r, g, y, axis: _log_softmax_bwd_grad(gg, g, y, axis))


def _softmax_bwd_grad(gg, g, y, axis):
    # r = y * (g - sum(g*y)): linear in g (self-adjoint), and
    # d<gg, r>/dy = gg * (g - sum(g*y)) - g * sum(gg*y)
    s = _sum(g * y, axis=axis, keepdims=True)
    t = _sum(gg * y, axis=axis, keepdims=True)
    return [invoke(_softmax_bwd, [gg, y], {'axis': axis}), gg * (g - s) - g * t]


def _log_softmax_bwd_grad(gg, g, y, axis):
    # r = g - exp(y) * sum(g)
    p = ew.exp(y)
    return [gg - _sum(gg * p, axis=axis, keepdims=True), -(gg * p) * _sum(g, axis=axis, keepdims=True)]


def _tempered(op, data, temperature, kwargs):
    _unsupported(op, kwargs, {'use_length': False, 'dtype': None})
    if temperature is None or temperature == 1.0:
        return data
    if temperature == 0:
        raise MXNetError(f'{op}: temperature must be nonzero')
    return data / float(temperature)


def softmax(data, axis=-1, temperature=None, **kwargs):
    return invoke(_softmax, [_tempered('softmax', data, temperature, kwargs)], {'axis': int(axis)})


def log_softmax(data, axis=-1, temperature=None, **kwargs):
    return invoke(_log_softmax, [_tempered('log_softmax', data, temperature, kwargs)], {'axis': int(axis)})


def _ce_infer(shapes, dtypes, axis, sparse):
    x, lab = shapes
    if not -len(x) <= axis < len(x):
        raise shape_error('softmax_cross_entropy', f'axis {axis} out of range', x)
    ax = axis % len(x)
    reduced = tuple(x[:ax]) + tuple(x[ax + 1:])
    if sparse and tuple(lab) != reduced:
        raise shape_error('softmax_cross_entropy', f'sparse labels must have shape {fmt_shape(reduced)} '
                          f'(the logits without axis {axis})', x, lab)
    if not sparse and tuple(lab) != tuple(x):
        raise shape_error('softmax_cross_entropy', 'dense labels must have the logits shape', x, lab)
    return [reduced, tuple(x)], [dtypes[0], dtypes[0]]


def _check_labels(K, name, label, x_shape, axis):
    # the kernels index rows with the labels: one vectorized pass keeps them in bounds
    bad = K.softmax.check_labels(label, x_shape[axis])
    if bad is not None:
        raise MXNetError(f'{name}: label {bad} is out of range for {x_shape[axis]} classes '
                         f'(logits shape {fmt_shape(x_shape)}); labels must be integers in '
                         f'[0, {x_shape[axis]})')


def _ce_kernel(K):
    def softmax_cross_entropy(x, label, axis, sparse, out=None):
        if sparse:
            _check_labels(K, 'softmax_cross_entropy', label, x.shape, axis)
        return K.softmax.softmax_cross_entropy_forward(x, label, axis, sparse, out=out)
    return softmax_cross_entropy


def _ce_bwd_kernel(K):
    def softmax_cross_entropy_backward(g, p, label, axis, sparse, out=None):
        if sparse:   # labels reach here unchecked from SoftmaxOutput or a loaded graph
            _check_labels(K, 'softmax_cross_entropy_backward', label, p.shape, axis)
        return K.softmax.softmax_cross_entropy_backward(g, p, label, axis, sparse, out=out)
    return softmax_cross_entropy_backward


def _ce_bwd_infer(shapes, dtypes, axis, sparse):
    g, p, lab = shapes
    loss = _implied('softmax_cross_entropy_backward', _ce_infer, [p, lab], dtypes[1:], axis=axis,
                    sparse=sparse)
    if len(g) > len(loss) or any(a not in (1, b) for a, b in zip(g[::-1], loss[::-1])):
        raise shape_error('softmax_cross_entropy_backward', f'the loss gradient must broadcast to '
                          f'{fmt_shape(loss)}', g)
    return [tuple(p)], [dtypes[1]]


def _softmax_output_infer(shapes, dtypes, grad_scale):
    x, lab = shapes
    if len(x) < 1 or tuple(lab) != tuple(x[:-1]):
        raise shape_error('SoftmaxOutput', 'label must have the data shape without its last axis', x, lab)
    return [tuple(x)], [dtypes[0]]


def _softmax_ce_grad(gs, ys, x, label, axis, sparse):
    (g, gp), p = gs, ys[1]
    dx = None if g is None else invoke(_softmax_ce_bwd, [g, p, label], {'axis': axis, 'sparse': sparse})
    if gp is not None:  # the probabilities output is read by the backward (higher-order gradients)
        dp = invoke(_softmax_bwd, [gp, p], {'axis': axis})
        dx = dp if dx is None else dx + dp
    # dense labels: loss = -sum(label * log p); sparse (integer class) labels get no gradient
    dlabel = None if sparse or g is None else -expand_dims(g, axis) * log_softmax(x, axis)
    return [dx, dlabel]


def _softmax_ce_bwd_grad(gg, r, g, p, label, axis, sparse):
    # r = (p * sum(label) - label) * g, with label one-hot when sparse: linear in g, p and label
    # g may broadcast to the loss shape: its gradient then has the loss shape and the autodiff
    # drivers sum it down (autograd.fit_gradient)
    attrs, loss_shape = {'axis': axis, 'sparse': sparse}, p.shape[:axis] + p.shape[axis + 1:]
    g = g if g.shape == loss_shape else broadcast_to(g, loss_shape)
    ge = expand_dims(g, axis)
    dg = _sum(gg * invoke(_softmax_ce_bwd, [full_like(g, 1.0), p, label], attrs), axis=axis)
    if sparse:
        return [dg, gg * ge, None]
    return [dg, gg * ge * _sum(label, axis=axis, keepdims=True), ge * (_sum(gg * p, axis=axis, keepdims=True) - gg)]


_softmax_ce = register('softmax_cross_entropy', _ce_infer, kernels=per_device(_ce_kernel), multi_output=True,
                       grad=_softmax_ce_grad)
_softmax_ce_bwd = register(
    'softmax_cross_entropy_backward', _ce_bwd_infer, kernels=per_device(_ce_bwd_kernel),
    grad=_softmax_ce_bwd_grad)


def softmax_cross_entropy_loss(data, label, axis=-1, sparse_label=True):
    """Per-sample cross entropy of softmax(data) with labels (fused, numerically stable)."""
    axis = _ndim_axis(axis, data.ndim, 'softmax_cross_entropy', data.shape)
    return invoke(_softmax_ce, [data, label], {'axis': axis, 'sparse': bool(sparse_label)})[0]


def softmax_cross_entropy(data, label):
    """MXNet's softmax_cross_entropy: the summed loss over the batch."""
    return _sum(softmax_cross_entropy_loss(data, label))


_softmax_output = register(
    'softmax_output', _softmax_output_infer,
    kernels=per_device(lambda K: lambda x, label, grad_scale, out=None: K.softmax.softmax(x, -1, out=out)),
    grad=lambda g, y, x, label, grad_scale:
    [invoke(_softmax_ce_bwd, [full_like(reshape(_sum(y, axis=-1), label.shape), grad_scale), y, label],
            {'axis': y.ndim - 1, 'sparse': True}), None])


def SoftmaxOutput(data, label, grad_scale=1.0, **kwargs):
    """Softmax whose backward is the cross-entropy gradient (prob - onehot(label)) * grad_scale,
    whatever gradient arrives from above (MXNet's legacy output layer)."""
    _unsupported('SoftmaxOutput', kwargs, {'use_ignore': False, 'multi_output': False, 'normalization': 'null',
                                           'preserve_shape': False, 'out_grad': False, 'smooth_alpha': 0.0})
    return invoke(_softmax_output, [data, label], {'grad_scale': float(grad_scale)})


def _make_loss_grad(g, y, x, grad_scale, normalization, valid_thresh):
    # the head gradient is ignored: the output *is* the loss (MXNet's MakeLoss)
    if normalization == 'batch':
        return [full_like(x, grad_scale / max(int(x.shape[0]) if x.ndim else 1, 1))]
    if normalization == 'valid':
        valid = ew.maximum(_sum(x > valid_thresh), 1.0)
        return [full_like(x, grad_scale) / valid]
    return [full_like(x, grad_scale)]


_make_loss = register('make_loss', same_shape,
                      lambda x, grad_scale, normalization, valid_thresh, out=None: _cast(x.copy(), x.dtype, out),
                      grad=_make_loss_grad)


def make_loss(data, grad_scale=1.0, valid_thresh=0.0, normalization='null'):
    """MXNet's MakeLoss: the identity forward; backward sends ``grad_scale`` (divided by the
    batch size for normalization='batch', by the number of entries above ``valid_thresh`` for
    'valid') to every entry, whatever gradient arrives from above, so the output is the loss
    that training minimizes."""
    if normalization not in ('null', 'batch', 'valid'):
        raise MXNetError(f"make_loss: normalization must be 'null', 'batch' or 'valid', got {normalization!r}")
    return invoke(_make_loss, [data], {'grad_scale': float(grad_scale), 'normalization': normalization,
                                       'valid_thresh': float(valid_thresh)})


MakeLoss = make_loss


# ---- normalization ---------------------------------------------------------------------------

def _norm_axis(name, x, axis):
    if not -len(x) <= axis < len(x):
        raise shape_error(name, f'axis {axis} is out of range for a {len(x)}-d input', x)
    return x[axis]


def _norm_bwd_infer(name, stats_shape):
    # (dy, x, gamma, mean, invstd): dy is x's gradient; gamma per channel; stats as the forward's
    def infer(shapes, dtypes, axis, **a):
        dy, x, gamma, m, invstd = shapes
        c = _norm_axis(name, x, axis)
        _expect_shape(name, 'the output gradient', dy, x)
        _expect_shape(name, 'gamma', gamma, (c,))
        for what, s in (('the saved mean', m), ('the saved inverse std', invstd)):
            _expect_shape(name, what, s, stats_shape(x, axis))
        return [tuple(x), (c,), (c,)], [dtypes[0]] * 3
    return infer


def _bn_infer(shapes, dtypes, axis, eps, momentum, fix_gamma, training):
    x = shapes[0]
    c = _norm_axis('BatchNorm', x, axis)
    for s in shapes[1:]:
        if tuple(s) != (c,):
            raise shape_error('BatchNorm', f'gamma/beta/running stats must be ({c},) for axis {axis}', x, s)
    n = (c,)
    return ([x, n, n], [dtypes[0]] * 3) if training else ([x], [dtypes[0]])


def _bn_train_kernel(K):
    def batch_norm(x, gamma, beta, rmean, rvar, axis, eps, momentum, fix_gamma, training, out=None):
        xp = array_module(x)
        g = _unit_gamma(gamma) if fix_gamma else gamma
        y, m, invstd = K.norm.batch_norm_train_forward(x, g, beta, eps, axis, out=out)
        # running statistics are state updated in place (MXNet's auxiliary states)
        n = x.size // x.shape[axis]
        var = (1.0 / xp.square(invstd) - eps) * (n / max(n - 1, 1))
        rmean *= momentum
        rmean += (1 - momentum) * m
        rvar *= momentum
        rvar += (1 - momentum) * var
        return y, m, invstd
    return batch_norm


def _keep_shape(x, red):
    return tuple(1 if i in red else d for i, d in enumerate(x.shape))


def _add_stats_grad(dx, gm, gs, x, m, s, red):
    """Add to dx the gradient through the statistics outputs m = mean(x) and s = 1/sqrt(var(x) + eps)
    over axes `red` (only the backward reads them, so only higher-order gradients reach here)."""
    n, kshape = float(np.prod([x.shape[i] for i in red])), _keep_shape(x, red)
    terms = [] if dx is None else [dx]
    if gm is not None:
        terms.append(broadcast_to(reshape(gm, kshape) / n, x.shape))
    if gs is not None:  # ds/dx = -s^3 (x - m) / n
        terms.append((x - reshape(m, kshape)) * reshape(gs * ew.square(s) * s / -n, kshape))
    return None if not terms else sum(terms[1:], terms[0])


def _norm_bwd_grad(ggs, dy, x, gamma, m, s, axis, red):
    """Gradients of (dx, dgamma, dbeta) = norm_backward(dy, x, gamma, m, s) as the kernels compute
    them, with m and s taken as inputs: xh = (x - m) s over axes `red` (n values), gamma along `axis`,
    dx = s/n (n dyg - R(dyg) - xh R(dyg xh)) with dyg = dy gamma, R the sum over `red`,
    dgamma = sum(dy xh), dbeta = sum(dy) over the axes but `axis`. gamma=None: ones."""
    u, vg, vb = ggs
    n, kshape = float(np.prod([x.shape[i] for i in red])), _keep_shape(x, red)
    gshape = tuple(d if i == axis else 1 for i, d in enumerate(x.shape))
    other = tuple(i for i in range(x.ndim) if i != axis)

    def R(v):
        return _sum(v, axis=red, keepdims=True)

    sb = reshape(s, kshape)
    xc = x - reshape(m, kshape)
    xh = xc * sb
    gb = None if gamma is None else reshape(gamma, gshape)
    dyg = dy if gb is None else dy * gb
    ddy, dgamma, dxh, ds = [], None, [], []
    if u is not None:
        U1, U2, A, Bq = R(u), R(u * xh), R(dyg), R(dyg * xh)
        a = sb / n
        P = a * (u * n - U1 - xh * U2)          # d<u, dx>/d(dyg)
        ddy.append(P if gb is None else P * gb)
        dgamma = None if gb is None else reshape(_sum(P * dy, axis=other), gamma.shape)
        dxh.append(-a * (u * Bq + dyg * U2))
        ds.append((R(u * dyg) * n - A * U1 - Bq * U2) / n)
    if vg is not None:
        vgb = reshape(vg, gshape)
        ddy.append(vgb * xh)
        dxh.append(vgb * dy)
    if vb is not None:
        ddy.append(broadcast_to(reshape(vb, gshape), dy.shape))
    dx = dm = None
    if dxh:
        dh = sum(dxh[1:], dxh[0])
        dx, dm = dh * sb, reshape(-R(dh) * sb, m.shape)
        ds.append(R(dh * xc))
    total = [None if not t else sum(t[1:], t[0]) for t in (ddy, ds)]
    return [total[0], dx, dgamma, dm, None if total[1] is None else reshape(total[1], s.shape)]


def _bn_train_grad(gs, ys, x, gamma, beta, rmean, rvar, axis, eps, momentum, fix_gamma, training):
    dx = dgamma = dbeta = None
    if gs[0] is not None:
        dx, dgamma, dbeta = invoke(_bn_bwd, [gs[0], x, gamma, ys[1], ys[2]], {'axis': axis, 'fix_gamma': fix_gamma})
    dx = _add_stats_grad(dx, gs[1], gs[2], x, ys[1], ys[2], tuple(i for i in range(x.ndim) if i != axis))
    return [dx, None if fix_gamma else dgamma, dbeta, None, None]


def _bn_bwd_grad(ggs, rs, dy, x, gamma, m, s, axis, fix_gamma):
    red = tuple(i for i in range(x.ndim) if i != axis)
    return _norm_bwd_grad(ggs, dy, x, None if fix_gamma else gamma, m, s, axis, red)


def _ln_grad(gs, ys, x, gamma, beta, axis, eps):
    dx = dgamma = dbeta = None
    if gs[0] is not None:
        dx, dgamma, dbeta = invoke(_ln_bwd, [gs[0], x, gamma, ys[1], ys[2]], {'axis': axis})
    return [_add_stats_grad(dx, gs[1], gs[2], x, ys[1], ys[2], (axis,)), dgamma, dbeta]


_bn_train = register('batch_norm', _bn_infer, kernels=per_device(_bn_train_kernel, updates=(3, 4)),
                     multi_output=True, grad=_bn_train_grad, stateful=True)
_bn_bwd = register(
    'batch_norm_backward', _norm_bwd_infer('batch_norm_backward', lambda x, axis: (x[axis],)),
    multi_output=True,
    kernels=per_device(lambda K: lambda dy, x, gamma, m, invstd, axis, fix_gamma, out=None:
                       K.norm.batch_norm_backward(dy, x, _unit_gamma(gamma) if fix_gamma else gamma, m, invstd,
                                                  axis, out=out)),
    grad=_bn_bwd_grad)


def _unit_gamma(gamma):
    """The gamma a fix_gamma batch norm uses: ones, on gamma's device."""
    return array_module(gamma).ones_like(gamma)


def _training_mode(name, training):
    """The mode an op runs in: `training` as given (gluon layers pass it), or, for a direct nd call
    (None), the autograd scope's flag, read once here at call time as MXNet's nd functions do."""
    if training is None:
        return autograd.is_training()
    if not isinstance(training, (bool, np.bool_)):
        raise MXNetError(f'{name}: training must be True, False or None (the autograd scope\'s mode), '
                         f'got {training!r}')
    return bool(training)


def BatchNorm(data, gamma, beta, moving_mean, moving_var, eps=1e-3, momentum=0.9, fix_gamma=True,
              use_global_stats=False, axis=1, training=None, **kwargs):
    """Batch normalization: batch statistics while training (updating the running ones),
    running statistics in predict mode or with use_global_stats. `training` is the mode
    (None: autograd's, at call time)."""
    _unsupported('BatchNorm', kwargs, {'output_mean_var': False})
    c = _norm_axis('BatchNorm', data.shape, axis)
    # checked here: inference runs as plain ops, whose errors would name a reshape or multiply
    for what, p in (('gamma', gamma), ('beta', beta), ('moving_mean', moving_mean), ('moving_var', moving_var)):
        if tuple(p.shape) != (c,):
            raise MXNetError(f'BatchNorm: {what} has shape {fmt_shape(p.shape)}, expected ({c},): one value '
                             f'per channel of the input {fmt_shape(data.shape)} along axis {axis}')
    axis = axis % data.ndim
    # an empty batch has no statistics: the affine map below (empty too) leaves the running ones
    if _training_mode('BatchNorm', training) and not use_global_stats and data.size:
        attrs = dict(axis=axis, eps=float(eps), momentum=float(momentum), fix_gamma=bool(fix_gamma), training=True)
        return invoke(_bn_train, [data, gamma, beta, moving_mean, moving_var], attrs)[0]
    # inference is an affine map per channel: y = x * scale + shift (plain, fusable ops)
    bshape = tuple(data.shape[axis] if i == axis else 1 for i in range(data.ndim))
    g = full_like(gamma, 1.0) if fix_gamma else gamma
    scale = g * ew.rsqrt(stop_gradient(moving_var) + float(eps))
    shift = beta - stop_gradient(moving_mean) * scale
    return data * reshape(scale, bshape) + reshape(shift, bshape)


def _ln_stats(x, axis):
    return tuple(d for i, d in enumerate(x) if i != axis % len(x))


def _ln_infer(shapes, dtypes, axis, eps):
    x = shapes[0]
    c = _norm_axis('LayerNorm', x, axis)
    for s in shapes[1:]:
        if tuple(s) != (c,):
            raise shape_error('LayerNorm', f'gamma/beta must be ({c},) for axis {axis}', x, s)
    # the kernel's statistics have the input's shape without the normalized axis
    stat = tuple(d for i, d in enumerate(x) if i != axis % len(x))
    return [x, stat, stat], [dtypes[0]] * 3


_ln = register(
    'layer_norm', _ln_infer, multi_output=True,
    kernels=per_device(lambda K: lambda x, gamma, beta, axis, eps, out=None:
                       K.norm.layer_norm_forward(x, gamma, beta, axis, eps, out=out)),
    grad=_ln_grad)
_ln_bwd = register(
    'layer_norm_backward', _norm_bwd_infer('layer_norm_backward', _ln_stats), multi_output=True,
    kernels=per_device(lambda K: lambda dy, x, gamma, m, invstd, axis, out=None:
                       K.norm.layer_norm_backward(dy, x, gamma, m, invstd, axis, out=out)),
    grad=lambda ggs, rs, dy, x, gamma, m, s, axis: _norm_bwd_grad(ggs, dy, x, gamma, m, s, axis, (axis,)))


def LayerNorm(data, gamma, beta, axis=-1, eps=1e-5, output_mean_var=False):
    _unsupported('LayerNorm', {'output_mean_var': output_mean_var}, {'output_mean_var': False})
    _norm_axis('LayerNorm', data.shape, axis)
    return invoke(_ln, [data, gamma, beta], {'axis': axis % data.ndim, 'eps': float(eps)})[0]


def InstanceNorm(data, gamma, beta, eps=1e-3):
    """Normalize each (sample, channel) over its spatial axes, then scale and shift per channel."""
    axes = tuple(range(2, data.ndim))
    centered = data - mean(data, axis=axes, keepdims=True)
    var = mean(ew.square(centered), axis=axes, keepdims=True)
    bshape = (1, data.shape[1]) + (1,) * (data.ndim - 2)
    return centered * ew.rsqrt(var + float(eps)) * reshape(gamma, bshape) + reshape(beta, bshape)


# ---- dropout / embedding ------------------------------------------------------------------

def _generator_of(x):
    """The seeded generator of the device holding `x` (cpu(0)'s for every host array)."""
    from ..context import Context
    from ..random import generator
    xp = array_module(x)
    return generator(Context('cpu') if xp is np else Context('gpu', x.device.id))


def _dropout_mask_kernel(K):
    def dropout_mask(x, p, axes, out=None):
        shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
        mask = K.misc.dropout_mask(shape, p, _generator_of(x), x.dtype)
        if axes:
            mask = array_module(x).broadcast_to(mask, x.shape)
        return _cast(mask, x.dtype, out)
    return dropout_mask


_dropout_mask = register('dropout_mask', same_shape, kernels=per_device(_dropout_mask_kernel),
                         no_grad='a random draw; reads only the shape of its input', stateful=True)


def _normal_like_kernel(x, out=None):
    eps = _generator_of(x).standard_normal(x.shape)
    return _cast(eps, x.dtype, out)


# stateful: never merged by CSE nor folded, so a compiled graph draws anew on every call;
# the same draw code runs on both devices (each device's generator has NumPy's method names)
_normal_like = register('random_normal_like', same_shape,
                        kernels={'cpu': _normal_like_kernel, 'gpu': _normal_like_kernel},
                        no_grad='a random draw; reads only the shape of its input', stateful=True)


def random_normal_like(data):
    """Independent N(0, 1) draws with the shape and dtype of `data` (its values are not read);
    usable inside hybridized blocks, e.g. for reparameterized sampling."""
    return invoke(_normal_like, [data], {})


def Dropout(data, p=0.5, mode='training', axes=(), training=None, **kwargs):
    """Zero each element with probability p while training (survivors scaled by 1/(1-p)), or
    always with mode='always'. `training` is the mode (None: autograd's, at call time)."""
    if not 0 <= p < 1:
        raise MXNetError(f'Dropout: p must be in [0, 1), got {p}')
    if mode not in ('training', 'always'):
        raise MXNetError(f"Dropout: mode must be 'training' or 'always', got {mode!r}")
    if p == 0 or (mode == 'training' and not _training_mode('Dropout', training)):
        return data
    axes = tuple(_ndim_axis(a, data.ndim, 'Dropout', data.shape) for a in axes)
    mask = invoke(_dropout_mask, [data], {'p': float(p), 'axes': axes})
    return data * mask


def _emb_infer(shapes, dtypes):
    idx, w = shapes
    if len(w) != 2:
        raise shape_error('Embedding', 'weight must be (input_dim, output_dim)', w)
    return [tuple(idx) + (w[1],)], [dtypes[1]]


def _emb_kernel(K):
    def embedding(idx, w, out=None):
        ii = array_module(idx).asarray(idx).astype(np.int64)
        if ii.size:
            lo, hi = int(ii.min()), int(ii.max())   # (one device->host read on a GPU)
            if lo < 0 or hi >= w.shape[0]:
                bad = lo if lo < 0 else hi
                raise MXNetError(f'Embedding: index {bad} is out of range for input_dim={w.shape[0]}')
        return K.misc.embedding_forward(ii, w, out=out)
    return embedding


def _emb_bwd_infer(shapes, dtypes, num_rows):
    g, idx = shapes
    if num_rows < 1 or len(g) != len(idx) + 1 or tuple(g[:-1]) != tuple(idx):
        raise MXNetError(f'embedding_backward: expects the output gradient of shape indices.shape + '
                         f'(dim,) and num_rows >= 1; got gradient {fmt_shape(g)}, indices '
                         f'{fmt_shape(idx)}, num_rows={num_rows}')
    return [(num_rows, g[-1])], [dtypes[0]]


def _check_rows(name, ii, num_rows):
    if ii.size:
        lo, hi = int(ii.min()), int(ii.max())   # (one device->host read on a GPU)
        if lo < 0 or hi >= num_rows:
            raise MXNetError(f'{name}: index {lo if lo < 0 else hi} is out of range for '
                             f'num_rows={num_rows}')


def _emb_bwd_kernel(K):
    def embedding_backward(g, idx, num_rows, out=None):
        # indices may have changed in place since the forward checked them: check again
        ii = idx.astype(np.int64)
        _check_rows('embedding_backward', ii, num_rows)
        return K.misc.embedding_backward(g, ii, num_rows, out=out)
    return embedding_backward


_embedding = register('embedding', _emb_infer, kernels=per_device(_emb_kernel, native_float16=True),
                      grad=lambda g, y, idx, w: [None, invoke(_emb_bwd, [g, idx], {'num_rows': w.shape[0]})])
_emb_bwd = register(
    'embedding_backward', _emb_bwd_infer, kernels=per_device(_emb_bwd_kernel, index_inputs=(1,)),
    # a scatter-add of g's rows at idx: its adjoint is the row gather, i.e. the embedding itself
    grad=lambda gg, y, g, idx, num_rows: [invoke(_embedding, [idx, gg], {}), None])


def Embedding(data, weight, input_dim=None, output_dim=None, dtype=None, sparse_grad=False, **kwargs):
    if input_dim is not None and weight.shape[0] != input_dim:
        raise MXNetError(f'Embedding: input_dim={input_dim} but weight has shape {fmt_shape(weight.shape)}')
    if sparse_grad and autograd.is_recording() and not getattr(weight, '_is_symbol', False):
        # eager: the weight's gradient becomes a RowSparseNDArray of the rows used. Traced graphs
        # keep the dense op (their compiled backward is dense; ndarray_sparse.write_grad refuses
        # such a gradient for a row_sparse-gradient weight)
        from ..ndarray_sparse import embedding
        return embedding(data, weight)
    return invoke(_embedding, [data, weight], {})
