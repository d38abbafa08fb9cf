"""Eager autograd: a define-by-run tape.

Each recorded op output carries an entry `(node, index)`. A `Node` keeps the op, its inputs
(NDArrays, so gradients can flow on through them) and its outputs' raw buffers. `backward` is a
topological sort from the heads and one reversed loop calling each op's gradient rule, which is
written with ordinary ops: recording while it runs (`create_graph=True`) gives higher-order
gradients for free.
"""
import threading
from contextlib import contextmanager

import numpy as np

from .base import MXNetError

_state = threading.local()


def is_recording():
    return getattr(_state, 'recording', False)


def is_training():
    return getattr(_state, 'training', False)


def set_recording(flag):
    old, _state.recording = is_recording(), bool(flag)
    return old


def set_training(flag):
    old, _state.training = is_training(), bool(flag)
    return old


@contextmanager
def _scope(recording, training):
    old_r = set_recording(is_recording() if recording is None else recording)
    old_t = set_training(is_training() if training is None else training)
    try:
        yield
    finally:
        set_recording(old_r)
        set_training(old_t)


def record(train_mode=True):
    """Record ops for differentiation (and, by default, run layers in training mode)."""
    return _scope(True, train_mode)


def pause(train_mode=False):
    """Stop recording inside a `record()` block."""
    return _scope(False, train_mode)


def train_mode():
    return _scope(None, True)


def predict_mode():
    return _scope(None, False)


class Node:
    """One recorded op application."""
    __slots__ = ('op', 'inputs', 'attrs', 'out_data', 'ctx')

    def __init__(self, op, inputs, attrs, out_data, ctx):
        self.op, self.inputs, self.attrs, self.out_data, self.ctx = op, inputs, attrs, out_data, ctx


class Leaf:
    """A variable marked by `attach_grad`: gradients for it land in `grad`. `fresh` (MXNet's
    `_fresh_grad`) says a backward wrote `grad` since the flag was last cleared."""
    __slots__ = ('grad', 'grad_req', 'fresh')

    def __init__(self, grad, grad_req):
        self.grad, self.grad_req, self.fresh = grad, grad_req, False


def mark_variables(variables, gradients, grad_reqs='write'):
    """MXNet's attach_grad with given gradient buffers: backward writes (or adds, 'add') each
    variable's gradient into the matching array of `gradients`."""
    single = not isinstance(variables, (list, tuple))
    variables = [variables] if single else list(variables)
    gradients = [gradients] if not isinstance(gradients, (list, tuple)) else list(gradients)
    reqs = [grad_reqs] * len(variables) if isinstance(grad_reqs, str) else list(grad_reqs)
    if not len(variables) == len(gradients) == len(reqs):
        raise MXNetError(f'mark_variables: {len(variables)} variables, {len(gradients)} gradients '
                         f'and {len(reqs)} grad_reqs; expected as many of each')
    for v, g, req in zip(variables, gradients, reqs):
        if req not in ('write', 'add', 'null'):
            raise MXNetError(f"mark_variables: grad_req must be 'write', 'add' or 'null', got {req!r}")
        if g.shape != v.shape:
            raise MXNetError(f'mark_variables: gradient of shape {g.shape} for a variable of shape '
                             f'{v.shape}')
        v._entry = (Leaf(g, req), 0)


def record_op(op, inputs, attrs, outputs):
    """Called by the eager executor after a kernel ran while recording."""
    if not any(x._entry is not None for x in inputs):
        return
    node = Node(op, list(inputs), attrs, [o._data for o in outputs], outputs[0]._ctx)
    for i, o in enumerate(outputs):
        o._entry = (node, i)


def _topo_order(heads):
    """Nodes reachable from the heads, inputs before users (iterative DFS)."""
    order, seen = [], set()
    stack = [(h._entry[0], False) for h in heads]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if isinstance(node, Node):
            if node.inputs is None:
                raise MXNetError('backward: the graph was already freed by an earlier backward; '
                                 'pass retain_graph=True to the first backward to call it twice')
            stack.extend((x._entry[0], False) for x in node.inputs
                         if x._entry is not None and id(x._entry[0]) not in seen)
    return order


