"""Devices. A Context names where an array lives and which array module (numpy or cupy) holds it."""
import contextlib
import sys
import threading

import numpy as np

from .base import MXNetError

_local = threading.local()
_probe = []   # [cupy module or None] once probed


def _cupy():
    """The cupy module, or None when CuPy (or a usable GPU) is absent. Probed once per process:
    the answer does not change, and a failing driver call is slow (Context.xp is on hot paths)."""
    if not _probe:
        try:
            import cupy
            _probe.append(cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None)
        except Exception:   # ImportError, or CUDARuntimeError such as cudaErrorInsufficientDriver
            _probe.append(None)
    return _probe[0]


class Context:
    """A device: `cpu(0)` or `gpu(i)`. Usable as a `with` block to set the default context."""
    __slots__ = ('device_type', 'device_id', '_old', '_hash')   # _hash last: pickle sets slots in order

    def __init__(self, device_type, device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if device_type not in ('cpu', 'gpu', 'cpu_pinned', 'cpu_shared'):
            raise MXNetError(f"unknown device type {device_type!r}; expected 'cpu', 'gpu', "
                             "'cpu_pinned' or 'cpu_shared'")
        # MXNet's pinned and shared host memory are plain host memory here: the same device
        self.device_type = 'cpu' if device_type.startswith('cpu') else device_type
        self.device_id = int(device_id)
        self._hash = hash((self.device_type, self.device_id))   # contexts key dicts on hot paths

    def __setattr__(self, name, value):
        if name != '_old' and hasattr(self, '_hash'):
            raise MXNetError(f'{self}: a Context cannot be changed (it keys parameters and arrays); '
                             f'make a new one')
        object.__setattr__(self, name, value)

    @property
    def xp(self):
        """The array module holding this context's buffers."""
        if self.device_type == 'cpu':
            return np
        cp = _cupy()
        if cp is None:
            raise MXNetError(f'{self}: CuPy is not installed or no CUDA device is visible, so arrays '
                             'cannot live on this context; use engine.cpu()')
        return cp

    def scope(self):
        """A `with` block making this context's device the current CUDA device (CuPy allocates
        and launches on the current device); nothing on the CPU."""
        if self.device_type == 'cpu':
            return contextlib.nullcontext()
        return self.xp.cuda.Device(self.device_id)

    def __eq__(self, other):
        return (isinstance(other, Context) and self.device_type == other.device_type
                and self.device_id == other.device_id)

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f'{self.device_type}({self.device_id})'

    def __enter__(self):
        self._old = current_context()
        _local.ctx = self
        return self

    def __exit__(self, *exc):
        _local.ctx = self._old


def cpu(device_id=0):
    return Context('cpu', device_id)


def cpu_pinned(device_id=0):
    """MXNet's page-locked host memory; plain host memory (the same as `cpu`) here."""
    return Context('cpu_pinned', device_id)


def cpu_shared(device_id=0):
    """MXNet's shared host memory; plain host memory (the same as `cpu`) here."""
    return Context('cpu_shared', device_id)


def num_gpus():
    cp = _cupy()
    return 0 if cp is None else cp.cuda.runtime.getDeviceCount()


def gpu(device_id=0):
    """A GPU context; raises a clear error when CuPy or the device is missing."""
    n = num_gpus()
    if device_id >= n:
        why = 'CuPy is not installed or no CUDA device is visible' if n == 0 else f'only {n} GPU(s)'
        raise MXNetError(f"gpu({device_id}) is not available: {why}. Use engine.cpu() instead.")
    return Context('gpu', device_id)


def synchronize_all():
    """Wait until every GPU has finished its queued work (kernels launch asynchronously).
    Nothing to do when CuPy was never imported: then no GPU work can be pending."""
    if 'cupy' not in sys.modules or _cupy() is None:
        return
    cp = _cupy()
    for i in range(cp.cuda.runtime.getDeviceCount()):
        cp.cuda.Device(i).synchronize()


def context_of(data):
    """The context a raw buffer (NumPy or CuPy array) lives on; the current context when it is
    of that kind (so `with mx.cpu(1):` keeps its device id)."""
    cur = current_context()
    cp = sys.modules.get('cupy')
    if cp is None or not isinstance(data, cp.ndarray):
        return cur if cur.device_type == 'cpu' else _CPU
    dev = data.device.id
    return cur if cur.device_type == 'gpu' and cur.device_id == dev else Context('gpu', dev)


def current_context():
    return getattr(_local, 'ctx', None) or _CPU


def _set_current_context(ctx):
    """Make `ctx` this thread's current context (test_utils.set_default_context)."""
    _local.ctx = ctx


_CPU = Context('cpu', 0)
