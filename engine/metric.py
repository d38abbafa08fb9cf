"""Evaluation metrics (``mx.metric``), with MXNet 1.x names and semantics.

A metric accumulates over batches: ``update(labels, preds)`` takes one array or a list of arrays
each (NDArrays, NumPy arrays or nested lists), ``get()`` returns ``(name, value)`` (NaN before any
update), ``reset()`` starts over. Every metric also keeps "global" statistics that survive
``reset_local()``. Metrics compute on the host in NumPy.

Averaging follows MXNet 1.x: Accuracy/TopK/CrossEntropy/NLL/Loss average over samples; MAE, MSE,
RMSE and PearsonCorrelation average their per-batch values; F1 is per-batch averaged ('macro')
or pooled over all samples ('micro').
"""
import json
import math

import numpy

from .base import MXNetError, fmt_shape
from .ndarray import NDArray
from .registry import Registry

__all__ = ['EvalMetric', 'CompositeEvalMetric', 'Accuracy', 'TopKAccuracy', 'F1', 'MAE', 'MSE',
           'RMSE', 'CrossEntropy', 'NegativeLogLikelihood', 'Perplexity', 'PearsonCorrelation',
           'MCC', 'PCC',
           'Loss', 'CustomMetric', 'np', 'register', 'alias', 'create', 'check_label_shapes']

_REGISTRY = Registry('metric', lambda: EvalMetric)
register, alias = _REGISTRY.register, _REGISTRY.alias   # mx.metric.register / mx.metric.alias('acc')


def create(metric=None, *args, **kwargs):
    """A metric from a name ('acc', 'f1', 'mse', ...), an instance, a class, a function
    ``feval(label, pred)`` (wrapped in CustomMetric), a list of these (a CompositeEvalMetric), or
    a config: ``create(**m.get_config())``, the dict itself, or its JSON form."""
    if metric is None:
        if 'metric' not in kwargs:
            raise MXNetError('metric.create: give the metric (a name, class, instance, function, '
                             'list or config)')
        metric = kwargs.pop('metric')
    if isinstance(metric, EvalMetric):
        return metric
    if isinstance(metric, type) and issubclass(metric, EvalMetric):
        return metric(*args, **kwargs)
    if isinstance(metric, (list, tuple)):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    if isinstance(metric, dict):   # a get_config() dict
        return create(**dict(metric, **kwargs))
    if isinstance(metric, str) and metric.lstrip()[:1] in ('[', '{'):
        # a JSON config: '["name", {kwargs}]' or '{"metric": "name", ...}'
        try:
            config = json.loads(metric)
        except ValueError as e:
            raise MXNetError(f'metric.create: {metric!r} is not a valid JSON config ({e})') from None
        if isinstance(config, list) and len(config) == 2 and isinstance(config[1], dict):
            return create(config[0], **config[1])
        if isinstance(config, dict):
            return create(**config)
        raise MXNetError(f'metric.create: a JSON config must be ["name", {{...}}] or {{"metric": ...}}, '
                         f'got {metric!r}')
    if isinstance(metric, str):
        return _REGISTRY.get(metric)(*args, **kwargs)
    if callable(metric):
        return CustomMetric(metric, *args, **kwargs)
    raise MXNetError(f'metric.create: expected a name, an EvalMetric, a function or a list, '
                     f'got {type(metric).__name__}')


# ---- input handling ---------------------------------------------------------------------------

def _host(x):
    """A NumPy array from an NDArray, a NumPy array, a number or a nested list."""
    if isinstance(x, NDArray):
        return numpy.asarray(x)   # read only: no copy
    if isinstance(x, numpy.ndarray):
        return x
    if hasattr(x, 'get') and hasattr(x, 'shape'):  # a CuPy array
        return x.get()
    return numpy.asarray(x)


def _is_array(x):
    return isinstance(x, (NDArray, numpy.ndarray)) or (hasattr(x, 'shape') and hasattr(x, 'dtype'))


def _batches(x):
    """MXNet passes a list of arrays (one per output/device); one array is a list of one."""
    if _is_array(x):
        return [x]
    if isinstance(x, (list, tuple)):
        if x and not any(_is_array(e) or isinstance(e, (list, tuple)) for e in x):
            return [x]  # a flat list of numbers is one array
        return list(x)
    return [x]


