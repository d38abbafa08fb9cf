"""CachedOp: what a hybridized block runs. Per input signature it traces the block once,
optimizes the graph, differentiates it when gradients are needed, and compiles a forward and a
backward Program. Under autograd.record() the whole block is one tape entry whose backward
runs the compiled backward graph."""
import os
import threading
import warnings
from collections import OrderedDict

import numpy as np

from .. import autograd
from ..base import MXNetError, MXNetValueError
from ..ndarray import NDArray
from . import passes
from .batch import batch_forms, check
from .autodiff import append_backward
from .epilogue import fuse_epilogues
from .fold import fold_affine_into_conv
from .fusion import fuse_elementwise
from .ir import Namer, name_values
from .lower import BufferPool, Program
from .trace import Symbol, Tracer


def compile_program(graph, name, ctx=None, pool=None):
    """The lowering pipeline for `ctx` (default cpu): epilogue fusion, elementwise fusion into
    Numba (CPU) or CUDA (GPU) kernels, memory plan + codegen calling that device's kernels.
    Programs given one `pool` share the memory of their planned buffers."""
    device_type = 'cpu' if ctx is None else ctx.device_type
    return Program(fuse_elementwise(fuse_epilogues(graph), device_type), name, ctx=ctx, pool=pool)


def _cache_size(flags):
    """How many input signatures a hybridized block keeps compiled (least recently used go)."""
    raw = flags.get('graph_cache_size', os.environ.get('ENGINE_GRAPH_CACHE_SIZE', 32))
    try:
        n = int(raw)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise MXNetError(f'graph_cache_size (or ENGINE_GRAPH_CACHE_SIZE) must be a positive integer, got {raw!r}')
    return n


def _first_array(args):
    for a in args:
        if a is not None:
            return a
    raise MXNetValueError('a hybridized block needs at least one NDArray input; all inputs are None')


def _flatten(out):
    """(list of values, rebuild function) for a block output: one array, a tuple or a list."""
    if isinstance(out, (list, tuple)):
        items = list(out)
        for x in items:
            if isinstance(x, (list, tuple)):
                raise MXNetError('hybridized blocks may return an array, or a flat tuple/list of arrays')
        kind = type(out)
        return items, lambda vals: kind(vals)
    return [out], lambda vals: vals[0]


class _Compiled:
    """Everything compiled for one input signature."""

    def __init__(self, graph, params, rebuild, tracer):
        self.graph, self.params, self.rebuild, self.tracer = graph, params, rebuild, tracer
        self.infer = None         # Program for inference (no gradient)
        self.train = {}           # which-inputs-need-grad mask -> (_GraphOp, forward Program)


