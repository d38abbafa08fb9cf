"""Thread settings. Numba's parallel kernels and BLAS never run at the same time in the engine
(kernels are called one after another), so both may use every core; what must not happen is
nesting them or running DataLoader workers with full thread pools (workers use one thread)."""
import os
import sys

_state = {'n': None}


def configure_threading():
    """Prefer Numba's OpenMP threading layer (falling back to workqueue) unless the user chose one.
    OpenMP launches a parallel loop in a few microseconds; workqueue took ~100 us per launch here,
    more than many kernels' whole run. libgomp's spinning is kept short (kernels/__init__.py) so
    idle threads do not starve the BLAS call that runs next."""
    if 'NUMBA_THREADING_LAYER' in os.environ:
        return
    os.environ['NUMBA_THREADING_LAYER'] = 'default'
    os.environ['NUMBA_THREADING_LAYER_PRIORITY'] = 'omp workqueue tbb'
    if 'numba' in sys.modules:
        sys.modules['numba'].config.THREADING_LAYER = 'default'
        sys.modules['numba'].config.THREADING_LAYER_PRIORITY = ['omp', 'workqueue', 'tbb']


def set_num_threads(n):
    """Use `n` threads for Numba kernels and for BLAS."""
    import numba
    from threadpoolctl import threadpool_limits
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    _state['limits'] = threadpool_limits(limits=n, user_api='blas')
    _state['n'] = n


def get_num_threads():
    import numba
    return _state['n'] or numba.get_num_threads()


def apply_env_threads():
    """Honour ENGINE_NUM_THREADS (e.g. 1 on a machine whose other cores are busy: OpenBLAS with
    several threads stalls badly when a core it counts on is taken by another process)."""
    n = os.environ.get('ENGINE_NUM_THREADS')
    if n:
        set_num_threads(int(n))