def check_label_shapes(labels, preds, wrap=False, shape=False):
    """Raise when the number (or, with ``shape``, the shapes) of labels and preds differ;
    with ``wrap`` return both as lists of arrays."""
    if shape:
        ls, ps = tuple(_host(labels).shape), tuple(_host(preds).shape)
        if ls != ps:
            raise MXNetError(f'metric: labels of shape {fmt_shape(ls)} do not match predictions of '
                             f'shape {fmt_shape(ps)}')
    if wrap:
        labels, preds = _batches(labels), _batches(preds)
    if not shape and len(labels) != len(preds):
        raise MXNetError(f'metric: got {len(labels)} label array(s) but {len(preds)} prediction array(s)')
    return labels, preds


def _pairs(metric, labels, preds):
    labels, preds = _batches(labels), _batches(preds)
    if len(labels) != len(preds):
        raise MXNetError(f'{metric.name}: got {len(labels)} label array(s) but {len(preds)} prediction '
                         'array(s); pass one label array per prediction array')
    return [(_host(lab), _host(pred)) for lab, pred in zip(labels, preds)]


# ---- the base class ---------------------------------------------------------------------------

class EvalMetric:
    """Base class: ``sum_metric / num_inst`` accumulated by ``update``."""

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop('has_global_stats', False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return f'EvalMetric: {dict(self.get_name_value())}'

    def get_config(self):
        config = dict(self._kwargs)
        config.update({'metric': type(self).__name__, 'name': self.name,
                       'output_names': self.output_names, 'label_names': self.label_names})
        return config

    def update_dict(self, label, pred):
        """Update from dicts of name -> array, picking ``output_names``/``label_names`` if set."""
        pred = [pred[n] for n in self.output_names] if self.output_names is not None else list(pred.values())
        label = [label[n] for n in self.label_names] if self.label_names is not None else list(label.values())
        self.update(label, pred)

    def update(self, labels, preds):
        raise NotImplementedError(f'{type(self).__name__} must implement update(labels, preds)')

    def reset(self):
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self):
        self.num_inst = 0
        self.sum_metric = 0.0

    def _add(self, value, count):
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def get(self):
        if self.num_inst == 0:
            return (self.name, float('nan'))
        return (self.name, float(self.sum_metric / self.num_inst))

    def get_global(self):
        if self.global_num_inst == 0:
            return (self.name, float('nan'))
        return (self.name, float(self.global_sum_metric / self.global_num_inst))

    def get_name_value(self):
        return _name_value(self.get())

    def get_global_name_value(self):
        return _name_value(self.get_global())


def _name_value(name_value):
    name, value = name_value
    if not isinstance(name, list):
        name = [name]
    if not isinstance(value, list):
        value = [value]
    return list(zip(name, value))


