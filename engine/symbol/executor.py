"""Running an `mx.sym` graph: `evaluate` calls each node's engine function in order (on NDArrays
eagerly, or on trace symbols, which builds the engine's graph IR); shape inference traces the
graph; executors run it through CachedOp, i.e. the graph compiler, forward and backward."""
import contextlib

import numpy as np

from .. import autograd
from ..base import MXNetError, fmt_shape
from ..context import cpu, current_context
from ..graph.trace import Tracer, current as current_tracer
from ..ndarray import NDArray, zeros
from .optable import SAME_SHAPE_OPS


def _run_node(n, ins, ctx=None):
    from .symbol import Symbol, apply_op
    if any(isinstance(x, Symbol) for x in ins):   # composing a bigger mx.sym graph
        return list(apply_op(n.op, ins, n.attrs, name=n.name, meta=n.meta))
    attrs = n.attrs
    if n.spec.creates:
        attrs = dict({k: v for k, v in attrs.items() if k != 'ctx'}, ctx=ctx)
    try:
        res = n.spec.fn(*ins, **attrs)
    except MXNetError as e:
        raise MXNetError(f"{n.op} (node '{n.name}'): {e}") from None
    except Exception as e:   # an attribute value the function could not use
        raise MXNetError(f"{n.op} (node '{n.name}'): {type(e).__name__}: {e} (attributes {n.attrs})") from None
    outs = list(res) if isinstance(res, (list, tuple)) else [res]
    if len(outs) != n.num_outputs:
        raise MXNetError(f"{n.op} (node '{n.name}'): produced {len(outs)} outputs, the node declares "
                         f'{n.num_outputs}')
    return outs


def evaluate(sym, env, ctx=None):
    """The outputs of `sym` with variable name -> array (NDArray or trace symbol) in `env`;
    ops without inputs create their arrays on `ctx` (default: the inputs' context)."""
    vals = {}
    ctx = ctx or next((getattr(a, 'context', None) for a in env.values()), None)
    for n in sym._nodes():
        if n.is_variable:
            if n.name not in env:
                raise MXNetError(f"Symbol: no value given for input '{n.name}'")
            vals[id(n)] = [env[n.name]]
        else:
            with _named(n):
                vals[id(n)] = _run_node(n, [vals[id(c)][i] for c, i in n.inputs], ctx)
    return [vals[id(n)][i] for n, i in sym._outputs]


def _named(node):
    """While tracing, the IR nodes an mx.sym node adds are named after it ('fc1_out')."""
    tracer = current_tracer()
    return contextlib.nullcontext() if tracer is None else tracer.entering(node, kind=node.op)


# ---- shape and type inference ---------------------------------------------------------------

def _known(shape):
    """A complete shape: MXNet writes 0 for an unknown dimension."""
    return all(int(s) > 0 for s in shape)


def _given(sym, args, kwargs, what):
    """name -> value from positional (list_arguments order) and keyword arguments."""
    names = sym.list_arguments()
    if len(args) > len(names):
        raise MXNetError(f'{what}: {len(args)} positional values for {len(names)} arguments {names}')
    out = {k: v for k, v in zip(names, args) if v is not None}
    inputs = set(sym.list_inputs())
    for k, v in kwargs.items():
        if k not in inputs:
            raise MXNetError(f"{what}: '{k}' is not an input of the symbol; inputs are {sorted(inputs)}")
        out[k] = v
    return out


