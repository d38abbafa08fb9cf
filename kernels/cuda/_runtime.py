"""Loading and launching the CUDA kernels of ``kernels/cuda/*.cu``.

Scheme (see common.cuh): every family source is compiled once per dtype, with
``-DENGINE_SCALAR=float -DENGINE_SUFFIX=f32`` or ``double``/``f64``; a kernel
declared ``KERNEL(name)`` is the C symbol ``name_f32`` / ``name_f64``. Modules are
compiled lazily by ``cupy.RawModule`` on first use and cached per (family, dtype,
device); CuPy also keeps the compiled binary on disk, keyed by source and options.

Every kernel parameter is a pointer, an ``i64`` or a ``double``. :func:`signature`
parses the ``KERNEL(...)`` declarations of a source, and :meth:`Family.launch`
checks each call against them: argument count, array dtype (``T`` is the dtype
being launched, ``i64`` int64, ``int`` int32, ``acc_t`` float64), C-contiguity,
and converts Python numbers to ``numpy.int64``/``numpy.float64`` so that CuPy
passes them with the width the kernel reads. A mistake is a Python error naming
the kernel instead of a kernel reading a misaligned argument buffer.

Nothing here imports CuPy at import time. The backend (CuPy, or the host
emulator used to test the kernels without a GPU, see ``_emulator.py``) is
created on first use; :func:`set_backend` replaces it.
"""
import functools
import operator
import os
import re
import threading

import numpy as np

_DIR = os.path.dirname(os.path.abspath(__file__))
_INCLUDE = '#include "common.cuh"'

# dtype -> (C type, symbol suffix)
SCALARS = {np.dtype(np.float32): ("float", "f32"), np.dtype(np.float64): ("double", "f64")}
FLOAT_DTYPES = tuple(SCALARS)

# Extra compiler options per family (see the top of optim.cu for why).
_EXTRA_OPTIONS = {"optim": ("--fmad=false",)}

# pointer element types a kernel may declare, besides T (the launched dtype)
_POINTER_DTYPES = {"i64": np.dtype(np.int64), "int": np.dtype(np.int32),
                   "acc_t": np.dtype(np.float64)}
_SCALAR_KINDS = ("i64", "double")

BLOCK = 256  # threads per block for elementwise kernels
MAX_GRID = (1 << 20, 65535)  # grid-stride loops make any cap correct


# ----------------------------------------------------------------------------- sources


def families():
    """Names of the kernel families (the ``*.cu`` files of this directory)."""
    return sorted(f[:-3] for f in os.listdir(_DIR) if f.endswith(".cu"))


@functools.lru_cache(maxsize=None)
def module_source(family):
    """The exact source handed to the compiler: ``<family>.cu`` with common.cuh inlined."""
    with open(os.path.join(_DIR, family + ".cu")) as f:
        src = f.read()
    with open(os.path.join(_DIR, "common.cuh")) as f:
        common = f.read()
    if src.count(_INCLUDE) != 1:
        raise RuntimeError(f"kernels/cuda/{family}.cu must contain exactly one {_INCLUDE}")
    return src.replace(_INCLUDE, common)


def compile_options(family, dtype):
    """Compiler options (NVRTC and nvcc alike) for one family and dtype."""
    ctype, suffix = SCALARS[np.dtype(dtype)]
    return ((f"-DENGINE_SCALAR={ctype}", f"-DENGINE_SUFFIX={suffix}")
            + _EXTRA_OPTIONS.get(family, ()))


def symbol(name, dtype):
    """C symbol of kernel ``name`` for ``dtype``, e.g. ``im2col_f32``."""
    return f"{name}_{SCALARS[np.dtype(dtype)][1]}"


def _code_only(src):
    """Source without comments and preprocessor directives (the KERNEL macros' own
    definitions must not look like kernel declarations)."""
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    return re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", src, flags=re.M)


_KERNEL_RE = re.compile(r"\bKERNEL(?:_1024)?\(\s*(\w+)\s*\)\s*\(([^)]*)\)")


def parse_param(text):
    """One kernel parameter as (kind, pointee, name), e.g. ``'i64 n'`` -> ``('i64', None, 'n')``
    and ``'const T* __restrict__ x'`` -> ``('ptr', 'T', 'x')``."""
    words = text.replace("*", " * ").split()
    name = words[-1]
    base = [w for w in words[:-1] if w not in ("const", "__restrict__", "*")]
    if len(base) != 1:
        raise ValueError(f"cannot parse kernel parameter {text!r}")
    if "*" in words:
        return ("ptr", base[0], name)
    return (base[0], None, name)


@functools.lru_cache(maxsize=None)
def signatures(family):
    """{kernel name: ((kind, pointee, name), ...)} of every KERNEL in the family source."""
    out = {}
    for m in _KERNEL_RE.finditer(_code_only(module_source(family))):
        params = tuple(parse_param(p) for p in m.group(2).split(",") if p.strip())
        for kind, pointee, pname in params:
            if kind == "ptr" and pointee != "T" and pointee not in _POINTER_DTYPES:
                raise ValueError(f"{family}.{m.group(1)}: pointer {pname} to unsupported {pointee}")
            if kind != "ptr" and kind not in _SCALAR_KINDS:
                raise ValueError(f"{family}.{m.group(1)}: parameter {pname} has type {kind}; "
                                 f"kernel scalars must be i64 or double")
        out[m.group(1)] = params
    return out


