"""The one table from the engine's IR ops to ONNX nodes. Each rule gets the builder, the IR node
and its input names, and returns the ONNX names of the node's outputs (a prefix of them when the
rest, e.g. max pooling's argmax index, only serve training)."""
import numpy as np

from ..base import MXNetError
from ._table import rule_table

RULES, rule = rule_table()


def translate(b, node):
    fn = RULES.get(node.op.name)
    if fn is None:
        raise MXNetError(f'export_model: the op {node.op.name!r} has no ONNX translation '
                         f'(node {node!r})')
    for v in node.inputs:
        if v.id not in b.names:
            raise MXNetError(f'export_model: {node.op.name} reads an output that has no ONNX '
                             f'counterpart (a training-only output of {v.node.op.name})')
    outs = fn(b, node, [b.name(v) for v in node.inputs], dict(node.attrs))
    outs = [outs] if isinstance(outs, str) else outs
    for v, name in zip(node.outputs, outs):
        b.names[v.id] = name


def _dtype(node, i=0):
    return node.outputs[i].dtype


def _onnx_type(b, dtype):
    return b.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _as_out_dtype(b, node, name):
    """Comparisons give booleans in ONNX; the engine keeps the input dtype (0/1)."""
    return b.add('Cast', [name], to=_onnx_type(b, _dtype(node)))


# ---- elementwise --------------------------------------------------------------------------------

_UNARY = {'relu': 'Relu', 'sigmoid': 'Sigmoid', 'tanh': 'Tanh', 'exp': 'Exp', 'log': 'Log',
          'sqrt': 'Sqrt', 'abs': 'Abs', 'negative': 'Neg', 'reciprocal': 'Reciprocal', 'floor': 'Floor',
          'ceil': 'Ceil', 'sin': 'Sin', 'cos': 'Cos', 'tan': 'Tan', 'erf': 'Erf', 'sign': 'Sign',
          'softsign': 'Softsign', 'softplus': 'Softplus', 'copy': 'Identity', 'stop_gradient': 'Identity'}
for _name, _onnx_op in _UNARY.items():
    RULES[_name] = lambda b, n, x, a, _op=_onnx_op: b.add(_op, x)


@rule('rsqrt')
def _rsqrt(b, n, x, a):
    return b.add('Reciprocal', [b.add('Sqrt', x)])


@rule('square')
def _square(b, n, x, a):
    return b.add('Mul', [x[0], x[0]])


@rule('log1p', 'expm1')
def _log1p_expm1(b, n, x, a):
    one = b.scalar(1, _dtype(n))
    if n.op.name == 'log1p':
        return b.add('Log', [b.add('Add', [x[0], one])])
    return b.add('Sub', [b.add('Exp', x), one])


@rule('round', 'trunc')
def _round(b, n, x, a):
    # the engine rounds half away from zero (ONNX's Round is half to even)
    mag = b.add('Abs', x)
    if n.op.name == 'round':
        mag = b.add('Add', [mag, b.scalar(0.5, _dtype(n))])
    return b.add('Mul', [b.add('Sign', x), b.add('Floor', [mag])])


@rule('logical_not')
def _logical_not(b, n, x, a):
    return _as_out_dtype(b, n, b.add('Equal', [x[0], b.scalar(0, n.inputs[0].dtype)]))


@rule('leaky_relu')
def _leaky(b, n, x, a):
    return b.add('LeakyRelu', x, alpha=float(a['slope']))


@rule('elu')
def _elu(b, n, x, a):
    return b.add('Elu', x, alpha=float(a['slope']))


@rule('selu')
def _selu(b, n, x, a):
    return b.add('Selu', x)          # ONNX's default alpha and gamma are the SELU constants


@rule('gelu')
def _gelu(b, n, x, a):
    dt = _dtype(n)
    erf = b.add('Erf', [b.add('Mul', [x[0], b.scalar(1 / np.sqrt(2), dt)])])
    return b.add('Mul', [b.add('Mul', [x[0], b.scalar(0.5, dt)]), b.add('Add', [erf, b.scalar(1, dt)])])


