"""SymbolBlock: a block that runs an exported graph (see HybridBlock.export)."""
from ..base import MXNetError
from .block import HybridBlock


class SymbolBlock(HybridBlock):
    """Runs a graph loaded from `prefix-symbol.json` with parameters from a `.params` file."""

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, ctx=None):
        from ..graph.serialize import import_block
        return import_block(symbol_file, input_names, param_file, ctx)

    def hybrid_forward(self, F, *args, **kwargs):
        raise MXNetError('SymbolBlock is created by SymbolBlock.imports(...)')
