"""The conv algorithm plan (kernels/cpu/conv.py: plan_conv): pinned choices on the seed models'
shapes, caching, dtype awareness and the kernels' checks of a given plan."""
import numpy as np
import pytest

from kernels.composed.conv_plan import ConvPlan
from kernels.cpu import conv

needs_ext = pytest.mark.skipif(conv._cext() is None, reason="the rules assume the C++ extension")

# Every conv pass of one training step of LeNet (batch 32 and 256, 28x28), ResNet-18 v1 (batch
# 16 on 49x49 and batch 2 on 224x224) and U-Net (depth 3, 16 filters, batch 4 on 64x64): (pass,
# x shape, w shape, stride, pad, dilate, groups, algorithm or "direct/<kernel>"), recorded from
# the rules as they were before plan_conv (commit bbc82fd) on a machine with the C++ extension.
# The rules read only shapes and which kernels are built, so the table holds on any such machine.
# Changed on purpose on 2026-12-04, measured (kernels/cpu/conv.py, the rules' docstrings): the
# strided 1x1 weight passes (and forward with >= 256 input channels) on outputs of <= 14x14 run
# the GEMM (_strided_1x1), and backward-data on the 16x256x4x4 map runs the GEMM
# (_few_pixels_long_columns), since small-map im2col/col2im got cheaper.
SEED_PASSES = [
    ("data", (2, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, "gemm"),
    ("data", (2, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "winograd"),
    ("data", (2, 64, 56, 56), (128, 64, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (2, 64, 56, 56), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("data", (2, 128, 28, 28), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, "winograd"),
    ("data", (2, 128, 28, 28), (256, 128, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (2, 128, 28, 28), (256, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("data", (2, 256, 14, 14), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (2, 256, 14, 14), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (2, 256, 14, 14), (512, 256, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("data", (2, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (4, 1, 64, 64), (16, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/numba"),
    ("data", (4, 16, 32, 32), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (4, 16, 64, 64), (1, 16, 1, 1), (1, 1), (0, 0), (1, 1), 1, "1x1"),
    ("data", (4, 16, 64, 64), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("data", (4, 16, 64, 64), (32, 16, 2, 2), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (4, 32, 16, 16), (64, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (4, 32, 32, 32), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (4, 32, 32, 32), (64, 32, 2, 2), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (4, 32, 64, 64), (16, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (4, 64, 16, 16), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (4, 64, 32, 32), (32, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (16, 3, 49, 49), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, "gemm"),
    ("data", (16, 64, 13, 13), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (16, 64, 13, 13), (128, 64, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (16, 64, 13, 13), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("data", (16, 128, 7, 7), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("data", (16, 128, 7, 7), (256, 128, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (16, 128, 7, 7), (256, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("data", (16, 256, 4, 4), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("data", (16, 256, 4, 4), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("data", (16, 256, 4, 4), (512, 256, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("data", (16, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("data", (32, 1, 28, 28), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/numba"),
    ("data", (32, 32, 14, 14), (32, 32, 5, 5), (1, 1), (0, 0), (1, 1), 1, "direct/vk"),
    ("data", (256, 1, 28, 28), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/numba"),
    ("data", (256, 32, 14, 14), (32, 32, 5, 5), (1, 1), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (2, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, "direct/vk"),
    ("forward", (2, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "winograd"),
    ("forward", (2, 64, 56, 56), (128, 64, 1, 1), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (2, 64, 56, 56), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (2, 128, 28, 28), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, "winograd"),
    ("forward", (2, 128, 28, 28), (256, 128, 1, 1), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (2, 128, 28, 28), (256, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (2, 256, 14, 14), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (2, 256, 14, 14), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("forward", (2, 256, 14, 14), (512, 256, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (2, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (4, 1, 64, 64), (16, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("forward", (4, 16, 32, 32), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (4, 16, 64, 64), (1, 16, 1, 1), (1, 1), (0, 0), (1, 1), 1, "1x1"),
    ("forward", (4, 16, 64, 64), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("forward", (4, 16, 64, 64), (32, 16, 2, 2), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (4, 32, 16, 16), (64, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (4, 32, 32, 32), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (4, 32, 32, 32), (64, 32, 2, 2), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (4, 32, 64, 64), (16, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("forward", (4, 64, 16, 16), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (4, 64, 32, 32), (32, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (16, 3, 49, 49), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, "direct/vk"),
    ("forward", (16, 64, 13, 13), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (16, 64, 13, 13), (128, 64, 1, 1), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (16, 64, 13, 13), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (16, 128, 7, 7), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (16, 128, 7, 7), (256, 128, 1, 1), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (16, 128, 7, 7), (256, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (16, 256, 4, 4), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("forward", (16, 256, 4, 4), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("forward", (16, 256, 4, 4), (512, 256, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("forward", (16, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("forward", (32, 1, 28, 28), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("forward", (32, 32, 14, 14), (32, 32, 5, 5), (1, 1), (0, 0), (1, 1), 1, "direct/vk"),
    ("forward", (256, 1, 28, 28), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("forward", (256, 32, 14, 14), (32, 32, 5, 5), (1, 1), (0, 0), (1, 1), 1, "direct/vk"),
    ("weight", (2, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, "direct/vk"),
    ("weight", (2, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (2, 64, 56, 56), (128, 64, 1, 1), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("weight", (2, 64, 56, 56), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (2, 128, 28, 28), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (2, 128, 28, 28), (256, 128, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("weight", (2, 128, 28, 28), (256, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (2, 256, 14, 14), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (2, 256, 14, 14), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("weight", (2, 256, 14, 14), (512, 256, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (2, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (4, 1, 64, 64), (16, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("weight", (4, 16, 32, 32), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (4, 16, 64, 64), (1, 16, 1, 1), (1, 1), (0, 0), (1, 1), 1, "1x1"),
    ("weight", (4, 16, 64, 64), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("weight", (4, 16, 64, 64), (32, 16, 2, 2), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("weight", (4, 32, 16, 16), (64, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (4, 32, 32, 32), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (4, 32, 32, 32), (64, 32, 2, 2), (2, 2), (0, 0), (1, 1), 1, "direct/vk"),
    ("weight", (4, 32, 64, 64), (16, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("weight", (4, 64, 16, 16), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (4, 64, 32, 32), (32, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (16, 3, 49, 49), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, "direct/vk"),
    ("weight", (16, 64, 13, 13), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (16, 64, 13, 13), (128, 64, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("weight", (16, 64, 13, 13), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (16, 128, 7, 7), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vk"),
    ("weight", (16, 128, 7, 7), (256, 128, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("weight", (16, 128, 7, 7), (256, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (16, 256, 4, 4), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (16, 256, 4, 4), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1, "gemm"),
    ("weight", (16, 256, 4, 4), (512, 256, 3, 3), (2, 2), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (16, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, "gemm"),
    ("weight", (32, 1, 28, 28), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("weight", (32, 32, 14, 14), (32, 32, 5, 5), (1, 1), (0, 0), (1, 1), 1, "direct/vk"),
    ("weight", (256, 1, 28, 28), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1, "direct/vw"),
    ("weight", (256, 32, 14, 14), (32, 32, 5, 5), (1, 1), (0, 0), (1, 1), 1, "direct/vk"),
]


def _expected(choice):
    algo, _, impl = choice.partition("/")
    return algo, impl


@needs_ext
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_shapes_keep_their_algorithms(dtype):
    wrong = []
    for op, x_shape, w_shape, stride, pad, dilate, groups, choice in SEED_PASSES:
        plan = conv.plan_conv(op, x_shape, w_shape, stride, pad, dilate, groups, dtype)
        algo, impl = _expected(choice)
        got = (plan.algo, plan.impl if algo == "direct" else "")
        if got != (algo, impl):
            wrong.append((op, x_shape, w_shape, stride, choice, got))
    assert not wrong, wrong


def test_seed_table_covers_every_algorithm():
    """The pin above means something only if the seed shapes exercise every rule's outcome."""
    choices = {c for *_, c in SEED_PASSES}
    assert {"1x1", "gemm", "winograd", "direct/vk", "direct/vw", "direct/numba"} <= choices


def test_plans_are_cached_per_shape():
    a = conv.plan_conv("forward", (8, 16, 14, 14), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    b = conv.plan_conv("forward", [8, 16, 14, 14], np.array([32, 16, 3, 3]), [1, 1], (1, 1),
                       (1, 1), 1, "float32")
    assert a is b
    c = conv.plan_conv("forward", (8, 16, 14, 14), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1,
                       np.float64)
    assert c is not a  # keyed by dtype too


def test_plan_is_dtype_aware():
    """A dtype without C++ kernels plans the Numba loops or GEMM; the chunk of samples per GEMM
    follows the itemsize (the column buffer has a byte budget)."""
    args = ((64, 32, 12, 12), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    half = conv.plan_conv("forward", *args, np.float16)
    assert half.impl == "numba" and half.algo == "gemm"  # 288 rows: too many for the Numba loops
    f32, f64 = (conv.plan_conv("forward", *args, dt) for dt in (np.float32, np.float64))
    assert f32.chunk == 2 * f64.chunk


def test_plan_rejects_unknown_pass():
    with pytest.raises(ValueError, match="op must be one of"):
        conv.plan_conv("backward", (1, 1, 4, 4), (1, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1)


def _call(plan, w_shape=(4, 3, 3, 3), stride=(1, 1), dtype=np.float32, op="forward"):
    x = np.ones((2, 3, 8, 8), dtype)
    w = np.ones(w_shape, dtype)
    pad = (w_shape[2] // 2, w_shape[3] // 2)
    if op == "forward":
        return conv.conv2d_forward(x, w, None, stride, pad, (1, 1), 1, plan=plan)
    y = conv.conv2d_forward(x, w, None, stride, pad, (1, 1), 1)
    return conv.conv2d_backward_data(y, w, x.shape, stride, pad, (1, 1), 1, plan=plan)


@pytest.mark.parametrize("plan,kwargs,message", [
    (ConvPlan("fft"), {}, "plan algorithm 'fft' cannot run the forward pass"),
    (ConvPlan("1x1"), {}, "'1x1' needs a 1x1 kernel"),
    (ConvPlan("gemm", chunk=0), {}, "chunk must be >= 1"),
    (ConvPlan("winograd"), dict(w_shape=(4, 3, 5, 5)), "'winograd' needs a 3x3"),
    (ConvPlan("direct", impl="simd"), {}, "impl must be 'vk', 'vw' or 'numba'"),
    (ConvPlan("direct", impl="vw"), dict(stride=(2, 2)), "'vw' needs stride 1 along W"),
    (ConvPlan("direct", impl="vk"), dict(stride=(2, 2), op="data"), "need stride 1"),
    (ConvPlan("direct", impl="vk"), dict(dtype=np.float16), "only 'numba' runs here"),
])
def test_kernels_reject_a_plan_they_cannot_run(plan, kwargs, message):
    if "numba" in message or "winograd" in message:
        if conv._cext() is None:
            pytest.skip("the message names the C++ kernels")
    with pytest.raises(ValueError, match=message):
        _call(plan, **kwargs)


def test_kernels_reject_a_plan_of_another_type():
    with pytest.raises(TypeError, match="plan must be a ConvPlan"):
        _call(("gemm", 1))


def test_weight_pass_has_no_winograd():
    x = np.ones((2, 3, 8, 8), np.float32)
    dy = np.ones((2, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="cannot run the weight pass"):
        conv.conv2d_backward_weight(dy, x, (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1,
                                    plan=ConvPlan("winograd"))


def test_cuda_plan():
    """kernels/cuda/conv.py plans without a GPU (no CuPy needed): 1x1, direct for depthwise
    convs, else GEMM on chunks of samples whose columns fit its 128 MiB budget."""
    from kernels.cuda import conv as gconv
    one = (1, 1), (0, 0), (1, 1)
    assert gconv.plan_conv("forward", (8, 16, 8, 8), (32, 16, 1, 1), *one, 1).algo == "1x1"
    assert gconv.plan_conv("data", (8, 16, 8, 8), (16, 1, 3, 3), (1, 1), (1, 1), (1, 1),
                           16).algo == "direct"
    big = gconv.plan_conv("weight", (64, 256, 56, 56), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1),
                          1, np.float32)
    per_sample = 256 * 9 * 56 * 56 * 4
    assert big.algo == "gemm" and big.chunk == (128 << 20) // per_sample
    half = gconv.plan_conv("weight", (64, 256, 56, 56), (256, 256, 3, 3), (1, 1), (1, 1),
                           (1, 1), 1, np.float16)
    assert half.chunk == (128 << 20) // (per_sample // 2)  # the budget is in bytes