_BINARY = {'add': 'Add', 'subtract': 'Sub', 'multiply': 'Mul', 'divide': 'Div', 'power': 'Pow',
           'maximum': 'Max', 'minimum': 'Min'}
for _name, _onnx_op in _BINARY.items():
    RULES[_name] = lambda b, n, x, a, _op=_onnx_op: b.add(_op, x)

_COMPARE = {'equal': 'Equal', 'greater': 'Greater', 'greater_equal': 'GreaterOrEqual',
            'lesser': 'Less', 'lesser_equal': 'LessOrEqual'}
for _name, _onnx_op in _COMPARE.items():
    RULES[_name] = lambda b, n, x, a, _op=_onnx_op: _as_out_dtype(b, n, b.add(_op, x))


@rule('not_equal')
def _not_equal(b, n, x, a):
    return _as_out_dtype(b, n, b.add('Not', [b.add('Equal', x)]))


def _floor_mod(b, n, x, y):
    if np.dtype(_dtype(n)).kind in 'iu':
        return b.add('Mod', [x, y])
    # floored modulo (the divisor's sign, as NumPy and MXNet); ONNX's fmod takes the dividend's
    return b.add('Sub', [x, b.add('Mul', [y, b.add('Floor', [b.add('Div', [x, y])])])])


@rule('modulo')
def _modulo(b, n, x, a):
    return _floor_mod(b, n, x[0], x[1])


# scalar ops: (ONNX op, scalar on the left)
_SCALAR = {'_plus_scalar': ('Add', False), '_rminus_scalar': ('Sub', True),
           '_mul_scalar': ('Mul', False), '_div_scalar': ('Div', False), '_rdiv_scalar': ('Div', True),
           '_power_scalar': ('Pow', False), '_rpower_scalar': ('Pow', True),
           '_maximum_scalar': ('Max', False), '_minimum_scalar': ('Min', False),
           '_equal_scalar': ('Equal', False), '_greater_scalar': ('Greater', False),
           '_greater_equal_scalar': ('GreaterOrEqual', False), '_lesser_scalar': ('Less', False),
           '_lesser_equal_scalar': ('LessOrEqual', False)}


@rule(*_SCALAR, '_not_equal_scalar', '_mod_scalar', '_rmod_scalar')
def _scalar(b, n, x, a):
    s = b.scalar(a['scalar'], n.inputs[0].dtype)
    name = n.op.name
    if name in ('_mod_scalar', '_rmod_scalar'):
        return _floor_mod(b, n, x[0], s) if name == '_mod_scalar' else _floor_mod(b, n, s, x[0])
    if name == '_not_equal_scalar':
        return _as_out_dtype(b, n, b.add('Not', [b.add('Equal', [x[0], s])]))
    op, left = _SCALAR[name]
    out = b.add(op, [s, x[0]] if left else [x[0], s])
    return _as_out_dtype(b, n, out) if op in _COMPARE.values() else out


@rule('clip')
def _clip(b, n, x, a):
    dt = _dtype(n)
    return b.add('Clip', [x[0], b.scalar(a['a_min'], dt), b.scalar(a['a_max'], dt)])


@rule('cast')
def _cast(b, n, x, a):
    return b.add('Cast', x, to=_onnx_type(b, a['dtype']))


@rule('where')
def _where(b, n, x, a):
    cond = b.add('Not', [b.add('Equal', [x[0], b.scalar(0, n.inputs[0].dtype)])])
    return b.add('Where', [cond, x[1], x[2]])


@rule('full_like')
def _full_like(b, n, x, a):
    value = b.onnx.numpy_helper.from_array(np.asarray([a['value']], dtype=_dtype(n)))
    return b.add('ConstantOfShape', [b.add('Shape', x)], value=value)


# ---- neural-network ops -------------------------------------------------------------------------

def _window(a, kernel=None):
    out = {'strides': list(a['stride']), 'pads': list(a['pad']) * 2}
    if 'dilate' in a:
        out['dilations'] = list(a['dilate'])
    if kernel is not None:
        out['kernel_shape'] = list(kernel)
    return out