@register
@alias('composite')
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; ``get()`` returns lists of names and values."""

    def __init__(self, metrics=None, name='composite', output_names=None, label_names=None):
        self.metrics = [create(m) for m in (metrics or [])]
        super().__init__(name, output_names=output_names, label_names=label_names)

    def add(self, metric):
        self.metrics.append(create(metric))

    def get_metric(self, index):
        try:
            return self.metrics[index]
        except IndexError:
            raise MXNetError(f'CompositeEvalMetric: metric index {index} out of range '
                             f'({len(self.metrics)} metrics)') from None

    def update_dict(self, labels, preds):
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds):
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self):
        super().reset()
        for metric in getattr(self, 'metrics', []):
            metric.reset()

    def reset_local(self):
        for metric in self.metrics:
            metric.reset_local()

    def _collect(self, getter):
        names, values = [], []
        for metric in self.metrics:
            name, value = getter(metric)
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return names, values

    def get(self):
        return self._collect(lambda m: m.get())

    def get_global(self):
        return self._collect(lambda m: m.get_global())

    def get_config(self):
        config = super().get_config()
        config['metrics'] = [m.get_config() for m in self.metrics]
        return config


# ---- classification -------------------------------------------------------------------------

@register
@alias('acc')
class Accuracy(EvalMetric):
    """Fraction of correct predictions. ``preds`` are class scores (argmax over ``axis``) or,
    when shaped like the labels, class indices."""

    def __init__(self, axis=1, name='accuracy', output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names)
        self.axis = axis

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            if pred.shape != label.shape and pred.size != label.size and pred.ndim >= 2:  # scores
                if not -pred.ndim <= self.axis < pred.ndim:
                    raise MXNetError(f'{self.name}: cannot take the argmax over axis {self.axis} of '
                                     f'predictions of shape {fmt_shape(pred.shape)}')
                pred = numpy.argmax(pred, axis=self.axis)
            pred = pred.astype('int64').ravel()
            label = label.astype('int64').ravel()
            if pred.size != label.size:
                raise MXNetError(f'{self.name}: {label.size} labels but {pred.size} predicted classes')
            self._add(int((pred == label).sum()), pred.size)


@register
@alias('top_k_accuracy', 'top_k_acc')
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the ``top_k`` highest-scored classes."""

    def __init__(self, top_k=1, name='top_k_accuracy', output_names=None, label_names=None):
        if not isinstance(top_k, int) or top_k < 1:
            raise MXNetError(f'TopKAccuracy: top_k must be an int >= 1, got {top_k!r}')
        super().__init__(f'{name}_{top_k}', top_k=top_k, output_names=output_names,
                         label_names=label_names)
        self.top_k = top_k

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            if pred.ndim > 2:
                raise MXNetError(f'{self.name}: predictions must be (batch, classes), got '
                                 f'{fmt_shape(pred.shape)}')
            label = label.astype('int64').ravel()
            if pred.shape[0] != label.size:
                raise MXNetError(f'{self.name}: {label.size} labels but {pred.shape[0]} predictions')
            if pred.ndim == 1:
                correct = int((pred.astype('int64') == label).sum())
            else:
                k = min(self.top_k, pred.shape[1])
                top = numpy.argpartition(pred.astype('float64'), -k, axis=1)[:, -k:]
                correct = int((top == label[:, None]).any(axis=1).sum())
            self._add(correct, label.size)


class _BinaryStats:
    """Confusion counts of a binary classifier, for this batch window and globally."""

    def __init__(self):
        self.reset_stats()
        self.global_tp = self.global_fp = self.global_fn = self.global_tn = 0

    def reset_stats(self):
        self.tp = self.fp = self.fn = self.tn = 0

    def update(self, name, label, pred):
        label = label.astype('int64').ravel()
        if pred.ndim == 2:
            pred_label = numpy.argmax(pred, axis=1)
        elif pred.ndim == 1:  # probability of the positive class
            pred_label = (pred > 0.5).astype('int64')
        else:
            raise MXNetError(f'{name}: predictions must be (batch, 2) scores or (batch,) probabilities, '
                             f'got {fmt_shape(pred.shape)}')
        if pred_label.size != label.size:
            raise MXNetError(f'{name}: {label.size} labels but {pred_label.size} predictions')
        if numpy.setdiff1d(numpy.unique(label), [0, 1]).size:
            raise MXNetError(f'{name} supports binary classification only (labels 0 and 1); got labels '
                             f'{numpy.unique(label).tolist()}')
        pt, lt = pred_label == 1, label == 1
        counts = (int((pt & lt).sum()), int((pt & ~lt).sum()), int((~pt & lt).sum()),
                  int((~pt & ~lt).sum()))
        self.tp, self.fp, self.fn, self.tn = (a + b for a, b in zip((self.tp, self.fp, self.fn, self.tn),
                                                                    counts))
        self.global_tp += counts[0]
        self.global_fp += counts[1]
        self.global_fn += counts[2]
        self.global_tn += counts[3]

    @staticmethod
    def fscore_of(tp, fp, fn):
        precision = tp / (tp + fp) if tp + fp > 0 else 0.0
        recall = tp / (tp + fn) if tp + fn > 0 else 0.0
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    @property
    def fscore(self):
        return self.fscore_of(self.tp, self.fp, self.fn)

    @property
    def global_fscore(self):
        return self.fscore_of(self.global_tp, self.global_fp, self.global_fn)

    @property
    def total(self):
        return self.tp + self.fp + self.fn + self.tn

    @property
    def global_total(self):
        return self.global_tp + self.global_fp + self.global_fn + self.global_tn