def trace(sym, shapes, dtypes=None, stand_ins=False):
    """Trace `sym` into the engine's graph IR. Inputs whose shapes are not given come from their
    '__shape__' attribute, the parameter-shape rule of the op that reads them, or a same-shape
    input of an elementwise op; nodes whose inputs stay unknown are skipped. With `stand_ins`,
    an elementwise op with one known input still gives its output shape (an unknown operand is
    traced as a fresh input of that shape, which is not one of the symbol's inputs). Returns
    (tracer, {input name: trace Symbol}, [output trace Symbol, or None where unknown])."""
    dtypes = dtypes or {}
    tracer = Tracer('symbol', cpu())
    defined, vals = {}, {}

    def define(node, shape, dtype):
        s = tracer.input(tuple(int(i) for i in shape), dtype, node.name)
        defined[node.name], vals[id(node)] = s, [s]

    nodes = sym._nodes()
    with tracer, autograd.pause(train_mode=False):
        for n in nodes:
            shape = shapes.get(n.name, n.meta.get('__shape__')) if n.is_variable else None
            if shape is not None and _known(tuple(shape)):
                define(n, shape, dtypes.get(n.name, n.meta.get('__dtype__', np.float32)))
        pending = [n for n in nodes if not n.is_variable]
        # passes until nothing changes: a variable a later node gives a shape to (a weight that
        # an earlier node also reads) makes earlier nodes computable
        while pending:
            left = [n for n in pending if not _trace_node(n, vals, define, dtypes)]
            if len(left) == len(pending):
                if not stand_ins or not any(_stand_in(n, vals, tracer) for n in left):
                    break
                left = [n for n in left if id(n) not in vals]
            pending = left
    outs = [vals[id(n)][i] if id(n) in vals else None for n, i in sym._outputs]
    return tracer, defined, outs


def _trace_node(n, vals, define, dtypes):
    """Trace node n if its inputs are known (after inferring what its rules give). True if done."""
    _complete_params(n, vals, define, dtypes)
    _same_shape_inputs(n, vals, define, dtypes)
    if any(id(c) not in vals for c, _ in n.inputs):
        return False
    vals[id(n)] = _run_node(n, [vals[id(c)][i] for c, i in n.inputs])
    return True


def _known_input(n, vals):
    if n.op not in SAME_SHAPE_OPS:
        return None
    return next((vals[id(c)][i] for c, i in n.inputs if id(c) in vals), None)


def _same_shape_inputs(n, vals, define, dtypes):
    """Unknown variables read by an op whose inputs all have one shape take the known one's."""
    known = _known_input(n, vals)
    if known is not None:
        for c, _ in n.inputs:
            if c.is_variable and id(c) not in vals:
                define(c, known.shape, dtypes.get(c.name, c.meta.get('__dtype__', known.dtype)))


def _stand_in(n, vals, tracer):
    """Trace a same-shape op whose other inputs are unknown results on stand-in inputs."""
    known = _known_input(n, vals)
    if known is None:
        return False
    ins = [vals[id(c)][i] if id(c) in vals else tracer.input(known.shape, known.dtype, f'{c.name}_unknown')
           for c, i in n.inputs]
    vals[id(n)] = _run_node(n, ins)
    return True


def _complete_params(n, vals, define, dtypes):
    """Give shapes to this node's parameter inputs from its data input (conv weights, ...)."""
    spec = n.spec
    if spec.param_shapes is None or not n.inputs or id(n.inputs[0][0]) not in vals:
        return
    data = vals[id(n.inputs[0][0])][n.inputs[0][1]]
    roles = ['data'] + spec.present_params(n.attrs)
    pending = [(c, r) for (c, _), r in zip(n.inputs, roles) if c.is_variable and id(c) not in vals]
    if not pending:
        return
    try:
        shapes = spec.param_shapes(data.shape, n.attrs)
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as e:
        raise MXNetError(f"{n.op} (node '{n.name}'): cannot infer parameter shapes from data "
                         f'{fmt_shape(data.shape)} and attributes {n.attrs}: {type(e).__name__}: {e}') from None
    for c, role in pending:
        if role in shapes:
            dt = np.float32 if role == 'label' else data.dtype
            define(c, shapes[role], dtypes.get(c.name, dt))


