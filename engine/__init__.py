"""engine: a deep-learning library with the Gluon programming model, run eagerly or compiled.

    import engine as mx
    from engine import nd, autograd, gluon
"""
import sys as _sys

# read before anything here imports numpy: a script that imported it first has OpenBLAS loaded
# with its long thread spin, which threads.shorten_blas_spin then shortens in place
_numpy_was_loaded = 'numpy' in _sys.modules

from . import threads as _threads  # noqa: E402
from .threads import configure_threading as _configure_threading  # noqa: E402
from .threads import shorten_blas_spin as _shorten_blas_spin  # noqa: E402
from .memory import tune_malloc as _tune_malloc  # noqa: E402

_libgomp_was_loaded = _threads.libgomp_loaded()   # before kernels/ loads (and configures) it
_shorten_blas_spin(_numpy_was_loaded)
_threads.warn_if_libgomp_spins(_libgomp_was_loaded)
_configure_threading()
_tune_malloc()

from . import autograd, base, nd, ops, random  # noqa: F401
from . import initializer, lr_scheduler, metric, optimizer  # noqa: F401
from . import initializer as init  # noqa: F401
from . import gluon  # noqa: F401
from . import amp, distributions, dlpack, image, io, onnx, profiler  # noqa: F401
from . import recordio  # noqa: F401
from . import image as img  # noqa: F401
from . import kvstore as kv  # noqa: F401
from . import model, symbol  # noqa: F401
from . import symbol as sym  # noqa: F401
from . import module  # noqa: F401,E402
from . import module as mod  # noqa: F401,E402  (mx.mod.Module)
from .base import MXNetError  # noqa: F401
from .context import Context, cpu, cpu_pinned, cpu_shared, current_context, gpu, num_gpus  # noqa: F401
from .ndarray import NDArray  # noqa: F401
from .threads import apply_env_threads as _apply_env_threads  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: F401,E402

_apply_env_threads()

__version__ = '0.1.0'

from . import runtime, test_utils, util  # noqa: F401,E402  (mx.runtime, mx.test_utils, as in MXNet)
