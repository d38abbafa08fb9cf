"""Thread settings. Numba's parallel kernels and BLAS never run at the same time in the engine
(kernels are called one after another), so both may use every core; what must not happen is
nesting them or running DataLoader workers with full thread pools (workers use one thread)."""
import ctypes
import os
import sys

_state = {'n': None}

# OpenBLAS's worker threads busy-wait for 2**timeout cycles after each call (default 2**28, ~0.1 s),
# taking cores from the Numba and OpenMP kernels that run next. 4 (the minimum, 16 cycles) makes
# them sleep at once: hybridized ResNet-18 training step 124 -> 96 ms, LeNet b256 88 -> 54 ms.
BLAS_THREAD_TIMEOUT = '4'


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


def shorten_blas_spin(numpy_was_loaded):
    """Give OpenBLAS the short thread timeout. OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when it is
    loaded, so the environment variable suffices when the engine is imported before numpy. A
    script that imported numpy (or torch, scipy) first has OpenBLAS loaded with the long spin; then
    each loaded OpenBLAS re-reads its environment and stops its worker threads, which it restarts
    with the new timeout on its next threaded call (the path it takes at every fork). A timeout the
    user set is kept. Returns the paths of the libraries changed."""
    if 'OPENBLAS_THREAD_TIMEOUT' in os.environ:
        return []
    os.environ['OPENBLAS_THREAD_TIMEOUT'] = BLAS_THREAD_TIMEOUT
    if not numpy_was_loaded:
        return []
    from threadpoolctl import threadpool_info
    changed = []
    for info in threadpool_info():
        if info.get('internal_api') == 'openblas' and _restart_openblas(info['filepath']):
            changed.append(info['filepath'])
    return changed


def _restart_openblas(path):
    """True when `path`'s OpenBLAS now uses BLAS_THREAD_TIMEOUT (builds without these exported
    functions, e.g. OpenMP-threaded ones, are left alone)."""
    try:
        lib = ctypes.CDLL(path)
        read_env, timeout, shutdown = lib.openblas_read_env, lib.openblas_thread_timeout, lib.blas_thread_shutdown_
    except (OSError, AttributeError):
        return False
    timeout.restype = ctypes.c_int
    read_env()
    if timeout() != int(BLAS_THREAD_TIMEOUT):
        return False
    shutdown()
    return True


def libgomp_loaded():
    """Whether libgomp is already mapped into the process (Linux; False elsewhere)."""
    try:
        with open('/proc/self/maps') as f:
            return 'libgomp' in f.read()
    except OSError:
        return False


def warn_if_libgomp_spins(libgomp_was_loaded):
    """kernels/__init__ makes idle libgomp threads sleep (OMP_WAIT_POLICY=PASSIVE), which libgomp
    reads when it loads. A libgomp loaded before the engine (torch's, which the C++ extension then
    shares: same soname) keeps spinning after every parallel region, and nothing can change that
    once it runs (its spin count is internal), so the user is told how to avoid it. Measured, LeNet
    b256 user-style step, torch imported first: 153-159 ms of CPU a step vs 88-107 ms with the
    variable set. Returns whether it warned."""
    if not libgomp_was_loaded or 'OMP_WAIT_POLICY' in os.environ:
        return False
    import warnings
    from .base import MXNetUserWarning
    warnings.warn('engine: an OpenMP runtime (libgomp) was loaded before the engine, e.g. by '
                  'importing torch first; its idle threads spin after each parallel region and slow '
                  "the engine's kernels (~1.5x CPU time a training step). Set OMP_WAIT_POLICY=PASSIVE "
                  'in the environment, or import engine first', MXNetUserWarning, stacklevel=3)
    return True


def blas_thread_timeouts():
    """{library path: its current thread timeout} for the loaded OpenBLAS libraries (0: default)."""
    from threadpoolctl import threadpool_info
    out = {}
    for info in threadpool_info():
        if info.get('internal_api') == 'openblas':
            try:
                fn = ctypes.CDLL(info['filepath']).openblas_thread_timeout
            except (OSError, AttributeError):
                continue
            fn.restype = ctypes.c_int
            out[info['filepath']] = fn()
    return out


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
