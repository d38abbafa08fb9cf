"""`mx.sym.Symbol`: a lazily built graph of named variables and op nodes (MXNet op names and
attributes). It holds no shapes: `infer_shape`, `eval` and the executors trace it into the
engine's graph IR (graph/trace.py) once shapes are known, and the graph compiler runs that."""
import contextlib
import threading

import numpy as np

from ..base import MXNetError
from .optable import get_spec


class Node:
    """One op application (op is None for a variable). inputs: list of (Node, output index).
    attrs: the op's attributes as Python values; meta: MXNet's '__x__' attributes."""
    __slots__ = ('op', 'name', 'attrs', 'meta', 'inputs', 'num_outputs', 'spec')

    def __init__(self, op, name, attrs=None, inputs=(), meta=None):
        self.op, self.name = op, name
        self.attrs, self.meta = dict(attrs or {}), dict(meta or {})
        self.inputs = list(inputs)
        self.spec = None if op is None else get_spec(op, name)
        if self.spec is not None:
            self.spec.check_attrs(name, len(self.inputs), self.attrs)
        self.num_outputs = 1 if op is None else self.spec.num_outputs(self.attrs)

    @property
    def is_variable(self):
        return self.op is None

    def output_names(self):
        if self.is_variable:
            return [self.name]
        if self.num_outputs == 1:
            return [f'{self.name}_output']
        return [f'{self.name}_output{i}' for i in range(self.num_outputs)]


def topo_order(heads):
    """Nodes reachable from `heads` (list of Node), inputs first, in MXNet's DFS order."""
    order, seen = [], set()
    for head in heads:
        if id(head) in seen:
            continue
        seen.add(id(head))
        stack = [(head, iter(head.inputs))]
        while stack:
            node, it = stack[-1]
            for child, _ in it:
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


# ---- naming --------------------------------------------------------------------------------

_names = threading.local()


def _prefix_stack():
    if not hasattr(_names, 'stack'):
        _names.stack, _names.counters = [''], {}
    return _names.stack


def auto_name(hint):
    """MXNet's NameManager: '<block prefix><op lowercased><n>', n counting per prefix."""
    prefix = _prefix_stack()[-1]
    key = (prefix, hint.lower())
    n = _names.counters.get(key, 0)
    _names.counters[key] = n + 1
    return f'{prefix}{hint.lower()}{n}'


@contextlib.contextmanager
def fresh_names():
    """Fresh counters for prefixed names, so composing a block twice names its nodes alike."""
    _prefix_stack()
    old, _names.counters = _names.counters, {k: v for k, v in _names.counters.items() if not k[0]}
    try:
        yield
    finally:
        kept = {k: v for k, v in _names.counters.items() if not k[0]}
        _names.counters = {**{k: v for k, v in old.items() if k[0]}, **kept}


class Prefix:
    """Names created inside start with `prefix` (a block's name scope)."""

    def __init__(self, prefix):
        self.prefix = prefix

    def __enter__(self):
        _prefix_stack().append(self.prefix)

    def __exit__(self, *exc):
        _names.stack.pop()


# ---- the Symbol ----------------------------------------------------------------------------

