"""Running a Graph node by node, without compiling it: the one interpreter of the IR. Callers
say how a node runs (`GraphBlock` through `imperative.invoke` on NDArrays, so it records for
autograd; tests through the raw CPU kernels on NumPy arrays).

Not interpreters of this IR, on purpose: `symbol.executor.evaluate` walks an `mx.sym` graph (no
shapes, MXNet's op names and attributes, calling engine functions, which is how such a graph
becomes IR), and `passes.constant_folding` evaluates only the nodes whose inputs are constants."""


def interpret(graph, inputs, run_node, constant=None):
    """The outputs of `graph` for `inputs` (one per graph input): each node's outputs are
    `run_node(node, input values)` (a tuple for a multi-output op); `constant(array)` makes
    each graph constant a value (default: the array itself)."""
    env = {v.id: a for v, a in zip(graph.inputs, inputs)}
    for v, a in graph.constants.items():
        env[v.id] = a if constant is None else constant(a)
    for n in graph.nodes:
        res = run_node(n, [env[v.id] for v in n.inputs])
        for o, r in zip(n.outputs, res if n.op.multi_output else (res,)):
            env[o.id] = r
    return [env[v.id] for v in graph.outputs]
