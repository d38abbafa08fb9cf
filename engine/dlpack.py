"""DLPack: arrays move to and from NumPy, PyTorch, CuPy, JAX, ... without copies.

`np.from_dlpack(x)` / `torch.from_dlpack(x)` read an NDArray's buffer through its `__dlpack__`;
`nd.from_dlpack(obj)` wraps another library's array (or a DLPack capsule) as an NDArray sharing its
memory. `to_dlpack_for_read`/`to_dlpack_for_write` return capsules, as in MXNet; the engine has no
asynchronous writers, so both hand out the same view (call `waitall()` first on a GPU)."""
import numpy as np

from .base import MXNetError
from .context import cpu, gpu

_KDL_CPU, _KDL_CUDA = 1, 2


class _Capsule:
    """Gives a bare DLPack capsule the `__dlpack__` protocol that `from_dlpack` functions expect."""

    def __init__(self, capsule, device):
        self._capsule, self._device = capsule, device

    def __dlpack__(self, **kwargs):
        capsule, self._capsule = self._capsule, None
        if capsule is None:
            raise MXNetError('from_dlpack: this DLPack capsule was already consumed')
        return capsule

    def __dlpack_device__(self):
        return self._device


def _is_capsule(obj):
    return type(obj).__name__ == 'PyCapsule'


def from_dlpack(obj, device=None):
    """An NDArray sharing memory with `obj`: any object with `__dlpack__` (a NumPy, PyTorch, CuPy
    array, ...) or a DLPack capsule (from `to_dlpack_for_read`, `torch.utils.dlpack.to_dlpack`).
    A capsule does not say its device: give `device=(2, id)` for a CUDA one. NumPy imports a bare
    (unversioned) capsule read-only, so on the CPU pass the producing object for a writable view."""
    from .ndarray import NDArray
    if _is_capsule(obj):
        obj = _Capsule(obj, device or (_KDL_CPU, 0))
    if not hasattr(obj, '__dlpack__'):
        raise MXNetError(f'from_dlpack: expected an object with __dlpack__ or a DLPack capsule, '
                         f'got {type(obj).__name__}')
    kind, dev = obj.__dlpack_device__()
    if kind == _KDL_CPU:
        return NDArray(np.from_dlpack(obj), cpu())
    if kind == _KDL_CUDA:
        import cupy
        with cupy.cuda.Device(dev):
            return NDArray(cupy.from_dlpack(obj), gpu(dev))
    raise MXNetError(f'from_dlpack: unsupported DLPack device type {kind} (CPU is 1, CUDA is 2)')


def to_dlpack_for_read(data):
    """A DLPack capsule viewing `data`'s buffer."""
    return data.to_dlpack_for_read()


def to_dlpack_for_write(data):
    """A DLPack capsule viewing `data`'s buffer; writes through it change `data`."""
    return data.to_dlpack_for_write()