def _check_heads(heads):
    for h in heads:
        if h._entry is None:
            raise MXNetError(
                f'backward: array of shape {h.shape} was not computed under autograd.record() '
                'from an array with attach_grad(); there is nothing to differentiate')


def _accumulate(grads, entry, g):
    key = (id(entry[0]), entry[1])
    old = grads.get(key)
    grads[key] = g if old is None else old + g


def _run_backward(heads, head_grads, retain_graph, create_graph, train_mode, capture=None, order=None):
    """Propagate gradients from the heads; returns {(id(node), index): grad} for what reached
    leaves. `capture` maps entry keys of intermediate arrays to fill with their gradient;
    `order` is the heads' _topo_order when the caller has it already."""
    from .ndarray import NDArray, ones_like
    heads = [heads] if isinstance(heads, NDArray) else list(heads)
    if head_grads is None or isinstance(head_grads, NDArray):
        head_grads = [head_grads] * len(heads) if head_grads is None else [head_grads]
    head_grads = list(head_grads)
    if len(head_grads) != len(heads):
        raise MXNetError(f'backward: got {len(head_grads)} head gradients for {len(heads)} heads')
    _check_heads(heads)
    grads = {}
    for h, hg in zip(heads, head_grads):
        if hg is not None and not isinstance(hg, NDArray):
            raise MXNetError(f'backward: head gradients must be NDArrays, got {type(hg).__name__}')
        if hg is not None and hg.shape != h.shape:
            raise MXNetError(f'backward: out_grad shape {hg.shape} does not match the head shape {h.shape}')
        _accumulate(grads, h._entry, ones_like(h) if hg is None else hg)
    order = _topo_order(heads) if order is None else order
    with _scope(create_graph, train_mode):
        for node in reversed(order):
            if isinstance(node, Leaf):
                continue
            gs = [grads.pop((id(node), i), None) for i in range(len(node.out_data))]
            if capture is not None:
                for i, g in enumerate(gs):
                    if (id(node), i) in capture:
                        capture[(id(node), i)] = g
            if all(g is None for g in gs) or not node.op.differentiable:
                _free(node, retain_graph)
                continue
            _apply_rule(node, gs, grads, create_graph)
            _free(node, retain_graph)
    return grads


def apply_rule(op, gs, outs, inputs, attrs):
    """Call op's gradient rule; returns one gradient or None per input. Shared by both drivers
    (eager arrays here, symbols in graph/autodiff.py). `gs` has None for outputs without a
    gradient: a multi-output rule sees them so (and skips their terms); a single-output op is
    only called with a gradient."""
    if op.grad is None:
        raise MXNetError(f'{op.name}: a gradient reaches this op but it has no gradient rule '
                         "(and declares no no_grad reason); it cannot be differentiated")
    single = not op.multi_output
    in_grads = list(op.grad(gs[0] if single else tuple(gs), outs[0] if single else tuple(outs), *inputs, **attrs))
    if len(in_grads) != len(inputs):
        raise MXNetError(f'{op.name}: backward returned {len(in_grads)} gradient(s) for {len(inputs)} input(s)')
    return in_grads


def fit_gradient(op, g, x):
    """A rule's gradient for input x in x's shape and dtype: a gradient of a shape that broadcasts
    to x's (the rule left the broadcast un-reduced) is summed down to x's shape."""
    if tuple(g.shape) != tuple(x.shape):
        from .ops.shape import sum_to    # imported here, not per call: this runs per gradient
        try:
            ok = np.broadcast_shapes(tuple(g.shape), tuple(x.shape)) == tuple(g.shape)
        except ValueError:
            ok = False
        if not ok:
            raise MXNetError(f'{op.name}: gradient rule returned shape {tuple(g.shape)} '
                             f'for an input of shape {tuple(x.shape)} (engine bug)')
        g = sum_to(g, tuple(x.shape))
    return g if g.dtype == x.dtype else g.astype(np.dtype(x.dtype).name)


