"""SymbolBlock: a block that runs an mx.sym graph (e.g. a model exported by MXNet). Its forward
evaluates the graph node by node with the engine's functions, so it runs eagerly (with
autograd) or, hybridized, is traced and compiled like any other block."""
import json
import os
from collections import OrderedDict

import numpy as np

from ..base import MXNetAssertionError, MXNetError
from ..graph.interpret import interpret
from ..graph.serialize import graph_from_dict
from ..imperative import invoke
from .block import HybridBlock
from .parameter import Parameter


def _strip(key):
    return key.split(':', 1)[1] if key.startswith(('arg:', 'aux:')) else key


class SymbolBlock(HybridBlock):
    """SymbolBlock(outputs, inputs, params=None): `inputs` are the data variables; every other
    input of `outputs` becomes a Parameter (auxiliary states such as BatchNorm's running
    statistics with grad_req 'null')."""

    def __init__(self, outputs, inputs, params=None):
        super().__init__(prefix='')
        from ..symbol import Group, Symbol
        outputs = Group(outputs) if isinstance(outputs, (list, tuple)) else outputs
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        names = outputs.list_inputs()
        self._input_names = []
        for s in inputs:
            if not isinstance(s, Symbol) or len(s) != 1 or s.name not in names:
                raise MXNetError(f'SymbolBlock: inputs must be variables of the graph ({names}), got {s!r}')
            self._input_names.append(s.name)
        self._symbol = outputs
        meta = {n.name: n.meta for n in outputs._nodes() if n.is_variable}
        aux = set(outputs.list_auxiliary_states())
        self._param_vars = OrderedDict()    # graph variable name -> Parameter
        for name in names:
            if name in self._input_names:
                continue
            if str(meta[name].get('__storage_type__', '0')) not in ('0', '-1'):
                # as MXNet (an AssertionError too): parameters of a SymbolBlock are dense
                raise MXNetAssertionError(f"SymbolBlock: parameter '{name}' has a sparse storage type "
                                          f"(__storage_type__={meta[name]['__storage_type__']}); "
                                          'SymbolBlock parameters must be dense')
            p = params[name] if params is not None and name in params else None   # shared
            if p is None:
                p = Parameter(name, grad_req='null' if name in aux else 'write',
                              shape=meta[name].get('__shape__'),
                              dtype=meta[name].get('__dtype__', 'float32'), allow_deferred_init=True)
            self._param_vars[name] = p
        # as MXNet: the structural names (save_parameters) drop the names' common prefix, so a
        # second instance of a model whose prefixes are numbered anew loads the first one's file
        cut = len(os.path.commonprefix(list(self._param_vars)))
        for name, p in self._param_vars.items():
            self._reg_params[name[cut:]] = p

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, ctx=None, allow_missing=False,
                ignore_extra=False):
        """Load `prefix-symbol.json` (MXNet's format, or the engine's older own format) and,
        when given, the parameters (`arg:`/`aux:` names, as MXNet's export writes them)."""
        from ..symbol import load_json, var
        try:
            with open(symbol_file, 'rb') as f:
                text = f.read().decode('utf-8')
            head = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MXNetError(f'{symbol_file}: cannot read the graph file: {e}') from None
        if isinstance(head, dict) and head.get('format') == 'engine-graph':
            return _import_graph_block(head, symbol_file, input_names, param_file, ctx)
        sym = load_json(text, str(symbol_file))
        input_names = [input_names] if isinstance(input_names, str) else list(input_names)
        missing = [n for n in input_names if n not in sym.list_inputs()]
        if missing:
            raise MXNetError(f'{symbol_file}: inputs {missing} are not variables of the graph; its '
                             f'inputs are {sym.list_inputs()}')
        block = SymbolBlock(sym, [var(n) for n in input_names])
        if param_file is not None:
            block.load_parameters(param_file, ctx, allow_missing, ignore_extra)
        return block

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False, **kwargs):
        from ..serialization import load_arrays
        loaded = load_arrays(filename)
        if not isinstance(loaded, dict):
            raise MXNetError(f'{filename}: expected named arrays, found an unnamed list')
        arrays = {_strip(k): v for k, v in loaded.items()}
        if arrays and not any(k in self._param_vars for k in arrays) and all(k in self._reg_params for k in arrays):
            # a save_parameters file: structural names (the common prefix dropped) -> variables
            var_of = {id(p): name for name, p in self._param_vars.items()}
            arrays = {var_of[id(self._reg_params[k])]: v for k, v in arrays.items()}
        self.set_parameters(arrays, ctx, allow_missing, ignore_extra, where=str(filename))

    def set_parameters(self, arrays, ctx=None, allow_missing=False, ignore_extra=False, where='parameters'):
        """Assign name -> NDArray (checked against the graph first; all or nothing)."""
        params = self._param_vars
        missing = [k for k in params if k not in arrays]
        extra = [k for k in arrays if k not in params and k not in self._input_names]
        if missing and not allow_missing:
            raise MXNetError(f'{where}: parameters missing: {missing[:5]}{" ..." if len(missing) > 5 else ""}')
        if extra and not ignore_extra:
            raise MXNetError(f'{where}: {extra[:5]} are not parameters of the graph (ignore_extra=True '
                             'skips them)')
        for k, p in params.items():
            a = arrays.get(k)
            if a is not None and p.shape is not None and not _fits(p.shape, a.shape):
                raise MXNetError(f'{where}: parameter {k} has shape {tuple(a.shape)}, the graph declares {p.shape}')
        for k, p in params.items():
            a = arrays.get(k)
            if a is None:
                continue
            p.shape, p.dtype = tuple(a.shape), a.dtype
            p.initialize(ctx=ctx, force_reinit=True)
            p.set_data(a)
        self._cached_op = None

    def infer_shape(self, *args):
        shapes = {n: tuple(a.shape) for n, a in zip(self._input_names, args)}
        arg_s, _, aux_s = self._symbol.infer_shape_partial(**shapes)
        sym = self._symbol
        for name, s in list(zip(sym.list_arguments(), arg_s)) + list(zip(sym.list_auxiliary_states(), aux_s)):
            if name in self._param_vars and s:
                self._param_vars[name].shape = s

    def forward(self, *args):
        from ..symbol.executor import evaluate
        if len(args) != len(self._input_names):
            raise MXNetError(f'SymbolBlock: expected {len(self._input_names)} inputs '
                             f'({self._input_names}), got {len(args)}')
        composing = getattr(args[0], '_is_mx_symbol', False)    # called on mx.sym variables
        if not composing:
            self._ensure_params(*args)
        ctx = None if composing else args[0].context
        env = dict(zip(self._input_names, args))
        env.update({name: p.data(ctx) for name, p in self._param_vars.items()})
        outs = evaluate(self._symbol, env)
        return outs[0] if len(outs) == 1 else outs


