"""Blocks: the unit of composition. Block runs eagerly; HybridBlock can also be compiled."""
import threading
import warnings
from collections import OrderedDict, namedtuple

import numpy as np

from .. import nd
from ..base import MXNetError, MXNetTypeError, MXNetValueError
from ..ndarray import NDArray
from .layer_errors import call_named
from .parameter import (DEFERRED_INIT_LOCK, DeferredInitializationError, Parameter, ParameterDict, _assign,
                        load_param_file)


class _Scope:
    """MXNet-style naming: each block gets a prefix like 'dense0_' unique within its parent."""
    _local = threading.local()

    def __init__(self, block):
        self.block, self.counters = block, {}

    @classmethod
    def current(cls):
        return getattr(cls._local, 'scope', None)

    @classmethod
    def make_prefix(cls, prefix, hint):
        scope = cls.current()
        counters = scope.counters if scope else _GLOBAL_COUNTERS
        if prefix is None:
            n = counters.get(hint, 0)
            counters[hint] = n + 1
            prefix = f'{hint}{n}_'
        return (scope.block.prefix if scope else '') + prefix

    def __enter__(self):
        # a block created with prefix='' opens no scope of its own (as in MXNet): its children
        # are named in the enclosing scope, so they cannot collide with their siblings there
        self._old = _Scope.current()
        if self.block._empty_prefix:
            return self
        _Scope._local.scope = self
        return self

    def __exit__(self, *exc):
        _Scope._local.scope = self._old


_GLOBAL_COUNTERS = {}


def _first_context(args, block):
    """The context of the first array in (nested lists/tuples of) inputs, which may hold None
    or numbers (as MXNet); no array at all is a ValueError, as in MXNet."""
    def find(items):
        for a in items:
            ctx = find(a) if isinstance(a, (list, tuple)) else getattr(a, 'context', None)
            if ctx is not None:
                return ctx
        return None
    ctx = find(args)
    if ctx is None:
        raise MXNetValueError(f'{type(block).__name__}: a HybridBlock needs at least one array '
                              f'among its inputs, got {[type(a).__name__ for a in args]}')
    return ctx


def _flat_arrays(items):
    """The arrays in (nested lists/tuples of) block inputs or outputs, in order."""
    out = []
    for a in items:
        out += _flat_arrays(a) if isinstance(a, (list, tuple)) else [a] if hasattr(a, 'shape') else []
    return out


def _block_params(prefix, params, scope):
    """A new block's ParameterDict, as MXNet's: given `params` (e.g. other.collect_params()), it
    takes their prefix and shares them, so the block's `params.get('weight')` returns the other
    block's Parameter; a child created in a parent's name scope inherits the parent's sharing."""
    if params is not None:
        if not isinstance(params, ParameterDict):
            shared, params = params, ParameterDict(prefix)
            params.update(shared)
        return ParameterDict(params.prefix, shared=params)
    if scope is not None and not scope.block._empty_prefix:
        parent = scope.block.params
        return ParameterDict(parent.prefix + prefix[len(scope.block.prefix):], parent._shared)
    return ParameterDict(prefix)