class CachedOp:
    def __init__(self, block, static_alloc=False, static_shape=False, **flags):
        self.block = block
        self.graphs = OrderedDict()       # signature -> _Compiled, least recently used first
        self.cache_size = _cache_size(flags)
        self._evicted = OrderedDict()     # recently evicted signatures: a return means churn
        self._pools = {}                  # context -> BufferPool shared by all its programs
        # signature less the batch size -> _Dynamic, or a first (batch size, signature), or
        # _STATIC; an LRU as long as graphs (a _Dynamic holds two traces and its programs)
        self._families = OrderedDict() if not static_shape else None
        self._last = None
        # tracing and compiling take this lock (a second thread waits and reuses the result, so a
        # fresh block's deferred parameters are initialized once); warm calls only read dicts
        self._lock = threading.RLock()

    # ---- building ------------------------------------------------------------------------
    def _signature(self, args):
        return (tuple(None if a is None else (a._data.shape, a._data.dtype) for a in args),
                _first_array(args)._ctx, autograd.is_training())

    def _trace(self, args):
        name = f'{type(self.block).__name__}({self.block.name})'
        tracer = Tracer(name, _first_array(args).context, root=self.block)
        with tracer, autograd.pause(train_mode=autograd.is_training()):
            # a None input reaches forward as None (as in MXNet); the graph takes the others
            syms = [None if a is None else tracer.input(a.shape, a.dtype, f'data{i}')
                    for i, a in enumerate(args)]
            out = self.block.forward(*syms)
        values, rebuild = _flatten(out)
        graph = tracer.graph
        for v in values:
            if not isinstance(v, Symbol):
                raise MXNetError(f'{name}: hybridized forward must return arrays computed from its inputs, '
                                 f'got {type(v).__name__}')
        graph.outputs = [v._value for v in values]
        graph = passes.optimize(graph)
        name_values(graph)       # after the passes, so `<block>_out` is the block's last live value
        return _Compiled(graph, list(tracer.param_order), rebuild, tracer)

    def _get(self, args):
        for a in args:
            if a is not None and not isinstance(a, NDArray):
                raise MXNetValueError(f'{type(self.block).__name__}: hybridized blocks take NDArray inputs, got '
                                 f'{type(a).__name__}')
        ctxs = {a.context for a in args if a is not None}
        if len(ctxs) > 1:   # the compiled graph runs on one context
            raise MXNetValueError(f'{type(self.block).__name__}: hybridized inputs live on several '
                                  f'contexts {sorted(map(str, ctxs))}; move them to one')
        key = self._signature(args)
        c = self.graphs.get(key)
        if c is None:
            with self._lock:
                c = self.graphs.get(key)
                if c is None:
                    c = self._trace(args)
                    self._insert(key, c)
        elif len(self.graphs) > 1:
            try:
                self.graphs.move_to_end(key)
            except KeyError:              # evicted by another thread just now
                pass
        self._last = c
        return c

    def _insert(self, key, c):
        """Add a signature; beyond cache_size drop the least recently used one (its graph,
        programs and views; the buffer memory is shared). Warn once when evicted ones return."""
        if self._evicted.pop(key, None) is not None and not getattr(self, '_warned', False):
            self._warned = True
            warnings.warn(f'{type(self.block).__name__}({self.block.name}): more than {self.cache_size} input '
                          'signatures are in use, so graphs are traced and compiled again and again; raise '
                          "hybridize(graph_cache_size=...) or ENGINE_GRAPH_CACHE_SIZE", RuntimeWarning, stacklevel=5)
        self.graphs[key] = c
        self._note_family(key, c)
        while len(self.graphs) > self.cache_size:
            old, _ = self.graphs.popitem(last=False)
            self._evicted[old] = True
            if len(self._evicted) > 4 * self.cache_size:
                self._evicted.popitem(last=False)

    def _pool(self, ctx):
        pool = self._pools.get(ctx)
        if pool is None:
            pool = self._pools[ctx] = BufferPool(ctx)
        return pool

    def _inference_program(self, c):
        if c.infer is None:
            with self._lock:
                if c.infer is None:
                    g = passes.subgraph(c.graph, c.graph.outputs, c.graph.inputs)
                    g = fold_affine_into_conv(g, len(g.inputs) - len(c.params))   # BatchNorm into conv
                    c.infer = compile_program(g, 'forward', c.tracer.ctx, self._pool(c.tracer.ctx))
        return c.infer

    def _training_programs(self, c, need):
        entry = c.train.get(need)
        if entry is None:
            with self._lock:
                entry = c.train.get(need)
                if entry is None:
                    entry = c.train[need] = _build_training(c, need, self._pool(c.tracer.ctx))
        return entry

    def _note_family(self, key, c):
        """A second batch size of one signature family: try one program for every batch size."""
        fkey, b = _family(key) if self._families is not None else (None, None)
        if fkey is None:
            return
        seen = self._families.get(fkey)
        if seen is None:
            self._families[fkey] = (b, key)
        elif isinstance(seen, tuple) and seen[0] != b and seen[1] in self.graphs:
            self._families[fkey] = _build_dynamic(self.graphs[seen[1]], seen[0], c, b, self._pool(c.tracer.ctx))
        while len(self._families) > self.cache_size:
            self._families.popitem(last=False)

    def _call_dynamic(self, args):
        """A call at a batch size that has no graph of its own, through its family's programs;
        None when there are none (or this batch size fails their shape rules)."""
        key = self._signature(args)
        if key in self.graphs:
            return None
        fkey, b = _family(key)
        fam = self._families.get(fkey)
        if not isinstance(fam, _Dynamic):
            return None
        try:
            self._families.move_to_end(fkey)
        except KeyError:                  # dropped by another thread just now
            pass
        ctx = _first_array(args).context
        params = [p.data(ctx) for p in fam.c0.params]
        if not _params_match(fam.c0, params):
            self._families.pop(fkey, None)     # cast or set_data since: trace again
            return None
        inputs = [a for a in args if a is not None] + params
        arrays = [x._data for x in inputs]
        need = _need(inputs, arrays)
        if need is not None and any(need):
            entry = fam.train.get(need)
            if entry is None:
                with self._lock:
                    entry = fam.training(need)
            if entry is _STATIC or not entry[1].fits(b):
                return None
            op, fwd = entry
            return fam.c0.rebuild(_run_training(op, fwd.program, inputs, arrays, len(fam.c0.graph.outputs), ctx))
        if not fam.infer.fits(b):
            return None
        return fam.c0.rebuild([NDArray(r, ctx) for r in fam.infer.program(arrays)])

    # ---- running ------------------------------------------------------------------------------
    def __call__(self, *args):
        if any(getattr(a, 'stype', 'default') != 'default' for a in args):
            # MXNet's storage fallback: the compiled graph reads recorded dense copies of
            # sparse inputs (gradients go back to them in their own storage)
            from ..imperative import _densified
            args = tuple(_densified(type(self.block).__name__, args))
        if self._families:
            out = self._call_dynamic(args)
            if out is not None:
                return out
        c = self._get(args)
        ctx = _first_array(args).context
        params = [p.data(ctx) for p in c.params]
        if not _params_match(c, params):
            # a parameter was cast or replaced with another shape since the trace: trace again
            with self._lock:
                if self.graphs.get(self._signature(args)) is c:
                    del self.graphs[self._signature(args)]
            c = self._get(args)
            params = [p.data(ctx) for p in c.params]
        inputs = [a for a in args if a is not None] + params
        arrays = [x._data for x in inputs]
        need = _need(inputs, arrays)
        if need is not None and any(need):
            op, fwd = self._training_programs(c, need)
            outs = _run_training(op, fwd, inputs, arrays, len(c.graph.outputs), ctx)
        else:
            outs = [NDArray(r, ctx) for r in self._inference_program(c)(arrays)]
        return c.rebuild(outs)

    # ---- inspection ------------------------------------------------------------------------------
    def _for(self, args):
        if args:
            return self._get(args)
        if self._last is None:
            raise MXNetError(f'{type(self.block).__name__}: run the hybridized block once (or pass '
                             'example inputs) before asking for its graph')
        return self._last

    def graph_for(self, args):
        return self._for(args).graph

    def code_for(self, args, stage='infer', kernels=False):
        """The generated source of the programs of `stage`: 'infer' (a call not recording),
        'forward' / 'backward' (a training call's), 'train' (both); with `kernels`, followed by
        the source of each generated (fused) kernel they call."""
        if stage not in _STAGES:
            raise MXNetValueError(f'{type(self.block).__name__}.graph_code: stage must be one of '
                                  f'{list(_STAGES)}, got {stage!r}')
        if stage == 'infer':
            programs = [self._inference_program(self._for(args))]
        else:
            op, fwd = self._training_for(args)
            programs = [p for p, s in ((fwd, 'forward'), (op.backward, 'backward')) if stage in (s, 'train')]
        return '\n'.join(_program_text(p, kernels, titled=len(programs) > 1 or kernels) for p in programs)

    def _training_for(self, args):
        """(tape op, forward program) of the last training call, or of a training call on
        example `args` (the parameters that have gradients need them)."""
        if args:
            with autograd.train_mode():
                c = self._get(args)
            need = _need_of_params(c, args)
        else:
            c = next((c for c in reversed(self.graphs.values()) if c.train), None)
            if c is None:
                raise MXNetError(f'{type(self.block).__name__}: run a training call (under autograd.record()) '
                                 'or pass example inputs before asking for its training programs')
            need = next(reversed(c.train))
        return self._training_programs(c, need)

    def export(self, path, epoch):
        from .serialize import export_graph
        return export_graph(self._last, self.block, path, epoch)


