"""Where an op's kernels come from on each device.

`kernels/cpu/<module>` and `kernels/cuda/<module>` export the same functions with the same
signatures (NumPy arrays in one, CuPy arrays in the other), so an op calls both with one pattern:

    kernels=per_device(lambda K: lambda x, axis, out=None: K.softmax.softmax(x, axis, out=out))

registers `{'cpu': ..., 'gpu': ...}` where `K` is `CPU` or `GPU`. The CUDA modules are imported
on the first GPU call, never at import time: CPU-only machines must not import CuPy.
"""
import importlib
from types import SimpleNamespace

import numpy as np

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


def per_device(make, updates=(), native_float16=False, index_inputs=()):
    """{'cpu': make(CPU), 'gpu': make(GPU)}: one kernel definition for both devices.

    The CPU kernels (Numba, C++) have no float16 code: float16 arrays are computed in float32 and
    the results rounded back (as MXNet's CPU operators accumulate half precision in float). `updates`:
    positions of inputs the kernel updates in place (BatchNorm's running statistics), written back;
    `native_float16`: the CPU kernel handles float16 itself (a gather: no widened copies);
    `index_inputs`: positions of index inputs, whose dtype (float16 too) never makes the results
    float16 (float16 indices are widened exactly to float32)."""
    cpu = make(CPU)
    if native_float16:
        return {'cpu': cpu, 'gpu': make(GPU)}
    return {'cpu': _float16_via_float32(cpu, updates, index_inputs), 'gpu': make(GPU)}


_F16 = np.dtype(np.float16)


def _float16_via_float32(kernel, updates, index_inputs=()):
    def run(*arrays, out=None, **attrs):
        # (the common path costs a dtype scan and a try: this runs on every CPU kernel call)
        if index_inputs and any(arrays[i].dtype == _F16 for i in index_inputs):
            arrays = tuple(a.astype(np.float32) if i in index_inputs and a.dtype == _F16 else a
                           for i, a in enumerate(arrays))
        if _F16 not in [a.dtype for a in arrays]:
            try:
                return kernel(*arrays, out=out, **attrs)
            except Exception as e:
                raise _typing_error(e, arrays) from None
        wide = [a.astype(np.float32) if a.dtype == _F16 else a for a in arrays]
        try:
            res = kernel(*wide, **attrs)
        except Exception as e:
            raise _typing_error(e, arrays) from None
        for i in updates:
            if arrays[i].dtype == _F16:
                arrays[i][...] = wide[i]
        if isinstance(res, tuple):
            return tuple(_narrow(r, o) for r, o in zip(res, out or (None,) * len(res)))
        return _narrow(res, out)
    run.__name__ = getattr(kernel, '__name__', 'kernel')
    return run


def _typing_error(e, arrays):
    """Numba's typing error is a page of compiler output: say which dtypes have no kernel
    (any other exception is returned unchanged, to be re-raised as it is)."""
    if type(e).__name__ != 'TypingError':
        return e
    dts = ', '.join(a.dtype.name for a in arrays)
    return TypeError(f'no CPU kernel for input dtypes ({dts}); these kernels take float16, float32 or float64')


def _narrow(res, out):
    r = res.astype(np.float16) if res.dtype == np.float32 else res
    if out is None:
        return r
    out[...] = r
    return out