@rule('conv2d')
def _conv(b, n, x, a):
    out = b.add('Conv', x, group=int(a['groups']), **_window(a, n.inputs[1].shape[2:]))
    if a.get('act') == 'relu':
        out = b.add('Relu', [out])
    elif a.get('act') is not None:
        raise MXNetError(f"export_model: conv2d with act={a['act']!r} has no ONNX translation")
    return out


@rule('conv2d_transpose')
def _deconv(b, n, x, a):
    return b.add('ConvTranspose', x, group=int(a['groups']), output_padding=list(a['adj']),
                 **_window(a, n.inputs[1].shape[2:]))


@rule('max_pool2d')
def _max_pool(b, n, x, a):
    return [b.add('MaxPool', x, ceil_mode=int(bool(a['ceil_mode'])), **_window(a, a['kernel']))]


@rule('avg_pool2d')
def _avg_pool(b, n, x, a):
    return b.add('AveragePool', x, ceil_mode=int(bool(a['ceil_mode'])),
                 count_include_pad=int(bool(a.get('count_include_pad', True))), **_window(a, a['kernel']))


@rule('fully_connected')
def _fc(b, n, x, a):
    if a['flatten']:
        flat = x[0] if len(n.inputs[0].shape) == 2 else b.add('Flatten', [x[0]], axis=1)
        return b.add('Gemm', [flat] + x[1:], transB=1)
    out = b.add('MatMul', [x[0], b.add('Transpose', [x[1]], perm=[1, 0])])
    return b.add('Add', [out, x[2]]) if len(x) == 3 else out


@rule('dot', 'batch_dot')
def _dot(b, n, x, a):
    ops = []
    for v, name, t in zip(n.inputs, x, (a['transpose_a'], a['transpose_b'])):
        if t:
            perm = list(range(len(v.shape)))
            perm[-2:] = perm[-1], perm[-2]
            name = b.add('Transpose', [name], perm=perm)
        ops.append(name)
    if n.op.name == 'dot' and (len(n.inputs[0].shape) > 2 or len(n.inputs[1].shape) > 2):
        raise MXNetError('export_model: dot of arrays with more than 2 axes has no ONNX translation')
    return b.add('MatMul', ops)


@rule('softmax', 'log_softmax')
def _softmax(b, n, x, a):
    return b.add('Softmax' if n.op.name == 'softmax' else 'LogSoftmax', x, axis=int(a['axis']))


@rule('softmax_output')
def _softmax_output(b, n, x, a):
    return b.add('Softmax', x[:1], axis=-1)      # the label only shapes the backward pass


@rule('batch_norm')
def _batch_norm(b, n, x, a):
    if a['training'] or int(a['axis']) != 1:
        raise MXNetError('export_model: batch_norm exports in inference mode on axis 1 only')
    gamma = x[1]
    if a['fix_gamma']:
        gamma = b.const(np.ones(n.inputs[1].shape, n.inputs[1].dtype), 'gamma')
    return [b.add('BatchNormalization', [x[0], gamma] + x[2:5], epsilon=float(a['eps']))]


@rule('layer_norm')
def _layer_norm(b, n, x, a):
    if b.opset < 17:
        raise MXNetError(f'export_model: layer_norm needs opset_version >= 17, got {b.opset}')
    return [b.add('LayerNormalization', x, axis=int(a['axis']), epsilon=float(a['eps']))]


@rule('embedding')
def _embedding(b, n, x, a):
    return b.add('Gather', [x[1], b.add('Cast', [x[0]], to=b.onnx.TensorProto.INT64)], axis=0)


@rule('one_hot')
def _one_hot(b, n, x, a):
    dt = np.dtype(a['dtype'])
    values = b.const(np.asarray([a['off_value'], a['on_value']], dtype=dt), 'onoff')
    idx = b.add('Cast', x, to=b.onnx.TensorProto.INT64)
    return b.add('OneHot', [idx, b.ints([a['depth']]), values], axis=-1)


# ---- shapes -------------------------------------------------------------------------------------

@rule('reshape')
def _reshape(b, n, x, a):
    shape = list(n.outputs[0].shape)
    src = n.inputs[0]
    if src.id in b.batch_values:
        if not shape or shape[0] != src.shape[0]:
            raise MXNetError(f'export_model(dynamic=True): reshape {src.shape} -> {tuple(shape)} '
                             'mixes the batch axis with others; export with a fixed batch size')
        shape[0] = 0                                    # ONNX: copy the input's axis 0
    return b.add('Reshape', [x[0], b.ints(shape)])