@register
class F1(EvalMetric):
    """Binary F1 score (class 1 positive) from (batch, 2) scores or (batch,) probabilities.
    ``average='macro'``: mean of the per-update F1; ``'micro'``: F1 of all samples pooled."""

    def __init__(self, name='f1', output_names=None, label_names=None, average='macro'):
        if average not in ('macro', 'micro'):
            raise MXNetError(f"F1: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        self.metrics = _BinaryStats()
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            self.metrics.update(self.name, label, pred)
        m = self.metrics
        if self.average == 'macro':
            self._add(m.fscore, 1)
            m.reset_stats()
        else:
            self.sum_metric, self.num_inst = m.fscore * m.total, m.total
            self.global_sum_metric, self.global_num_inst = m.global_fscore * m.global_total, m.global_total

    def reset(self):
        super().reset()
        self.metrics = _BinaryStats()

    def reset_local(self):
        super().reset_local()
        self.metrics.reset_stats()


# ---- regression ------------------------------------------------------------------------------

def _regression_pairs(metric, labels, preds):
    out = []
    for label, pred in _pairs(metric, labels, preds):
        if label.ndim == 1:
            label = label.reshape(label.shape[0], 1)
        if pred.ndim == 1:
            pred = pred.reshape(pred.shape[0], 1)
        if label.size != pred.size:
            raise MXNetError(f'{metric.name}: labels of shape {fmt_shape(label.shape)} do not match '
                             f'predictions of shape {fmt_shape(pred.shape)}')
        out.append((label.reshape(pred.shape).astype('float64'), pred.astype('float64')))
    return out


@register
class MAE(EvalMetric):
    """Mean absolute error (the mean of each update's mean, as MXNet 1.x)."""

    def __init__(self, name='mae', output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, labels, preds):
        for label, pred in _regression_pairs(self, labels, preds):
            self._add(float(numpy.abs(label - pred).mean()), 1)


@register
class MSE(EvalMetric):
    """Mean squared error (the mean of each update's mean, as MXNet 1.x)."""

    def __init__(self, name='mse', output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, labels, preds):
        for label, pred in _regression_pairs(self, labels, preds):
            self._add(float(((label - pred) ** 2).mean()), 1)


@register
class RMSE(EvalMetric):
    """Root mean squared error (the mean of each update's RMSE, as MXNet 1.x)."""

    def __init__(self, name='rmse', output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, labels, preds):
        for label, pred in _regression_pairs(self, labels, preds):
            self._add(float(numpy.sqrt(((label - pred) ** 2).mean())), 1)


@register
@alias('pearsonr')
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of predictions and labels. ``average='macro'``: the mean of each
    update's correlation; ``'micro'``: the correlation of all samples pooled (streaming
    moments, Chan et al.; kept until ``reset()``)."""

    def __init__(self, name='pearsonr', output_names=None, label_names=None, average='macro'):
        if average not in ('macro', 'micro'):
            raise MXNetError(f"PearsonCorrelation: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names, average=average)

    def reset(self):
        super().reset()
        self._n, self._mean_l, self._mean_p = 0, 0.0, 0.0
        self._m2_l = self._m2_p = self._c = 0.0

    def update(self, labels, preds):
        for label, pred in _regression_pairs(self, labels, preds):
            label, pred = label.ravel(), pred.ravel()
            if self.average == 'macro':
                self._add(float(numpy.corrcoef(pred, label)[0, 1]), 1)
                continue
            # merge the batch's moments into the pooled ones (exact for any batch size)
            nb, n = label.size, self._n + label.size
            ml, mp = label.mean(), pred.mean()
            dl, dp = ml - self._mean_l, mp - self._mean_p
            self._c += float(((label - ml) * (pred - mp)).sum()) + self._n * nb / n * dl * dp
            self._m2_l += float(((label - ml) ** 2).sum()) + self._n * nb / n * dl * dl
            self._m2_p += float(((pred - mp) ** 2).sum()) + self._n * nb / n * dp * dp
            self._mean_l += dl * nb / n
            self._mean_p += dp * nb / n
            self._n = n
            self.num_inst += 1
            self.global_num_inst += 1

    def _pooled(self):
        return float(self._c / math.sqrt(self._m2_l * self._m2_p)) if self._m2_l * self._m2_p > 0 else float('nan')

    def get(self):
        if self.average == 'macro' or self.num_inst == 0:
            return super().get()
        return (self.name, self._pooled())

    def get_global(self):
        if self.average == 'macro' or self.global_num_inst == 0:
            return super().get_global()
        return (self.name, self._pooled())


@register
class MCC(EvalMetric):
    """Matthews correlation coefficient of a binary classifier (class 1 positive), from
    (batch, 2) scores or (batch,) probabilities; ``average`` as F1's. As MXNet, factors of the
    denominator that are 0 are left out (so a constant predictor scores 0, not NaN)."""

    def __init__(self, name='mcc', output_names=None, label_names=None, average='macro'):
        if average not in ('macro', 'micro'):
            raise MXNetError(f"MCC: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        self.metrics = _BinaryStats()
        super().__init__(name, output_names=output_names, label_names=label_names, average=average)

    @staticmethod
    def _mcc(tp, fp, fn, tn):
        if tp + fp + fn + tn == 0:
            return 0.0
        denom = 1.0
        for t in (tp + fp, tp + fn, tn + fp, tn + fn):
            denom *= t if t else 1.0
        return (tp * tn - fp * fn) / math.sqrt(denom)

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            self.metrics.update(self.name, label, pred)
        m = self.metrics
        local = self._mcc(m.tp, m.fp, m.fn, m.tn)
        pooled = self._mcc(m.global_tp, m.global_fp, m.global_fn, m.global_tn)
        if self.average == 'macro':
            self._add(local, 1)
            m.reset_stats()
        else:
            self.sum_metric, self.num_inst = local * m.total, m.total
            self.global_sum_metric, self.global_num_inst = pooled * m.global_total, m.global_total

    def reset(self):
        super().reset()
        self.metrics = _BinaryStats()

    def reset_local(self):
        super().reset_local()
        self.metrics.reset_stats()


@register
class PCC(EvalMetric):
    """Multiclass Matthews correlation (Gorodkin's R_K) from the confusion matrix of all samples
    since the last reset; predictions are class scores (batch, k) or class indices. The matrix
    grows with the largest class seen. NaN while every sample has one label or one prediction."""

    def __init__(self, name='pcc', output_names=None, label_names=None):
        self.k = 2
        super().__init__(name, output_names=output_names, label_names=label_names)

    def reset(self):
        super().reset()
        self.gcm = numpy.zeros((self.k, self.k))
        self.lcm = numpy.zeros((self.k, self.k))

    def reset_local(self):
        super().reset_local()
        self.lcm = numpy.zeros((self.k, self.k))

    @staticmethod
    def _rk(cm):
        n, x, y = cm.sum(), cm.sum(axis=1), cm.sum(axis=0)
        cov_xx, cov_yy = float((x * (n - x)).sum()), float((y * (n - y)).sum())
        if cov_xx == 0 or cov_yy == 0:
            return float('nan')
        return float((cm.diagonal() * n - x * y).sum()) / math.sqrt(cov_xx * cov_yy)

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            label = label.ravel()
            pred = pred.argmax(axis=1) if pred.ndim == 2 and pred.shape[0] == label.size else pred.ravel()
            if pred.size != label.size:
                raise MXNetError(f'{self.name}: {label.size} labels but predictions of shape '
                                 f'{fmt_shape(pred.shape)}')
            if (label < 0).any() or (pred < 0).any() or (label != numpy.round(label)).any():
                raise MXNetError(f'{self.name}: labels and predicted classes must be integers >= 0')
            label, pred = label.astype('int64'), pred.astype('int64')
            k = int(max(label.max(initial=0), pred.max(initial=0))) + 1
            if k > self.k:
                grow = ((0, k - self.k), (0, k - self.k))
                self.lcm, self.gcm, self.k = numpy.pad(self.lcm, grow), numpy.pad(self.gcm, grow), k
            batch = numpy.zeros((self.k, self.k))
            numpy.add.at(batch, (pred, label), 1)
            self.lcm += batch
            self.gcm += batch
        self.num_inst += 1
        self.global_num_inst += 1
        # get() divides by num_inst: keep sum_metric = value * count
        self.sum_metric = self._rk(self.lcm) * self.num_inst
        self.global_sum_metric = self._rk(self.gcm) * self.global_num_inst


# ---- probabilistic ---------------------------------------------------------------------------

def _label_probs(metric, label, pred):
    """pred[i, label[i]] for (batch, classes) probabilities."""
    label = label.ravel().astype('int64')
    if pred.ndim != 2 or pred.shape[0] != label.size:
        raise MXNetError(f'{metric.name}: predictions must be (batch, classes) probabilities for '
                         f'{label.size} labels, got {fmt_shape(pred.shape)}')
    if label.size and (label.min() < 0 or label.max() >= pred.shape[1]):
        raise MXNetError(f'{metric.name}: labels must be in [0, {pred.shape[1]}), got '
                         f'[{label.min()}, {label.max()}]')
    return pred[numpy.arange(label.size), label].astype('float64')


@register
@alias('ce', 'cross-entropy')
class CrossEntropy(EvalMetric):
    """Mean over samples of ``-log(p[label] + eps)``; preds are probabilities (after softmax)."""

    def __init__(self, eps=1e-12, name='cross-entropy', output_names=None, label_names=None):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names)
        self.eps = eps

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            prob = _label_probs(self, label, pred)
            self._add(float((-numpy.log(prob + self.eps)).sum()), prob.size)


@register
@alias('nll_loss')
class NegativeLogLikelihood(CrossEntropy):
    """Negative log-likelihood: the same quantity as CrossEntropy, named 'nll-loss'."""

    def __init__(self, eps=1e-12, name='nll-loss', output_names=None, label_names=None):
        super().__init__(eps=eps, name=name, output_names=output_names, label_names=label_names)


@register
class Perplexity(EvalMetric):
    """``exp`` of the mean negative log-probability of the labels; labels equal to
    ``ignore_label`` are left out. ``axis`` is the class axis of the predictions."""

    def __init__(self, ignore_label=None, axis=-1, name='perplexity', output_names=None,
                 label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names,
                         label_names=label_names)
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels, preds):
        for label, pred in _pairs(self, labels, preds):
            pred = numpy.moveaxis(pred, self.axis, -1)
            pred = pred.reshape(-1, pred.shape[-1])
            label = label.ravel()
            keep = numpy.ones(label.size, bool) if self.ignore_label is None else label != self.ignore_label
            prob = _label_probs(self, numpy.where(keep, label, 0), pred)[keep]
            self._add(float(-numpy.log(numpy.maximum(prob, 1e-10)).sum()), int(keep.sum()))

    def get(self):
        name, value = super().get()
        return name, math.exp(value) if self.num_inst else value

    def get_global(self):
        name, value = super().get_global()
        return name, math.exp(value) if self.global_num_inst else value


@register
class Loss(EvalMetric):
    """Mean of loss values: ``preds`` are the per-sample losses (labels are ignored)."""

    def __init__(self, name='loss', output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, _, preds):
        for pred in _batches(preds):
            pred = _host(pred)
            self._add(float(pred.sum()), pred.size)


# ---- user functions ---------------------------------------------------------------------------

@register
@alias('custom')
class CustomMetric(EvalMetric):
    """A metric from ``feval(label, pred)`` on NumPy arrays, returning a value (averaged over
    updates) or a ``(sum, count)`` pair."""

    def __init__(self, feval, name=None, allow_extra_outputs=False, output_names=None,
                 label_names=None):
        if not callable(feval):
            raise MXNetError(f'CustomMetric: feval must be callable, got {type(feval).__name__}')
        if name is None:
            name = feval.__name__
            if '<' in name:
                name = f'custom({name})'
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs,
                         output_names=output_names, label_names=label_names)
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels, preds):
        labels, preds = _batches(labels), _batches(preds)
        if not self._allow_extra_outputs and len(labels) != len(preds):
            raise MXNetError(f'{self.name}: got {len(labels)} label array(s) but {len(preds)} '
                             'prediction array(s)')
        for label, pred in zip(labels, preds):
            value = self._feval(_host(label), _host(pred))
            if isinstance(value, tuple):
                self._add(value[0], value[1])
            else:
                self._add(value, 1)

    def get_config(self):
        raise NotImplementedError('CustomMetric cannot be serialized')


def np(numpy_feval, name=None, allow_extra_outputs=False):
    """Wrap ``numpy_feval(label, pred) -> value`` as a CustomMetric (MXNet's ``mx.metric.np``)."""
    def feval(label, pred):
        return numpy_feval(label, pred)
    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)
