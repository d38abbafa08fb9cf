"""The graph IR: a flat SSA list of nodes. Each node applies one registered op to values and
defines new values with static shapes and dtypes.

Values are named for reading: inputs by their own names (`data0`, `dense0_weight`), node outputs
after the block that made them (`name_values`: `dense0_fully_connected`, the block's last value
`dense0_out`); `value_names` turns those into unique identifiers for printing and codegen."""
import copy
import keyword

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
    """`scope`: name of the block whose forward added the node; `path`: that block's place in the
    model ('features.3 (Conv2D)'); `line`: the user's source line. None where unknown (nodes made
    by autodiff or by passes)."""
    __slots__ = ('op', 'inputs', 'attrs', 'outputs', 'scope', 'path', 'line')

    def __init__(self, op, inputs, attrs, outputs, scope=None, path=None, line=None):
        self.op, self.inputs, self.attrs, self.outputs = op, list(inputs), dict(attrs), list(outputs)
        self.scope, self.path, self.line = scope, path, line

    def __repr__(self):
        return format_node(self)


def format_attrs(attrs):
    return ', '.join(f'{k}={v!r}' for k, v in attrs.items())


def where(node):
    """'0 (Dense) at net.py:12': where a node comes from, or '' when unknown."""
    return ' at '.join(p for p in (node.path, node.line) if p)


def _typed(v, names):
    return f'{names.get(v.id, v)}: {v.dtype.name}{fmt_shape(v.shape)}'


def format_node(node, names=None):
    """One line of IR; `names`: value id -> name (default: the values' own names)."""
    names = names if names is not None else {v.id: v.name for v in node.inputs + node.outputs if v.name}
    outs = ', '.join(_typed(v, names) for v in node.outputs)
    ins = ', '.join(str(names.get(v.id, v)) for v in node.inputs)
    attrs = format_attrs(node.attrs)
    line = f'{outs} = {node.op.name}({ins}{"; " + attrs if attrs else ""})'
    return f'{line}   # {where(node)}' if where(node) else line


def identifier(hint):
    """A valid Python identifier close to `hint`, never starting with '_' (generated code keeps
    names with a leading underscore for itself)."""
    name = ''.join(c if c.isalnum() or c == '_' else '_' for c in str(hint)).strip('_')
    name = name or 'v'
    if name[0].isdigit() or keyword.iskeyword(name):
        name = 'v' + name
    return name


class Namer:
    """Hands out unique identifiers: the hint itself, else hint_1, hint_2, ..."""

    def __init__(self, reserved=()):
        self.taken = set(reserved)

    def fresh(self, hint):
        base = identifier(hint)
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f'{base}_{k}'
        self.taken.add(name)
        return name


def name_values(graph, nodes=None):
    """Give the outputs of `nodes` (default: all of graph's) that have no name one after their
    block and op, unique in the graph; the last value a block computes is `<block>_out`."""
    nodes = graph.nodes if nodes is None else nodes
    named = list(graph.inputs) + list(graph.constants) + [o for n in graph.nodes for o in n.outputs]
    namer, last = Namer(v.name for v in named if v.name), {}
    for n in nodes:
        if n.scope is not None:
            last[n.scope] = n
    for n in nodes:
        op = n.op.name
        base = f'{n.scope}_out' if last.get(n.scope) is n else f'{n.scope}_{op}' if n.scope else f'{op}_out'
        for i, v in enumerate(n.outputs):
            if v.name is None:
                v.name = namer.fresh(base if i == 0 else f'{base}_{i}')


def value_names(graph, namer=None):
    """value id -> a unique identifier for every value of `graph` (inputs, constants, node
    outputs), from the values' names; values without one are named after their op. `namer`
    may hold names already taken (generated code's own)."""
    namer = namer or Namer()
    names = {}
    for v in list(graph.inputs) + list(graph.constants):
        names[v.id] = namer.fresh(v.name or 'const')
    for n in graph.nodes:
        for i, v in enumerate(n.outputs):
            if v.id not in names:
                names[v.id] = namer.fresh(v.name or (f'{n.op.name}_out' if i == 0 else f'{n.op.name}_out_{i}'))
    return names


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
        names = value_names(self)
        lines = ['graph(' + ', '.join(_typed(v, names) for v in self.inputs) + ') {']
        for v in self.constants:
            lines.append(f'  {_typed(v, names)} = constant')
        lines += ['  ' + format_node(n, names) for n in self.nodes]
        lines.append('  return ' + ', '.join(names[v.id] for v in self.outputs))
        lines.append('}')
        return '\n'.join(lines)

    __repr__ = __str__

    def to_dot(self):
        """Graphviz DOT text of the graph (values as edges, ops as boxes labelled with the names
        of the values they define)."""
        names = value_names(self)
        lines = ['digraph G {', '  rankdir=TB; node [fontname="monospace"];']
        for v in self.inputs:
            lines.append(f'  v{v.id} [shape=ellipse, label="{names[v.id]}\\n{fmt_shape(v.shape)}"];')
        for v in self.constants:
            lines.append(f'  v{v.id} [shape=ellipse, style=dashed, label="{names[v.id]}\\n{fmt_shape(v.shape)}"];')
        producer = {}        # value id -> its node's DOT id (values from outside are inputs here)
        for i, n in enumerate(self.nodes):
            outs = ', '.join(names[o.id] for o in n.outputs)
            lines.append(f'  n{i} [shape=box, label="{n.op.name}\\n{outs}"];')
            for v in n.inputs:
                lines.append(f'  {producer.get(v.id, f"v{v.id}")} -> n{i} [label="{fmt_shape(v.shape)}"];')
            producer.update((o.id, f'n{i}') for o in n.outputs)
        for k, v in enumerate(self.outputs):
            src = producer.get(v.id, f'v{v.id}')
            lines.append(f'  out{k} [shape=plaintext, label="output {k}"];\n  {src} -> out{k};')
        lines.append('}')
        return '\n'.join(lines)


def rebuilt(graph, nodes, replace=None, constants=None):
    """A new graph like `graph` running `nodes`. Passes return this instead of editing what they
    were given (forward, backward and the traced graph a user prints share nodes and values): a
    node is copied, with its outputs, only where something about it changed (it reads a replaced
    or copied value, or a pass built it around values another node defines); the rest is
    shared. `replace`: value id -> the value to read instead; `constants`: the new graph's."""
    swap = dict(replace or {})

    def resolve(v):
        while swap.get(v.id, v) is not v:
            v = swap[v.id]
        return v

    new = copy.copy(graph)
    new.nodes = []
    for n in nodes:
        ins = [resolve(v) for v in n.inputs]
        if any(a is not b for a, b in zip(ins, n.inputs)) or any(
                o.node is not n or o.index != i for i, o in enumerate(n.outputs)):
            m = copy.copy(n)
            m.inputs, m.attrs, m.outputs = ins, dict(n.attrs), []
            for i, v in enumerate(n.outputs):
                w = copy.copy(v)
                w.node, w.index = m, i
                swap[v.id] = w
                m.outputs.append(w)
            n = m
        new.nodes.append(n)
    new.inputs = list(graph.inputs)
    new.constants = dict(graph.constants if constants is None else constants)
    new.outputs = [resolve(v) for v in graph.outputs]
    return new
