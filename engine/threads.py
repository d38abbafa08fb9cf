"""Thread settings. Numba's parallel kernels and BLAS never run at the same time in the engine
(kernels are called one after another), so both may use every core; what must not happen is
nesting them or running DataLoader workers with full thread pools (workers use one thread)."""
import os
import sys

_state = {'n': None}


def configure_threading():
    """Pick Numba's 'workqueue' threading layer unless the user chose one. Its parallel launch is
    slow (~100 us here, so small kernels run serially: kernels/cpu/parallel.py), but it survives
    fork(): DataLoader workers are forked at every pass, and after Numba's OpenMP layer has run a
    kernel, a forked child that runs one is terminated ("fork() called from a process already using
    GNU OpenMP"). The OpenMP layer made the hybridized LeNet b32 step 6.4 -> 3.3 ms; it needs
    workers started without fork first."""
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