def _fits(declared, shape):
    return len(declared) == len(shape) and all(d in (0, n) for d, n in zip(declared, shape))


def _import_graph_block(d, symbol_file, input_names, param_file, ctx):
    """A GraphBlock from a parsed file of the engine's older own graph format."""
    graph, d = graph_from_dict(d, symbol_file)
    input_names = [input_names] if isinstance(input_names, str) else list(input_names)
    data = [v for v, i in zip(graph.inputs, d['inputs']) if i['kind'] == 'data']
    if len(input_names) != len(data):
        raise MXNetError(f'{symbol_file}: the graph has {len(data)} data inputs, {len(input_names)} names given')
    return GraphBlock(graph, d, input_names, param_file, ctx)


class GraphBlock(SymbolBlock):
    """What SymbolBlock.imports returns for a file in the engine's older own graph format
    (`format: engine-graph`): its forward interprets that IR node by node with the op library."""

    def __init__(self, graph, desc, input_names, param_file, ctx):
        HybridBlock.__init__(self, prefix='')
        self._graph, self._input_names = graph, input_names
        self._param_inputs = []
        self._param_vars = self._reg_params     # structural names are the parameter names here
        with self.name_scope():
            for v, i in zip(graph.inputs, desc['inputs']):
                if i['kind'] == 'param':
                    p = Parameter(i['name'], shape=v.shape, dtype=v.dtype, allow_deferred_init=True)
                    self._reg_params[i['name']] = p
                    self._param_inputs.append((v, p))
        if param_file is not None:
            self._load(param_file, ctx)

    def _load(self, param_file, ctx):
        from ..serialization import load_arrays
        arrays = load_arrays(param_file)
        if not isinstance(arrays, dict):
            raise MXNetError(f'{param_file}: expected named arrays')
        for v, p in self._param_inputs:
            a = arrays.get(f'arg:{p.name}', arrays.get(p.name))
            if a is None:
                raise MXNetError(f'{param_file}: parameter {p.name} is missing')
            if tuple(a.shape) != p.shape:
                raise MXNetError(f'{param_file}: parameter {p.name} has shape {a.shape}, the graph needs {p.shape}')
            p.initialize(ctx=ctx)
            p.set_data(a)
        for v in self._graph.constants:
            a = arrays.get(f'const:{v.id}')
            if a is None:
                raise MXNetError(f'{param_file}: graph constant {v.id} is missing')
            self._graph.constants[v] = a.asnumpy()

    def forward(self, *args):
        g = self._graph
        data_inputs = [v for v in g.inputs if all(v is not pv for pv, _ in self._param_inputs)]
        if len(args) != len(data_inputs):
            raise MXNetError(f'SymbolBlock: expected {len(data_inputs)} inputs ({self._input_names}), got {len(args)}')
        env = {}
        for v, a in zip(data_inputs, args):
            if tuple(a.shape) != v.shape:
                raise MXNetError(f'SymbolBlock: input {self._input_names[len(env)]} has shape {a.shape}, the '
                                 f'exported graph was traced for {v.shape}')
            env[v.id] = a
        ctx = args[0].context
        for v, p in self._param_inputs:
            env[v.id] = p.data(ctx)
        from ..ndarray import array
        outs = interpret(g, [env[v.id] for v in g.inputs], lambda n, xs: invoke(n.op, xs, n.attrs),
                         lambda c: array(c, ctx=ctx, dtype=np.asarray(c).dtype))
        return outs[0] if len(outs) == 1 else outs
