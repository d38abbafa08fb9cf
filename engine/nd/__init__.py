"""`engine.nd`: array creation and every op of the op library as a function (MXNet's mx.nd)."""
from .. import random  # noqa: F401
from ..dlpack import from_dlpack, to_dlpack_for_read, to_dlpack_for_write  # noqa: F401
from ..ndarray import NDArray, arange, array, empty, full, ones, ones_like, zeros, zeros_like  # noqa: F401
from ..ops import *  # noqa: F401,F403
from ..ops import METHODS as _METHODS  # noqa: F401
from ..random import normal as random_normal, uniform as random_uniform  # noqa: F401
from ..random import normal, uniform  # noqa: F401,E402  (MXNet's legacy nd.normal / nd.uniform)


def waitall():
    """Wait for all pending work: every GPU's queued kernels (CPU ops run synchronously)."""
    from ..context import synchronize_all
    synchronize_all()


def save(fname, data):
    """Write an NDArray, a list or a dict str -> NDArray in MXNet's binary format (loads in MXNet)."""
    from ..serialization import save_arrays
    save_arrays(fname, data)


def load(fname, ctx=None):
    """A list or dict of NDArrays from an nd.save file (MXNet's or this engine's) or an older
    engine .npz, on `ctx` (default the CPU). Never unpickles; bad files are clear MXNetErrors."""
    from ..serialization import load_arrays
    return load_arrays(fname, ctx)
