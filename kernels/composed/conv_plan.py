"""How one pass of a convolution runs: the ``ConvPlan`` each device's ``plan_conv`` makes and its
conv2d kernels take as ``plan=`` (tests pass their own to run every algorithm on every shape)."""
from typing import NamedTuple

from kernels.composed.shapes import conv_out_hw

PASSES = ("forward", "data", "weight")  # forward, backward-data, backward-weight


class ConvPlan(NamedTuple):
    """The algorithm of one pass and the settings its kernels need. Fields a device does not use
    keep their defaults (the CUDA kernels read only ``algo`` and ``chunk``)."""
    algo: str               # "1x1", "gemm", "direct" or (CPU) "winograd"
    chunk: int = 1          # "gemm" / "1x1": samples per GEMM (merged column layout)
    impl: str = ""          # CPU: the direct kernel of the pass: "vk", "vw" (C++) or "numba"
    isa: int = -1           # CPU C++ kernels: instruction-set copy, -1 = the best this CPU has
    parallel: bool = False  # CPU C++ kernels: all threads, or one (too little work to wake them)


def samples_per_chunk(x_shape, w_shape, stride, pad, dilate, itemsize, chunk_bytes):
    """Samples whose column matrix fits in ``chunk_bytes`` (at least one, at most N)."""
    N, C, H, W = x_shape
    kh, kw = w_shape[2:]
    OH, OW = conv_out_hw(H, W, (kh, kw), stride, pad, dilate)
    per_sample = C * kh * kw * OH * OW * itemsize
    return int(max(1, min(N, chunk_bytes // max(1, per_sample))))


def check_plan(fn, plan, op, algos, w_shape, stride, pad):
    """Raise ValueError unless ``plan`` can run pass ``op`` on this device: ``algos`` are the
    device's algorithms for the pass, "1x1" needs a 1x1 / stride 1 / pad 0 conv."""
    if not isinstance(plan, ConvPlan):
        raise TypeError(f"{fn}: plan must be a ConvPlan, got {type(plan).__name__}")
    if plan.algo not in algos:
        raise ValueError(f"{fn}: plan algorithm {plan.algo!r} cannot run the {op} pass here; "
                         f"expected one of {algos}")
    if plan.algo == "1x1" and not is_1x1(w_shape[2:], stride, pad):
        raise ValueError(f"{fn}: plan algorithm '1x1' needs a 1x1 kernel, stride 1 and pad 0, got "
                         f"kernel {tuple(w_shape[2:])}, stride {tuple(stride)}, pad {tuple(pad)}")
    if plan.chunk < 1:
        raise ValueError(f"{fn}: plan chunk must be >= 1 sample, got {plan.chunk}")


def is_1x1(kernel, stride, pad):
    """1x1 / stride 1 / pad 0: the input already is the column matrix."""
    return tuple(kernel) == (1, 1) and tuple(stride) == (1, 1) and tuple(pad) == (0, 0)
