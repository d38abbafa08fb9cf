"""Serial/parallel twins of Numba kernels.

Waking the worker threads of a Numba parallel loop costs microseconds to tens of microseconds
(OpenMP layer after a spin has ended, or Numba's workqueue layer: ~100 us per launch here), more
than a small kernel's work.
`twin` compiles one Python function both ways and runs the parallel version only when the
largest array argument is big enough for it to pay."""
import functools
import threading
import types

from numba import njit

# elements of work below which the serial version runs: with Numba's workqueue layer a parallel
# launch costs ~100 us here, which a serial kernel at 0.3-1 ns per element only spends on 10^5+
# elements (softmax-CE (256,1000) forward: 84 us serial, 180 us parallel)
PARALLEL_MIN_WORK = 1 << 18


# Numba's workqueue threading layer aborts the process when two Python threads launch parallel
# kernels at once (Numba's parallel launch releases the GIL), so parallel launches take turns;
# the lock costs ~0.1 us against a ~100 us launch. Serial kernels run concurrently.
LAUNCH_LOCK = threading.Lock()


def parallel_njit(**options):
    """Decorator: `njit(parallel=True, **options)`, launched under LAUNCH_LOCK."""
    def wrap(pyfunc):
        kernel = njit(parallel=True, **options)(pyfunc)

        @functools.wraps(pyfunc)
        def launch(*args):
            with LAUNCH_LOCK:
                return kernel(*args)
        launch.kernel = kernel
        return launch
    return wrap


class Twin:
    """A kernel compiled serially and with parallel=True."""

    def __init__(self, pyfunc, **options):
        self.parallel = njit(parallel=True, **options)(pyfunc)
        # a distinct name keeps Numba's on-disk cache entries of the two versions apart
        serial = types.FunctionType(pyfunc.__code__, pyfunc.__globals__, pyfunc.__name__ + '_serial',
                                    pyfunc.__defaults__, pyfunc.__closure__)
        serial.__qualname__ = pyfunc.__qualname__ + '_serial'
        self.serial = njit(**options)(serial)
        self.__doc__ = pyfunc.__doc__

    def __call__(self, *args):
        work = max(a.size for a in args if hasattr(a, 'size'))
        if work < PARALLEL_MIN_WORK:
            return self.serial(*args)
        with LAUNCH_LOCK:
            return self.parallel(*args)


def twin(**options):
    """Decorator: `@twin(cache=True, fastmath=True)` in place of `@njit(parallel=True, ...)`."""
    return lambda pyfunc: Twin(pyfunc, **options)
