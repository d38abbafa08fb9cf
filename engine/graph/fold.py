"""Inference-only folding: a per-channel scale and shift applied to a convolution's output
(what BatchNorm becomes in predict mode, y = conv(x, w) * s + t) moves into the convolution's
weights and bias, w' = w * s, b' = b * s + t. The scale and shift are computed from parameters
and constants only, so the folded weights are recomputed each call from the current parameters:
O(weights) work instead of two passes over the activations, and the ReLU that usually follows
then becomes the convolution's epilogue. A scale folds only where rescaling the weights is
cheaper than the pass over the output it saves (w.size <= y.size): on ResNet-18's deep stages at
batch 16 the weights are up to 70x the output, and rescaling them each call cost more than the
unfolded multiply and add over the output."""
import math

from ..ops.registry import REGISTRY
from .passes import depends_on
from .ir import Node, rebuilt


def _static_values(graph, n_data):
    """Ids of the values that do not depend on the data inputs."""
    dynamic = depends_on(graph, graph.inputs[:n_data])
    known = {v.id for v in graph.inputs} | {v.id for v in graph.constants}
    known.update(o.id for n in graph.nodes for o in n.outputs)
    return known - dynamic


def _per_channel(v, c):
    return tuple(v.shape) in ((1, c, 1, 1), (c, 1, 1)) and v.dtype.kind == 'f'


class _Rewriter:
    def __init__(self, graph):
        self.graph, self.new = graph, []

    def apply(self, name, inputs, **attrs):
        op = REGISTRY[name]
        shapes, dtypes = op.infer([v.shape for v in inputs], [v.dtype for v in inputs], **attrs)
        node = Node(op, inputs, attrs, [])
        node.outputs = [self.graph.new_value(shapes[0], dtypes[0], node, 0)]
        self.new.append(node)
        return node.outputs[0]


def fold_affine_into_conv(graph, n_data):
    """Fold `conv2d -> multiply by s -> add/subtract t` (s, t per output channel and free of the
    data) into the conv2d node. `n_data`: how many of graph.inputs are data (the rest are
    parameters). Returns a new graph (ir.rebuilt), or `graph` itself when nothing folds."""
    static = _static_values(graph, n_data)
    readers = graph.users()
    outputs = {v.id for v in graph.outputs}

    def only_reader(v):
        rs = readers.get(v.id, [])
        return rs[0] if len(rs) == 1 and v.id not in outputs else None

    replace, drop = {}, set()
    for conv in graph.nodes:
        if conv.op.name != 'conv2d' or conv.attrs.get('act') is not None or id(conv) in drop:
            continue
        chain = _affine_chain(conv, only_reader, static)
        if not chain or not _cheaper_folded(conv, chain):
            continue
        rw = _Rewriter(graph)
        w, b = conv.inputs[1], conv.inputs[2] if len(conv.inputs) > 2 else None
        c = w.shape[0]
        for node, other in chain:
            vec = rw.apply('reshape', [other], shape=(c,))
            if node.op.name == 'multiply':
                w = rw.apply('multiply', [w, rw.apply('reshape', [vec], shape=(c, 1, 1, 1))])
                b = None if b is None else rw.apply('multiply', [b, vec])
            elif b is None:
                b = vec if node.op.name == 'add' else rw.apply('negative', [vec])
            else:
                b = rw.apply(node.op.name, [b, vec])
        last = chain[-1][0]
        folded = Node(conv.op, [conv.inputs[0], w] + ([b] if b is not None else []), dict(conv.attrs),
                      [last.outputs[0]])
        replace[id(last)] = rw.new + [folded]      # at the last node: every input is defined there
        drop.update(id(n) for n, _ in chain[:-1])
        drop.add(id(conv))
    if not replace:
        return graph
    nodes = []
    for n in graph.nodes:
        if id(n) in replace:
            nodes.extend(replace[id(n)])
        elif id(n) not in drop:
            nodes.append(n)
    return rebuilt(graph, nodes)


def _cheaper_folded(conv, chain):
    """Whether folding `chain` costs less than leaving it: a shift costs O(channels), a scale
    one pass over the weights instead of one over the output."""
    w, y = conv.inputs[1], conv.outputs[0]
    scales = any(node.op.name == 'multiply' for node, _ in chain)
    return not scales or math.prod(w.shape) <= math.prod(y.shape)


def _affine_chain(conv, only_reader, static, max_len=3):
    """[(node, per-channel operand)]: the multiplies and adds/subtracts by data-free per-channel
    values that read conv's output one after the other (each the only reader of the last)."""
    c, y, chain = conv.outputs[0].shape[1], conv.outputs[0], []
    while len(chain) < max_len:
        node = only_reader(y)
        if node is None or node.op.name not in ('multiply', 'add', 'subtract') or len(node.inputs) != 2:
            break
        a, b = node.inputs
        other = b if a is y else a
        if node.op.name == 'subtract' and other is not b:       # t - y is not a shift of y
            break
        if not (other.id in static and _per_channel(other, c) and other.dtype == y.dtype
                and node.outputs[0].shape == y.shape):
            break
        chain.append((node, other))
        y = node.outputs[0]
    return chain