# bumped whenever any block gains or replaces a child or a parameter: a hybridized block then
# compares its tree with the one it traced (a warm call only compares this number)
_STRUCTURE_EDITS = [0]
_COMPILE_LOCK = threading.RLock()
# set while Block.summary runs: hybridized blocks then run eagerly, so per-layer hooks fire
_EAGER = threading.local()


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def detach(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Block:
    """Base class of all layers and models. Subclasses define `forward(*args)`."""

    def __init__(self, prefix=None, params=None):
        self._empty_prefix = prefix == ''
        scope = _Scope.current()
        self._prefix = _Scope.make_prefix(prefix, getattr(self, '_alias', type(self).__name__.lower()))
        self._params = _block_params(self._prefix, params, scope)
        self._children = OrderedDict()
        self._reg_params = OrderedDict()
        self._forward_hooks, self._forward_pre_hooks = [], []
        self._scope = _Scope(self)

    # ---- naming and registration -------------------------------------------------------
    @property
    def prefix(self):
        return self._prefix

    @property
    def name(self):
        return self._prefix[:-1] if self._prefix.endswith('_') else self._prefix

    @property
    def params(self):
        return self._params

    def name_scope(self):
        return self._scope

    def __setattr__(self, name, value):
        existing = self.__dict__.get(name)
        if isinstance(existing, (Block, Parameter)) and not isinstance(value, type(existing)):
            # as MXNet: a child or parameter attribute keeps its kind (a typo would else
            # silently leave the old child registered)
            raise MXNetTypeError(f'{type(self).__name__}.{name}: changing the attribute from '
                                 f'{type(existing).__name__} to {type(value).__name__} is not allowed')
        if isinstance(value, Block) and name not in ('_parent',):
            if '_children' not in self.__dict__:
                raise MXNetError(f'{type(self).__name__}: call super().__init__() before assigning child blocks')
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            if '_reg_params' not in self.__dict__:
                raise MXNetError(f'{type(self).__name__}: call super().__init__() before assigning parameters')
            self._reg_params[name] = value
            _STRUCTURE_EDITS[0] += 1
        object.__setattr__(self, name, value)

    def register_child(self, block, name=None):
        self._children[name or str(len(self._children))] = block
        _STRUCTURE_EDITS[0] += 1

    def _structure(self):
        """Every block and parameter of the tree, in order (compared by identity)."""
        out = [self, tuple(self._children), *self._reg_params.values()]
        for child in self._children.values():
            out += child._structure()
        return out

    def collect_params(self, select=None):
        """All parameters of this block and its children (optionally filtered by a regex)."""
        self._warn_unregistered_blocks()
        out = ParameterDict(self._params.prefix)
        out.update({p.name: p for p in self._reg_params.values()})
        out.update(self._params)
        for child in self._children.values():
            out.update(child.collect_params())
        return out.select(select) if select else out

    def _warn_unregistered_blocks(self):
        """MXNet's UserWarning for blocks held in a list/tuple/dict attribute: they are not
        children, so their parameters are not collected, initialized or trained. Private
        attributes ('_name') are the engine's own bookkeeping and are not checked."""
        def holds_block(v):
            if isinstance(v, dict):
                v = list(v.values())
            if isinstance(v, (list, tuple)):
                return any(holds_block(x) for x in v)
            return isinstance(v, Block) and all(v is not c for c in self._children.values())
        for k, v in self.__dict__.items():
            if not k.startswith('_') and isinstance(v, (list, tuple, dict)) and holds_block(v):
                warnings.warn(f'"{type(self).__name__}.{k}" is an unregistered container with '
                              'Blocks: blocks inside a list, tuple or dict are not registered; '
                              'register them with register_child() or use nn.Sequential / '
                              'nn.HybridSequential', UserWarning, stacklevel=3)

    def _structural_params(self, prefix=''):
        """Parameters by structural name ('features.0.weight'), for save/load."""
        out = OrderedDict((prefix + k, v) for k, v in self._reg_params.items())
        for name, child in self._children.items():
            out.update(child._structural_params(f'{prefix}{name}.'))
        return out

    # ---- parameters --------------------------------------------------------------------
    def initialize(self, init=None, ctx=None, verbose=False, force_reinit=False):
        self.collect_params().initialize(init, ctx, verbose, force_reinit)

    def save_parameters(self, filename, deduplicate=False):
        """Write the parameters by structural name ('features.0.weight') in MXNet's nd.save
        format. A parameter shared under several names is written under each, or with
        `deduplicate` once, under its last name (as MXNet 1.6+)."""
        from ..serialization import save_arrays
        params = self._structural_params()
        if deduplicate:     # first-seen order, last name wins: MXNet's reversed-dict idiom
            last = OrderedDict()
            for name, p in params.items():
                last[id(p)] = name
            params = OrderedDict((name, params[name]) for name in last.values())
        save_arrays(filename, OrderedDict((k, p._value_to_save()) for k, p in params.items()))

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False,
                        cast_dtype=False, dtype_source='current'):
        """Load a file of save_parameters (or of ParameterDict.save / export: names without a
        '.' are full parameter names, loaded through collect_params() as MXNet does)."""
        loaded = load_param_file(filename)
        if loaded and not any('.' in k for k in loaded):
            self.collect_params().load_dict(loaded, ctx, allow_missing, ignore_extra, self.prefix,
                                            filename, cast_dtype, dtype_source)
            return
        _assign(self._structural_params(), loaded, filename, allow_missing, ignore_extra, ctx,
                cast_dtype, dtype_source)

    def save_params(self, filename):
        """[Deprecated in MXNet] The parameters by full name, without this block's prefix (what
        SymbolBlock.load_params / load_parameters read); prefer save_parameters."""
        warnings.warn('save_params is deprecated; use save_parameters (or export for a '
                      'SymbolBlock)', DeprecationWarning, stacklevel=2)
        self.collect_params().save(filename, strip_prefix=self.prefix)

    def load_params(self, filename, ctx=None, allow_missing=False, ignore_extra=False):
        """[Deprecated in MXNet] load_parameters."""
        warnings.warn('load_params is deprecated; use load_parameters', DeprecationWarning,
                      stacklevel=2)
        self.load_parameters(filename, ctx, allow_missing, ignore_extra)

    def cast(self, dtype):
        for child in self._children.values():
            child.cast(dtype)
        for p in self._reg_params.values():
            p.cast(dtype)
        if getattr(self, '_cached_op', None) is not None:
            self._cached_op = None      # graphs traced with the old parameter dtype

    def zero_grad(self):
        self.collect_params().zero_grad()

    def reset_ctx(self, ctx):
        self.collect_params().reset_ctx(ctx)

    # ---- calling -------------------------------------------------------------------------
    def hybridize(self, active=True, **kwargs):
        """Hybridize every HybridBlock child (see HybridBlock.hybridize for the arguments)."""
        _hybridize_flags(type(self).__name__, **kwargs)
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    def apply(self, fn):
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def register_forward_pre_hook(self, hook):
        self._forward_pre_hooks.append(hook)
        return _HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        self._forward_hooks.append(hook)
        return _HookHandle(self._forward_hooks, hook)

    def __call__(self, *args):
        # errors leaving the call name this block's path and the user's line (layer_errors.py)
        return call_named(self, self._call_with_hooks, args)

    def _call_with_hooks(self, *args):
        for hook in self._forward_pre_hooks:
            hook(self, args)
        out = self.forward(*args)
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def forward(self, *args):
        raise MXNetError(f'{type(self).__name__} must define forward()')

    # ---- display -------------------------------------------------------------------------
    def __repr__(self):
        if not self._children:
            return f'{type(self).__name__}({self._repr_args()})'
        lines = [f'  ({k}): ' + repr(v).replace('\n', '\n  ') for k, v in self._children.items()]
        return f'{type(self).__name__}(\n' + '\n'.join(lines) + '\n)'

    def _repr_args(self):
        return ''

    def summary(self, *inputs):
        """Print and return (a `Summary`) the table of every layer's output shapes and parameter
        count for these inputs: a row per call of each block but the Sequential containers (a
        block called twice has two rows, its parameters counted as shared the second time).
        A hybridized block runs eagerly for it, so each layer's own outputs are seen."""
        from .nn.basic_layers import HybridSequential, Sequential
        rows, seen, handles = [], set(), []

        def hook(block, args, out):
            own = list(block._reg_params.values())
            sizes = [int(np.prod(p.shape)) for p in own]
            rows.append(SummaryRow(
                f'{type(block).__name__}-{len(rows) + 1}', _shapes_text(_flat_arrays([out])), sum(sizes),
                sum(n for p, n in zip(own, sizes) if p.grad_req != 'null'),
                sum(n for p, n in zip(own, sizes) if p in seen)))
            seen.update(own)

        def add(block):
            if not isinstance(block, (Sequential, HybridSequential)):
                handles.append(block.register_forward_hook(hook))
        self.apply(add)
        old, _EAGER.on = getattr(_EAGER, 'on', False), True
        try:
            self(*inputs)
        finally:
            _EAGER.on = old
            for h in handles:
                h.detach()
        table = Summary(_shapes_text(_flat_arrays(inputs)), rows)
        print(table)
        return table


