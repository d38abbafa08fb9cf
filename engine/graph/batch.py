"""The dynamic batch axis: which sizes and attributes of a graph follow the batch size.

A block traced at two batch sizes b0 != b1 gives two graphs. When they have the same nodes,
ops, constants and attribute keys, and every number that differs between them is an integer
`a*B + c` (a shape, `reshape(shape=(B, -1))`, `sum_to(shape=...)`) or a float `k / B`, the graph
is batch-polymorphic: `BatchForms.at(B)` gives every shape and attribute at any batch size, and
`check(graph, forms, B)` re-runs each op's shape rule there, so one compiled program serves
every batch size. Anything else (other differing values, a differing structure, control flow
on shapes) returns None and the caller keeps one program per shape."""
import numpy as np

from ..base import MXNetError


class Linear:
    """The integer a*B + c."""
    __slots__ = ('a', 'c')

    def __init__(self, a, c):
        self.a, self.c = a, c

    def at(self, b):
        return self.a * b + self.c

    def source(self):
        term = 'B' if self.a == 1 else f'{self.a} * B'
        return f'({term} + {self.c})' if self.c else term


class Inverse:
    """The float k / B (e.g. the 1/batch scale of a mean over the batch)."""
    __slots__ = ('k',)

    def __init__(self, k):
        self.k = k

    def at(self, b):
        return self.k / b

    def source(self):
        return f'({self.k!r} / B)'


_NO_FIT = object()


def _equal(v0, v1):
    try:
        return bool(v0 == v1)
    except (TypeError, ValueError):      # e.g. arrays
        return np.array_equal(v0, v1)


def _fit(v0, v1, b0, b1):
    """The form through (b0, v0) and (b1, v1): the value itself when equal, else _NO_FIT."""
    if type(v0) is not type(v1):
        return _NO_FIT
    if isinstance(v0, tuple):
        if len(v0) != len(v1):
            return _NO_FIT
        parts = [_fit(x, y, b0, b1) for x, y in zip(v0, v1)]
        return _NO_FIT if any(p is _NO_FIT for p in parts) else tuple(parts)
    if _equal(v0, v1):
        return v0
    if isinstance(v0, int) and not isinstance(v0, bool) and (v1 - v0) % (b1 - b0) == 0:
        a = (v1 - v0) // (b1 - b0)
        return Linear(a, v0 - a * b0)
    if isinstance(v0, float) and abs(v0 * b0 - v1 * b1) <= 1e-9 * abs(v0 * b0):
        return Inverse(v0 * b0)
    return _NO_FIT


def is_dynamic(form):
    if isinstance(form, (Linear, Inverse)):
        return True
    return isinstance(form, tuple) and any(is_dynamic(f) for f in form)


def evaluate(form, b):
    if isinstance(form, (Linear, Inverse)):
        return form.at(b)
    if isinstance(form, tuple):
        return tuple(evaluate(f, b) for f in form)
    return form


class BatchForms:
    """shape[value id] and attrs[node index] as forms, for graph g0 (the one compiled)."""

    def __init__(self, shapes, attrs, b0):
        self.shapes, self.attrs, self.b0 = shapes, attrs, b0

    def shape_at(self, value, b):
        return evaluate(self.shapes[value.id], b)


def _kernel_text(op):
    """A generated kernel's source up to its parallel flag (only a speed choice, by size)."""
    src = getattr(op, 'source', None)
    return src and src.replace('parallel=True', 'parallel=False').replace('prange(', 'range(')


def batch_forms(g0, g1, b0, b1):
    """BatchForms of g0 given the same block traced at another batch size (g1), or None."""
    if (len(g0.nodes), len(g0.inputs), len(g0.outputs), len(g0.constants)) != \
            (len(g1.nodes), len(g1.inputs), len(g1.outputs), len(g1.constants)):
        return None
    pairs = list(zip(g0.inputs, g1.inputs))
    for (v0, a0), (v1, a1) in zip(g0.constants.items(), g1.constants.items()):
        if a0.shape != a1.shape or a0.dtype != a1.dtype or not (a0 == a1).all():
            return None       # a constant built from the batch size: not one program
        pairs.append((v0, v1))
    attrs = []
    for n0, n1 in zip(g0.nodes, g1.nodes):
        if n0.op.name != n1.op.name or _kernel_text(n0.op) != _kernel_text(n1.op) \
                or list(n0.attrs) != list(n1.attrs) or len(n0.inputs) != len(n1.inputs):
            return None
        form = {k: _fit(n0.attrs[k], n1.attrs[k], b0, b1) for k in n0.attrs}
        if any(f is _NO_FIT for f in form.values()):
            return None
        attrs.append(form)
        pairs += list(zip(n0.outputs, n1.outputs))
    link = {v0.id: v1.id for v0, v1 in pairs}
    for n0, n1 in zip(g0.nodes, g1.nodes):      # the same wiring
        if any(link.get(x.id) != y.id for x, y in zip(n0.inputs, n1.inputs)):
            return None
    if any(link.get(x.id) != y.id for x, y in zip(g0.outputs, g1.outputs)):
        return None
    shapes = {}
    for v0, v1 in pairs:
        if v0.dtype != v1.dtype:
            return None
        form = _fit(v0.shape, v1.shape, b0, b1)
        if form is _NO_FIT:
            return None
        shapes[v0.id] = form
    return BatchForms(shapes, attrs, b0)


def check(nodes, forms, b):
    """Re-run every node's shape rule at batch size b; MXNetError naming the node on mismatch."""
    for n, attrs in zip(nodes, forms.attrs):
        if n.op.infer is None:
            continue
        ins = [forms.shape_at(v, b) for v in n.inputs]
        try:
            shapes, _ = n.op.infer(ins, [v.dtype for v in n.inputs], **evaluate_attrs(attrs, b))
        except MXNetError as e:
            raise MXNetError(f'batch size {b}: {n.op.name}: {e}') from None
        want = [forms.shape_at(o, b) for o in n.outputs]
        if [tuple(s) for s in shapes] != want:
            raise MXNetError(f'batch size {b}: {n.op.name} gives shapes {shapes}, the program expects {want}')


def evaluate_attrs(attrs, b):
    return {k: evaluate(f, b) for k, f in attrs.items()}


def form_source(form):
    """Python source of a form, reading the batch size from a local `B`."""
    if isinstance(form, (Linear, Inverse)):
        return form.source()
    if isinstance(form, tuple):
        parts = [form_source(f) for f in form]
        return '(' + ', '.join(parts) + (',)' if len(parts) == 1 else ')')
    return repr(form)


def batch_source(graph, forms):
    """(input index, dimension) whose size is B itself, read by the program on each call."""
    for i, v in enumerate(graph.inputs):
        for d, f in enumerate(forms.shapes[v.id]):
            if isinstance(f, Linear) and f.a == 1 and f.c == 0:
                return i, d
    raise MXNetError('a batch-polymorphic graph needs an input whose dimension is the batch size')
