"""Run the CUDA kernels on the host, for testing without a GPU.

The exact module source the GPU gets (``_runtime.module_source``) is compiled by
g++ with ``emulator.hpp`` force-included, which maps the CUDA subset the kernels
use (thread/block indices, ``__syncthreads``, ``__shared__``, warp shuffles,
``atomicAdd``) onto std::threads: every CUDA thread of a block is a real thread.
A generated ``extern "C"`` launcher per kernel runs the grid. Arrays are NumPy
arrays standing in for device arrays, so the Python wrappers run unchanged with
``xp = numpy``.

Grid and block are capped small (3 x 2 blocks of 64 threads by default) so that
the grid-stride loops of every kernel really iterate; results do not depend on
the grid. Not emulated: memory coalescing, speed, NVRTC-specific compile errors
(test_cuda_compile.py covers nvcc), fast-math differences.

Usage (tests)::

    from kernels.cuda import _emulator, _runtime
    _runtime.set_backend(_emulator.EmulatorBackend())
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from . import _runtime

_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator.hpp")
_CTYPES = {"i64": ctypes.c_longlong, "double": ctypes.c_double}


def _cache_dir():
    base = os.environ.get("ENGINE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                              "engine")
    return os.path.join(base, "cuda_emulator")


def _launchers(family, dtype):
    """C++ text of one host launcher per kernel: emu_<symbol>(gx, gy, bx, params...)."""
    out = []
    for name, params in _runtime.signatures(family).items():
        sym = _runtime.symbol(name, dtype)
        decl = ", ".join(f"{p[1]}* {p[2]}" if p[0] == "ptr" else f"{p[0]} {p[2]}" for p in params)
        call = ", ".join(p[2] for p in params)
        out.append(f'extern "C" void emu_{sym}(unsigned gx, unsigned gy, unsigned bx, {decl}) {{\n'
                   f"    emu::launch(gx, gy, bx, [=] {{ {sym}({call}); }});\n}}\n")
    return "\n".join(out)


def build(family, dtype, cache_dir=None):
    """Compile (or reuse) the host library of one family and dtype; returns its path."""
    with open(_HEADER) as f:
        header = f.read()
    source = _runtime.module_source(family) + "\n" + _launchers(family, dtype)
    options = [o for o in _runtime.compile_options(family, dtype) if o.startswith("-D")]
    key = hashlib.sha256("\0".join([header, source] + options).encode()).hexdigest()[:16]
    cache_dir = cache_dir or _cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    suffix = _runtime.SCALARS[np.dtype(dtype)][1]
    lib = os.path.join(cache_dir, f"{family}_{suffix}_{key}.so")
    if os.path.exists(lib):
        return lib
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("the CUDA kernel emulator needs a C++20 compiler (g++)")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, f"{family}.cpp")
        with open(src, "w") as f:
            f.write(source)
        tmp_lib = os.path.join(tmp, "lib.so")
        cmd = [cxx, "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-include", _HEADER,
               *options, src, "-o", tmp_lib]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"emulator build of {family} failed:\n{' '.join(cmd)}\n{res.stderr}")
        os.replace(tmp_lib, lib)  # atomic: concurrent builders never see half a file
    return lib


class EmulatorBackend:
    """Backend for ``_runtime.set_backend``: NumPy arrays, kernels run on host threads."""

    name = "emulator"

    def __init__(self, grid_cap=(3, 2), block_cap=64, cache_dir=None):
        self.xp = np
        self.grid_cap = grid_cap
        self.block_cap = block_cap
        self._cache_dir = cache_dir
        self._libs = {}
        self._functions = {}
        self._lock = threading.Lock()

    def is_array(self, a):
        return isinstance(a, np.ndarray)

    def _lib(self, family, dtype):
        key = (family, dtype)
        with self._lock:
            if key not in self._libs:
                self._libs[key] = ctypes.CDLL(build(family, dtype, self._cache_dir))
        return self._libs[key]

    def function(self, family, name, dtype):
        key = (family, name, dtype)
        fn = self._functions.get(key)
        if fn is None:
            fn = getattr(self._lib(family, dtype), "emu_" + _runtime.symbol(name, dtype))
            params = _runtime.signatures(family)[name]
            fn.argtypes = [ctypes.c_uint] * 3 + [
                ctypes.c_void_p if p[0] == "ptr" else _CTYPES[p[0]] for p in params]
            fn.restype = None
            self._functions[key] = fn
        return fn

    def run(self, fn, grid, block, args):
        conv = [a.ctypes.data if isinstance(a, np.ndarray) else a.item() for a in args]
        fn(grid[0], grid[1], block, *conv)
