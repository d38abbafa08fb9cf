"""Thread settings. Numba's parallel kernels and BLAS never run at the same time in the engine
(kernels are called one after another), so both may use every core; what must not happen is
nesting them or running DataLoader workers with full thread pools (workers use one thread)."""
import os

_state = {'n': None}


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


def default_num_threads():
    return int(os.environ.get('ENGINE_NUM_THREADS', os.cpu_count() or 1))
