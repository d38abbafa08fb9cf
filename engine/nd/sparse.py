"""`mx.nd.sparse`: sparse storage types (see engine/ndarray_sparse.py)."""
from ..ndarray_sparse import (BaseSparseNDArray, CSRNDArray, RowSparseNDArray, array,  # noqa: F401
                              cast_storage, csr_matrix, dot, empty, row_sparse_array, zeros)
from ..ops import Embedding  # noqa: F401  (sparse_grad=True: a row_sparse weight gradient)


def retain(data, indices):
    """The rows of a RowSparseNDArray listed in `indices` (the others dropped)."""
    from ..base import MXNetError
    if not isinstance(data, RowSparseNDArray):
        got = getattr(data, 'stype', type(data).__name__)
        raise MXNetError(f'sparse.retain: expected a RowSparseNDArray, got {got}')
    return data.retain(indices.asnumpy() if hasattr(indices, 'asnumpy') else indices)
