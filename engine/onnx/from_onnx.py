"""The table from ONNX ops to `mx.sym` calls, for the ops `export_model` writes (and the common
equivalents). Values are mx.sym Symbols, or `Static` NumPy values (initializers, Constant nodes,
shapes) that ops read as attributes; a Static read as a tensor becomes a parameter."""
import numpy as np

from .. import symbol as sym
from ..base import MXNetError
from ._table import rule_table

RULES, rule = rule_table()


class Static:
    """A value known at import time (and the name it has in the file, if any)."""

    def __init__(self, value, name=None):
        self.value, self.name = np.asarray(value), name


class ShapeOf:
    """`Shape(x)`: kept symbolic so that `ConstantOfShape(Shape(x))` follows x's batch size."""

    def __init__(self, of):
        self.of = of




def convert(op_type, ins, attrs, node, params, shapes):
    fn = RULES.get(op_type)
    if fn is None:
        raise MXNetError(f'import_model: ONNX op {op_type!r} (node {node.name!r}) is not supported')
    ctx = _Ctx(node, params, shapes)
    try:
        return fn(ctx, ins, attrs)
    except MXNetError as e:
        raise MXNetError(f'import_model: node {node.name!r} ({op_type}): {e}') from None


class _Ctx:
    def __init__(self, node, params, shapes):
        self.node, self.params, self.shapes = node, params, shapes

    def shape(self, i):
        """The shape of the node's i-th input from ONNX's shape inference (None for free axes)."""
        shape = self.shapes.get(self.node.input[i])
        if shape is None:
            raise MXNetError(f'the shape of input {self.node.input[i]!r} is not known')
        return shape

    def tensor(self, v):
        """A Symbol for v; a Static becomes a parameter under its file name."""
        if isinstance(v, Static):
            name = v.name or f'{self.node.name}_const{len(self.params)}'
            self.params[name] = v.value
            return sym.var(name)
        if isinstance(v, ShapeOf):
            raise MXNetError('a Shape value used as a tensor is not supported')
        return v

    def operand(self, v):
        """For arithmetic: one-element Statics are Python scalars (no parameter needed)."""
        if isinstance(v, Static) and v.value.size == 1:
            return v.value.reshape(()).item()
        return self.tensor(v)


def static(v, what):
    if not isinstance(v, Static):
        raise MXNetError(f'{what} must be a constant (an initializer or Constant node)')
    return v.value


def _ints(v, what):
    return [int(i) for i in static(v, what).reshape(-1)]


# ---- constants and shapes ---------------------------------------------------------------------

@rule('Constant')
def _constant(c, ins, a):
    from .export import _onnx
    return Static(_onnx().numpy_helper.to_array(a['value']), c.node.output[0])


@rule('Shape')
def _shape(c, ins, a):
    return ShapeOf(c.tensor(ins[0]))


@rule('ConstantOfShape')
def _const_of_shape(c, ins, a):
    from .export import _onnx
    value = _onnx().numpy_helper.to_array(a['value']).reshape(-1)[0] if 'value' in a else 0.0
    if isinstance(ins[0], ShapeOf):
        return sym.full_like(ins[0].of, value=float(value))
    return Static(np.full(_ints(ins[0], 'ConstantOfShape shape'), value, dtype=np.asarray(value).dtype))


@rule('Identity')
def _identity(c, ins, a):
    return ins[0]


# ---- elementwise --------------------------------------------------------------------------------

_UNARY = {'Relu': 'relu', 'Sigmoid': 'sigmoid', 'Tanh': 'tanh', 'Exp': 'exp', 'Log': 'log',
          'Sqrt': 'sqrt', 'Abs': 'abs', 'Neg': 'negative', 'Reciprocal': 'reciprocal',
          'Floor': 'floor', 'Ceil': 'ceil', 'Sin': 'sin', 'Cos': 'cos', 'Tan': 'tan', 'Erf': 'erf',
          'Sign': 'sign', 'Softsign': 'softsign', 'Softplus': 'softplus', 'Not': 'logical_not',
          'Selu': 'selu'}