def _apply_rule(node, gs, grads, create_graph):
    from .ndarray import NDArray
    from .ops.registry import Op
    rule_op = isinstance(node.op, Op)    # else a Function or a compiled block's backward
    outs = []
    for i, d in enumerate(node.out_data):
        o = NDArray(d, node.ctx)
        if create_graph:
            o._entry = (node, i)
        outs.append(o)
        if gs[i] is None and not rule_op:
            # Function.backward and compiled block backwards take every output gradient (zeros
            # for the missing ones); op rules see None and skip those terms
            gs[i] = NDArray(node.ctx.xp.zeros_like(d), node.ctx)
    in_grads = apply_rule(node.op, gs, outs, node.inputs, node.attrs)
    if create_graph and not rule_op:
        in_grads = _first_order_only(node, in_grads)
    for x, g in zip(node.inputs, in_grads):
        if g is not None and x._entry is not None:
            _accumulate(grads, x._entry, fit_gradient(node.op, g, x))


def _first_order_only(node, in_grads):
    """Gradients from a backward that records nothing (a compiled block, a Function): under
    create_graph they join the tape as outputs of a node that refuses to be differentiated, so
    a second-order gradient through them is an error instead of silently missing terms."""
    from .ndarray import NDArray
    fresh = [None if g is None else NDArray(g._data, g._ctx) for g in in_grads]
    outs = [g for g in fresh if g is not None]
    if outs:
        record_op(_FirstOrderOnly(node.op), node.inputs, {}, outs)
    return fresh


class _FirstOrderOnly:
    differentiable, multi_output = True, True

    def __init__(self, op):
        self.name = op.name
        self.why = getattr(op, 'first_order_why', 'it is a hybridized block, whose backward runs as compiled code; '
                                                  'call it without hybridize() for higher-order gradients')

    def grad(self, *args, **attrs):
        raise MXNetError(f'{self.name}: second-order gradients (create_graph=True) through it are not '
                         f'supported: {self.why}')


def _free(node, retain_graph):
    if not retain_graph:
        node.inputs = None
        node.out_data = None


def backward(heads, head_grads=None, retain_graph=False, train_mode=True):
    """Compute gradients of heads and write them into the `.grad` of every attached variable."""
    from .ndarray import NDArray
    heads_list = [heads] if isinstance(heads, NDArray) else list(heads)
    _check_heads(heads_list)
    order = _topo_order(heads_list)
    leaves = [n for n in order if isinstance(n, Leaf)]
    grads = _run_backward(heads_list, head_grads, retain_graph, False, train_mode, order=order)
    for leaf in leaves:
        g = grads.get((id(leaf), 0))
        if leaf.grad_req == 'null':
            continue
        leaf.fresh = True
        if leaf.grad.stype != 'default' or (g is not None and g.stype != 'default'):
            from .ndarray_sparse import write_grad   # row_sparse gradients (Embedding(sparse_grad))
            write_grad(leaf, g)
            continue
        if g is None:
            if leaf.grad_req == 'write':
                leaf.grad._data[...] = 0
            continue
        if leaf.grad_req == 'add':
            leaf.grad._data += g._data
        else:
            leaf.grad._data[...] = g._data


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False, train_mode=True):
    """Return the gradients of heads w.r.t. variables (without touching their `.grad`)."""
    from .ndarray import NDArray, zeros_like
    single = isinstance(variables, NDArray)
    variables = [variables] if single else list(variables)
    for v in variables:
        if v._entry is None:
            raise MXNetError('autograd.grad: a variable was neither marked with attach_grad() '
                             'nor computed under record() from one')
    if retain_graph is None:
        retain_graph = create_graph
    heads_list = [heads] if isinstance(heads, NDArray) else list(heads)
    keys = [(id(v._entry[0]), v._entry[1]) for v in variables]
    captured = dict.fromkeys(keys)
    grads = _run_backward(heads_list, head_grads, retain_graph, create_graph, train_mode, captured)
    out = [grads.get(k) if captured[k] is None else captured[k] for k in keys]
    out = [zeros_like(v) if g is None else g for v, g in zip(variables, out)]
    # identity-like gradient rules pass arrays through: never hand out the caller's head gradient,
    # or one array for two variables (an in-place update of one would change the other)
    hgs = [head_grads] if isinstance(head_grads, NDArray) else list(head_grads or [])
    taken = {id(h) for h in hgs if h is not None}
    with _scope(create_graph, train_mode):
        for i, g in enumerate(out):
            if id(g) in taken:
                out[i] = g.copy()
            taken.add(id(out[i]))
    return out[0] if single else out