_STATIC = 'static'    # a family whose graph depends on the batch size in another way
_STAGES = ('infer', 'forward', 'backward', 'train')


def _program_text(program, kernels, titled):
    """A program's source, titled '# <name> program' when shown with others; with `kernels`,
    each generated kernel's source after it under '# kernel <name in the code>: <op>'."""
    parts = [f'# {program.name} program\n{program.source}' if titled else program.source]
    if kernels:
        for name, node in program.kernels:
            source = getattr(node.op, 'source', None)
            if source:
                parts.append(f'# kernel {name}: {node.op.name}\n{source.rstrip()}\n')
    return '\n'.join(parts)


def _need_of_params(c, args):
    """The need-grad mask of a training call on `args`: the parameters whose grad_req is not
    'null' (data inputs need none)."""
    n_data = sum(a is not None for a in args)
    need = (False,) * n_data + tuple(p.grad_req != 'null' and np.dtype(p.dtype).kind == 'f' for p in c.params)
    if not any(need):
        raise MXNetError(f'{c.tracer.block_name}: no parameter '
                         'needs a gradient, so a training call compiles no backward program')
    return need


def _family(key):
    """(the signature without the batch size, the batch size) when every input's leading
    dimension is one batch size B, on the CPU; else (None, None)."""
    shapes, ctx, training = key
    present = [s for s in shapes if s is not None]
    if ctx.device_type != 'cpu' or not present or any(not s[0] for s in present):
        return None, None
    b = present[0][0][0]
    if any(s[0][0] != b for s in present):
        return None, None
    return (tuple(None if s is None else (s[0][1:], s[1]) for s in shapes), ctx, training), b