for _onnx_op, _fn in _UNARY.items():
    RULES[_onnx_op] = lambda c, ins, a, _fn=_fn: getattr(sym, _fn)(c.tensor(ins[0]))

_BINARY = {'Add': lambda x, y: x + y, 'Sub': lambda x, y: x - y, 'Mul': lambda x, y: x * y,
           'Div': lambda x, y: x / y, 'Pow': lambda x, y: x ** y, 'Equal': lambda x, y: x == y,
           'Greater': lambda x, y: x > y, 'Less': lambda x, y: x < y,
           'GreaterOrEqual': lambda x, y: x >= y, 'LessOrEqual': lambda x, y: x <= y}


def _binary(fn):
    def convert_binary(c, ins, a):
        x, y = (c.operand(v) for v in ins)
        if not hasattr(x, '_is_mx_symbol') and not hasattr(y, '_is_mx_symbol'):
            raise MXNetError('both operands are constants')
        return fn(x, y)         # a scalar on the left goes through the Symbol's reflected operator
    return convert_binary


for _onnx_op, _fn in _BINARY.items():
    RULES[_onnx_op] = _binary(_fn)


@rule('Max', 'Min')
def _max_min(c, ins, a):
    fn = sym.maximum if c.node.op_type == 'Max' else sym.minimum
    x, y = (c.operand(v) for v in ins)
    return fn(x, y) if hasattr(x, '_is_mx_symbol') else fn(y, x)


@rule('Mod')
def _mod(c, ins, a):
    if a.get('fmod', 0):
        raise MXNetError('Mod with fmod=1 (the sign of the dividend) is not supported')
    return c.operand(ins[0]) % c.operand(ins[1])


@rule('LeakyRelu')
def _leaky(c, ins, a):
    return sym.LeakyReLU(c.tensor(ins[0]), act_type='leaky', slope=float(a.get('alpha', 0.01)))


@rule('Elu')
def _elu(c, ins, a):
    return sym.LeakyReLU(c.tensor(ins[0]), act_type='elu', slope=float(a.get('alpha', 1.0)))


@rule('Clip')
def _clip(c, ins, a):
    lo = float(static(ins[1], 'Clip min')) if len(ins) > 1 and ins[1] is not None else -np.inf
    hi = float(static(ins[2], 'Clip max')) if len(ins) > 2 and ins[2] is not None else np.inf
    return sym.clip(c.tensor(ins[0]), lo, hi)


@rule('Cast')
def _cast(c, ins, a):
    from .export import _onnx
    return sym.cast(c.tensor(ins[0]), dtype=np.dtype(_onnx().helper.tensor_dtype_to_np_dtype(a['to'])).name)


@rule('Where')
def _where(c, ins, a):
    return sym.where(*(c.tensor(v) for v in ins))


# ---- neural-network ops -------------------------------------------------------------------------

def _spatial(c, ins, a):
    """kernel, stride, dilate, symmetric pad (asymmetric pads are padded explicitly first)."""
    x = c.tensor(ins[0])
    pads = list(a.get('pads', [0, 0, 0, 0]))
    if a.get('auto_pad', b'NOTSET') not in (b'NOTSET', 'NOTSET'):
        raise MXNetError(f"auto_pad={a['auto_pad']!r} is not supported; use explicit pads")
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        pw = [0, 0, 0, 0] + [p for pair in zip(pads[:half], pads[half:]) for p in pair]
        x, pads = sym.pad(x, mode='constant', pad_width=tuple(pw)), [0] * len(pads)
    return x, dict(stride=tuple(a.get('strides', [1] * half)), pad=tuple(pads[:half]),
                   **({'dilate': tuple(a['dilations'])} if 'dilations' in a else {}))


