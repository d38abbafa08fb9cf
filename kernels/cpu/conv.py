"""2-D convolution kernels (NCHW), forward and backward, and the transposed conv.

Conventions (see kernels/README.md): plain functions on NumPy arrays; attributes
(``stride``, ``pad``, ``dilate``: (h, w) pairs, ``groups``: int) are already
validated by the caller; ``out=`` receives the result when given.

Weights: conv ``w`` is (K, C // groups, kh, kw). Transposed conv uses MXNet's
Deconvolution layout (C_in, C_out // groups, kh, kw), which is exactly the conv
weight of the convolution it is the adjoint of.

The algorithms, picked per pass by :func:`plan_conv` (a :class:`ConvPlan`, cached per shape;
every kernel also takes ``plan=`` to run a given one):

* ``"direct"``: no column matrix. With the C++ extension: register-blocked
  kernels (``kernels.cpu._im2col.conv2d_direct*``, see csrc/direct_conv.cpp) in two
  layouts, "vk" (vector lanes over output channels) and "vw" (lanes over output
  pixels), picked by :func:`_direct_impl`; the backward-data pass of a stride-1
  conv runs as the forward kernel on dy with flipped, transposed weights. The
  Numba loops below are used for depthwise convs, strided backward-data with
  few channels, and whenever the extension is not built (or lacks the dtype).
* ``"gemm"``: im2col (C++) + BLAS GEMM on chunks of samples, so the column
  buffer stays cache-sized and is reused between calls (composed in
  kernels/composed/conv_gemm.py, as on the GPU).
* ``"1x1"``: 1x1 / stride 1 / pad 0: the input already *is* the column matrix.
* ``"winograd"``: F(4x4, 3x3) (:mod:`kernels.cpu.winograd`, C++) for the forward
  and backward-data passes of 3x3 / stride 1 / dilation 1 / ungrouped convs with
  many channels on wide images; the weight gradient of such convs is "direct".

Threads: BLAS, the OpenMP kernels of the extension and Numba's parallel loops
each use all cores (the extension follows ``numba.get_num_threads()``, which
``engine.set_num_threads`` sets), one after the other (never nested). See
kernels/__init__.py for why idle OpenMP threads must sleep rather than spin.
"""
import functools
import threading
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from kernels.composed.conv_gemm import (GemmDevice, TransposedConv, as3d, backward_data_gemm,
                                        backward_weight_gemm, finish, forward_gemm)
from kernels.composed.conv_plan import PASSES, ConvPlan, check_plan, is_1x1, samples_per_chunk
from kernels.composed.shapes import conv_out_hw
from kernels.cpu import im2col as _im2col_mod
from kernels.cpu import winograd as _winograd
from kernels.cpu.im2col import col2im, im2col
from kernels.cpu.parallel import parallel_njit, twin

__all__ = [
    "ConvPlan", "plan_conv",
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_backward_bias",
    "conv2d_transpose_forward", "conv2d_transpose_backward_data",
    "conv2d_transpose_backward_weight", "conv2d_transpose_backward_bias",
]

# Workspaces up to this size are kept for reuse; bigger ones are freed after use.
_KEEP_BYTES = 64 << 20

# -------------------------------------------------------------------- helpers


class _Workspaces(threading.local):
    def __init__(self):
        self.bufs = {}


_ws = _Workspaces()


def _workspace(slot, shape, dtype):
    """A scratch array of ``shape``, reused across calls (per thread, per slot)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if size * dtype.itemsize > _KEEP_BYTES:
        return np.empty(shape, dtype)
    key = (slot, dtype)
    buf = _ws.bufs.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype)
        _ws.bufs[key] = buf
    return buf[:size].reshape(shape)


def _no_bias(dtype):
    # Stand-in for b=None so the Numba kernels keep one signature per dtype.
    return np.zeros(1, dtype)


def _output(out, shape, dtype):
    """(array to compute into, array the caller gets). They differ only when the
    caller's ``out`` is not C-contiguous, since the kernels rely on reshape views."""
    if out is None:
        arr = np.empty(shape, dtype)
        return arr, arr
    if out.flags.c_contiguous:
        return out, out
    return np.empty(shape, dtype), out


def _cext(dtype=np.float32):
    """The C++ extension if it has the direct kernels for ``dtype``, else None."""
    ext = _im2col_mod._ext
    if ext is None or not hasattr(ext, "conv2d_direct") or np.dtype(dtype) not in _DIRECT_DTYPES:
        return None
    return ext


