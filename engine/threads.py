"""Thread settings. Numba's parallel kernels and BLAS never run at the same time in the engine
(kernels are called one after another), so both may use every core; what must not happen is
nesting them or running DataLoader workers with full thread pools (workers use one thread)."""
import os
import sys

_state = {'n': None}


def configure_threading():
    """Pick Numba's 'workqueue' threading layer unless the user chose one. Measured here: with the
    OpenMP layer, idle Numba threads keep spinning after each parallel kernel and starve the BLAS
    threads that run next (an eager LeNet training step took 175 ms instead of 29 ms on 2 cores)."""
    if 'NUMBA_THREADING_LAYER' in os.environ:
        return
    os.environ['NUMBA_THREADING_LAYER'] = 'workqueue'
    if 'numba' in sys.modules:
        sys.modules['numba'].config.THREADING_LAYER = 'workqueue'


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