@functools.lru_cache(maxsize=None)
def big_block_kernels(family):
    """Names of the family's ``KERNEL_1024`` kernels (the only ones launched with more
    than ``BLOCK`` threads per block)."""
    src = _code_only(module_source(family))
    return frozenset(re.findall(r"\bKERNEL_1024\(\s*(\w+)\s*\)", src))


# ----------------------------------------------------------------------------- backends


class CupyBackend:
    """Real GPU: CuPy arrays, kernels compiled by NVRTC through cupy.RawModule."""

    name = "cupy"
    block_cap = 1024
    grid_cap = MAX_GRID

    def __init__(self):
        try:
            import cupy
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError("kernels.cuda needs CuPy (pip install cupy-cuda12x or "
                               "cupy-cuda13x) and a CUDA GPU") from e
        self.xp = cupy
        self._modules = {}
        self._functions = {}
        self._lock = threading.Lock()

    def is_array(self, a):
        return isinstance(a, self.xp.ndarray)

    def _module(self, family, dtype, device):
        key = (family, dtype, device)
        mod = self._modules.get(key)
        if mod is None:
            with self._lock:
                mod = self._modules.get(key)
                if mod is None:
                    mod = self.xp.RawModule(code=module_source(family),
                                            options=compile_options(family, dtype))
                    self._modules[key] = mod
        return mod

    def function(self, family, name, dtype):
        device = self.xp.cuda.runtime.getDevice()
        key = (family, name, dtype, device)
        fn = self._functions.get(key)
        if fn is None:
            fn = self._module(family, dtype, device).get_function(symbol(name, dtype))
            self._functions[key] = fn
        return fn

    def run(self, fn, grid, block, args):
        fn(grid, (block, 1, 1), args)


_backend = None
_backend_lock = threading.Lock()


def backend():
    """The active backend (CuPy unless :func:`set_backend` installed another)."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = CupyBackend()
    return _backend


def set_backend(b):
    """Install a backend (e.g. ``_emulator.EmulatorBackend()``); None restores CuPy."""
    global _backend
    _backend = b


def xp():
    """The array module the kernels work on (``cupy``; NumPy under the emulator)."""
    return backend().xp


# ----------------------------------------------------------------------------- launching


def _shape(a):
    return "(" + ", ".join(str(s) for s in a.shape) + ("," if a.ndim == 1 else "") + ")"


class Family:
    """The kernels of one ``.cu`` file; ``launch`` checks and runs one of them."""

    def __init__(self, family):
        self.family = family

    def launch(self, name, dtype, grid, block, *args):
        """Run kernel ``name`` in its ``dtype`` version on ``grid`` (blocks in x[, y])
        of ``block`` threads. Empty grids are skipped (CUDA rejects them)."""
        be = backend()
        dtype = np.dtype(dtype)
        params = signatures(self.family).get(name)
        label = f"{self.family}.{name}"
        if params is None:
            raise RuntimeError(f"{label}: no such kernel in kernels/cuda/{self.family}.cu")
        if dtype not in SCALARS:
            raise ValueError(f"{label}: no {dtype} version (the kernels are float32/float64)")
        if block > BLOCK and name not in big_block_kernels(self.family):
            raise RuntimeError(f"{label}: {block} threads per block needs KERNEL_1024")
        if len(args) != len(params):
            raise TypeError(f"{label}: {len(args)} arguments for {len(params)} parameters")
        conv = [_convert(be, label, dtype, p, a) for p, a in zip(params, args)]
        gx, gy = tuple(grid) if isinstance(grid, (tuple, list)) else (grid, 1)
        gx, gy = min(int(gx), be.grid_cap[0]), min(int(gy), be.grid_cap[1])
        if gx <= 0 or gy <= 0:
            return
        block = min(int(block), be.block_cap)
        be.run(be.function(self.family, name, dtype), (gx, gy, 1), block, conv)

    def launch_1d(self, name, dtype, n, *args):
        """Elementwise kernel over n items: BLOCK threads per block, enough blocks."""
        self.launch(name, dtype, -(-n // BLOCK), BLOCK, *args)

    def launch_rows(self, name, dtype, rows, row_len, *args):
        """One block per row (grid-stride over rows), sized to the row length."""
        self.launch(name, dtype, rows, row_block(row_len), *args)


def reduce_block(n):
    """Threads for one block reducing n values in a ``KERNEL_1024`` kernel: 1024 for
    long reductions (one block per channel of a big batch must pull megabytes), else
    :func:`row_block`."""
    return 1024 if n >= (1 << 16) else row_block(n)


def row_block(n):
    """Threads for a block that reduces n values: a multiple of 32, about 4 values
    per thread, at most 256."""
    return int(min(256, 32 * max(1, -(-n // 128))))


def _convert(be, label, dtype, param, a):
    kind, pointee, pname = param
    if kind == "ptr":
        if not be.is_array(a):
            raise ValueError(f"{label}: argument {pname} must be a device array, got "
                             f"{type(a).__name__}")
        want = dtype if pointee == "T" else _POINTER_DTYPES[pointee]
        if a.dtype != want:
            raise ValueError(f"{label}: argument {pname} has dtype {a.dtype} (shape {_shape(a)}), "
                             f"expected {want}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{label}: argument {pname} (shape {_shape(a)}) is not C-contiguous")
        return a
    if kind == "i64":
        return np.int64(operator.index(a))
    return np.float64(a)
