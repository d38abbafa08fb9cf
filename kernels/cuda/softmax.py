"""Softmax, log-softmax and fused softmax-cross-entropy on CuPy arrays, over any axis:
the GPU twin of ``kernels/cpu/softmax.py`` (same functions, arguments, returns and
numerics; see that module for the formulas).

The array is viewed as (outer, K, inner) with K the softmax axis. Long rows
(inner == 1, K > ``_SHORT_ROW``) get one thread block per row (``*_rows`` kernels,
block reductions); everything else gets one thread per (outer, inner) column sweeping
K (``*_cols``), which is coalesced for inner > 1 and avoids idle threads for short
rows. Sparse and dense labels share the forward kernels; sparse labels are passed as
int64 (float labels are truncated once here, as on the CPU).
"""
import numpy as np

from kernels.composed.shapes import split_axis

from . import _runtime as rt
from ._util import as_dtype, dummy, fmt_shape, out_buffer, outs, require_device, require_float

__all__ = [
    "softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "check_labels",
]

_k = rt.Family("softmax")

# Rows up to this length take one thread per row: a 32-thread block per row would
# leave most of its threads idle and pay for block synchronization.
_SHORT_ROW = 64


def _use_rows(K, inner):
    return inner == 1 and K > _SHORT_ROW


def _loss_shape(shape, axis):
    ax = axis % len(shape)
    return tuple(shape[:ax]) + tuple(shape[ax + 1:])


def _same_shape(fn, name, a, shape, dtype):
    """``a`` as a contiguous device array of ``dtype`` that must have ``shape``."""
    require_device(fn, name, a)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} has shape {fmt_shape(a.shape)}, "
                         f"expected {fmt_shape(shape)}")
    return as_dtype(fn, name, a, dtype)


# ------------------------------------------------------------------ softmax / log_softmax

def _softmax_any(fn, x, axis, out, log):
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    outer, K, inner = split_axis(x.shape, axis, fn)
    y = out_buffer(fn, out, x.shape, x.dtype)
    if _use_rows(K, inner):
        _k.launch_rows("softmax_rows", x.dtype, outer, K, x, y, outer, K, int(log))
    elif K:
        _k.launch_1d("softmax_cols", x.dtype, outer * inner, x, y, outer, K, inner, int(log))
    return y


def softmax(x, axis=-1, out=None):
    """Numerically stable softmax of x along axis."""
    return _softmax_any("softmax", x, axis, out, False)


def log_softmax(x, axis=-1, out=None):
    """Numerically stable log-softmax of x along axis."""
    return _softmax_any("log_softmax", x, axis, out, True)


def _softmax_backward_any(fn, dy, y, axis, out, log):
    require_float(fn, "dy", dy)
    dy = as_dtype(fn, "dy", dy, dy.dtype)
    y = _same_shape(fn, "y", y, dy.shape, dy.dtype)
    outer, K, inner = split_axis(dy.shape, axis, fn)
    dx = out_buffer(fn, out, dy.shape, dy.dtype)
    if _use_rows(K, inner):
        _k.launch_rows("softmax_backward_rows", dy.dtype, outer, K, dy, y, dx, outer, K, int(log))
    elif K:
        _k.launch_1d("softmax_backward_cols", dy.dtype, outer * inner, dy, y, dx, outer, K, inner,
                     int(log))
    return dx


def softmax_backward(dy, y, axis=-1, out=None):
    """Gradient of softmax given its output y: y * (dy - sum(dy * y, axis))."""
    return _softmax_backward_any("softmax_backward", dy, y, axis, out, False)


def log_softmax_backward(dy, y, axis=-1, out=None):
    """Gradient of log_softmax given its output y: dy - exp(y) * sum(dy, axis)."""
    return _softmax_backward_any("log_softmax_backward", dy, y, axis, out, True)


# ----------------------------------------------------------------------------- cross entropy

