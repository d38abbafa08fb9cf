"""Graph passes: small functions Graph -> new Graph (ir.rebuilt: a pass never edits the nodes and
values it is given, which other graphs share), each tested on hand-built graphs."""
import copy

import numpy as np

from ..base import MXNetError
from .ir import Graph, rebuilt


def dead_code_elimination(graph):
    """Drop nodes none of whose outputs reach a graph output (stateful ops are kept only when
    used too: a random mask nobody reads need not be drawn)."""
    live = {v.id for v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if any(o.id in live for o in node.outputs):
            kept.append(node)
            live.update(v.id for v in node.inputs)
    return rebuilt(graph, kept[::-1], constants={v: a for v, a in graph.constants.items() if v.id in live})


def _freeze(attrs):
    return tuple(sorted((k, _hashable(v)) for k, v in attrs.items()))


def _hashable(v):
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(i) for i in v)
    if isinstance(v, dict):
        return _freeze(v)
    if isinstance(v, np.ndarray):
        return ('ndarray', v.shape, v.tobytes())
    return v


def common_subexpression_elimination(graph):
    """Merge nodes applying the same op with the same attributes to the same inputs."""
    seen, replace = {}, {}
    kept = []
    for node in graph.nodes:
        if node.op.stateful:
            kept.append(node)
            continue
        key = (node.op.name, tuple(replace.get(v.id, v).id for v in node.inputs), _freeze(node.attrs))
        other = seen.get(key)
        if other is None:
            seen[key] = node
            kept.append(node)
        else:
            for a, b in zip(node.outputs, other.outputs):
                replace[a.id] = b
    return rebuilt(graph, kept, replace)


def constant_folding(graph, max_bytes=1 << 22):
    """Evaluate nodes whose inputs are all constants (on the CPU, once, at compile time)."""
    kept, constants, replace = [], dict(graph.constants), {}
    for node in graph.nodes:
        ins = [constants.get(replace.get(v.id, v)) for v in node.inputs]
        small = all(o.nbytes <= max_bytes for o in node.outputs)
        if node.inputs and all(a is not None for a in ins) and not node.op.stateful and small:
            try:
                res = node.op.kernel('cpu')(*ins, **node.attrs)
            except Exception as e:
                raise MXNetError(f'{node.op.name}: failed while folding constants: {e}') from e
            res = res if node.op.multi_output else (res,)
            for v, r in zip(node.outputs, res):
                c = replace[v.id] = copy.copy(v)      # the same value, now defined by no node
                c.node = None
                constants[c] = np.asarray(r)
        else:
            kept.append(node)
    return rebuilt(graph, kept, replace, constants)


def optimize(graph):
    """The default pipeline before autodiff and lowering."""
    for p in (constant_folding, common_subexpression_elimination, dead_code_elimination):
        graph = p(graph)
    return graph


def depends_on(graph, values):
    """Ids of `values` and of every value the graph computes from them."""
    dep = {v.id for v in values}
    for n in graph.nodes:
        if any(v.id in dep for v in n.inputs):
            dep.update(o.id for o in n.outputs)
    return dep


def subgraph(graph, outputs, inputs):
    """A new Graph (sharing node objects) computing `outputs` from `inputs`: only the nodes
    needed, and none that produce an input (inputs cut the graph)."""
    g = Graph()
    g._next = graph._next
    g.inputs, g.outputs = list(inputs), list(outputs)
    cut = {v.id for v in inputs}
    live = {v.id for v in outputs} - cut
    kept = []
    for node in reversed(graph.nodes):
        if any(o.id in live for o in node.outputs):
            kept.append(node)
            live.update(v.id for v in node.inputs if v.id not in cut)
    g.nodes = kept[::-1]
    g.constants = {v: a for v, a in graph.constants.items() if v.id in live}
    defined = cut | {v.id for v in g.constants}
    for n in g.nodes:
        for v in n.inputs:
            if v.id not in defined:
                raise MXNetError(f'internal: value {v} used by {n.op.name} is not defined in the subgraph')
        defined.update(o.id for o in n.outputs)
    return g
