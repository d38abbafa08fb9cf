"""The one table from MXNet op names to the engine's functions. It serves `mx.sym` functions,
MXNet-JSON import and export alike.

Every public function of `engine.nd` is an op under its own name (so the names and attribute
names are MXNet's: `Convolution(data, weight, bias, kernel=..., num_filter=...)`). Added on top:
MXNet's internal names that JSON files contain (`_plus_scalar`, `Reshape`, `elemwise_add`, ...),
which inputs are parameters created automatically (`fc1_weight`), which are auxiliary states,
and the rules that give parameter shapes from the data shape (for `infer_shape`)."""
import functools
import inspect

import numpy as np

from .. import nd
from ..base import MXNetError


class OpSpec:
    """fn(*inputs, **attrs) computes the op on NDArrays or graph-trace symbols."""

    def __init__(self, name, fn, params=(), aux=(), param_shapes=None, num_outputs=None,
                 export_as=None, creates=False, param_init=None):
        self.name, self.fn = name, fn
        self.param_init = dict(param_init or {})   # auto-created input -> its '__init__' attribute
        self.creates = creates      # no inputs: fn(ctx=..., **attrs) makes an array
        self.params, self.aux = tuple(params), tuple(aux)   # auto-created inputs after data
        self.param_shapes = param_shapes    # (data shape, attrs) -> {input name: shape}
        self._num_outputs = num_outputs     # attrs -> number of outputs (default 1)
        self.export_as = export_as          # attrs -> (MXNet op name, attrs), for other names
        sig = inspect.signature(fn)
        self.signature = sig
        ps = list(sig.parameters.values())
        self.varargs = any(p.kind is p.VAR_POSITIONAL for p in ps)
        self.positional = [p.name for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def num_outputs(self, attrs):
        return 1 if self._num_outputs is None else int(self._num_outputs(attrs))

    def present_params(self, attrs):
        """The auto-created inputs this node has (no bias with no_bias=True, ...)."""
        names = list(self.params)
        if 'bias' in names and attrs.get('no_bias', self.name == 'Deconvolution'):
            names.remove('bias')
        if self.name == 'LeakyReLU' and attrs.get('act_type', 'leaky') != 'prelu':
            names = []
        return names

    def check_attrs(self, node_name, n_inputs, attrs):
        """Raise MXNetError when the function does not take these inputs/attributes."""
        try:
            self.signature.bind(*range(n_inputs), **attrs)
        except TypeError as e:
            raise MXNetError(f"op {self.name} (node '{node_name}'): {e}; attributes {attrs}") from None
        extra = [k for k in attrs if k not in self.signature.parameters]   # went to **kwargs
        for k in extra:
            if k in _HINTS:
                continue
            defaults = _DEFAULT_ONLY.get(self.name, {})
            if k not in defaults:
                raise MXNetError(f"op {self.name} (node '{node_name}'): attribute {k}={attrs[k]!r} is "
                                 'not supported')
            if attrs[k] != defaults[k]:
                raise MXNetError(f"op {self.name} (node '{node_name}'): {k}={attrs[k]!r} is not "
                                 f'supported (only {defaults[k]!r})')
        layout = attrs.get('layout')
        if layout not in (None, 'NCW', 'NCHW'):
            raise MXNetError(f"op {self.name} (node '{node_name}'): layout {layout!r} is not supported "
                             "(only NCW/NCHW)")


# attributes that only tune MXNet's kernels (or matter only with a value rejected below)
_HINTS = {'workspace', 'cudnn_tune', 'cudnn_off', 'ignore_label', 'num_args'}
# attributes the engine functions do not implement: only MXNet's default value is accepted
_DEFAULT_ONLY = {
    'SoftmaxOutput': {'multi_output': False, 'use_ignore': False, 'preserve_shape': False,
                      'normalization': 'null', 'out_grad': False, 'smooth_alpha': 0.0},
    'softmax': {'use_length': False, 'dtype': None}, 'log_softmax': {'use_length': False, 'dtype': None},
    'BatchNorm': {'output_mean_var': False},
}


# ---- parameter shapes from the data shape -----------------------------------------------------

def _tuple(v, n):
    return (int(v),) * n if np.isscalar(v) else tuple(int(i) for i in v)


def _conv_shapes(s, a):
    k, f, g = _tuple(a['kernel'], len(s) - 2), int(a['num_filter']), int(a.get('num_group', 1))
    return {'weight': (f, s[1] // g) + k, 'bias': (f,)}


def _deconv_shapes(s, a):
    k, f, g = _tuple(a['kernel'], len(s) - 2), int(a['num_filter']), int(a.get('num_group', 1))
    return {'weight': (s[1], f // g) + k, 'bias': (f,)}


def _fc_shapes(s, a):
    h = int(a['num_hidden'])
    n_in = int(np.prod(s[1:])) if a.get('flatten', True) else s[-1]
    return {'weight': (h, n_in), 'bias': (h,)}


def _channel_shapes(names, default_axis):
    def rule(s, a):
        c = s[int(a.get('axis', default_axis)) % len(s)]
        return {n: (c,) for n in names}
    return rule


_BN = ('gamma', 'beta', 'moving_mean', 'moving_var')


# ops whose inputs all have the output's shape (no broadcasting): shape inference gives an
# unknown input the shape of a known one
SAME_SHAPE_OPS = frozenset({
    'elemwise_add', 'elemwise_sub', 'elemwise_mul', 'elemwise_div', '_plus', '_Plus', '_add',
    '_minus', '_Minus', '_sub', '_mul', '_Mul', '_div', '_Div', 'add_n', 'ElementWiseSum'})


# ---- MXNet's internal names ------------------------------------------------------------------

def _scalar(fn):
    def op(data, scalar):
        return fn(data, float(scalar))
    return op


_SCALAR_OPS = {
    '_plus_scalar': lambda x, s: x + s, '_minus_scalar': lambda x, s: x - s,
    '_rminus_scalar': lambda x, s: s - x, '_mul_scalar': lambda x, s: x * s,
    '_div_scalar': lambda x, s: x / s, '_rdiv_scalar': lambda x, s: s / x,
    '_power_scalar': lambda x, s: x ** s, '_rpower_scalar': lambda x, s: s ** x,
    '_mod_scalar': lambda x, s: x % s, '_maximum_scalar': nd.maximum, '_minimum_scalar': nd.minimum,
    '_equal_scalar': lambda x, s: x == s, '_not_equal_scalar': lambda x, s: x != s,
    '_greater_scalar': lambda x, s: x > s, '_greater_equal_scalar': lambda x, s: x >= s,
    '_lesser_scalar': lambda x, s: x < s, '_lesser_equal_scalar': lambda x, s: x <= s,
}

# MXNet name -> engine function of the same op under another name
_ALIASES = {
    '_plus': 'elemwise_add', '_Plus': 'elemwise_add', '_add': 'elemwise_add',
    '_minus': 'elemwise_sub', '_Minus': 'elemwise_sub', '_sub': 'elemwise_sub',
    '_mul': 'elemwise_mul', '_Mul': 'elemwise_mul', '_div': 'elemwise_div', '_Div': 'elemwise_div',
    '_power': 'power', '_Power': 'power', '_maximum': 'maximum', '_Maximum': 'maximum',
    '_minimum': 'minimum', '_Minimum': 'minimum', '_mod': 'modulo', '_equal': 'equal',
    '_not_equal': 'not_equal', '_greater': 'greater', '_greater_equal': 'greater_equal',
    '_lesser': 'lesser', '_lesser_equal': 'lesser_equal', 'Reshape': 'reshape', '_copy': 'copy',
    'identity': 'copy', 'split': 'SliceChannel', 'Flatten': 'flatten', 'Concat': 'concat',
    'Cast': 'cast', 'BlockGrad': 'stop_gradient', 'SwapAxis': 'swapaxes', 'Pad': 'pad',
}


# ops without inputs (MXNet's _zeros, ...): `ctx` is where the graph runs (evaluate passes it;
# the 'ctx' attribute MXNet may write is ignored)
def _zeros(shape=(), dtype='float32', ctx=None):
    return nd.zeros(tuple(shape), ctx=ctx, dtype=np.dtype(dtype or 'float32'))


def _ones(shape=(), dtype='float32', ctx=None):
    return nd.ones(tuple(shape), ctx=ctx, dtype=np.dtype(dtype or 'float32'))


def _full(shape=(), value=0.0, dtype='float32', ctx=None):
    return nd.full(tuple(shape), float(value), ctx=ctx, dtype=np.dtype(dtype or 'float32'))


_CREATION = {'_zeros': _zeros, '_ones': _ones, '_full': _full}


def _arange(start=0.0, stop=None, step=1.0, repeat=1, dtype='float32', ctx=None, infer_range=False):
    return nd.arange(float(start), None if stop is None else float(stop), float(step), int(repeat),
                     ctx=ctx, dtype=np.dtype(dtype or 'float32'))


def _add_n(*data, num_args=None):
    return functools.reduce(lambda a, b: a + b, data)


# engine names that are not MXNet ops: how to write them in an MXNet JSON file
_EXPORT_AS = {
    'selu': lambda a: ('LeakyReLU', {'act_type': 'selu'}),
    'gelu': lambda a: ('LeakyReLU', {'act_type': 'gelu'}),
    'elu': lambda a: ('LeakyReLU', {'act_type': 'elu', 'slope': a.get('alpha', 1.0)}),
    'leaky_relu': lambda a: ('LeakyReLU', {'act_type': 'leaky', 'slope': a.get('slope', 0.01)}),
    'softrelu': lambda a: ('Activation', {'act_type': 'softrelu'}),
    'add': lambda a: ('broadcast_add', a), 'subtract': lambda a: ('broadcast_sub', a),
    'multiply': lambda a: ('broadcast_mul', a), 'divide': lambda a: ('broadcast_div', a),
    'maximum': lambda a: ('broadcast_maximum', a), 'minimum': lambda a: ('broadcast_minimum', a),
    'power': lambda a: ('broadcast_power', a), 'modulo': lambda a: ('broadcast_mod', a),
    'equal': lambda a: ('broadcast_equal', a), 'not_equal': lambda a: ('broadcast_not_equal', a),
    'greater': lambda a: ('broadcast_greater', a), 'lesser': lambda a: ('broadcast_lesser', a),
    'greater_equal': lambda a: ('broadcast_greater_equal', a),
    'lesser_equal': lambda a: ('broadcast_lesser_equal', a),
    'concat': lambda a: ('Concat', a), 'flatten': lambda a: ('Flatten', a),
    'reshape': lambda a: ('Reshape', a), 'split': lambda a: ('SliceChannel', a),
    'copy': lambda a: ('_copy', a), 'stop_gradient': lambda a: ('BlockGrad', a),
}

# functions of engine.ops that engine.nd exports but that are not ops of an MXNet graph
_NOT_OPS = {'broadcast_shape', 'get_op', 'register', 'same_shape', 'shape_error', 'getitem',
            'sum_to', 'split_at'}


def _is_op(name, fn):
    """The op functions of engine.nd: those of the op library, and zeros_like/ones_like."""
    if name.startswith('_') or name in _NOT_OPS or not inspect.isfunction(fn):
        return False
    return fn.__module__.startswith('engine.ops.') or name in ('zeros_like', 'ones_like')


def _split_outputs(a):
    return a['num_outputs']


def _build_table():
    table = {}
    for name in dir(nd):
        fn = getattr(nd, name)
        if not _is_op(name, fn):
            continue
        table[name] = OpSpec(name, fn, export_as=_EXPORT_AS.get(name))
    for name, fn in _SCALAR_OPS.items():
        table[name] = OpSpec(name, _scalar(fn))
    for alias, target in _ALIASES.items():
        table[alias] = OpSpec(alias, getattr(nd, target))
    table['add_n'] = table['ElementWiseSum'] = OpSpec('add_n', _add_n)
    for name, fn in dict(_CREATION, _arange=_arange).items():
        table[name] = OpSpec(name, fn, creates=True)
    special = {
        'Convolution': dict(params=('weight', 'bias'), param_shapes=_conv_shapes),
        'Deconvolution': dict(params=('weight', 'bias'), param_shapes=_deconv_shapes),
        'FullyConnected': dict(params=('weight', 'bias'), param_shapes=_fc_shapes),
        'BatchNorm': dict(params=_BN, aux=_BN[2:], param_shapes=_channel_shapes(_BN, 1)),
        'LayerNorm': dict(params=('gamma', 'beta'), param_shapes=_channel_shapes(('gamma', 'beta'), -1)),
        'InstanceNorm': dict(params=('gamma', 'beta'), param_shapes=_channel_shapes(('gamma', 'beta'), 1)),
        'LeakyReLU': dict(params=('gamma',), param_shapes=lambda s, a: {'gamma': (s[1],)},
                          param_init={'gamma': '["constant", {"value": 0.25}]'}),   # as MXNet's PReLU
        'Embedding': dict(params=('weight',),
                          param_shapes=lambda s, a: {'weight': (int(a['input_dim']), int(a['output_dim']))}),
        'SoftmaxOutput': dict(params=('label',), param_shapes=lambda s, a: {'label': tuple(s[:-1])}),
    }
    for name, kw in special.items():
        table[name] = OpSpec(name, table[name].fn, **kw)
    for name in ('SliceChannel', 'split'):
        table[name] = OpSpec(name, table[name].fn, num_outputs=_split_outputs,
                             export_as=_EXPORT_AS.get(name))
    return table


OPS = _build_table()


def get_spec(op_name, node_name=None):
    spec = OPS.get(op_name)
    if spec is None:
        where = f" (node '{node_name}')" if node_name else ''
        raise MXNetError(f"op '{op_name}'{where} is not supported by the engine; supported ops: "
                         f"{', '.join(sorted(n for n in OPS if not n.startswith('_')))}")
    return spec