# one row of Block.summary(): layer ('Dense-2'), output shapes, and its own parameters' sizes: all,
# trainable, and those already counted in an earlier row (shared)
SummaryRow = namedtuple('SummaryRow', 'layer output_shape params trainable shared')


class Summary:
    """The table `Block.summary()` prints (`str(summary)`), with its rows and totals; parameters
    are counted per row, so a shared one counts again (`shared` sums those repeats)."""

    def __init__(self, input_shape, rows):
        self.input_shape, self.rows = input_shape, list(rows)
        self.total = sum(r.params for r in self.rows)
        self.trainable = sum(r.trainable for r in self.rows)
        self.shared = sum(r.shared for r in self.rows)

    def __str__(self):
        lines = [f"{'Layer (type)':<28}{'Output Shape':<32}{'Param #':>12}", '=' * 72,
                 f"{'Input':<28}{self.input_shape:<32}{0:>12}"]
        lines += [f'{r.layer:<28}{r.output_shape:<32}{r.params:>12,}' for r in self.rows]
        lines += ['=' * 72, 'Parameters in forward computation graph, duplicate included',
                  f'   Total params: {self.total:,}', f'   Trainable params: {self.trainable:,}',
                  f'   Non-trainable params: {self.total - self.trainable:,}',
                  f'Shared params in forward computation graph: {self.shared:,}',
                  f'Unique parameters in model: {self.total - self.shared:,}']
        return '\n'.join(lines)

    def __repr__(self):   # not the table again: summary() has printed it
        return f'<Summary: {len(self.rows)} rows, {self.total - self.shared:,} unique parameters>'


