"""`mx.nd.CachedOp(sym)`: an `mx.sym` graph as a callable on NDArrays, compiled as a hybridized
block is (`gluon.SymbolBlock` whose inputs are all the graph's inputs, in `sym.list_inputs()`
order); calls under `autograd.record()` are recorded, so gradients reach the inputs."""
from ..base import MXNetError
from ..ndarray import NDArray


class CachedOp:
    def __init__(self, sym, flags=()):
        from ..gluon.symbol_block import SymbolBlock
        from ..symbol.symbol import Symbol, var
        if not isinstance(sym, Symbol):
            raise MXNetError(f'CachedOp: expected an mx.sym Symbol, got {type(sym).__name__}')
        self._names = sym.list_inputs()
        self._num_outputs = len(sym.list_outputs())
        self._block = SymbolBlock(sym, [var(n) for n in self._names])
        self._block.hybridize(**dict(flags))

    def __call__(self, *args, out=None):
        if len(args) != len(self._names) or not all(isinstance(a, NDArray) for a in args):
            raise MXNetError(f'CachedOp: expected {len(self._names)} NDArrays (inputs {self._names}), got '
                             f'{[type(a).__name__ for a in args]}')
        res = self._block(*args)
        if out is None:
            return res
        outs = [out] if isinstance(out, NDArray) else list(out)
        got = [res] if isinstance(res, NDArray) else list(res)
        if len(outs) != len(got):
            raise MXNetError(f'CachedOp: out= has {len(outs)} arrays for {len(got)} outputs')
        for o, r in zip(outs, got):
            if tuple(o.shape) != tuple(r.shape):
                raise MXNetError(f'CachedOp: out= array of shape {o.shape} for an output of shape {r.shape}')
            o[:] = r
        return out