class Symbol:
    """One or more outputs of graph nodes."""
    _is_mx_symbol = True
    __array_priority__ = 1001.0

    def __init__(self, outputs):
        self._outputs = list(outputs)     # [(Node, index)]

    # ---- structure ----
    @property
    def name(self):
        if len(self._outputs) != 1:
            return None
        return self._outputs[0][0].name

    def _nodes(self):
        return topo_order([n for n, _ in self._outputs])

    def list_outputs(self):
        return [n.output_names()[i] for n, i in self._outputs]

    def list_inputs(self):
        return [n.name for n in self._nodes() if n.is_variable]

    def _aux_nodes(self):
        aux = set()
        for n in self._nodes():
            if n.spec is not None and n.spec.aux:
                names = ['data'] + n.spec.present_params(n.attrs)
                for (child, _), role in zip(n.inputs, names):
                    if role in n.spec.aux and child.is_variable:
                        aux.add(id(child))
        return aux

    def list_arguments(self):
        aux = self._aux_nodes()
        return [n.name for n in self._nodes() if n.is_variable and id(n) not in aux]

    def list_auxiliary_states(self):
        aux = self._aux_nodes()
        return [n.name for n in self._nodes() if n.is_variable and id(n) in aux]

    def get_internals(self):
        return Symbol([(n, i) for n in self._nodes() for i in range(n.num_outputs)])

    def get_children(self):
        """The inputs of the nodes of the outputs (of every output, for a group), or None
        where there are none (variables)."""
        nodes = list({id(n): n for n, _ in self._outputs}.values())   # outputs of one node: once
        inputs = [inp for n in nodes for inp in n.inputs]
        return Symbol(inputs) if inputs else None

    def __len__(self):
        return len(self._outputs)

    @property
    def shape(self):
        """The output's shape when the inputs' shapes determine it ('__shape__' of variables),
        so blocks that check x.shape can be composed on shaped variables."""
        from .executor import trace
        if len(self._outputs) != 1:
            raise MXNetError(f'Symbol: a group of {len(self._outputs)} outputs has no single shape')
        out = trace(self, {})[2][0]
        if out is None:
            raise MXNetError(f"Symbol '{self.name}': its shape is unknown because the shapes of its "
                             'inputs are; give them (mx.sym.var(name, shape=...)) or use infer_shape')
        return out.shape

    @property
    def ndim(self):
        return len(self.shape)

    def __iter__(self):
        return (Symbol([o]) for o in self._outputs)

    def __getitem__(self, key):
        if isinstance(key, str):
            names = self.list_outputs()
            matches = [i for i, n in enumerate(names) if n == key]
            if not matches:
                raise MXNetError(f'Symbol: no output named {key!r}; outputs are {names}')
            key = matches[0]
        if isinstance(key, slice):
            return Symbol(self._outputs[key])
        if not isinstance(key, (int, np.integer)):
            raise MXNetError(f'Symbol: index with an int or an output name, got {type(key).__name__}')
        if not -len(self._outputs) <= key < len(self._outputs):
            raise MXNetError(f'Symbol: output index {key} out of range ({len(self._outputs)} outputs)')
        return Symbol([self._outputs[key]])

    def attr(self, key):
        if len(self._outputs) != 1:
            return None
        from .json_graph import attr_string
        n = self._outputs[0][0]
        v = n.meta.get(key, n.attrs.get(key))
        return None if v is None else attr_string(v)

    def _set_attr(self, **kwargs):
        """Set string attributes of the output's node (MXNet's attribute setter)."""
        if len(self._outputs) != 1:
            raise MXNetError(f'Symbol._set_attr: a group of {len(self._outputs)} outputs has no '
                             'single node to set attributes on')
        for k, v in kwargs.items():
            if not isinstance(v, str):
                raise MXNetError(f'Symbol._set_attr: attribute {k} must be a string, got '
                                 f'{type(v).__name__}')
            self._outputs[0][0].meta[k] = v

    def list_attr(self):
        from .json_graph import attr_string
        n = self._outputs[0][0]
        return {k: attr_string(v) for k, v in {**n.attrs, **n.meta}.items()}

    def attr_dict(self):
        from .json_graph import attr_string
        return {n.name: {k: attr_string(v) for k, v in {**n.attrs, **n.meta}.items()}
                for n in self._nodes() if n.attrs or n.meta}

    def __call__(self, *args, name=None, **kwargs):
        """A copy of the graph with variables replaced by other symbols (positionally in
        list_arguments order, or by name): MXNet's symbol composition. `name` renames the node
        of a one-output result."""
        out = self._composed(args, kwargs)
        if name is not None:
            if len(out._outputs) != 1 or out._outputs[0][0].is_variable:
                raise MXNetError(f'Symbol: name={name!r} names the op node of a one-output '
                                 f'symbol; this one has outputs {self.list_outputs()}')
            out._outputs[0][0].name = name     # a fresh node: composition copies op nodes
        return out

    def _composed(self, args, kwargs):
        subs = dict(zip(self.list_arguments(), args))
        subs.update(kwargs)
        inputs = set(self.list_inputs())
        for k, v in subs.items():
            if k not in inputs:
                raise MXNetError(f"Symbol: '{k}' is not an input of the symbol; inputs are {sorted(inputs)}")
            if not isinstance(v, Symbol) or len(v._outputs) != 1:
                raise MXNetError(f"Symbol: the replacement for '{k}' must be a one-output Symbol")
        new = {}
        for n in self._nodes():
            if n.is_variable:
                new[id(n)] = [subs[n.name]._outputs[0]] if n.name in subs else [(n, 0)]
            else:
                ins = [new[id(c)][i] for c, i in n.inputs]
                m = Node(n.op, n.name, n.attrs, ins, n.meta)
                new[id(n)] = [(m, i) for i in range(m.num_outputs)]
        return Symbol([new[id(n)][i] for n, i in self._outputs])

    def __repr__(self):
        if len(self._outputs) == 1:
            return f'<Symbol {self.name}>'
        return f'<Symbol group [{", ".join(self.list_outputs())}]>'

    def __copy__(self):
        return Symbol(self._outputs)

    def __getstate__(self):     # pickled as its JSON text, like MXNet
        return {'handle': self.tojson()}

    def __setstate__(self, state):
        from .json_graph import load_json
        self._outputs = load_json(state['handle'])._outputs

    def __deepcopy__(self, memo):
        from .json_graph import load_json
        return load_json(self.tojson())

    # ---- files ----
    def tojson(self):
        from .json_graph import to_json
        return to_json(self)

    def save(self, fname, remove_amp_cast=True):
        from ..serialization import atomic_write
        text = self.tojson().encode()
        atomic_write(fname, lambda f: f.write(text))

    # ---- shapes and running ----
    def infer_shape(self, *args, **kwargs):
        from .executor import infer_shape
        return infer_shape(self, args, kwargs, partial=False)

    def infer_shape_partial(self, *args, **kwargs):
        from .executor import infer_shape
        return infer_shape(self, args, kwargs, partial=True)

    def infer_type(self, *args, **kwargs):
        from .executor import infer_type
        return infer_type(self, args, kwargs, partial=False)

    def infer_type_partial(self, *args, **kwargs):
        from .executor import infer_type
        return infer_type(self, args, kwargs, partial=True)

    def eval(self, ctx=None, **kwargs):
        """The outputs (a list of NDArrays) for the inputs given by name."""
        from .executor import bind
        aux = set(self.list_auxiliary_states())
        args = {k: v for k, v in kwargs.items() if k not in aux}
        ex = bind(self, ctx, args, aux_states={k: v for k, v in kwargs.items() if k in aux})
        return ex.forward()

    def bind(self, ctx, args, args_grad=None, grad_req='write', aux_states=None, **kwargs):
        from .executor import bind
        return bind(self, ctx, args, args_grad, grad_req, aux_states)

    def simple_bind(self, ctx, grad_req='write', type_dict=None, **shapes):
        from .executor import simple_bind
        return simple_bind(self, ctx, grad_req, type_dict, shapes)

    # ---- arithmetic (MXNet's op for each operator) ----
    def _binary(self, other, op, scalar_op):
        if isinstance(other, Symbol):
            return apply_op(op, [self, other], {})
        if isinstance(other, (int, float, np.integer, np.floating)):
            return apply_op(scalar_op, [self], {'scalar': float(other)})
        return NotImplemented

    def _rscalar(self, other, scalar_op):
        if isinstance(other, (int, float, np.integer, np.floating)):
            return apply_op(scalar_op, [self], {'scalar': float(other)})
        return NotImplemented

    __add__ = lambda s, o: s._binary(o, 'elemwise_add', '_plus_scalar')
    __radd__ = lambda s, o: s._rscalar(o, '_plus_scalar')
    __sub__ = lambda s, o: s._binary(o, 'elemwise_sub', '_minus_scalar')
    __rsub__ = lambda s, o: s._rscalar(o, '_rminus_scalar')
    __mul__ = lambda s, o: s._binary(o, 'elemwise_mul', '_mul_scalar')
    __rmul__ = lambda s, o: s._rscalar(o, '_mul_scalar')
    __truediv__ = lambda s, o: s._binary(o, 'elemwise_div', '_div_scalar')
    __rtruediv__ = lambda s, o: s._rscalar(o, '_rdiv_scalar')
    __mod__ = lambda s, o: s._binary(o, '_mod', '_mod_scalar')
    __pow__ = lambda s, o: s._binary(o, '_power', '_power_scalar')
    __rpow__ = lambda s, o: s._rscalar(o, '_rpower_scalar')
    __eq__ = lambda s, o: s._binary(o, '_equal', '_equal_scalar')
    __ne__ = lambda s, o: s._binary(o, '_not_equal', '_not_equal_scalar')
    __gt__ = lambda s, o: s._binary(o, '_greater', '_greater_scalar')
    __ge__ = lambda s, o: s._binary(o, '_greater_equal', '_greater_equal_scalar')
    __lt__ = lambda s, o: s._binary(o, '_lesser', '_lesser_scalar')
    __le__ = lambda s, o: s._binary(o, '_lesser_equal', '_lesser_equal_scalar')
    __hash__ = object.__hash__

    def __neg__(self):
        return apply_op('_mul_scalar', [self], {'scalar': -1.0})

    def __abs__(self):
        return apply_op('abs', [self], {})

    def __bool__(self):
        raise MXNetError('Symbol: a symbol has no value; bool() (a Python `if` on a symbol) is not '
                         'defined. Express the logic with ops (e.g. sym.where)')

    def _graph_apply(self, op, inputs, attrs):
        raise MXNetError(f"{op.name}: an mx.sym.Symbol was passed to an engine op directly; call the "
                         f"mx.sym function (e.g. F.{op.name} with F=mx.sym inside hybrid_forward)")

    # NDArray-style methods
    def reshape(self, *shape, **kwargs):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        shape = kwargs.pop('shape', shape)
        return apply_op('Reshape', [self], dict(kwargs, shape=tuple(shape)))

    def astype(self, dtype):
        return apply_op('Cast', [self], {'dtype': np.dtype(dtype).name})

    @property
    def T(self):
        return apply_op('transpose', [self], {})