@rule('Conv', 'ConvTranspose')
def _conv(c, ins, a):
    x, kw = _spatial(c, ins, a)
    w = c.tensor(ins[1])
    shape = c.shape(1)
    b = c.tensor(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    kernel = tuple(a.get('kernel_shape', shape[2:]))
    group = int(a.get('group', 1))
    if c.node.op_type == 'Conv':
        return sym.Convolution(x, w, b, kernel=kernel, num_filter=shape[0], num_group=group,
                               no_bias=b is None, **kw)
    return sym.Deconvolution(x, w, b, kernel=kernel, num_filter=shape[1] * group, num_group=group,
                             adj=tuple(a.get('output_padding', [0] * len(kernel))), no_bias=b is None, **kw)


@rule('MaxPool', 'AveragePool')
def _pool(c, ins, a):
    x, kw = _spatial(c, ins, a)
    kw.pop('dilate', None)
    return sym.Pooling(x, kernel=tuple(a['kernel_shape']),
                       pool_type='max' if c.node.op_type == 'MaxPool' else 'avg',
                       pooling_convention='full' if a.get('ceil_mode', 0) else 'valid',
                       count_include_pad=bool(a.get('count_include_pad', 0)), **kw)


@rule('GlobalAveragePool', 'GlobalMaxPool')
def _global_pool(c, ins, a):
    return sym.Pooling(c.tensor(ins[0]), global_pool=True, kernel=(1, 1),
                       pool_type='avg' if c.node.op_type == 'GlobalAveragePool' else 'max')


@rule('Gemm')
def _gemm(c, ins, a):
    if a.get('transA', 0) or a.get('alpha', 1.0) != 1.0 or a.get('beta', 1.0) != 1.0:
        raise MXNetError('Gemm with transA, alpha or beta other than the defaults is not supported')
    x, w = c.tensor(ins[0]), c.tensor(ins[1])
    b = c.tensor(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    if not a.get('transB', 0):
        out = sym.dot(x, w)
        return out if b is None else sym.broadcast_add(out, b)
    return sym.FullyConnected(x, w, b, num_hidden=c.shape(1)[0], no_bias=b is None)


@rule('MatMul')
def _matmul(c, ins, a):
    x, y = c.tensor(ins[0]), c.tensor(ins[1])
    return sym.dot(x, y) if len(c.shape(0)) == len(c.shape(1)) == 2 else sym.batch_dot(x, y)


@rule('Flatten')
def _flatten(c, ins, a):
    if a.get('axis', 1) != 1:
        raise MXNetError('Flatten is supported with axis=1 only')
    return sym.flatten(c.tensor(ins[0]))


@rule('Softmax', 'LogSoftmax')
def _softmax(c, ins, a):
    fn = sym.softmax if c.node.op_type == 'Softmax' else sym.log_softmax
    return fn(c.tensor(ins[0]), axis=int(a.get('axis', -1)))


@rule('BatchNormalization')
def _batch_norm(c, ins, a):
    x, *rest = (c.tensor(v) for v in ins[:5])
    return sym.BatchNorm(x, *rest, eps=float(a.get('epsilon', 1e-5)), fix_gamma=False,
                         use_global_stats=True)


@rule('LayerNormalization')
def _layer_norm(c, ins, a):
    x, gamma, beta = (c.tensor(v) for v in ins[:3])
    return sym.LayerNorm(x, gamma, beta, axis=int(a.get('axis', -1)), eps=float(a.get('epsilon', 1e-5)))


@rule('Gather')
def _gather(c, ins, a):
    return sym.take(c.tensor(ins[0]), c.tensor(ins[1]), axis=int(a.get('axis', 0)))


@rule('OneHot')
def _one_hot(c, ins, a):
    values = static(ins[2], 'OneHot values')
    if a.get('axis', -1) != -1:
        raise MXNetError('OneHot is supported with axis=-1 only')
    return sym.one_hot(c.tensor(ins[0]), depth=int(static(ins[1], 'OneHot depth').reshape(-1)[0]),
                       on_value=float(values[1]), off_value=float(values[0]), dtype=values.dtype.name)


# ---- shapes -------------------------------------------------------------------------------------

@rule('Reshape')
def _reshape(c, ins, a):
    shape = _ints(ins[1], 'Reshape shape')     # 0 copies an axis and -1 infers one, as in MXNet
    if isinstance(ins[0], Static) and ins[0].name is None:      # shape arithmetic on constants
        v = ins[0].value
        return Static(v.reshape([v.shape[i] if d == 0 else d for i, d in enumerate(shape)]))
    return sym.reshape(c.tensor(ins[0]), shape=tuple(shape))


@rule('Transpose')
def _transpose(c, ins, a):
    return sym.transpose(c.tensor(ins[0]), axes=tuple(a['perm']) if 'perm' in a else None)


@rule('Concat')
def _concat(c, ins, a):
    return sym.concat(*(c.tensor(v) for v in ins), dim=int(a['axis']))


@rule('Split')
def _split(c, ins, a):
    x, axis = c.tensor(ins[0]), int(a.get('axis', 0))
    sizes = _ints(ins[1], 'Split sizes') if len(ins) > 1 and ins[1] is not None else a.get('split')
    if sizes is None:
        raise MXNetError('Split without sizes is not supported')
    edges = np.cumsum([0] + list(sizes))
    return [sym.slice_axis(x, axis=axis, begin=int(b), end=int(e)) for b, e in zip(edges, edges[1:])]


@rule('Expand')
def _expand(c, ins, a):
    shape = _ints(ins[1], 'Expand shape')
    if len(shape) != len(c.shape(0)):
        raise MXNetError('Expand to another number of axes is not supported')
    # ONNX keeps an input axis where the shape says 1; MXNet's broadcast_to where it says 0
    return sym.broadcast_to(c.tensor(ins[0]), shape=tuple(0 if d == 1 else d for d in shape))


@rule('Tile')
def _tile(c, ins, a):
    return sym.tile(c.tensor(ins[0]), reps=tuple(_ints(ins[1], 'Tile repeats')))


@rule('Slice')
def _slice(c, ins, a):
    x = c.tensor(ins[0])
    starts, ends = _ints(ins[1], 'Slice starts'), _ints(ins[2], 'Slice ends')
    axes = _ints(ins[3], 'Slice axes') if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = _ints(ins[4], 'Slice steps') if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st == -1 and s == -1 and e <= -(2 ** 62):
            x = sym.flip(x, axis=ax)
        elif st == 1:
            x = sym.slice_axis(x, axis=ax, begin=s, end=None if e >= 2 ** 62 else e)
        else:
            raise MXNetError(f'Slice with step {st} is not supported')
    return x


@rule('Pad')
def _pad(c, ins, a):
    pads = _ints(ins[1], 'Pad pads')
    n = len(pads) // 2
    pw = tuple(p for pair in zip(pads[:n], pads[n:]) for p in pair)
    mode = a.get('mode', b'constant')
    mode = mode.decode() if isinstance(mode, bytes) else mode
    value = float(static(ins[2], 'Pad value')) if len(ins) > 2 and ins[2] is not None else 0.0
    return sym.pad(c.tensor(ins[0]), mode=mode, pad_width=pw, constant_value=value)


# ---- reductions ---------------------------------------------------------------------------------

_REDUCE = {'ReduceSum': 'sum', 'ReduceMean': 'mean', 'ReduceMax': 'max', 'ReduceMin': 'min',
           'ReduceProd': 'prod', 'ReduceL2': 'norm'}


@rule(*_REDUCE)
def _reduce(c, ins, a):
    axes = a.get('axes')
    if len(ins) > 1 and ins[1] is not None:
        axes = _ints(ins[1], f'{c.node.op_type} axes')
    axis = None if axes is None else tuple(int(i) for i in axes)
    return getattr(sym, _REDUCE[c.node.op_type])(c.tensor(ins[0]), axis=axis,
                                                 keepdims=bool(a.get('keepdims', 1)))


@rule('ArgMax', 'ArgMin')
def _argmax(c, ins, a):
    fn = sym.argmax if c.node.op_type == 'ArgMax' else sym.argmin
    out = fn(c.tensor(ins[0]), axis=int(a.get('axis', 0)), keepdims=bool(a.get('keepdims', 1)))
    return sym.cast(out, dtype='int64')