def _merge_partial(sym, given):
    """Complete the partial shapes (0: an unknown dimension) of variables that are operands of
    one same-shape op from each other: a (0, 10) and b (12, 0) of a + b are both (12, 10)."""
    shapes = dict(given)
    for n in sym._nodes():
        if n.is_variable and n.name not in shapes and n.meta.get('__shape__'):
            shapes[n.name] = tuple(n.meta['__shape__'])
    for n in sym._nodes():
        if n.op not in SAME_SHAPE_OPS:
            continue
        names = [c.name for c, _ in n.inputs if c.is_variable and c.name in shapes]
        if len({len(shapes[k]) for k in names}) != 1:
            continue
        dims = []
        for ds in zip(*(shapes[k] for k in names)):
            known = {int(d) for d in ds if int(d) > 0}
            dims.append(known.pop() if len(known) == 1 else 0)
        for k in names:     # a conflict stays as given: tracing the op reports it
            shapes[k] = tuple(d if int(d) > 0 else m for d, m in zip(shapes[k], dims))
    return shapes


def infer_shape(sym, args, kwargs, partial):
    # as MXNet 1.x, a shape of no dimensions is an unknown one (what infer_shape_partial reports)
    given = {k: tuple(v) for k, v in _given(sym, args, kwargs, 'infer_shape').items() if len(v)}
    _, defined, outs = trace(sym, _merge_partial(sym, given), stand_ins=True)
    arg_s = [defined[k].shape if k in defined else None for k in sym.list_arguments()]
    aux_s = [defined[k].shape if k in defined else None for k in sym.list_auxiliary_states()]
    out_s = [o.shape if o is not None else None for o in outs]
    if not partial and any(s is None for s in arg_s + aux_s + out_s):
        return None, None, None
    fill = (lambda lst: [() if s is None else s for s in lst])
    return fill(arg_s), fill(out_s), fill(aux_s)


def infer_type(sym, args, kwargs, partial=False):
    """Dtypes without shapes: an input takes its given dtype, its '__dtype__', or the dtype of
    the consumer's first input (weights follow the data); an op's outputs take its 'dtype'
    attribute (Cast, one_hot) or its first input's dtype."""
    given = {k: np.dtype(v).type for k, v in _given(sym, args, kwargs, 'infer_type').items()}
    types, nodes = {}, sym._nodes()
    for n in nodes:
        if n.is_variable and (n.name in given or '__dtype__' in n.meta):
            types[id(n)] = [given.get(n.name) or np.dtype(n.meta['__dtype__']).type]
    for n in nodes:
        if n.is_variable:
            continue
        first = next((types[id(c)][i] for c, i in n.inputs if id(c) in types), None)
        for c, _ in n.inputs:
            if c.is_variable and id(c) not in types and first is not None:
                types[id(c)] = [np.float32 if c.name.endswith('label') else first]
        dt = np.dtype(n.attrs['dtype']).type if 'dtype' in n.attrs and n.attrs['dtype'] else first
        types[id(n)] = [dt] * n.num_outputs
    var_types = {n.name: types.get(id(n), [None])[0] for n in nodes if n.is_variable}
    args_t = [var_types[k] for k in sym.list_arguments()]
    aux_t = [var_types[k] for k in sym.list_auxiliary_states()]
    outs_t = [types.get(id(n), [None] * (i + 1))[i] for n, i in sym._outputs]
    if not partial and any(t is None for t in args_t + aux_t + outs_t):
        return None, None, None
    return args_t, outs_t, aux_t


# ---- executors ------------------------------------------------------------------------------

class _Runner:
    """What CachedOp compiles: the symbol's graph with its inputs in list_inputs order."""

    def __init__(self, sym):
        self._sym, self._names = sym, sym.list_inputs()
        self.name = sym.name or 'group'

    def forward(self, *arrays):
        return evaluate(self._sym, dict(zip(self._names, arrays)))


def _as_dict(values, names, what):
    if values is None:
        return {}
    if isinstance(values, dict):
        extra = [k for k in values if k not in names]
        if extra:
            raise MXNetError(f'bind: {what} {extra} are not inputs of the symbol ({names})')
        return dict(values)
    values = list(values)
    if len(values) != len(names):
        raise MXNetError(f'bind: {len(values)} {what} given, the symbol has {len(names)}: {names}')
    return dict(zip(names, values))