_DIRECT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------- the plan
# plan_conv picks a pass's algorithm by the first rule of _ALGO_RULES that holds, and the direct
# kernel by _direct_impl. The rules were measured on a 2-core AVX-512 machine (Zen 5, OpenBLAS
# 0.3.31, float32, min of 10 runs with every algorithm forced in turn in one process, 25 shapes:
# LeNet, the benchmarks/kernels.py shapes, ResNet 3x3 layers with C = 128..512, grouped, strided,
# U-Net, conv1d). With the C++ extension, where no rule says otherwise, the direct kernels beat
# im2col + GEMM on every non-1x1 shape by 1.1-4x. Each threshold is named by the rule that reads
# it, whose docstring holds its measurements.

_LIMITS = dict(
    numba_direct_max_rows={"forward": 36, "data": 9, "weight": 64},  # _numba_direct_wins
    gemm_max_pixels={"forward": 4, "data": 16, "weight": 16}, gemm_min_rows=1024,  # _few_pixels_...
    strided_1x1_gemm_min_rows={"forward": 256, "data": 1, "weight": 1},  # _strided_1x1
    strided_1x1_max_pixels=196,                                              # _strided_1x1
    vk_weight_max_partial=1 << 19,                                     # _big_weight_partial_sum
    wino_min_channels=32, wino_min_width=48, wino_min_width_many=28,   # _winograd_wins
    vw_max_rows=40, numba_max_cout=2,                                  # _direct_impl
    # below this many multiply-adds one thread does the whole pass (waking the OpenMP threads
    # costs ~10-50 us here)
    parallel_min_macs=1 << 19,
    # column-buffer budget per chunk of samples: big enough for efficient GEMMs, small enough
    # to stay in the 32 MiB L3 together with the GEMM operands
    chunk_bytes=8 << 20,
    # output maps with at least this many pixels run one sample per GEMM: one sample already
    # makes a wide GEMM, merging samples would only add the transposing copies of y / dy
    wide_pixels=1024,
)


class _Pass(NamedTuple):
    """One pass of a convolution, as the rules see it (the key of the plan cache)."""
    op: str  # "forward", "data" (backward-data) or "weight" (backward-weight)
    x_shape: tuple
    w_shape: tuple
    stride: tuple
    pad: tuple
    dilate: tuple
    groups: int
    dtype: np.dtype
    ext: object  # the C++ extension when it has direct kernels for dtype, else None

    @property
    def rows(self):
        """Rows of one group's column matrix: the GEMM's inner dimension (forward)."""
        K, Cg, kh, kw = self.w_shape
        return Cg * kh * kw

    @property
    def out_hw(self):
        return conv_out_hw(self.x_shape[2], self.x_shape[3], self.w_shape[2:], self.stride,
                           self.pad, self.dilate)

    @property
    def pixels(self):
        """Output pixels per sample of the pass's GEMM: x's for backward-data, else y's."""
        if self.op == "data":
            return self.x_shape[2] * self.x_shape[3]
        OH, OW = self.out_hw
        return OH * OW


def _input_is_columns(p):
    """1x1 / stride 1 / pad 0: x already is the column matrix."""
    return is_1x1(p.w_shape[2:], p.stride, p.pad)


def _winograd_wins(p):
    """F(4x4, 3x3) beats the direct kernel when both channel counts are >= 32 and the output rows
    are wide: 64 -> 64 on 56x56 5.8 vs 8.3 ms, on 112x112 1.5x, 32 -> 32 on 56x56 1.2x,
    128 -> 128 on 28x28 1.2x; but 32 -> 32 on 32x32 0.57x, 256 -> 256 on 14x14 0.6x, 16 channels
    0.95-1.0x (its transforms cost ~50 cycles per tile and channel, vectorized over the tiles of a
    row, so narrow rows waste lanes). No Winograd weight gradient."""
    if p.op == "weight" or not _has_winograd(p):
        return False
    K, C = p.w_shape[0], p.w_shape[1]
    if p.op == "data":  # a forward conv from K to C channels, as wide as x
        K, C, ow = C, K, p.x_shape[3]
    else:
        ow = p.x_shape[3] + 2 * p.pad[1] - 2
    if min(C, K) < _LIMITS["wino_min_channels"]:
        return False
    return ow >= _LIMITS["wino_min_width"] or (ow >= _LIMITS["wino_min_width_many"]
                                               and min(C, K) >= 128)


