"""Lowering: turn a Graph into a Python function that calls the registered kernels in order on
preallocated buffers. The generated source is kept (`Program.source`) for reading and debugging.

A Program is compiled for one context: it calls each op's kernel for that device type and holds
its buffers and constants in that device's array module (NumPy, or CuPy on a GPU, where the
calls queue kernel launches on the current stream)."""
import inspect
import weakref

import numpy as np

from .. import profiler
from ..base import MXNetError, fmt_shape
from ..context import Context
from .batch import batch_source, form_source, is_dynamic
from .ir import Namer, identifier, value_names, where

# names the generated function uses for itself (its own helpers start with '_', values never do)
_RESERVED = ('np', 'inputs', 'buffers', 'B', 'run')

# ops whose output is a view of their input: lowered to a NumPy reshape, no kernel, no buffer
_VIEW_OPS = {'reshape'}


def _takes_out(kernel, cache={}):
    r = cache.get(kernel)
    if r is None:
        try:
            r = cache[kernel] = 'out' in inspect.signature(kernel).parameters
        except (TypeError, ValueError):
            r = cache[kernel] = False
    return r


def _elementwise(op):
    return op.template is not None or op.name.startswith('fused[')


def plan_memory(graph, planned):
    """Assign buffers to the values in `planned` so values whose lifetimes do not overlap share
    one buffer (same byte size and dtype). Returns value id -> buffer index, and buffer specs."""
    last_use = {}
    alias_of = {}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            base = alias_of.get(v.id, v.id)
            last_use[base] = i
        if n.op.name in _VIEW_OPS:
            alias_of[n.outputs[0].id] = alias_of.get(n.inputs[0].id, n.inputs[0].id)
    for v in graph.outputs:
        last_use[alias_of.get(v.id, v.id)] = len(graph.nodes)
    free, assign, specs = {}, {}, []
    releases = {}
    for i, n in enumerate(graph.nodes):
        if _elementwise(n.op):
            # in place: an elementwise kernel may write over a same-shape input it reads for the
            # last time (element k is read before element k is written)
            shape = n.outputs[0].shape
            early = [(key, b) for key, b in releases.get(i, [])
                     if any(assign.get(v.id) == b and v.shape == shape for v in n.inputs)]
            for key, b in early:
                releases[i].remove((key, b))
                free.setdefault(key, []).append(b)
        for v in n.outputs:
            if v.id not in planned:
                continue
            key = (v.nbytes, v.dtype.str)
            pool = free.get(key)
            if pool:
                b = pool.pop()
            else:
                b = len(specs)
                specs.append(key)
            assign[v.id] = b
            releases.setdefault(last_use.get(v.id, i), []).append((key, b))
        for key, b in releases.pop(i, []):
            free.setdefault(key, []).append(b)
    return assign, specs


def _escaping_values(graph):
    """Ids of the graph outputs and of every value an output is a view of: these leave the
    program, so they must get fresh memory on each call instead of a reused buffer."""
    view_src = {n.outputs[0].id: n.inputs[0].id for n in graph.nodes if n.op.name in _VIEW_OPS}
    out = set()
    for v in graph.outputs:
        vid = v.id
        out.add(vid)
        while vid in view_src:
            vid = view_src[vid]
            out.add(vid)
    return out