class Executor:
    """MXNet's executor: arg/grad/aux arrays bound to a symbol; forward/backward run its graph
    compiled by the graph compiler (one compiled program per input signature and mode)."""

    def __init__(self, sym, ctx, args, grads, grad_req, aux):
        from ..graph.cached_op import CachedOp
        self._symbol, self._ctx = sym, ctx
        self.arg_dict, self.grad_dict, self.aux_dict = args, grads, aux
        self._grad_req = grad_req
        self._names = sym.list_inputs()
        self._op = CachedOp(_Runner(sym))
        self.outputs = []

    arg_arrays = property(lambda self: [self.arg_dict[k] for k in self._symbol.list_arguments()])
    grad_arrays = property(lambda self: [self.grad_dict.get(k) for k in self._symbol.list_arguments()])
    aux_arrays = property(lambda self: [self.aux_dict[k] for k in self._symbol.list_auxiliary_states()])
    output_dict = property(lambda self: dict(zip(self._symbol.list_outputs(), self.outputs)))

    def forward(self, is_train=False, **kwargs):
        for k, v in kwargs.items():
            if k not in self.arg_dict:
                raise MXNetError(f"Executor.forward: '{k}' is not an argument of the symbol")
            self.arg_dict[k][:] = v
        inputs = []
        # as MXNet, an executor with gradient arrays can run backward after either forward: a
        # forward(is_train=False) records too, its ops in inference mode (dropout off, ...)
        for k in self._names:
            a = self.arg_dict.get(k, self.aux_dict.get(k))
            if self._grad_req.get(k, 'null') != 'null' and k in self.grad_dict:
                a = NDArray(a._data, a._ctx)   # an alias whose gradient lands in grad_dict[k]
                a._entry = (autograd.Leaf(self.grad_dict[k], self._grad_req[k]), 0)
            inputs.append(a)
        if not inputs:      # nothing to compile: a graph of constants
            outs = evaluate(self._symbol, {}, self._ctx)
        elif any(x._entry is not None for x in inputs):
            with autograd.record(train_mode=is_train):
                outs = self._op(*inputs)
        else:
            with (autograd.train_mode() if is_train else autograd.predict_mode()):
                outs = self._op(*inputs)
        self.outputs = list(outs)
        return self.outputs

    def backward(self, out_grads=None, is_train=True):
        if not self.outputs:
            raise MXNetError('Executor.backward: run forward first')
        if all(o._entry is None for o in self.outputs):
            return      # as MXNet: no argument has a gradient array (all grad_req 'null')
        if out_grads is not None:
            out_grads = [out_grads] if isinstance(out_grads, NDArray) else list(out_grads)
        autograd.backward(self.outputs, out_grads, train_mode=is_train)

    def reshape(self, partial_shaping=False, allow_up_sizing=False, **shapes):
        """An executor for new input shapes that shares every array whose shape is unchanged
        (the parameters). As MXNet, an array that shrinks is a view of the first elements of the
        old one (so its values carry over); one that grows is new zeros, and an error unless
        allow_up_sizing=True. Another argument whose shape changes is an error unless
        partial_shaping=True."""
        arg_s, _, aux_s = self._symbol.infer_shape(**shapes)
        if arg_s is None:
            raise MXNetError(f'Executor.reshape: cannot infer every input shape from {shapes}')
        names = self._symbol.list_arguments()
        changed = [k for k, s in zip(names, arg_s) if k not in shapes and self.arg_dict[k].shape != s]
        if changed and not partial_shaping:
            raise MXNetError(f'Executor.reshape: the shapes of {changed} would change too; pass '
                             'their shapes or partial_shaping=True')

        def keep(old, shape, name):
            shape = tuple(shape)
            if old is None:
                return zeros(shape, ctx=self._ctx)
            if old.shape == shape:
                return old
            size = int(np.prod(shape))
            if size <= old.size:
                return old.reshape((-1,))[0:size].reshape(shape)
            if not allow_up_sizing:
                raise MXNetError(f"Executor.reshape: '{name}' would grow from {fmt_shape(old.shape)} "
                                 f'to {fmt_shape(shape)}; pass allow_up_sizing=True (binding the '
                                 'largest shape first and shrinking is cheaper)')
            return zeros(shape, ctx=self._ctx, dtype=old.dtype)
        new_shapes = dict(zip(names, arg_s))
        args = {k: keep(self.arg_dict[k], new_shapes[k], k) for k in names}
        grads = {k: keep(g, new_shapes[k], k) for k, g in self.grad_dict.items()}
        aux = {k: keep(self.aux_dict[k], s, k)
               for k, s in zip(self._symbol.list_auxiliary_states(), aux_s)}
        return Executor(self._symbol, self._ctx, args, grads, self._grad_req, aux)

    def copy_params_from(self, arg_params, aux_params=None, allow_extra_params=False):
        for src, dst in ((arg_params, self.arg_dict), (aux_params or {}, self.aux_dict)):
            for k, v in src.items():
                if k in dst:
                    dst[k][:] = v
                elif not allow_extra_params:
                    raise MXNetError(f"copy_params_from: '{k}' is not in the executor")