def _sparse_labels(fn, label, outer, inner):
    """Class indices as contiguous (outer, inner) int64 (float labels truncated)."""
    require_device(fn, "label", label)
    if label.size != outer * inner:
        raise ValueError(f"{fn}: sparse label has shape {fmt_shape(label.shape)} "
                         f"({label.size} values), expected {outer * inner} values")
    lab = rt.xp().ascontiguousarray(label).reshape(outer, inner)
    return lab.astype(np.int64, copy=False)


def softmax_cross_entropy_forward(logits, label, axis=-1, sparse=True, out=None):
    """Fused softmax + cross entropy; returns (loss, prob), loss = logits.shape minus axis.

    sparse: label holds class indices (int or float dtype), shape logits.shape minus axis.
    dense: label holds distributions with the logits' shape. Labels are assumed valid
    (see check_labels; an out-of-range sparse label gives a NaN loss, never a stray
    read). out: optional (loss, prob) buffers.
    """
    fn = "softmax_cross_entropy_forward"
    require_float(fn, "logits", logits)
    x = as_dtype(fn, "logits", logits, logits.dtype)
    outer, K, inner = split_axis(x.shape, axis, fn)
    loss_buf, prob_buf = outs(out, 2)
    loss = out_buffer(fn, loss_buf, _loss_shape(x.shape, axis), x.dtype, "out[0] (loss)")
    prob = out_buffer(fn, prob_buf, x.shape, x.dtype, "out[1] (prob)")
    if K == 0 and loss.size:
        raise ValueError(f"{fn}: logits of shape {fmt_shape(x.shape)} have no classes "
                         f"on axis {axis}")
    if sparse:
        lab, dense = _sparse_labels(fn, label, outer, inner), dummy(x.dtype)
    else:
        lab, dense = dummy(np.int64), _same_shape(fn, "label", label, x.shape, x.dtype)
    if _use_rows(K, inner):
        _k.launch_rows("ce_forward_rows", x.dtype, outer, K, x, lab, dense, loss, prob, outer, K,
                       int(sparse))
    else:
        _k.launch_1d("ce_forward_cols", x.dtype, outer * inner, x, lab, dense, loss, prob, outer, K,
                     inner, int(sparse))
    return loss, prob


def softmax_cross_entropy_backward(dloss, prob, label, axis=-1, sparse=True, out=None):
    """Gradient wrt logits, dloss broadcast along axis: (prob - onehot(label)) * dloss
    (sparse) or (prob * sum(label) - label) * dloss (dense)."""
    fn = "softmax_cross_entropy_backward"
    xp = rt.xp()
    require_float(fn, "prob", prob)
    prob = as_dtype(fn, "prob", prob, prob.dtype)
    outer, K, inner = split_axis(prob.shape, axis, fn)
    dx = out_buffer(fn, out, prob.shape, prob.dtype)
    # a scalar dloss is fine, as on the CPU
    d = xp.asarray(dloss, dtype=prob.dtype)
    d = xp.ascontiguousarray(xp.broadcast_to(d, _loss_shape(prob.shape, axis)))
    if sparse:
        lab = _sparse_labels(fn, label, outer, inner)
        _k.launch_1d("ce_sparse_backward", prob.dtype, dx.size, d, prob, lab, dx, outer, K, inner)
        return dx
    label = _same_shape(fn, "label", label, prob.shape, prob.dtype)
    if _use_rows(K, inner):
        _k.launch_rows("ce_dense_backward_rows", prob.dtype, outer, K, d, prob, label, dx, outer, K)
    elif K:
        _k.launch_1d("ce_dense_backward_cols", prob.dtype, outer * inner, d, prob, label, dx, outer,
                     K, inner)
    return dx


def check_labels(label, num_classes):
    """First label value that is not an integer in [0, num_classes), or None if all are
    valid. One device-to-host synchronization (two when a label is bad)."""
    xp = rt.xp()
    require_device("check_labels", "label", label)
    lab = label.ravel()
    bad = (lab < 0) | (lab >= num_classes)
    if lab.dtype.kind == "f":
        bad |= ~xp.isfinite(lab) | (lab != xp.floor(lab))
    if not bool(bad.any()):
        return None
    return lab[int(xp.argmax(bad))].item()