class Program:
    """A compiled graph: call with the list of input arrays, get the list of output arrays.
    `ctx` (default cpu) picks the kernels (by device type) and where buffers live."""

    def __init__(self, graph, name='graph', static_alloc=True, ctx=None, pool=None, batch=None):
        self.graph, self.name = graph, name
        # batch: BatchForms of `graph` (engine/graph/batch.py): one program for every batch size,
        # B read from the input dimension `_batch_at` on each call; None: static shapes
        self.batch = batch
        self._batch_at = None if batch is None else batch_source(graph, batch)
        self.ctx = ctx or Context('cpu')
        self.device_type = self.ctx.device_type
        outputs = _escaping_values(graph)
        planned = set()
        if static_alloc:
            for n in graph.nodes:
                if (not n.op.multi_output and n.op.name not in _VIEW_OPS and n.outputs[0].id not in outputs
                        and _takes_out(self._kernel(n))):
                    planned.add(n.outputs[0].id)
        assign, self._specs = plan_memory(graph, planned)
        self._assign = assign
        self._sync = profiler.sync_for(self.device_type)
        self.source, namespace, self._views, self.kernels = self._generate(assign)
        exec(compile(self.source, f'<{name}>', 'exec'), namespace)
        self._fn = namespace['run']
        self._profiled_fn = None
        self.buffers = self._specs          # (bytes, dtype) of each planned buffer
        self._members = [[] for _ in self._specs]
        for v in (o for n in graph.nodes for o in n.outputs):
            if v.id in assign:
                self._members[assign[v.id]].append(v)
        self._layouts = {}
        self.nbytes = self._layout(None if batch is None else batch.b0)[1]
        self._pool = pool if pool is not None else BufferPool(self.ctx)

    def _shape(self, value, b):
        return value.shape if b is None else self.batch.shape_at(value, b)

    def _layout(self, b):
        """Offsets of the planned buffers in one memory block at batch size b, and its size."""
        layout = self._layouts.get(b)
        if layout is None:
            if len(self._layouts) > 64:
                self._layouts.clear()
            sizes = [max((int(np.prod(self._shape(v, b))) * v.dtype.itemsize for v in vs), default=0)
                     for vs in self._members]
            layout = self._layouts[b] = _layout(sizes)
        return layout

    def _view_set(self, block, b):
        """The `out=` arrays of one call: views of a memory block with each value's shape."""
        offsets = self._layout(b)[0]
        views = []
        for buf, v in self._views:
            shape = self._shape(v, b)
            n = int(np.prod(shape))
            views.append(block[offsets[buf]:offsets[buf] + n * v.dtype.itemsize].view(v.dtype).reshape(shape))
        return tuple(views)

    def _kernel(self, node):
        try:
            return node.op.kernel(self.device_type)
        except MXNetError as e:
            shapes = ', '.join(fmt_shape(v.shape) for v in node.inputs)
            raise MXNetError(f'{self.name}: cannot compile for {self.ctx}: {e} (inputs {shapes})') from None

    def _generate(self, assign, profile=False):
        """(source of `run(inputs, buffers)`, its namespace, the (buffer, value) of each `out=`
        argument in code order, the (name, node) of each kernel it calls). Values are named as
        the printed graph names them; `profile` times each kernel call into engine.profiler."""
        g = self.graph
        namer = Namer(_RESERVED)
        kernels = self._kernel_names(namer)
        names = value_names(g, namer)
        ns = {'np': np, **{k: self._kernel(n) for k, n in kernels.values()}}
        if profile:
            ns.update(_clock=profiler.clock, _record=profiler.record, _sync=self._sync)
        lines, views = ['def run(inputs, buffers):'], []
        if g.inputs:
            lines.append('    ' + ', '.join(names[v.id] for v in g.inputs) + (',' if len(g.inputs) == 1 else '')
                         + ' = inputs')
        if self._batch_at is not None:
            i, dim = self._batch_at
            lines.append(f'    B = {names[g.inputs[i].id]}.shape[{dim}]   # the batch size of this call')
        for v, arr in g.constants.items():
            ns[names[v.id]] = self._constant(arr)
        for k, n in enumerate(g.nodes):
            call = self._call(k, n, names, kernels.get(id(n), (None,))[0], ns, assign, views)
            lines += self._timed(call, n) if profile and id(n) in kernels else [call]
        if views:
            bufs = [f'_buf{b}_{k}' for k, (b, _) in enumerate(views)]
            lines.insert(2 if g.inputs else 1, f'    {", ".join(bufs)}, = buffers')
        lines.append('    return [' + ', '.join(names[v.id] for v in g.outputs) + ']')
        return '\n'.join(lines) + '\n', ns, views, [kernels[id(n)] for n in g.nodes if id(n) in kernels]

    def _kernel_names(self, namer):
        """id(node) -> (name, node) for each node that calls a kernel: named after its op (one
        name per kernel function: every conv2d node calls `conv2d`)."""
        out, by_kernel = {}, {}
        for n in self.graph.nodes:
            if n.op.name in _VIEW_OPS:
                continue
            kernel = self._kernel(n)
            name = by_kernel.get(id(kernel))
            if name is None:
                name = by_kernel[id(kernel)] = namer.fresh(identifier(n.op.name)[:40])
            out[id(n)] = (name, n)
        return out

    def _call(self, k, n, names, kname, ns, assign, views):
        """The line of generated code running node k."""
        ins = ', '.join(names[v.id] for v in n.inputs)
        outs = ', '.join(names[o.id] for o in n.outputs) + (',' if n.op.multi_output and len(n.outputs) == 1 else '')
        forms = self.batch.attrs[k] if self.batch is not None else {}
        if n.op.name in _VIEW_OPS:
            shape = forms['shape'] if 'shape' in forms else n.attrs['shape']
            return f'    {outs} = {ins}.reshape({form_source(shape)})'
        args = [ins] if ins else []
        for key, val in n.attrs.items():
            lit = form_source(forms[key]) if is_dynamic(forms.get(key)) else _literal(val)
            if lit is None:             # no literal form (an array, a dtype): a global
                lit = f'_{kname}{k}_{key}'
                ns[lit] = val
            args.append(f'{key}={lit}')
        b = assign.get(n.outputs[0].id) if not n.op.multi_output else None
        if b is not None:
            args.append(f'out=_buf{b}_{len(views)}')
            views.append((b, n.outputs[0]))
        line = f'    {outs} = {kname}({", ".join(args)})'
        return f'{line}   # {where(n)}' if where(n) else line

    def _timed(self, line, n):
        """A kernel call with its time recorded (after a device sync) as '<program>:<op>'."""
        label = f'{self.name}:{n.op.name}'
        return ['    _t = _clock()', line, *(['    _sync()'] if self._sync else []),
                f'    _record({label!r}, _clock() - _t)']

    def _constant(self, arr):
        """Constants are folded on the host (NumPy); a GPU program keeps a device copy."""
        if self.device_type == 'cpu':
            return arr
        with self.ctx.scope():
            return self.ctx.xp.asarray(arr)

    def __call__(self, arrays):
        fn = self._fn if not profiler._state['on'] else self._profiled()
        b = None if self._batch_at is None else arrays[self._batch_at[0]].shape[self._batch_at[1]]
        block = self._pool.take(self.nbytes if b is None else self._layout(b)[1])
        try:
            cache = block.views.get(self)
            if cache is None:
                cache = block.views[self] = {}
            views = cache.get(b)
            if views is None:
                if len(cache) > 8:          # views of a few batch sizes are kept per block
                    cache.clear()
                views = cache[b] = self._view_set(block.memory, b)
            if self.device_type == 'cpu':
                return fn(arrays, views)
            with self.ctx.scope():   # the kernels allocate and launch on the program's device
                return fn(arrays, views)
        finally:
            self._pool.give(block)

    def _profiled(self):
        """The same program with each kernel call timed into engine.profiler (built on first use)."""
        if self._profiled_fn is None:
            source, namespace, _, _ = self._generate(self._assign, profile=True)
            exec(compile(source, f'<{self.name} profiled>', 'exec'), namespace)
            self._profiled_fn = namespace['run']
        return self._profiled_fn


