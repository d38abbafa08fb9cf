"""Losses (`gluon.loss`). Each returns one value per sample (averaged over the other axes).

A custom loss is a HybridBlock too: subclass `Loss` and write `hybrid_forward(F, pred, label)`
with ops, e.g. a Dice loss:

    class DiceLoss(gluon.loss.Loss):
        def hybrid_forward(self, F, pred, label):
            inter = F.sum(pred * label, axis=(1, 2, 3))
            union = F.sum(pred, axis=(1, 2, 3)) + F.sum(label, axis=(1, 2, 3))
            return 1 - (2 * inter + 1) / (union + 1)
"""
import numpy as np

from .block import HybridBlock


def _apply_weighting(F, loss, weight=None, sample_weight=None):
    if sample_weight is not None:
        loss = loss * sample_weight
    if weight is not None:
        loss = loss * float(weight)
    return loss


def _shapeless(x):
    """An `mx.sym` Symbol: a graph without shapes until it is bound, so the losses compose it
    with shape-free ops (reshape_like, mean with exclude) as MXNet's do."""
    return getattr(x, '_is_mx_symbol', False)


def _batch_mean(F, loss, batch_axis):
    if _shapeless(loss):
        return F.mean(loss, axis=batch_axis, exclude=True)
    axes = tuple(i for i in range(loss.ndim) if i != batch_axis)
    return F.mean(loss, axis=axes) if axes else loss


def _reshape_like(F, label, pred):
    if _shapeless(label) or _shapeless(pred):
        return F.reshape_like(label, pred)
    return label if label.shape == pred.shape else F.reshape(label, pred.shape)


class Loss(HybridBlock):
    """Base class: `weight` scales the loss, `batch_axis` is kept, other axes are averaged."""

    def __init__(self, weight=None, batch_axis=0, **kwargs):
        super().__init__(**kwargs)
        self._weight, self._batch_axis = weight, batch_axis

    def _repr_args(self):
        return f'batch_axis={self._batch_axis}, w={self._weight}'


