"""Tracing: run a block's Python forward with Symbols standing in for arrays; every op call
appends a node to the graph (the op library dispatches Symbols here through `invoke`)."""
import contextlib
import os
import sys
import threading

import numpy as np

from ..base import MXNetError
from ..ndarray import NDArray
from .ir import Graph

_local = threading.local()


def current():
    """The active Tracer, or None when running eagerly."""
    stack = getattr(_local, 'stack', None)
    return stack[-1] if stack else None


def is_tracing():
    return current() is not None


class Tracer:
    """Builds one Graph. Use as a context manager around the traced call. With `root` (the block
    being traced) every node records its block, the block's path and the user's line."""

    def __init__(self, block_name, ctx, root=None):
        self.graph, self.block_name, self.ctx = Graph(), block_name, ctx
        # (block, path from the root, kind: the block's class or an mx.sym node's op)
        self._scopes = [] if root is None else [(root, '', type(root).__name__)]
        self.params = {}          # Parameter -> Symbol
        self.param_order = []     # Parameters in graph-input order
        self.const_ids = {}       # id(NDArray) -> Symbol, so a captured constant is added once
        self.blocks = []          # names of the nested blocks being traced, innermost last
        self.reads_shape = False  # user code read a shape: the graph may depend on the batch size
        self._origin = None       # the forward node whose gradient rule is running (autodiff)

    def __enter__(self):
        if not hasattr(_local, 'stack'):
            _local.stack = []
        _local.stack.append(self)
        return self

    def __exit__(self, *exc):
        _local.stack.pop()

    @contextlib.contextmanager
    def entering(self, block, kind=None):
        """Marks a nested block (or, with `kind`, a named mx.sym node: anything with a `name`) as
        being traced, so errors name the innermost one and its nodes are named after it."""
        kind = kind or type(block).__name__
        self.blocks.append(f'{kind}({block.name})')
        self._scopes.append(self._scope_of(block) + (kind,))
        try:
            yield
        finally:
            self.blocks.pop()
            self._scopes.pop()

    def _scope_of(self, block):
        """(block, its path from the root: the child names, as layer errors print it)."""
        if not self._scopes:
            return block, block.name
        parent, path, _ = self._scopes[-1]
        key = next((k for k, c in getattr(parent, '_children', {}).items() if c is block), block.name)
        return block, f'{path}.{key}' if path else key

    @contextlib.contextmanager
    def differentiating(self, node):
        """Nodes added inside (by `node`'s gradient rule) carry `node`'s block, path and line, so
        backward values are named after the layer they differentiate."""
        saved, self._origin = self._origin, node
        try:
            yield
        finally:
            self._origin = saved

    def _locate(self, node):
        if self._origin is not None:
            node.scope, node.path, node.line = self._origin.scope, self._origin.path, self._origin.line
        elif self._scopes:
            block, path, kind = self._scopes[-1]
            node.scope, node.line = block.name or None, _user_line()   # a block may have no name
            path = path or block.name
            node.path = f'{path} ({kind})' if path else kind

    def where(self):
        """The block being traced now, e.g. 'Dense(dense0) (inside MLP(mlp0))'."""
        if not self.blocks or self.blocks[-1] == self.block_name:
            return self.block_name
        return f'{self.blocks[-1]} (inside {self.block_name})'

    def input(self, shape, dtype, name):
        return Symbol(self, self.graph.add_input(shape, dtype, name))

    def param_symbol(self, param, ctx=None):
        sym = self.params.get(param)
        if sym is None:
            if not param._shape_known():
                raise MXNetError(f'{self.where()}: parameter {param.name} has unknown shape '
                                 f'{param.shape} while tracing; its layer must infer it first')
            sym = Symbol(self, self.graph.add_input(param.shape, param.dtype, param.name))
            self.params[param] = sym
            self.param_order.append(param)
        return sym

    def constant(self, arr):
        sym = self.const_ids.get(id(arr))
        if sym is None:
            sym = Symbol(self, self.graph.add_constant(arr.asnumpy()))
            self.const_ids[id(arr)] = sym
            sym._keepalive = arr
        return sym

    def apply(self, op, inputs, attrs):
        vals = []
        for x in inputs:
            if isinstance(x, Symbol):
                if x._tracer is not self:
                    raise MXNetError(f'{op.name}: a symbol from another traced graph was used')
                vals.append(x._value)
            elif isinstance(x, NDArray):
                vals.append(self.constant(x)._value)
            else:
                raise MXNetError(f'{op.name}: unexpected input of type {type(x).__name__} while tracing')
        shapes, dtypes = op.infer([v.shape for v in vals], [v.dtype for v in vals], **attrs)
        node = self.graph.add_node(op, vals, attrs, shapes, dtypes)
        self._locate(node)
        outs = tuple(Symbol(self, v) for v in node.outputs)
        return outs if op.multi_output else outs[0]


_ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _in_engine(code, cache={}):
    inside = cache.get(code.co_filename)
    if inside is None:
        inside = cache[code.co_filename] = os.path.abspath(code.co_filename).startswith(_ENGINE_DIR)
    return inside


def _user_line():
    """file:line of the innermost frame outside the engine package (error messages, and where
    each traced node comes from)."""
    f = sys._getframe(2)
    while f is not None and _in_engine(f.f_code):
        f = f.f_back
    return f'{f.f_code.co_filename}:{f.f_lineno}' if f else '<unknown>'


class Symbol:
    """A value in a graph being traced. Behaves like an NDArray for every op, but has no data."""
    _is_symbol = True
    __array_priority__ = 1000.0
    __slots__ = ('_tracer', '_value', '_keepalive')

    def __init__(self, tracer, value):
        self._tracer, self._value = tracer, value

    def _note_shape_read(self):
        if not sys._getframe(2).f_code.co_filename.startswith(_ENGINE_DIR):
            self._tracer.reads_shape = True    # the user's Python may branch on the batch size

    def _shape(self):
        self._note_shape_read()
        return self._value.shape

    def _size(self):
        self._note_shape_read()
        return int(np.prod(self._value.shape))

    shape = property(_shape)
    dtype = property(lambda self: self._value.dtype.type)
    ndim = property(lambda self: len(self._value.shape))
    size = property(_size)
    context = property(lambda self: self._tracer.ctx)
    ctx = context

    def __repr__(self):
        return f'<Symbol {self._value} {self.shape} in {self._tracer.block_name}>'

    def _graph_apply(self, op, inputs, attrs):
        return self._tracer.apply(op, inputs, attrs)

    def _no_value(self, what):
        raise MXNetError(
            f'{self._tracer.where()}: {what} reads the value of an array while the block is being '
            f'traced for hybridize() (at {_user_line()}). A hybridized block cannot depend on data '
            'values; keep this block eager (do not hybridize it) or express the logic with ops '
            '(e.g. nd.where).')

    def asnumpy(self):
        self._no_value('asnumpy()')

    def asscalar(self):
        self._no_value('asscalar()')

    item = asscalar

    def __bool__(self):
        self._no_value('a Python `if`/`while`/bool() on an array')

    def __float__(self):
        self._no_value('float()')

    def __int__(self):
        self._no_value('int()')

    def __index__(self):
        self._no_value('using an array as an index')

    def __len__(self):
        self._tracer.reads_shape = True
        return self._value.shape[0]

    def __iter__(self):
        self._tracer.reads_shape = True
        for i in range(self._value.shape[0]):
            yield self[i]

    def attach_grad(self, *a, **k):
        raise MXNetError(f'{self._tracer.where()}: attach_grad() inside a hybridized block')

    def detach(self):
        from ..ops import stop_gradient
        return stop_gradient(self)

    def wait_to_read(self):
        pass

    def as_in_context(self, ctx):
        return self

    def astype(self, dtype, copy=True):
        from ..ops import cast
        return cast(self, dtype)


_SHARED = ('__add__', '__radd__', '__sub__', '__rsub__', '__mul__', '__rmul__', '__truediv__',
           '__rtruediv__', '__mod__', '__pow__', '__rpow__', '__neg__', '__abs__', '__eq__',
           '__ne__', '__gt__', '__ge__', '__lt__', '__le__', '__getitem__', 'reshape',
           'transpose', 'copy', 'T')


def _share_ndarray_methods():
    from ..ops import METHODS
    for name in _SHARED + tuple(METHODS):
        setattr(Symbol, name, NDArray.__dict__[name] if name in NDArray.__dict__ else getattr(NDArray, name))
    Symbol.__hash__ = object.__hash__


_share_ndarray_methods()
