"""Building graphs by hand from registry ops, and a reference interpreter to run them.

The interpreter calls each node's registered CPU kernel in order on fresh arrays: the plain
meaning of a graph, against which passes, fusion and the compiled Program are checked."""
import numpy as np

from engine.graph.interpret import interpret
from engine.graph.ir import Graph
from engine.ops import get_op


def node(graph, op_name, inputs, **attrs):
    """Append `op_name(inputs; attrs)` with shapes from the op's own shape rule; returns the
    output value (or the tuple of outputs of a multi-output op)."""
    op = get_op(op_name)
    shapes, dtypes = op.infer([v.shape for v in inputs], [v.dtype for v in inputs], **attrs)
    n = graph.add_node(op, inputs, attrs, shapes, dtypes)
    return tuple(n.outputs) if op.multi_output else n.outputs[0]


def new_graph(*input_shapes, dtype=np.float32):
    g = Graph()
    xs = [g.add_input(s, dtype, f'x{i}') for i, s in enumerate(input_shapes)]
    return g, xs


def evaluate(graph, arrays):
    """Run the graph node by node with the registered kernels; returns the output arrays."""
    return interpret(graph, arrays, _run_kernel)


def _run_kernel(n, arrays):
    res = n.op.kernel('cpu')(*arrays, **n.attrs)
    return tuple(map(np.asarray, res)) if n.op.multi_output else np.asarray(res)


def random_inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(v.shape).astype(v.dtype) for v in graph.inputs]


def op_names(graph):
    return [n.op.name for n in graph.nodes]
