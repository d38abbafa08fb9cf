"""engine: a deep-learning library with the Gluon programming model, run eagerly or compiled.

    import engine as mx
    from engine import nd, autograd, gluon
"""
from .threads import configure_threading as _configure_threading

_configure_threading()

from . import autograd, base, nd, ops, random  # noqa: F401
from . import initializer, lr_scheduler, metric, optimizer  # noqa: F401
from . import initializer as init  # noqa: F401
from . import gluon  # noqa: F401
from . import distributions, profiler  # noqa: F401
from .base import MXNetError  # noqa: F401
from .context import Context, cpu, current_context, gpu, num_gpus  # noqa: F401
from .ndarray import NDArray  # noqa: F401
from .threads import apply_env_threads as _apply_env_threads  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: F401,E402

_apply_env_threads()

__version__ = '0.1.0'
