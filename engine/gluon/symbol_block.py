"""SymbolBlock: a block that runs an exported graph (see HybridBlock.export)."""
import numpy as np

from ..base import MXNetError
from ..imperative import invoke
from .block import HybridBlock
from .parameter import Parameter


class SymbolBlock(HybridBlock):
    """Runs a graph loaded from `prefix-symbol.json` with parameters from a `.params` file."""

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, ctx=None):
        from ..graph.serialize import import_block
        return import_block(symbol_file, input_names, param_file, ctx)


class GraphBlock(SymbolBlock):
    """The block SymbolBlock.imports returns: its forward interprets the graph node by node with
    the op library, so it runs eagerly (with autograd) or hybridized like any other block."""

    def __init__(self, graph, desc, input_names, param_file, ctx):
        super().__init__(prefix='')
        self._graph, self._input_names = graph, input_names
        self._param_inputs = []
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
        for v, c in g.constants.items():
            env[v.id] = array(c, ctx=ctx, dtype=np.asarray(c).dtype)
        for n in g.nodes:
            res = invoke(n.op, [env[v.id] for v in n.inputs], n.attrs)
            for o, r in zip(n.outputs, res if n.op.multi_output else (res,)):
                env[o.id] = r
        outs = [env[v.id] for v in g.outputs]
        return outs[0] if len(outs) == 1 else outs