def _need(inputs, arrays):
    """Which inputs need a gradient (None when not recording)."""
    if not autograd.is_recording():
        return None
    return tuple(x._entry is not None and a.dtype.kind == 'f' for x, a in zip(inputs, arrays))


def _run_training(op, fwd, inputs, arrays, n, ctx):
    res = fwd(arrays)
    outs = [NDArray(r, ctx) for r in res[:n]]
    autograd.record_op(op, inputs, {'saved': res[n:]}, outs)
    return outs


class _DynamicProgram:
    """A Program for every batch size, and the shape rules each new batch size must pass."""

    def __init__(self, program, checks):
        self.program, self.checks = program, checks
        self.ok = {}          # batch size -> whether the shape rules accept it

    def fits(self, b):
        ok = self.ok.get(b)
        if ok is None:
            if len(self.ok) > 1024:
                self.ok.clear()
            try:
                for nodes, forms in self.checks:
                    check(nodes, forms, b)
                ok = True
            except MXNetError:
                ok = False
            self.ok[b] = ok
        return ok


def _dynamic_program(g0, g1, b0, b1, name, ctx, pool):
    """(Program for every batch size, (nodes, forms) to check) from one graph at two batch
    sizes, or None when it depends on the batch size otherwise (engine/graph/batch.py)."""
    raw = batch_forms(g0, g1, b0, b1)
    if raw is None:
        return None
    raw_nodes = list(g0.nodes)
    low0 = fuse_elementwise(fuse_epilogues(g0), ctx.device_type)
    low1 = fuse_elementwise(fuse_epilogues(g1), ctx.device_type)
    forms = batch_forms(low0, low1, b0, b1)
    if forms is None:
        return None
    try:
        return Program(low0, name, ctx=ctx, pool=pool, batch=forms), (raw_nodes, raw)
    except MXNetError:        # no input carries the batch size
        return None


class _Dynamic:
    """The programs of a signature family for every batch size: inference, and training per
    which-inputs-need-grad mask (built on first use from the two traces)."""

    def __init__(self, c0, b0, c1, b1, infer, pool):
        self.c0, self.b0, self.c1, self.b1, self.infer, self.pool = c0, b0, c1, b1, infer, pool
        self.train = {}       # need -> (_GraphOp, _DynamicProgram) or _STATIC

    def training(self, need):
        entry = self.train.get(need)
        if entry is None:
            (f0, bw0, n), (f1, bw1, _) = _training_graphs(self.c0, need), _training_graphs(self.c1, need)
            ctx = self.c0.tracer.ctx
            fwd = _dynamic_program(f0, f1, self.b0, self.b1, 'forward', ctx, self.pool)
            bwd = _dynamic_program(bw0, bw1, self.b0, self.b1, 'backward', ctx, self.pool)
            if fwd is None or bwd is None:
                entry = _STATIC
            else:
                op = _GraphOp(self.c0.tracer.block_name, bwd[0], need, n)
                entry = op, _DynamicProgram(fwd[0], [fwd[1], bwd[1]])
            self.train[need] = entry
        return entry


