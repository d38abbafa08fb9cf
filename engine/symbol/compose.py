"""A HybridBlock called on mx.sym Symbols returns a Symbol (MXNet's behaviour): its
`hybrid_forward` runs with F = mx.sym and each parameter as a variable named like the parameter
(with its known shape and dtype as '__shape__'/'__dtype__'), node names under the block's prefix."""
import contextlib

from ..graph import trace as _trace
from . import symbol as _symbol
from .symbol import Prefix, var


class _Composer:
    """Sits on the trace stack while blocks compose a Symbol, so that `Parameter.data()` (which
    asks the active tracer) returns the parameter's variable in plain `forward(x)` blocks too."""

    def __init__(self):
        self.vars = {}

    def param_symbol(self, param, ctx=None):
        v = self.vars.get(param)
        if v is None:
            v = self.vars[param] = param_var(param)
        return v

    @contextlib.contextmanager
    def entering(self, block, kind=None):
        yield


def param_var(param):
    return var(param.name, shape=param.shape, dtype=param.dtype, lr_mult=param.lr_mult,
               wd_mult=param.wd_mult)


@contextlib.contextmanager
def _composing():
    stack = _trace._local.__dict__.setdefault('stack', [])
    if stack and isinstance(stack[-1], _Composer):
        yield stack[-1]
        return
    comp = _Composer()
    stack.append(comp)
    try:
        with _symbol.fresh_names():
            yield comp
    finally:
        stack.pop()


def call_block(block, args):
    """block(*args) for Symbol args: the Symbol (or tuple of Symbols) its forward returns."""
    from ..gluon.block import HybridBlock
    from .. import symbol as F
    for hook in block._forward_pre_hooks:
        hook(block, args)
    with _composing() as comp, Prefix(block.prefix):
        if type(block).forward is HybridBlock.forward:
            params = {name: comp.param_symbol(p) for name, p in block._reg_params.items()}
            out = block.hybrid_forward(F, *args, **params)
        else:
            out = block.forward(*args)
    for hook in block._forward_hooks:
        hook(block, args, out)
    return out


def _input_shapes(block):
    """Shapes of the data inputs of the block's last hybridized call (None: unknown), so that
    blocks reading x.shape compose; else one input of unknown shape."""
    c = getattr(getattr(block, '_cached_op', None), '_last', None)
    if c is not None:
        shapes = [v.shape for v in c.graph.inputs[:len(c.graph.inputs) - len(c.params)]]
        return [s if all(isinstance(d, int) and d > 0 for d in s) else None for s in shapes]
    names = getattr(block, '_input_names', None)    # a SymbolBlock
    return [None] * (len(names) if names else 1)


def export_block(block, path, epoch=0):
    """Write the block's graph (composed on 'data' variables) and its parameters the way
    MXNet's HybridBlock.export does. Returns (symbol file, params file)."""
    from ..base import MXNetError
    from ..serialization import save_arrays
    from .symbol import Group, Symbol
    shapes = _input_shapes(block)
    names = ['data'] if len(shapes) == 1 else [f'data{i}' for i in range(len(shapes))]
    inputs = [var(k, shape=s) for k, s in zip(names, shapes)]
    out = block(*inputs)
    for v in inputs:    # the file stays shape-free: MXNet then binds any input shape
        v._outputs[0][0].meta.pop('__shape__', None)
    sym = out if isinstance(out, Symbol) else Group(list(out))
    params = {p.name: p for p in block.collect_params().values()}
    aux = set(sym.list_auxiliary_states())
    arrays = {}
    for name in sym.list_inputs():
        if name in names:
            continue
        if name not in params:
            raise MXNetError(f'{type(block).__name__}.export: graph input {name!r} is neither a data '
                             'input nor a parameter of the block')
        arrays[('aux:' if name in aux else 'arg:') + name] = params[name]._value_to_save()
    sym_file, param_file = f'{path}-symbol.json', f'{path}-{int(epoch):04d}.params'
    sym.save(sym_file)
    save_arrays(param_file, arrays)
    return sym_file, param_file
