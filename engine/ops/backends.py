"""Where an op's kernels come from on each device.

`kernels/cpu/<module>` and `kernels/cuda/<module>` export the same functions with the same
signatures (NumPy arrays in one, CuPy arrays in the other), so an op calls both with one pattern:

    kernels=per_device(lambda K: lambda x, axis, out=None: K.softmax.softmax(x, axis, out=out))

registers `{'cpu': ..., 'gpu': ...}` where `K` is `CPU` or `GPU`. The CUDA modules are imported
on the first GPU call, never at import time: CPU-only machines must not import CuPy.
"""
import importlib
from types import SimpleNamespace

from kernels.cpu import conv, misc, norm, pool, softmax

CPU = SimpleNamespace(conv=conv, misc=misc, norm=norm, pool=pool, softmax=softmax)


class _CudaKernels:
    """`GPU.conv` is `kernels.cuda.conv`, imported when first looked up."""

    def __getattr__(self, module):
        if module.startswith('_'):
            raise AttributeError(module)
        mod = importlib.import_module(f'kernels.cuda.{module}')
        setattr(self, module, mod)   # later lookups are plain attribute reads
        return mod


GPU = _CudaKernels()


def per_device(make):
    """{'cpu': make(CPU), 'gpu': make(GPU)}: one kernel definition for both devices."""
    return {'cpu': make(CPU), 'gpu': make(GPU)}