def _shapes_text(arrays):
    return ', '.join(str(tuple(a.shape)) for a in arrays)


_HYBRIDIZE_DEFAULTS = dict(static_alloc=False, static_shape=False, graph_cache_size=None, clear=True,
                          backend=None, inline_limit=2, forward_bulk_size=None, backward_bulk_size=None)


def _hybridize_flags(who, **kwargs):
    """The CachedOp flags of `hybridize(**kwargs)`; an MXNetError for an argument that is unknown
    or has a value the engine cannot honour."""
    unknown = sorted(set(kwargs) - set(_HYBRIDIZE_DEFAULTS))
    if unknown:   # MXNet passes these to a subgraph backend as its options
        raise MXNetError(f'{who}.hybridize: unknown argument(s) {unknown} (backend options need a subgraph '
                         f'backend, which this engine does not have); it takes {sorted(_HYBRIDIZE_DEFAULTS)}')
    a = {**_HYBRIDIZE_DEFAULTS, **kwargs}
    if a['backend'] is not None:
        raise MXNetError(f'{who}.hybridize: backend={a["backend"]!r} is not supported: this engine has no '
                         'subgraph backends (its compiler fuses and lowers the graph itself)')
    for k in ('static_alloc', 'static_shape', 'clear'):
        if not isinstance(a[k], (bool, np.bool_)) and a[k] not in (0, 1):
            raise MXNetError(f'{who}.hybridize: {k} must be True or False, got {a[k]!r}')
    for k in ('inline_limit', 'forward_bulk_size', 'backward_bulk_size'):
        v = a[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise MXNetError(f'{who}.hybridize: {k} must be a non-negative integer, got {v!r}')
    flags = dict(static_alloc=bool(a['static_alloc']), static_shape=bool(a['static_shape']))
    if a['graph_cache_size'] is not None:
        flags['graph_cache_size'] = a['graph_cache_size']
    return flags


class HybridBlock(Block):
    """A block whose forward uses only ops (no reading values), so it can be compiled.

    Define either `hybrid_forward(self, F, x, *args, **params)` (MXNet 1.x style; parameters come
    in as keyword arguments) or `forward(self, x, *args)` reading parameters with `.data()`.
    After `hybridize()`, a call traces the block into a graph, optimizes and compiles it."""

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix, params)
        self._active = False
        self._flags = {}
        self._cached_op = None

    def register_child(self, block, name=None):
        if not isinstance(block, HybridBlock):
            raise MXNetError(f'{type(self).__name__} is a HybridBlock; its child {name or ""} '
                             f'({type(block).__name__}) is a plain Block, which cannot be compiled. '
                             'Make the child a HybridBlock or the parent a Block.')
        super().register_child(block, name)

    def hybridize(self, active=True, **kwargs):
        """Compile calls of this block (and its children) from now on (`active=False`: run eagerly).

        static_shape: compile one program per input shape instead of one per dynamic-batch family.
        graph_cache_size: how many input signatures stay compiled (default
        $ENGINE_GRAPH_CACHE_SIZE or 32). clear=False keeps the graphs compiled so far.
        static_alloc: compiled programs always plan their buffers once per shape and reuse them,
        which is what MXNet's static_alloc=True asks; both values are accepted.
        inline_limit, forward_bulk_size, backward_bulk_size: MXNet's scheduling hints; every child
        is inlined into one graph run as one program here, so they change nothing (values are
        checked). backend (subgraph backends) and backend options are refused."""
        flags = _hybridize_flags(type(self).__name__, **kwargs)
        self._active = active
        if kwargs.get('clear', True) or not active:
            self._cached_op = None
        self._flags = flags
        super().hybridize(active, **kwargs)

    def __call__(self, *args):
        if any(getattr(a, '_is_mx_symbol', False) for a in args):   # mx.sym in: a Symbol out
            if any(isinstance(a, NDArray) for a in args):
                raise MXNetValueError(f'{type(self).__name__}: inputs mix mx.sym Symbols and '
                                      'NDArrays; pass all of one kind (as MXNet)')
            from ..symbol.compose import call_block
            return call_block(self, args)
        from ..graph import trace
        tracer = trace.current()
        if tracer is not None:          # inlined into the graph of a hybridized parent
            with tracer.entering(self):
                return super().__call__(*args)
        if not self._active or getattr(_EAGER, 'on', False):
            return super().__call__(*args)
        for hook in self._forward_pre_hooks:
            hook(self, args)
        out = call_named(self, self._call_cached, args)
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def _call_cached(self, *args):
        op = self._cached_op
        if op is None or _STRUCTURE_EDITS[0] != self.__dict__.get('_traced_edits'):
            with _COMPILE_LOCK:     # two threads' first calls share one CachedOp
                self._check_structure()
                op = self._cached_op_for(args)
        return op(*args)

    def _check_structure(self):
        """Drop the compiled graphs when a child or parameter was added or replaced anywhere in
        the tree since they were traced (they would silently run the old network)."""
        edits, now = _STRUCTURE_EDITS[0], self._structure()
        old = self.__dict__.get('_traced_structure')
        same = old is not None and len(old) == len(now) and all(
            a is b or (isinstance(a, tuple) and a == b) for a, b in zip(old, now))
        if not same:
            self._cached_op = None
        self._traced_structure, self._traced_edits = now, edits

    def infer_shape(self, *args):
        """Complete the shapes of deferred parameters from the inputs (layers override this)."""
        unknown = [p.name for p in self._reg_params.values() if not p._shape_known()]
        raise DeferredInitializationError(
            f'{type(self).__name__}: parameters {unknown} have unknown shapes and the block does not '
            'define infer_shape(*inputs) to infer them; give their full shapes')

    def _ensure_params(self, *args):
        if any(p._data is None for p in self._reg_params.values()):
            with DEFERRED_INIT_LOCK:    # first calls from two threads: one infers and initializes
                if any(not p._shape_known() for p in self._reg_params.values()):
                    self.infer_shape(*args)
                for p in self._reg_params.values():
                    p._finish_deferred_init()

    def forward(self, x, *args):
        self._ensure_params(x, *args)
        ctx = _first_context((x,) + args, self)
        params = {name: p.data(ctx) for name, p in self._reg_params.items()}
        return self.hybrid_forward(nd, x, *args, **params)

    def hybrid_forward(self, F, x, *args, **kwargs):
        raise MXNetError(f'{type(self).__name__} must define hybrid_forward(F, x, ...) or forward(x, ...)')

    def export(self, path, epoch=0, remove_amp_cast=True):
        """Write `path-symbol.json` (MXNet's JSON graph, inputs 'data' or 'data0', 'data1', ...)
        and `path-%04d.params` (MXNet's binary format, `arg:`/`aux:` names), which MXNet 1.9's
        SymbolBlock.imports and mx.model.load_checkpoint read."""
        from ..symbol.compose import export_block
        return export_block(self, path, epoch)

    def graph(self, *args):
        """The traced graph (printable IR) for the last input signature, or for `args`."""
        return self._cached_op_for(args).graph_for(args)

    def graph_code(self, *args, stage='infer', kernels=False):
        """The generated Python source of the compiled programs (values named after the blocks
        that compute them), for the last input signature or for example inputs `args`:
        stage 'infer' (a call outside autograd.record()), 'forward' or 'backward' (a training
        call's two programs), 'train' (both); `kernels=True` appends the generated (fused)
        kernels' sources."""
        return self._cached_op_for(args).code_for(args, stage, kernels)

    def _cached_op_for(self, args):
        if self._cached_op is None:
            from ..graph.cached_op import CachedOp
            self._cached_op = CachedOp(self, **self._flags)
        return self._cached_op

