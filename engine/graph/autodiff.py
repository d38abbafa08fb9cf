"""Graph-level reverse-mode autodiff: apply each op's gradient rule (the same rules the eager
tape uses) to symbols, appending the backward nodes to the graph."""
from ..autograd import apply_rule, fit_gradient
from ..ops.elemwise import copy
from ..ops.nn import full_like
from .trace import Symbol, Tracer


def append_backward(graph, wrt, name='graph', ctx=None):
    """Add head-gradient inputs for graph.outputs and backward nodes computing d(outputs)/d(wrt).

    Returns (head_grad_values, grad_values) where grad_values[i] is the gradient of wrt[i]."""
    tracer = Tracer(name, ctx)
    tracer.graph = graph
    forward_nodes = list(graph.nodes)
    heads = [graph.add_input(v.shape, v.dtype, f'head_grad{i}') for i, v in enumerate(graph.outputs)]
    grads = {}

    def acc(value, g):
        old = grads.get(value.id)
        grads[value.id] = g if old is None else old + g

    with tracer:
        for v, h in zip(graph.outputs, heads):
            acc(v, Symbol(tracer, h))
        for node in reversed(forward_nodes):
            gs = [grads.get(o.id) for o in node.outputs]
            if all(g is None for g in gs) or not node.op.differentiable:
                continue
            outs = [Symbol(tracer, o) for o in node.outputs]
            inputs = [Symbol(tracer, v) for v in node.inputs]
            with tracer.differentiating(node):
                in_grads = apply_rule(node.op, gs, outs, inputs, node.attrs)
                for v, x, g in zip(node.inputs, inputs, in_grads):
                    if g is not None and v.dtype.kind == 'f':
                        acc(v, fit_gradient(node.op, g, x))
        result = []
        input_ids = {v.id for v in graph.inputs}
        for v in wrt:
            g = grads.get(v.id)
            g = full_like(Symbol(tracer, v), 0.0) if g is None else g
            if g._value.id in input_ids:
                # an identity block's gradient is the head gradient itself; give it a node of
                # its own so every gradient is computed by the backward graph, never an input
                g = copy(g)
            result.append(g._value)
    return heads, result
