"""The graph IR: a flat SSA list of nodes. Each node applies one registered op to values and
defines new values with static shapes and dtypes."""
import numpy as np

from ..base import fmt_shape


class Value:
    """One SSA value. `node` is None for graph inputs and constants."""
    __slots__ = ('id', 'shape', 'dtype', 'node', 'index', 'name')

    def __init__(self, id, shape, dtype, node=None, index=0, name=None):
        self.id, self.shape, self.dtype = id, tuple(shape), np.dtype(dtype)
        self.node, self.index, self.name = node, index, name

    def __repr__(self):
        return f'%{self.id}'

    @property
    def nbytes(self):
        return int(np.prod(self.shape)) * self.dtype.itemsize


class Node:
    __slots__ = ('op', 'inputs', 'attrs', 'outputs')

    def __init__(self, op, inputs, attrs, outputs):
        self.op, self.inputs, self.attrs, self.outputs = op, list(inputs), dict(attrs), list(outputs)

    def __repr__(self):
        return format_node(self)


def format_attrs(attrs):
    return ', '.join(f'{k}={v!r}' for k, v in attrs.items())


def format_node(node):
    outs = ', '.join(f'{v}:{v.dtype.name}{fmt_shape(v.shape)}' for v in node.outputs)
    ins = ', '.join(repr(v) for v in node.inputs)
    attrs = format_attrs(node.attrs)
    return f'{outs} = {node.op.name}({ins}{"; " + attrs if attrs else ""})'


class Graph:
    """inputs: data inputs followed by parameters; constants: Value -> NumPy array."""

    def __init__(self):
        self.inputs, self.nodes, self.outputs = [], [], []
        self.constants = {}
        self._next = 0

    def new_value(self, shape, dtype, node=None, index=0, name=None):
        v = Value(self._next, shape, dtype, node, index, name)
        self._next += 1
        return v

    def add_input(self, shape, dtype, name):
        v = self.new_value(shape, dtype, name=name)
        self.inputs.append(v)
        return v

    def add_constant(self, array, name=None):
        v = self.new_value(array.shape, array.dtype, name=name or 'const')
        self.constants[v] = array
        return v

    def add_node(self, op, inputs, attrs, out_shapes, out_dtypes):
        node = Node(op, inputs, attrs, [])
        node.outputs = [self.new_value(s, d, node, i) for i, (s, d) in enumerate(zip(out_shapes, out_dtypes))]
        self.nodes.append(node)
        return node

    def users(self):
        """value id -> list of nodes that read it."""
        out = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v.id, []).append(n)
        return out

    def __str__(self):
        lines = ['graph(' + ', '.join(f'{v}:{v.dtype.name}{fmt_shape(v.shape)} {v.name}' for v in self.inputs) + ') {']
        for v, a in self.constants.items():
            lines.append(f'  {v}:{v.dtype.name}{fmt_shape(v.shape)} = constant')
        lines += ['  ' + format_node(n) for n in self.nodes]
        lines.append('  return ' + ', '.join(repr(v) for v in self.outputs))
        lines.append('}')
        return '\n'.join(lines)

    __repr__ = __str__

    def to_dot(self):
        """Graphviz DOT text of the graph (values as edges, ops as boxes)."""
        lines = ['digraph G {', '  rankdir=TB; node [fontname="monospace"];']
        for v in self.inputs:
            lines.append(f'  v{v.id} [shape=ellipse, label="{v.name}\\n{fmt_shape(v.shape)}"];')
        for v in self.constants:
            lines.append(f'  v{v.id} [shape=ellipse, style=dashed, label="const\\n{fmt_shape(v.shape)}"];')
        for i, n in enumerate(self.nodes):
            lines.append(f'  n{i} [shape=box, label="{n.op.name}"];')
            for v in n.inputs:
                src = f'n{self.nodes.index(v.node)}' if v.node is not None else f'v{v.id}'
                lines.append(f'  {src} -> n{i} [label="{fmt_shape(v.shape)}"];')
        for k, v in enumerate(self.outputs):
            src = f'n{self.nodes.index(v.node)}' if v.node is not None else f'v{v.id}'
            lines.append(f'  out{k} [shape=plaintext, label="output {k}"];\n  {src} -> out{k};')
        lines.append('}')
        return '\n'.join(lines)