class L2Loss(Loss):
    """0.5 * (pred - label)^2."""

    def __init__(self, weight=1.0, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.square(_reshape_like(F, label, pred) - pred)
        loss = _apply_weighting(F, loss, self._weight / 2, sample_weight)
        return _batch_mean(F, loss, self._batch_axis)


class L1Loss(Loss):
    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.abs(_reshape_like(F, label, pred) - pred)
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


class SigmoidBinaryCrossEntropyLoss(Loss):
    """Binary cross entropy on logits (stable form) or on probabilities (from_sigmoid=True)."""

    def __init__(self, from_sigmoid=False, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_sigmoid = from_sigmoid

    def hybrid_forward(self, F, pred, label, sample_weight=None, pos_weight=None):
        label = _reshape_like(F, label, pred)
        if not self._from_sigmoid:
            if pos_weight is None:
                # max(x, 0) - x*z + log(1 + exp(-|x|)): no overflow for large |x|
                loss = F.relu(pred) - pred * label + F.log1p(F.exp(-F.abs(pred)))
            else:
                # -log(sigmoid(x)) = relu(-x) + log1p(exp(-|x|)), weighted by 1 + (pos_weight - 1) z
                log_weight = 1.0 + (pos_weight - 1.0) * label
                loss = pred - pred * label + log_weight * (F.log1p(F.exp(-F.abs(pred))) + F.relu(-pred))
        else:
            eps = 1e-12
            pos = F.log(pred + eps) * label
            if pos_weight is not None:
                pos = pos * pos_weight
            loss = -(pos + F.log(1.0 - pred + eps) * (1.0 - label))
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss


class SoftmaxCrossEntropyLoss(Loss):
    """Cross entropy of softmax(pred) along `axis` with integer labels (sparse_label) or label
    distributions; axis=1 gives per-pixel losses for segmentation."""

    def __init__(self, axis=-1, sparse_label=True, from_logits=False, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._axis, self._sparse, self._from_logits = axis, sparse_label, from_logits

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        if not self._from_logits:
            if self._sparse and not _shapeless(label):
                label = label if label.ndim == pred.ndim - 1 else F.reshape(label, _drop_axis(pred.shape, self._axis))
            loss = F.softmax_cross_entropy_loss(pred, label, axis=self._axis, sparse_label=self._sparse)
        elif self._sparse:
            loss = -F.pick(pred, label, axis=self._axis, keepdims=False)
        else:
            loss = -F.sum(pred * _reshape_like(F, label, pred), axis=self._axis)
        if sample_weight is not None and _shapeless(sample_weight):
            # the loss keeps the class axis, so a (N,) or (N, 1) weight broadcasts as in MXNet
            loss = F.expand_dims(loss, axis=self._axis)
        elif sample_weight is not None and sample_weight.ndim == loss.ndim + 1:
            sample_weight = F.reshape(sample_weight, loss.shape) if sample_weight.size == loss.size else sample_weight
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


def _drop_axis(shape, axis):
    axis = axis % len(shape)
    return tuple(shape[:axis]) + tuple(shape[axis + 1:])


class KLDivLoss(Loss):
    """KL(label || softmax(pred)); pred are log-probabilities when from_logits=True (default)."""

    def __init__(self, from_logits=True, axis=-1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits, self._axis = from_logits, axis

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=self._axis)
        loss = label * (F.log(label + 1e-12) - pred)
        # summed over the non-batch axes (MXNet 1.9; a divergence is a sum over the classes)
        loss = _apply_weighting(F, loss, self._weight, sample_weight)
        if _shapeless(loss):
            return F.sum(loss, axis=self._batch_axis, exclude=True)
        axes = tuple(i for i in range(loss.ndim) if i != self._batch_axis % loss.ndim)
        return F.sum(loss, axis=axes) if axes else loss


class HuberLoss(Loss):
    """Squared error below rho, absolute error above (smooth L1)."""

    def __init__(self, rho=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._rho = float(rho)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        err = F.abs(_reshape_like(F, label, pred) - pred)
        loss = F.where(err > self._rho, err - 0.5 * self._rho, (0.5 / self._rho) * F.square(err))
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


class HingeLoss(Loss):
    """max(0, margin - pred * label) with labels in {-1, 1}."""

    def __init__(self, margin=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = float(margin)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.relu(self._margin - pred * _reshape_like(F, label, pred))
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


class SquaredHingeLoss(Loss):
    """max(0, margin - pred * label)^2 with labels in {-1, 1}."""

    def __init__(self, margin=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = float(margin)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.square(F.relu(self._margin - pred * _reshape_like(F, label, pred)))
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


class LogisticLoss(Loss):
    """log(1 + exp(-pred * label)) with labels in {-1, 1} ('signed') or {0, 1} ('binary')."""

    def __init__(self, weight=None, batch_axis=0, label_format='signed', **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        if label_format not in ('signed', 'binary'):
            from ..base import MXNetError
            raise MXNetError(f"LogisticLoss: label_format must be 'signed' or 'binary', got {label_format!r}")
        self._label_format = label_format

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        label = _reshape_like(F, label, pred)
        if self._label_format == 'binary':
            label = 2.0 * label - 1.0
        z = pred * label
        # log(1 + exp(-z)) = relu(-z) + log1p(exp(-|z|)): no overflow for large |z|
        loss = F.relu(-z) + F.log1p(F.exp(-F.abs(z)))
        return _batch_mean(F, _apply_weighting(F, loss, self._weight, sample_weight), self._batch_axis)


class TripletLoss(Loss):
    """max(0, |pred - positive|^2 - |pred - negative|^2 + margin) per sample."""

    def __init__(self, margin=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = float(margin)

    def hybrid_forward(self, F, pred, positive, negative, sample_weight=None):
        positive = _reshape_like(F, positive, pred)
        negative = _reshape_like(F, negative, pred)
        diff = F.square(positive - pred) - F.square(negative - pred)
        if _shapeless(diff):
            loss = F.relu(F.sum(diff, axis=self._batch_axis, exclude=True) + self._margin)
        else:
            axes = tuple(i for i in range(pred.ndim) if i != self._batch_axis % pred.ndim)
            loss = F.relu((F.sum(diff, axis=axes) if axes else diff) + self._margin)
        return _apply_weighting(F, loss, self._weight, sample_weight)


class CosineEmbeddingLoss(Loss):
    """1 - cos(a, b) for label 1, max(0, cos(a, b) - margin) for label -1."""

    def __init__(self, weight=None, batch_axis=0, margin=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = float(margin)

    def hybrid_forward(self, F, input1, input2, label, sample_weight=None):
        dot = F.sum(input1 * input2, axis=-1)
        norms = F.sqrt(F.sum(F.square(input1), axis=-1) * F.sum(F.square(input2), axis=-1) + 1e-12)
        cos = dot / norms
        label = F.reshape_like(label, cos) if _shapeless(cos) else F.reshape(label, cos.shape)
        loss = F.where(label == 1, 1.0 - cos, F.relu(cos - self._margin))
        return _apply_weighting(F, loss, self._weight, sample_weight)


class PoissonNLLLoss(Loss):
    """Negative log-likelihood of a Poisson target; pred is the log-rate when from_logits."""

    def __init__(self, weight=None, from_logits=True, batch_axis=0, compute_full=False, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits, self._full = from_logits, compute_full

    def hybrid_forward(self, F, pred, target, sample_weight=None, epsilon=1e-08):
        target = _reshape_like(F, target, pred)
        if self._from_logits:
            loss = F.exp(pred) - target * pred
        else:
            loss = pred - target * F.log(pred + epsilon)
        if self._full:
            # Stirling's approximation of log(target!) for target > 1
            stirling = target * F.log(target + 1e-12) - target + 0.5 * F.log(2 * np.pi * target + 1e-12)
            loss = loss + F.where(target > 1, stirling, target * 0.0)
        return F.mean(_apply_weighting(F, loss, self._weight, sample_weight))


class CTCLoss(Loss):
    """Connectionist temporal classification loss (Graves et al. 2006) on unnormalized
    activations ``pred`` ('NTC': (N, T, C) or 'TNC') and labels ``label`` ('NT' or 'TN') padded
    with -1. The blank is the last class (C-1), so labels are in [0, C-2]. Optional
    ``pred_lengths``/``label_lengths`` (N,) give each sample's lengths. Output: (N,)."""

    def __init__(self, layout='NTC', label_layout='NT', weight=None, **kwargs):
        from ..base import MXNetError
        if layout not in ('NTC', 'TNC'):
            raise MXNetError(f"CTCLoss: layout must be 'NTC' or 'TNC', got {layout!r}")
        if label_layout not in ('NT', 'TN'):
            raise MXNetError(f"CTCLoss: label_layout must be 'NT' or 'TN', got {label_layout!r}")
        self._layout, self._label_layout = layout, label_layout
        super().__init__(weight, label_layout.find('N'), **kwargs)

    def hybrid_forward(self, F, pred, label, pred_lengths=None, label_lengths=None,
                       sample_weight=None):
        if self._layout == 'NTC':
            pred = F.swapaxes(pred, 0, 1)
        if self._batch_axis == 1:
            label = F.swapaxes(label, 0, 1)
        loss = F.ctc_loss(pred, label, pred_lengths, label_lengths,
                          use_data_lengths=pred_lengths is not None,
                          use_label_lengths=label_lengths is not None, blank_label='last')
        return _apply_weighting(F, loss, self._weight, sample_weight)


class SDMLLoss(Loss):
    """Smoothed deep metric learning loss: rows of ``x1`` and ``x2`` (N, D) at the same index
    are positive pairs, all others negatives. The softmax over the negated squared distances of
    each row of ``x1`` to all of ``x2`` is compared (KL divergence) with the identity matrix
    smoothed by ``smoothing_parameter``. Output: (N,)."""

    def __init__(self, smoothing_parameter=0.3, weight=1., batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self.kl_loss = KLDivLoss(from_logits=True)
        self.smoothing_parameter = smoothing_parameter

    def hybrid_forward(self, F, x1, x2):
        from ..base import MXNetError
        if len(x1.shape) != 2 or x1.shape != x2.shape:
            raise MXNetError(f'SDMLLoss: x1 and x2 must both be (batch_size, dim), got shapes '
                             f'{x1.shape} and {x2.shape}')
        n = x1.shape[0]
        if n < 2:
            raise MXNetError('SDMLLoss: needs a batch of at least 2 pairs (the others are the negatives)')
        d = F.sum(F.square(F.expand_dims(x1, 1) - F.expand_dims(x2, 0)), axis=2)   # (N, N)
        eye = np.eye(n)
        s = self.smoothing_parameter
        labels = F.full_like(d, 0.0) + F.array((eye * (1 - s) + (1 - eye) * s / (n - 1)).astype(d.dtype))
        return self.kl_loss(F.log_softmax(-d, axis=1), labels)