def _layout(sizes, align=64):
    """Offsets of buffers of these byte sizes inside one memory block, and the block's size."""
    offsets, end = [], 0
    for nbytes in sizes:
        offsets.append(end)
        end += -(-nbytes // align) * align
    return offsets, end


class _Block:
    """One memory block and, per Program that used it, that program's views into it."""

    def __init__(self):
        self.memory, self.views = None, weakref.WeakKeyDictionary()


class BufferPool:
    """The memory of the planned buffers of a family of Programs (a hybridized block's programs
    for every input shape, forward and backward). A call takes a block for its own use and gives
    it back, so programs share memory (many batch sizes cost as much as the largest), and calls
    running at the same time (threads) get separate blocks. list.pop/append are atomic: no lock."""

    def __init__(self, ctx):
        self.ctx, self._free = ctx, []

    def take(self, nbytes):
        try:
            block = self._free.pop()
        except IndexError:        # every block is in use by another thread: make one more
            block = _Block()
        if block.memory is None or block.memory.size < nbytes:
            with self.ctx.scope():
                block.memory = self.ctx.xp.empty(nbytes, np.uint8)
            block.views = weakref.WeakKeyDictionary()   # views of the old memory are stale
        return block

    def give(self, block):
        self._free.append(block)


def _literal(val):
    """Python source for an attribute value, or None when it has no literal form."""
    if isinstance(val, (bool, int, str, type(None))):
        return repr(val)
    if isinstance(val, float):
        r = repr(val)
        return r if r not in ('inf', '-inf', 'nan') else None
    if isinstance(val, tuple):
        parts = [_literal(v) for v in val]
        if any(p is None for p in parts):
            return None
        return '(' + ', '.join(parts) + (',)' if len(parts) == 1 else ')')
    return None
