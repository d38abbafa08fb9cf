"""engine: a deep-learning library with the Gluon programming model, run eagerly or compiled.

    import engine as mx
    from engine import nd, autograd, gluon
"""
import os as _os

# OpenBLAS worker threads spin for ~0.1 s after each call and slow the Numba/OpenMP kernel that
# runs next (measured: hybridized ResNet-18 training step 124 -> 96 ms with a short timeout). The
# variable is read when OpenBLAS loads, i.e. at the first numpy import: it takes effect when the
# engine is imported before numpy, or when set in the environment.
_os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '4')

from .threads import configure_threading as _configure_threading  # noqa: E402
from .memory import tune_malloc as _tune_malloc  # noqa: E402

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