def _build_dynamic(c0, b0, c1, b1, pool):
    """_Dynamic from the graphs traced at batch sizes b0 and b1, or _STATIC when the graph
    depends on the batch size other than through shapes and linear attributes (or the user's
    forward read a shape, so Python may branch on it)."""
    if c0.tracer.reads_shape or c1.tracer.reads_shape:
        return _STATIC
    g0, g1 = (fold_affine_into_conv(passes.subgraph(c.graph, c.graph.outputs, c.graph.inputs),
                                    len(c.graph.inputs) - len(c0.params)) for c in (c0, c1))   # as _inference_program
    infer = _dynamic_program(g0, g1, b0, b1, 'forward', c0.tracer.ctx, pool)
    if infer is None:
        return _STATIC
    return _Dynamic(c0, b0, c1, b1, _DynamicProgram(infer[0], [infer[1]]), pool)


def _params_match(c, params):
    for v, p in zip(c.graph.inputs[len(c.graph.inputs) - len(params):], params):
        a = p._data
        if a.dtype != v.dtype or a.shape != v.shape:
            return False
    return True


class _GraphOp:
    """The tape's view of a hybridized block: its gradient runs the compiled backward graph."""
    differentiable = True

    def __init__(self, name, backward, need, n_outputs):
        self.name, self.backward, self.need = name, backward, need
        self.multi_output = n_outputs > 1

    def grad(self, g, out, *inputs, saved):
        gs = g if self.multi_output else (g,)
        ctx = inputs[0].context
        res = self.backward(list(saved) + [x._data for x in gs])
        it = iter(res)
        return [NDArray(next(it), ctx) if need else None for need in self.need]


def _build_training(c, need, pool):
    """(tape op running the backward program, forward program) for one need-grad mask."""
    fwd, bwd, n_out = _training_graphs(c, need)
    return _lower_backward(c, bwd, need, n_out, pool), _lower_forward(c, fwd, pool)


def _lower_forward(c, fwd, pool):
    return compile_program(fwd, 'forward', c.tracer.ctx, pool)


def _lower_backward(c, bwd, need, n_out, pool):
    program = compile_program(bwd, 'backward', c.tracer.ctx, pool)
    return _GraphOp(c.tracer.block_name, program, need, n_out)


def _training_graphs(c, need):
    """Forward graph that also returns what backward needs; backward graph from the saved values
    and the head gradients to the gradients of the inputs that need them."""
    g = passes.subgraph(c.graph, c.graph.outputs, c.graph.inputs)
    forward_values = {o.id for n in g.nodes for o in n.outputs}
    heads, grads = _differentiate(g, c, need)
    g, outputs, grads = _merge_common_gradients(g, grads)
    saved = _saved_values(g, forward_values, grads, heads)
    fwd = passes.subgraph(g, outputs + saved, g.inputs[:len(c.graph.inputs)])
    bwd = passes.subgraph(g, grads, saved + heads)
    return fwd, bwd, len(outputs)


def _differentiate(g, c, need):
    """Append the backward nodes to `g`: (head-gradient inputs, gradient of each needed input),
    the new values named (`<input>_grad` for the gradients)."""
    wrt = [v for v, n in zip(g.inputs, need) if n]
    n_nodes = len(g.nodes)
    heads, grads = append_backward(g, wrt, c.tracer.block_name, c.tracer.ctx)
    namer = Namer(v.name for v in g.inputs + [o for n in g.nodes for o in n.outputs] if v.name)
    for v, x in zip(grads, wrt):
        if v.name is None:
            v.name = namer.fresh(f'{x.name}_grad')
    name_values(g, g.nodes[n_nodes:])
    return heads, grads


def _merge_common_gradients(g, grads):
    """CSE over the joint graph (gradient expressions often repeat forward ones); returns the
    new graph and its (forward outputs, gradients)."""
    n_out = len(g.outputs)
    g.outputs = g.outputs + grads
    g = passes.common_subexpression_elimination(g)
    return g, g.outputs[:n_out], g.outputs[n_out:]


def _saved_values(g, forward_values, grads, heads):
    """The forward values the backward part reads (also a gradient that is a forward value
    itself, e.g. d(x*y)/dx = y), in first-use order: the forward program returns them."""
    defined_fwd = {v.id for v in g.inputs} | {v.id for v in g.constants}
    defined_fwd.update(forward_values)
    skip = {h.id for h in heads} | {v.id for v in g.constants}
    read = [v for n in passes.subgraph(g, grads, g.inputs).nodes if n.outputs[0].id not in forward_values
            for v in n.inputs]
    saved, seen = [], set()
    for v in read + list(grads):
        if v.id in defined_fwd and v.id not in seen and v.id not in skip:
            seen.add(v.id)
            saved.append(v)
    return saved