@rule('transpose')
def _transpose(b, n, x, a):
    axes = a['axes']
    return b.add('Transpose', x, **({} if axes is None else {'perm': list(axes)}))


@rule('concat')
def _concat(b, n, x, a):
    return b.add('Concat', x, axis=int(a['dim']))


@rule('split')
def _split(b, n, x, a):
    axis, size = int(a['axis']), n.inputs[0].shape[int(a['axis'])]
    edges = (0,) + tuple(a['bounds']) + (size,)
    sizes = [e1 - e0 for e0, e1 in zip(edges, edges[1:])]
    outs = [b.fresh('split') for _ in sizes]
    b.add('Split', [x[0], b.ints(sizes)], outs, axis=axis)
    return outs


@rule('broadcast_to')
def _broadcast_to(b, n, x, a):
    shape, src = list(n.outputs[0].shape), n.inputs[0]
    if src.id in b.batch_values and len(src.shape) == len(shape) and src.shape[0] == shape[0]:
        shape[0] = 1                    # Expand broadcasts both ways: 1 keeps the input's batch
    return b.add('Expand', [x[0], b.ints(shape)])


@rule('tile')
def _tile(b, n, x, a):
    reps = list(a['reps'])
    reps = [1] * (len(n.outputs[0].shape) - len(reps)) + reps
    src = x[0]
    if len(n.inputs[0].shape) < len(reps):
        src = b.add('Reshape', [src, b.ints([1] * (len(reps) - len(n.inputs[0].shape)) + list(n.inputs[0].shape))])
    return b.add('Tile', [src, b.ints(reps)])


@rule('flip')
def _flip(b, n, x, a):
    axes = a['axis'] if isinstance(a['axis'], (tuple, list)) else (a['axis'],)
    big = np.iinfo(np.int64).max
    return b.add('Slice', [x[0], b.ints([-1] * len(axes)), b.ints([-big] * len(axes)),
                           b.ints(list(axes)), b.ints([-1] * len(axes))])


@rule('pad')
def _pad(b, n, x, a):
    pw = list(a['pad_width'])
    pads = pw[0::2] + pw[1::2]                    # ONNX: all begins, then all ends
    mode = a['mode']
    inputs = [x[0], b.ints(pads)]
    if mode == 'constant':
        inputs.append(b.scalar(a['constant_value'], _dtype(n)))
    return b.add('Pad', inputs, mode=mode)


# ---- reductions ---------------------------------------------------------------------------------

_REDUCE = {'sum': 'ReduceSum', 'mean': 'ReduceMean', 'max': 'ReduceMax', 'min': 'ReduceMin',
           'prod': 'ReduceProd', 'norm': 'ReduceL2'}


@rule(*_REDUCE)
def _reduce(b, n, x, a):
    op, axis = _REDUCE[n.op.name], a.get('axis')
    ndim = len(n.inputs[0].shape)
    axes = list(range(ndim)) if axis is None else [int(i) % ndim for i in np.atleast_1d(axis)]
    keep = int(bool(a.get('keepdims', False)))
    if op == 'ReduceSum' or b.opset >= 18:        # axes became an input (ReduceSum in opset 13)
        return b.add(op, [x[0], b.ints(axes)], keepdims=keep)
    return b.add(op, x, axes=axes, keepdims=keep)


@rule('argmax', 'argmin')
def _argmax(b, n, x, a):
    axis = a.get('axis')
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise MXNetError(f'export_model: {n.op.name} over several axes has no ONNX translation')
        axis = axis[0]
    src = x[0] if axis is not None else b.add('Reshape', [x[0], b.ints([-1])])
    out = b.add('ArgMax' if n.op.name == 'argmax' else 'ArgMin', [src], axis=0 if axis is None else int(axis),
                keepdims=int(bool(a.get('keepdims', False))))
    return b.add('Cast', [out], to=_onnx_type(b, _dtype(n)))