def _check_ctx(ctx):
    return current_context() if ctx is None else ctx


def bind(sym, ctx, args, args_grad=None, grad_req='write', aux_states=None):
    ctx = _check_ctx(ctx)
    arg_names, aux_names = sym.list_arguments(), sym.list_auxiliary_states()
    args = _as_dict(args, arg_names, 'arguments')
    aux = _as_dict(aux_states, aux_names, 'auxiliary states')
    missing = [k for k in arg_names if k not in args] + [k for k in aux_names if k not in aux]
    if missing:
        raise MXNetError(f'bind: no arrays given for {missing}')
    for k, v in list(args.items()) + list(aux.items()):
        if not isinstance(v, NDArray):
            raise MXNetError(f"bind: '{k}' must be an NDArray, got {type(v).__name__}")
    grads = {k: g for k, g in _as_dict(args_grad, arg_names, 'gradients').items() if g is not None}
    reqs = grad_req if isinstance(grad_req, dict) else dict.fromkeys(arg_names, grad_req)
    for k, r in reqs.items():
        if r not in ('write', 'add', 'null'):
            raise MXNetError(f"bind: grad_req for '{k}' must be 'write', 'add' or 'null', got {r!r}")
    reqs = {k: (r if k in grads else 'null') for k, r in reqs.items()}
    return Executor(sym, ctx, args, grads, reqs, aux)


def simple_bind(sym, ctx, grad_req, type_dict, shapes):
    ctx = _check_ctx(ctx)
    arg_s, _, aux_s = sym.infer_shape(**shapes)
    if arg_s is None:
        raise MXNetError(f'simple_bind: cannot infer every input shape from {shapes}')
    arg_t, _, aux_t = sym.infer_type(**(type_dict or {}))
    arg_names, aux_names = sym.list_arguments(), sym.list_auxiliary_states()
    arg_t = arg_t or [np.float32] * len(arg_names)
    aux_t = aux_t or [np.float32] * len(aux_names)
    args = {k: zeros(s, ctx=ctx, dtype=t) for k, s, t in zip(arg_names, arg_s, arg_t)}
    aux = {k: zeros(s, ctx=ctx, dtype=t) for k, s, t in zip(aux_names, aux_s, aux_t)}
    reqs = grad_req if isinstance(grad_req, dict) else dict.fromkeys(arg_names, grad_req)
    grads = {k: zeros(args[k].shape, ctx=ctx, dtype=args[k].dtype) for k in arg_names
             if reqs.get(k, 'null') != 'null'}
    return bind(sym, ctx, args, grads, reqs, aux)