# MXNet's fluent methods (x.sin() for mx.sym.sin(x)); each is installed where the op table has
# the op, so an op added to engine.nd gains its method
_METHODS = (
    'sum', 'nansum', 'prod', 'nanprod', 'mean', 'max', 'min', 'argmax', 'argmin', 'argmax_channel',
    'norm', 'exp', 'expm1', 'log', 'log10', 'log2', 'log1p', 'sqrt', 'rsqrt', 'cbrt', 'rcbrt',
    'square', 'reciprocal', 'abs', 'sign', 'round', 'rint', 'fix', 'floor', 'ceil', 'trunc',
    'sin', 'cos', 'tan', 'arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'arcsinh',
    'arccosh', 'arctanh', 'degrees', 'radians', 'sigmoid', 'relu', 'softmax', 'log_softmax',
    'softmin', 'clip', 'flatten', 'expand_dims', 'squeeze', 'transpose', 'broadcast_to',
    'broadcast_like', 'broadcast_axes', 'tile', 'repeat', 'flip', 'swapaxes', 'pad', 'split',
    'split_v2', 'slice_axis', 'slice', 'slice_like', 'take', 'pick', 'one_hot', 'dot', 'sort',
    'argsort', 'topk', 'diag', 'depth_to_space', 'space_to_depth', 'reshape_like', 'zeros_like',
    'ones_like', 'shape_array', 'size_array')