class Function:
    """A differentiable function with a hand-written backward (MXNet's autograd.Function).

    Subclasses define `forward(*inputs)` and `backward(*output_grads)` on NDArrays; `forward` can
    stash arrays with `save_for_backward` for `backward` to read from `saved_tensors`."""

    def __init__(self):
        self._saved = ()

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        return self._saved

    def __call__(self, *inputs):
        from .ndarray import NDArray
        if any(getattr(x, '_is_symbol', False) for x in inputs):
            raise MXNetError(f'autograd.Function {type(self).__name__} is used inside a block being '
                             'hybridized: its hand-written backward cannot be compiled into the graph. '
                             'Keep this block eager (do not hybridize it).')
        with pause(is_training()):
            outputs = self.forward(*inputs)
        single = isinstance(outputs, NDArray)
        outs = [outputs] if single else list(outputs)
        if is_recording():
            # an output that is one of the inputs gets its own handle: taping it must not
            # overwrite the input's own entry (a variable would stop being a variable)
            outs = [NDArray(o._data, o._ctx) if any(o is x for x in inputs) else o for o in outs]
            record_op(_FunctionOp(self, 1 if single else 2), inputs, {}, outs)
            return outs[0] if single else type(outputs)(outs)
        return outputs

    def forward(self, *inputs):
        raise NotImplementedError('autograd.Function subclasses define forward()')

    def backward(self, *output_grads):
        raise NotImplementedError('autograd.Function subclasses define backward()')


class _FunctionOp:
    """Adapts a Function instance to the op interface the tape expects."""
    differentiable = True
    first_order_why = 'an autograd.Function runs its backward() unrecorded'

    def __init__(self, fn, num_outputs):
        self.fn, self.name, self.multi_output = fn, type(fn).__name__, num_outputs > 1

    def grad(self, g, out, *inputs):
        gs = g if self.multi_output else (g,)
        with pause(is_training()):
            res = self.fn.backward(*gs)
        from .ndarray import NDArray
        return [res] if isinstance(res, NDArray) else list(res)


def get_symbol(x):
    """The recorded computation of `x` as an `mx.sym` Symbol (MXNet's autograd.get_symbol).

    Arrays marked with attach_grad become variables 'var0', 'var1', ...; other arrays the
    recording read (constants) become variables 'null0', ...; op nodes are 'node_0', ..., numbered
    inputs first. An op recorded under an engine name that is not an MXNet graph op
    (a fused layer kernel, an autograd.Function, a sparse tape op) is an MXNetError."""
    from .ndarray import NDArray
    from .symbol.optable import OPS
    from .symbol.symbol import Node as SymNode, Symbol
    if not isinstance(x, NDArray):
        raise MXNetError(f'get_symbol: expected an NDArray, got {type(x).__name__}')
    if x._entry is None:
        raise MXNetError(f'get_symbol: array of shape {x.shape} was not computed under '
                         'autograd.record() from an array with attach_grad(); nothing was recorded')
    made = {}                       # id(tape node or constant array) -> symbol node
    counts = {'var': 0, 'null': 0, 'node': 0}

    def var_node(key, prefix):
        if key not in made:
            made[key] = SymNode(None, f'{prefix}{counts[prefix]}')
            counts[prefix] += 1
        return made[key]

    def source(arr):
        entry = arr._entry
        if entry is None:
            return var_node(id(arr), 'null'), 0
        node, index = entry
        if isinstance(node, Leaf):
            return var_node(id(node), 'var'), 0
        return made[id(node)], index

    for node in _topo_order([x]):
        if isinstance(node, Leaf):
            var_node(id(node), 'var')
            continue
        name = getattr(node.op, 'name', type(node.op).__name__)
        spec = OPS.get(name)
        if spec is None or spec.creates or spec.params:
            raise MXNetError(f"get_symbol: the recording holds op '{name}', which has no MXNet "
                             'graph op to stand for it here')
        inputs = [source(a) for a in node.inputs]
        sym_node = SymNode(name, f"node_{counts['node']}", node.attrs, inputs)
        counts['node'] += 1
        if sym_node.num_outputs != len(node.out_data):
            raise MXNetError(f"get_symbol: op '{name}' recorded {len(node.out_data)} outputs, its "
                             f'MXNet graph op has {sym_node.num_outputs}')
        made[id(node)] = sym_node
    return Symbol([source(x)])
