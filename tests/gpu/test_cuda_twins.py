"""The engine's contract with kernels/cuda (runs without a GPU): every CUDA twin module exports the
functions of its kernels/cpu counterpart with the same parameters, since the op library calls
both with one pattern (engine/ops/backends.py) and the optimizers look a CPU kernel's twin up by
name."""
import importlib
import inspect

import pytest

MODULES = ['conv', 'im2col', 'pool', 'softmax', 'norm', 'misc', 'optim']


def _parameters(fn):
    fn = getattr(fn, 'py_func', fn)   # a Numba dispatcher: the Python function it compiles
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def _public_functions(module):
    """A module's own public functions, less its Numba fallbacks (`*_numba`, `*_nb`: the
    host-only twins of the C++ extension, meaningless on a GPU)."""
    return [n for n, f in vars(module).items()
            if callable(f) and not n.startswith('_') and not n.endswith(('_numba', '_nb'))
            and getattr(f, '__module__', None) == module.__name__]


@pytest.mark.parametrize('module', MODULES)
def test_cuda_twin_exports_the_cpu_functions(module):
    cpu = importlib.import_module(f'kernels.cpu.{module}')
    cuda = importlib.import_module(f'kernels.cuda.{module}')   # imports without CuPy
    names = getattr(cpu, '__all__', None) or _public_functions(cpu)
    missing = [n for n in names if not callable(getattr(cuda, n, None))]
    assert not missing, f'kernels/cuda/{module}.py lacks {missing}'
    for n in names:
        assert _parameters(getattr(cuda, n)) == _parameters(getattr(cpu, n)), \
            f'{module}.{n}: CUDA parameters {_parameters(getattr(cuda, n))} != CPU {_parameters(getattr(cpu, n))}'