def _depthwise(p):
    """One input channel per group: a GEMM's inner dimension would be just kh*kw."""
    return p.groups > 1 and p.w_shape[1] == 1


def _numba_only(p):
    """No C++ direct kernel for the pass: no extension, or strided backward-data (col2im wins
    over the Numba loops but for the tiniest columns)."""
    return p.ext is None or (p.op == "data" and tuple(p.stride) != (1, 1))


def _numba_direct_wins(p):
    """Few input channels (timed as above for C = 1..8, 3x3 and 5x5): the column matrix is
    kh*kw times bigger than x but the GEMM does little work per element, so reading x wins."""
    return _numba_only(p) and p.rows <= _LIMITS["numba_direct_max_rows"][p.op]


def _few_pixels_long_columns(p):
    """ResNet's last stages (e.g. 512 -> 512 on 2x2, batch 16): a register block of the direct
    kernel spans 14 output pixels, so 4 leave most lanes idle; one GEMM over the batch wins
    (forward 1.8 vs 3.0 ms, data 2.0 vs 4.7 ms there; 256 -> 512 to 2x2: 1.1 vs 1.5 ms). The
    same for the weight gradient up to 4x4 outputs (128 -> 256 / 2 to 4x4: 0.9 vs 1.4 ms) and,
    since im2col / col2im copy small maps through a tap table (2026-12-04), for backward-data
    on 4x4 maps: 256 -> 256 3x3 on 4x4, batch 16, 2 threads, blocks of 6 calls per algorithm
    twice: gemm 3.7 / 2.2 ms vs direct 4.1 / 2.9 (the forward pass there stays direct: 1.7 vs
    gemm 2.3)."""
    return p.rows >= _LIMITS["gemm_min_rows"] and p.pixels <= _LIMITS["gemm_max_pixels"][p.op]


def _strided_1x1(p):
    """A strided 1x1 conv (ResNet's downsampling shortcuts): its im2col is a plain subsample of
    C rows, so the GEMM over the whole batch beats the direct kernels in the weight-gradient
    pass and, with >= 256 input channels, forward (batch 16, 2 threads, ms, gemm vs direct,
    2026-12-04): weight 256 -> 512 on 4x4 0.22 / 0.33 vs 0.89 / 1.23, 128 -> 256 on 7x7
    0.20 / 0.31 vs 0.28 / 0.42, 64 -> 128 on 13x13 0.28 / 0.21 vs 0.31 / 0.32; forward
    256 -> 512 0.27 / 0.37 vs 0.33 / 0.38, but 128 -> 256 0.24 / 0.27 vs 0.23 / 0.30 (a tie);
    batch 2: weight 128 -> 256 on 28x28 0.42 / 0.37 vs 0.75 / 0.98, 256 -> 512 on 14x14
    0.40 / 0.43 vs 1.03 / 1.11, forward there 0.44 / 0.35 vs 0.53 / 0.41. Its backward-data
    pass is the GEMM already (strided, see _numba_only). Measured up to 14x14 outputs, so
    larger ones keep the direct kernels."""
    return (tuple(p.w_shape[2:]) == (1, 1) and tuple(p.stride) != (1, 1)
            and p.pixels <= _LIMITS["strided_1x1_max_pixels"]
            and p.rows >= _LIMITS["strided_1x1_gemm_min_rows"][p.op])


