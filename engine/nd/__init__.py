"""`engine.nd`: array creation and every op of the op library as a function (MXNet's mx.nd)."""
from .. import random  # noqa: F401
from . import contrib  # noqa: F401  (mx.nd.contrib: isnan, isinf, isfinite)
from ..dlpack import from_dlpack, to_dlpack_for_read, to_dlpack_for_write  # noqa: F401
from ..ndarray import NDArray, arange, array, empty, full, ones, ones_like, zeros, zeros_like  # noqa: F401
from ..ndarray import eye, from_numpy, linspace  # noqa: F401,E402
from ..ops import *  # noqa: F401,F403
from ..ops import METHODS as _METHODS  # noqa: F401
from ..random import normal as random_normal, uniform as random_uniform  # noqa: F401
from ..random import (exponential as random_exponential, gamma as random_gamma,  # noqa: F401
                      generalized_negative_binomial as random_generalized_negative_binomial,
                      multinomial as sample_multinomial, negative_binomial as random_negative_binomial,
                      poisson as random_poisson, randint as random_randint)
from ..random import (sample_exponential, sample_gamma, sample_generalized_negative_binomial,  # noqa: F401
                      sample_negative_binomial, sample_normal, sample_poisson, sample_uniform)

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


def load_frombuffer(buf, ctx=None):
    """A list or dict of NDArrays from the bytes of an nd.save file (MXNet's format; a list for an
    unnamed list or a single saved array). Truncated or corrupt bytes are clear MXNetErrors."""
    from ..serialization import load_buffer
    return load_buffer(buf, ctx)


# ---- MXNet's nd-level compositions (built from ops, so they work on traced symbols too) -------
def concatenate(arrays, axis=0, always_copy=True):
    """Join arrays along an existing axis (MXNet's nd.concatenate; `concat` with dim=axis)."""
    from ..ops import concat
    if len(arrays) == 1:
        return arrays[0].copy() if always_copy else arrays[0]
    return concat(*arrays, dim=axis)


# moveaxis (one axis or several), crop, choose_element_0index, onehot_encode: engine/ops/compat.py


def add_n(*args):
    """Elementwise sum of any number of same-shape arrays (MXNet's add_n / ElementWiseSum)."""
    from ..base import MXNetError
    if not args:
        raise MXNetError('add_n: needs at least one array')
    shapes = {tuple(a.shape) for a in args}
    if len(shapes) > 1:
        raise MXNetError(f'add_n: all arrays must have one shape, got {sorted(shapes)}')
    out = args[0]
    for a in args[1:]:
        out = out + a
    return out


ElementWiseSum = add_n


def reset_arrays(*arrays, num_arrays=None):
    """Set every array to zero in place (MXNet's reset_arrays; used to clear gradients)."""
    from ..base import MXNetError
    if num_arrays is not None and num_arrays != len(arrays):
        raise MXNetError(f'reset_arrays: num_arrays={num_arrays} but {len(arrays)} arrays given')
    for a in arrays:
        a[:] = 0


from . import sparse  # noqa: F401,E402  (mx.nd.sparse: row_sparse / csr storage)
from . import _internal  # noqa: F401,E402  (mx.nd._internal: _crop_assign, ...)
from ._cachedop import CachedOp  # noqa: F401,E402

from ._out import install as _install_out  # noqa: E402
_install_out(globals())   # MXNet's out= on every op function (nd.square(x, out=y))