def _method(name):
    def m(self, *args, **kwargs):
        from . import make_function
        return make_function(name)(self, *args, **kwargs)
    m.__name__ = name
    return m


def _install_methods():
    from .optable import OPS
    for m in _METHODS:
        if m in OPS:
            setattr(Symbol, m, _method(m))


_install_methods()


def apply_op(op, inputs, attrs, name=None, meta=None):
    """A new node applying MXNet op `op` to `inputs` (Symbols with one output each)."""
    ins = []
    for x in inputs:
        if not isinstance(x, Symbol):
            raise MXNetError(f'{op}: inputs must be Symbols, got {type(x).__name__}')
        if len(x._outputs) != 1:
            raise MXNetError(f'{op}: an input is a group of {len(x._outputs)} outputs; index it first')
        ins.append(x._outputs[0])
    node = Node(op, name or auto_name(op), attrs, ins, meta)
    return Symbol([(node, i) for i in range(node.num_outputs)])


_DTYPE_CODES = {'float32': 0, 'float64': 1, 'float16': 2, 'uint8': 3, 'int32': 4, 'int8': 5, 'int64': 6}


def var(name, attr=None, shape=None, lr_mult=None, wd_mult=None, dtype=None, init=None, stype=None,
        **kwargs):
    """A named input of the graph (MXNet's Variable)."""
    if not isinstance(name, str) or not name:
        raise MXNetError(f'Variable: name must be a non-empty string, got {name!r}')
    meta = {}
    for k, v in (attr or {}).items():
        meta[k] = v
    if shape is not None:
        # an int is a one-dimensional shape, as MXNet takes `shape=(1)`
        shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
        meta['__shape__'] = tuple(int(s) for s in shape)
    if dtype is not None:
        meta['__dtype__'] = np.dtype(dtype).name
    if lr_mult is not None:
        meta['__lr_mult__'] = float(lr_mult)
    if wd_mult is not None:
        meta['__wd_mult__'] = float(wd_mult)
    if init is not None:
        meta['__init__'] = init if isinstance(init, str) else init.dumps() if hasattr(init, 'dumps') \
            else type(init).__name__.lower()
    if stype is not None:   # MXNet's attribute: the storage type id as a string
        ids = {'default': 0, 'row_sparse': 1, 'csr': 2}
        if stype not in ids:
            raise MXNetError(f"Variable {name}: stype={stype!r} is not one of {sorted(ids)}")
        meta['__storage_type__'] = str(ids[stype])
    for k, v in kwargs.items():
        meta[f'__{k}__' if not k.startswith('__') else k] = v
    return Symbol([(Node(None, name, meta=meta), 0)])


Variable = var


def Group(symbols):
    """One symbol whose outputs are the outputs of `symbols`, in order."""
    outs = []
    for s in symbols:
        if not isinstance(s, Symbol):
            raise MXNetError(f'Group: expected Symbols, got {type(s).__name__}')
        outs += s._outputs
    return Symbol(outs)