def _big_weight_partial_sum(p):
    """The vk weight-gradient kernel keeps one partial sum of (rows, channels rounded up to its
    channel blocks: 1, 2 or 4 vectors of 16 float32 lanes) per thread; when that is large
    (>= 2 MiB) GEMM wins: C = K = 256 at 3x3 on 14x14 11.1 ms direct vs 10.2 ms GEMM,
    C = K = 512 on 7x7 21 vs 10.4 ms (but C = K = 128 on 28x28 10.0 vs 14.0)."""
    if p.op != "weight" or _direct_impl(p) != "vk":
        return False
    Kg = p.w_shape[0] // p.groups
    block = 16 if Kg <= 16 else 64 if Kg >= 64 else 32
    return p.groups * p.rows * (-(-Kg // block) * block) > _LIMITS["vk_weight_max_partial"]


# (algorithm, rule): the first rule that holds for a pass picks its algorithm.
_ALGO_RULES = (
    ("1x1", _input_is_columns),
    ("winograd", _winograd_wins),
    ("direct", _depthwise),
    ("direct", _numba_direct_wins),
    ("gemm", _numba_only),
    ("gemm", _few_pixels_long_columns),
    ("gemm", _strided_1x1),
    ("gemm", _big_weight_partial_sum),
    ("direct", lambda p: True),
)


def _direct_impl(p):
    """Which direct kernel runs the pass: "vk", "vw" (C++) or "numba".

    "vw" (vector lanes over output pixels) is picked over "vk" (lanes over output channels)
    when a pixel's reduction is short (rows <= vw_max_rows: the vk tile's transposing store
    dominates), when there are fewer than 16 output channels per group (most vk lanes would be
    padding), or with 16 channels and rows of >= 48 pixels: e.g. C = 1..4 -> 32 3x3 on 28x28:
    vw 0.16-0.23 ms vs vk 0.21-0.32; C = 8: vk 0.39 vs vw 0.41; 16 -> 16 on 64x64: vw 0.24 vs
    vk 0.42; 16 -> 16 per group on 28x28: vk 0.75 vs vw 0.91. With one or two output channels
    (e.g. backward-data of a 1-channel input) the Numba loops (one thread per output plane) beat
    both C++ layouts: 0.17 ms vs vw 0.29 for 16 -> 1 3x3 on 28x28, N = 32."""
    K, Cg, kh, kw = p.w_shape
    if p.ext is None or (p.groups > 1 and Cg == 1):
        return "numba"
    if p.op == "data":
        if tuple(p.stride) != (1, 1):
            return "numba"
        # runs as a forward conv with K // groups input and Cg output channels per
        # group, producing rows as wide as x's
        cout, rows, ow = Cg, (K // p.groups) * kh * kw, p.x_shape[3]
    else:
        cout, rows, ow = K // p.groups, Cg * kh * kw, p.out_hw[1]
    if cout <= _LIMITS["numba_max_cout"] and p.op != "weight":
        return "numba"
    if p.stride[1] == 1 and (rows <= _LIMITS["vw_max_rows"] or cout < 16
                             or (cout == 16 and ow >= 48)):
        return "vw"
    return "vk"


def _macs(p, algo):
    """Multiply-adds of the pass's C++ kernel (Winograd: 4 per output and input channel)."""
    N, C, H, W = p.x_shape
    K, Cg, kh, kw = p.w_shape
    OH, OW = p.out_hw
    if algo == "winograd":
        return N * C * H * W * K * 4 if p.op == "data" else N * K * OH * OW * Cg * 4
    return N * K * OH * OW * Cg * kh * kw


def _gemm_chunk(p):
    if p.out_hw[0] * p.out_hw[1] >= _LIMITS["wide_pixels"]:
        return 1
    return samples_per_chunk(p.x_shape, p.w_shape, p.stride, p.pad, p.dilate, p.dtype.itemsize,
                             _LIMITS["chunk_bytes"])


def _plan(p):
    algo = next(algo for algo, holds in _ALGO_RULES if holds(p))
    return ConvPlan(algo, chunk=_gemm_chunk(p), impl=_direct_impl(p),
                    parallel=_macs(p, algo) >= _LIMITS["parallel_min_macs"])


def _pass(op, x_shape, w_shape, stride, pad, dilate, groups, dtype):
    if op not in PASSES:
        raise ValueError(f"plan_conv: op must be one of {PASSES}, got {op!r}")
    ints = lambda v: tuple(int(s) for s in v)  # noqa: E731
    dtype = np.dtype(dtype)
    return _Pass(op, ints(x_shape), ints(w_shape), ints(stride), ints(pad), ints(dilate),
                 int(groups), dtype, _cext(dtype))


def plan_conv(op, x_shape, w_shape, stride, pad, dilate, groups, dtype=np.float32):
    """The ConvPlan of pass ``op`` ("forward", "data" = backward-data, "weight" =
    backward-weight) of a conv of an x of ``x_shape`` with a weight of ``w_shape`` in ``dtype``:
    a pure function of its arguments and of which C++ kernels are built, cached per shape.
    ``plan.impl`` is the direct kernel of the pass whatever ``plan.algo`` is, so that
    ``plan._replace(algo="direct")`` forces the direct algorithm as the rules would run it."""
    dtype = np.dtype(dtype)
    try:  # the kernels' shapes and attributes are tuples already: the key as given
        return _cached_plan(op, x_shape, w_shape, stride, pad, dilate, groups, dtype,
                            _cext(dtype))
    except TypeError:  # an unhashable argument (a list, an array): the same plan from tuples
        p = _pass(op, x_shape, w_shape, stride, pad, dilate, groups, dtype)
        return _cached_plan(*p)


@functools.lru_cache(maxsize=4096)
def _cached_plan(op, x_shape, w_shape, stride, pad, dilate, groups, dtype, ext):
    p = _pass(op, x_shape, w_shape, stride, pad, dilate, groups, dtype)
    return _plan(p._replace(ext=ext))


def _has_winograd(p):
    return (p.ext is not None and hasattr(p.ext, "conv2d_winograd43")
            and _winograd.applicable(p.w_shape, p.stride, p.dilate, p.groups))


_ALGOS = {"forward": ("1x1", "gemm", "direct", "winograd"),
          "data": ("1x1", "gemm", "direct", "winograd"), "weight": ("1x1", "gemm", "direct")}


def _checked_plan(fn, plan, op, x_shape, w_shape, stride, pad, dilate, groups, dtype):
    """``plan``, or plan_conv's when it is None; raises ValueError for a plan the kernels of this
    pass cannot run (e.g. Winograd on a 5x5 conv, a C++ direct kernel without the extension)."""
    if plan is None:
        return plan_conv(op, x_shape, w_shape, stride, pad, dilate, groups, dtype)
    p = _pass(op, x_shape, w_shape, stride, pad, dilate, groups, dtype)
    check_plan(fn, plan, op, _ALGOS[op], w_shape, stride, pad)
    if plan.algo == "winograd" and not _has_winograd(p):
        raise ValueError(f"{fn}: plan algorithm 'winograd' needs a 3x3 / stride 1 / dilation 1 "
                         f"/ ungrouped conv and the C++ extension for {p.dtype}, got weight "
                         f"{p.w_shape}, stride {p.stride}, dilate {p.dilate}, groups {groups}")
    if plan.algo == "direct":
        _check_direct_impl(fn, plan.impl, p)
    return plan


def _check_direct_impl(fn, impl, p):
    if impl not in ("vk", "vw", "numba"):
        raise ValueError(f"{fn}: plan impl must be 'vk', 'vw' or 'numba', got {impl!r}")
    if impl == "numba":
        return
    if p.ext is None:
        raise ValueError(f"{fn}: plan impl {impl!r} needs the C++ extension's direct kernels "
                         f"for {p.dtype}; only 'numba' runs here")
    if p.op == "data" and p.stride != (1, 1):
        raise ValueError(f"{fn}: the C++ direct backward-data kernels need stride 1, got stride "
                         f"{p.stride}; use impl 'numba'")
    if impl == "vw" and p.stride[1] != 1:
        raise ValueError(f"{fn}: plan impl 'vw' needs stride 1 along W, got stride {p.stride}")


def _threads(plan):
    return numba.get_num_threads() if plan.parallel else 1


def _flipped(w, groups):
    """Weights of the stride-1 conv that computes dx from dy: (G*Cg, Kg, kh, kw),
    w'[g*Cg + c, k, i, j] = w[g*Kg + k, c, kh-1-i, kw-1-j]."""
    K, Cg, kh, kw = w.shape
    wg = w.reshape(groups, K // groups, Cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return np.ascontiguousarray(wg).reshape(groups * Cg, K // groups, kh, kw)


# ------------------------------------------------------------- Numba kernels


@twin(cache=True)
def _bias_act(y, b, has_bias, relu):
    # y: (N, K, L). One pass over the output while it is still in cache.
    N, K, L = y.shape
    for p in prange(N * K):
        row = y[p // K, p % K]
        zero = row.dtype.type(0)
        bk = b[p % K] if has_bias else zero
        if relu:
            for t in range(L):
                v = row[t] + bk
                row[t] = zero if v < 0 else v  # NaN stays NaN, as in np.maximum
        else:
            for t in range(L):
                row[t] += bk


# Direct kernels. Each thread copies one input plane into a zero-padded
# (Hp, Wp) buffer, so the loops need no bounds checks. With stride 1 the
# output is computed on the padded-width grid (OH rows of Wp, the last Wp-OW
# columns of each row are garbage and dropped): every kernel tap (i, j) is
# then ONE long contiguous loop over the plane, which vectorizes well, instead
# of OH short row loops. Indexing goes through views starting at 0 so Numba
# can drop its negative-index checks (they block vectorization).


@njit(cache=True, inline="always")
def _pad_into(src, ph, pw, Wp, dst):
    H, W = src.shape
    for h in range(H):
        row = dst[(h + ph) * Wp + pw:]
        s = src[h]
        for t in range(W):
            row[t] = s[t]


@twin(cache=True, fastmath=True)
def _bias_grad(dy, db):
    # dy: (N, K, L). Threads split the channels; float64 accumulation keeps
    # float32 sums over N*L (often 10^5+) terms accurate at no cost, since the
    # loop is bound by memory bandwidth (fastmath lets it vectorize).
    N, K, L = dy.shape
    for k in prange(K):
        acc = 0.0
        for n in range(N):
            row = dy[n, k]
            for t in range(L):
                acc += row[t]
        db[k] = acc


@parallel_njit(cache=True, fastmath=True)
def _direct_forward(x, w, b, has_bias, relu, sh, sw, ph, pw, dh, dw, out):
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    OH, OW = out.shape[2], out.shape[3]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    Kg = K // (C // Cg)
    flat = sh == 1 and sw == 1
    rowlen = Wp if flat else OW
    M = (OH - 1) * Wp + OW  # flat grid positions that matter
    for p in prange(N * K):
        n = p // K
        k = p % K
        c0 = (k // Kg) * Cg
        xpad = np.zeros(Hp * Wp, x.dtype)
        acc = np.zeros(OH * rowlen, x.dtype)
        for c in range(Cg):
            _pad_into(x[n, c0 + c], ph, pw, Wp, xpad)
            for i in range(kh):
                for j in range(kw):
                    wv = w[k, c, i, j]
                    if flat:
                        xs = xpad[i * dh * Wp + j * dw:]
                        for q in range(M):
                            acc[q] += wv * xs[q]
                    else:
                        for oh in range(OH):
                            xs = xpad[(oh * sh + i * dh) * Wp + j * dw:]
                            a = acc[oh * OW:]
                            for t in range(OW):
                                a[t] += wv * xs[t * sw]
        zero = out.dtype.type(0)
        bk = b[k] if has_bias else zero
        for oh in range(OH):
            a = acc[oh * rowlen:]
            o = out[n, k, oh]
            for t in range(OW):
                v = a[t] + bk
                o[t] = zero if relu and v < 0 else v


@parallel_njit(cache=True, fastmath=True)
def _direct_backward_data(dy, w, sh, sw, ph, pw, dh, dw, dx):
    N, K, OH, OW = dy.shape
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    Cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    Kg = K // (C // Cg)
    flat = sh == 1 and sw == 1
    M = (OH - 1) * Wp + OW
    # One thread owns each dx plane, so the scatter needs no atomics.
    for p in prange(N * C):
        n = p // C
        ci = p % C
        c = ci % Cg
        k0 = (ci // Cg) * Kg
        dxpad = np.zeros(Hp * Wp, dx.dtype)
        grid = np.zeros(OH * Wp, dx.dtype)  # dy on the padded-width grid
        for k in range(k0, k0 + Kg):
            if flat:
                _pad_into(dy[n, k], 0, 0, Wp, grid)  # garbage columns stay 0
            for i in range(kh):
                for j in range(kw):
                    wv = w[k, c, i, j]
                    if flat:
                        d = dxpad[i * dh * Wp + j * dw:]
                        for q in range(M):
                            d[q] += wv * grid[q]
                    else:
                        for oh in range(OH):
                            d = dxpad[(oh * sh + i * dh) * Wp + j * dw:]
                            g = dy[n, k, oh]
                            for t in range(OW):
                                d[t * sw] += wv * g[t]
        for h in range(H):
            src = dxpad[(h + ph) * Wp + pw:]
            dst = dx[n, ci, h]
            for t in range(W):
                dst[t] = src[t]


@parallel_njit(cache=True, fastmath=True)
def _direct_backward_weight(dy, x, sh, sw, ph, pw, dh, dw, dwt):
    N, K, OH, OW = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Cg, kh, kw = dwt.shape[1], dwt.shape[2], dwt.shape[3]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    Kg = K // (C // Cg)
    flat = sh == 1 and sw == 1
    M = (OH - 1) * Wp + OW
    # One thread owns each (k, c) filter slice, so no reduction across threads.
    for p in prange(K * Cg):
        k = p // Cg
        c = p % Cg
        ci = (k // Kg) * Cg + c
        xpad = np.zeros(Hp * Wp, x.dtype)
        grid = np.zeros(OH * Wp, x.dtype)
        acc = np.zeros(kh * kw, x.dtype)
        for n in range(N):
            _pad_into(x[n, ci], ph, pw, Wp, xpad)
            if flat:
                _pad_into(dy[n, k], 0, 0, Wp, grid)
            for i in range(kh):
                for j in range(kw):
                    s = x.dtype.type(0)
                    if flat:
                        xs = xpad[i * dh * Wp + j * dw:]
                        for q in range(M):
                            s += grid[q] * xs[q]
                    else:
                        for oh in range(OH):
                            xs = xpad[(oh * sh + i * dh) * Wp + j * dw:]
                            g = dy[n, k, oh]
                            for t in range(OW):
                                s += g[t] * xs[t * sw]
                    acc[i * kw + j] += s
        for i in range(kh):
            for j in range(kw):
                dwt[k, c, i, j] = acc[i * kw + j]


# ------------------------------------------------------------ GEMM algorithms
# kernels/composed/conv_gemm.py composes them from the primitives below; the
# (K, nb, L) <-> (nb, K, L) moves of GEMM results and dy are small Numba kernels
# (fused with bias/ReLU).


@twin(cache=True)
def _unmerge_bias_act(yt, b, has_bias, relu, y):
    # yt: (K, nb, L) -> y: (nb, K, L), adding bias / applying ReLU on the way.
    K, nb, L = yt.shape
    for p in prange(nb * K):
        n = p // K
        k = p % K
        src = yt[k, n]
        dst = y[n, k]
        zero = y.dtype.type(0)
        bk = b[k] if has_bias else zero
        for t in range(L):
            v = src[t] + bk
            dst[t] = zero if relu and v < 0 else v


@twin(cache=True)
def _merge(dy, dyt):
    # dy: (nb, K, L) -> dyt: (K, nb, L)
    nb, K, L = dy.shape
    for p in prange(nb * K):
        src = dy[p // K, p % K]
        dst = dyt[p % K, p // K]
        for t in range(L):
            dst[t] = src[t]


def _from_channel_major(src, dst, bias, relu):
    _unmerge_bias_act(src, bias if bias is not None else _no_bias(dst.dtype), bias is not None,
                      relu, dst)


def _bias_act_in_place(y3, bias, relu):
    _bias_act(y3, bias if bias is not None else _no_bias(y3.dtype), bias is not None, relu)


def _as_array(fn, name, a, dtype=None, ndim=None):
    a = np.ascontiguousarray(a, dtype=dtype)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {a.shape}")
    return a


_GEMM = GemmDevice(xp=lambda: np, im2col=im2col, col2im=col2im, scratch=_workspace,
                   to_channel_major=_merge,
                   from_channel_major=_from_channel_major, bias_act=_bias_act_in_place,
                   as_array=_as_array,
                   # the CPU kernels trust their out buffers (kernels/README.md)
                   check_out=lambda fn, out, shape, dtype: None)


# ---------------------------------------------------------------- conv2d API
# Each pass runs by ``plan`` (a ConvPlan; None: plan_conv's, from the shapes and dtype).


def conv2d_forward(x, w, b, stride, pad, dilate, groups, act=None, out=None, plan=None):
    """y = conv2d(x, w) + b, optionally followed by ReLU (``act="relu"``).

    x: (N, C, H, W); w: (K, C // groups, kh, kw); b: (K,) or None.
    Returns y: (N, K, OH, OW) with OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1.
    """
    fn = "conv2d_forward"
    if act not in (None, "relu"):
        raise ValueError(f"{fn}: unsupported fused activation {act!r}")
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    b = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    OH, OW = conv_out_hw(H, W, (kh, kw), stride, pad, dilate)
    y, out = _output(out, (N, K, OH, OW), x.dtype)
    plan = _checked_plan(fn, plan, "forward", x.shape, w.shape, stride, pad, dilate, groups,
                         x.dtype)
    relu = act == "relu"
    if plan.algo == "winograd":
        _winograd.conv2d_winograd(_cext(x.dtype), x, w, b, pad, relu, y, plan.isa, _threads(plan))
    elif plan.algo == "direct" and plan.impl == "numba":
        _direct_forward(x, w, b if b is not None else _no_bias(x.dtype), b is not None, relu,
                        *stride, *pad, *dilate, y)
    elif plan.algo == "direct":
        _cext(x.dtype).conv2d_direct(x, w, b, *stride, *pad, *dilate, groups, relu, y, plan.impl,
                                     plan.isa, _threads(plan))
    else:
        forward_gemm(_GEMM, plan, x, w, b, stride, pad, dilate, groups, act, y)
    return finish(y, out)


def conv2d_backward_data(dy, w, x_shape, stride, pad, dilate, groups, out=None, plan=None):
    """dx (of shape ``x_shape``) = gradient of conv2d w.r.t. its input."""
    dy = np.ascontiguousarray(dy)
    w = np.ascontiguousarray(w, dtype=dy.dtype)
    x_shape = tuple(int(s) for s in x_shape)
    dx, out = _output(out, x_shape, dy.dtype)
    plan = _checked_plan("conv2d_backward_data", plan, "data", x_shape, w.shape, stride, pad,
                         dilate, groups, dy.dtype)
    if plan.algo == "winograd":
        # dx = the stride-1 conv of dy with flipped, transposed weights (see below)
        pad2 = (2 - pad[0], 2 - pad[1])
        _winograd.conv2d_winograd(_cext(dy.dtype), dy, _flipped(w, 1), None, pad2, False, dx,
                                  plan.isa, _threads(plan))
    elif plan.algo == "direct" and plan.impl == "numba":
        _direct_backward_data(dy, w, *stride, *pad, *dilate, dx)
    elif plan.algo == "direct":
        # stride 1: dx is the conv of dy with the flipped, transposed weights
        # and padding dilate*(k-1) - pad (negative: the kernel crops).
        K, Cg, kh, kw = w.shape
        pad2 = (dilate[0] * (kh - 1) - pad[0], dilate[1] * (kw - 1) - pad[1])
        _cext(dy.dtype).conv2d_direct(dy, _flipped(w, groups), None, 1, 1, *pad2, *dilate, groups,
                                      False, dx, plan.impl, plan.isa, _threads(plan))
    else:
        backward_data_gemm(_GEMM, plan, dy, w, stride, pad, dilate, groups, dx)
    return finish(dx, out)


def conv2d_backward_weight(dy, x, w_shape, stride, pad, dilate, groups, out=None, plan=None):
    """dw (of shape ``w_shape``) = gradient of conv2d w.r.t. its weight."""
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x, dtype=dy.dtype)
    w_shape = tuple(int(s) for s in w_shape)
    dw, out = _output(out, w_shape, dy.dtype)
    plan = _checked_plan("conv2d_backward_weight", plan, "weight", x.shape, w_shape, stride, pad,
                         dilate, groups, dy.dtype)
    if plan.algo == "direct" and plan.impl == "numba":
        _direct_backward_weight(dy, x, *stride, *pad, *dilate, dw)
    elif plan.algo == "direct":
        _cext(dy.dtype).conv2d_direct_bwt(dy, x, *stride, *pad, *dilate, groups, dw, plan.impl,
                                          plan.isa, _threads(plan))
    else:
        backward_weight_gemm(_GEMM, plan, dy, x, stride, pad, dilate, groups, dw)
    return finish(dw, out)


def conv2d_backward_bias(dy, out=None):
    """db = dy summed over N, H, W (works for any (N, K, ...) layout)."""
    dy = np.ascontiguousarray(dy)
    db, out = _output(out, (dy.shape[1],), dy.dtype)
    _bias_grad(as3d(dy), db)
    return finish(db, out)


# ------------------------------------------------------- transposed conv2d
# kernels/composed/conv_gemm.py composes them from the conv2d kernels above.

_TRANSPOSED = TransposedConv(_GEMM, conv2d_forward, conv2d_backward_data, conv2d_backward_weight)
conv2d_transpose_forward = _TRANSPOSED.forward
conv2d_transpose_backward_data = _TRANSPOSED.backward_data
conv2d_transpose_backward_weight = _TRANSPOSED.backward_weight
conv2d_transpose_backward_bias = conv2d_backward_bias
