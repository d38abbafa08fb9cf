"""Metrics on small hand-computed examples."""
import math

import numpy as np
import pytest

from engine import metric, nd
from engine.base import MXNetError

SCORES = [[0.7, 0.2, 0.1],   # predicts 0
          [0.1, 0.3, 0.6],   # predicts 2
          [0.2, 0.5, 0.3],   # predicts 1
          [0.4, 0.35, 0.25]]  # predicts 0
LABELS = [0, 1, 1, 2]


def test_accuracy_scores_indices_lists_and_numpy():
    acc = metric.Accuracy()
    assert math.isnan(acc.get()[1])
    acc.update(nd.array(LABELS), nd.array(SCORES))
    assert acc.get() == ('accuracy', 0.5)
    acc.update([nd.array([1, 2])], [nd.array([1, 0])])  # already class indices
    assert acc.get()[1] == pytest.approx(3 / 6)
    acc.update(np.array([0, 0]), np.array([[0.9, 0.1], [0.8, 0.2]]))  # NumPy inputs
    assert acc.get_name_value() == [('accuracy', pytest.approx(5 / 8))]
    acc.reset_local()
    assert math.isnan(acc.get()[1]) and acc.get_global()[1] == pytest.approx(5 / 8)
    acc.reset()
    assert math.isnan(acc.get_global()[1])
    # class axis other than 1
    acc0 = metric.Accuracy(axis=0)
    acc0.update(nd.array([1, 0]), nd.array([[0.1, 0.9], [0.8, 0.2]]))
    assert acc0.get()[1] == 1.0


def test_accuracy_mismatch_errors():
    acc = metric.Accuracy()
    with pytest.raises(MXNetError, match='2 label array'):
        acc.update([nd.array([0]), nd.array([1])], [nd.array([[1.0, 0.0]])])
    with pytest.raises(MXNetError, match='3 labels but 4'):
        acc.update(nd.array([0, 1, 1]), nd.array([0, 1, 1, 1]))
    acc.update(nd.array([[0], [1]]), nd.array([0, 0]))  # (N, 1) labels, (N,) class indices
    assert acc.get()[1] == 0.5
    with pytest.raises(MXNetError, match='argmax over axis 2'):
        metric.Accuracy(axis=2).update(nd.array([0, 1]), nd.array([[0.5, 0.5], [0.2, 0.8]]))


def test_top_k_accuracy():
    top2 = metric.TopKAccuracy(top_k=2)
    top2.update(nd.array(LABELS), nd.array(SCORES))
    # top-2 sets: {0,1}, {2,1}, {1,2}, {0,1} -> hits for labels 0, 1, 1, not 2
    assert top2.get() == ('top_k_accuracy_2', 0.75)
    top9 = metric.create('top_k_accuracy', top_k=9)
    top9.update(nd.array(LABELS), nd.array(SCORES))
    assert top9.get()[1] == 1.0


def test_f1_macro_and_micro():
    # batch 1: preds 1,1,0,0 vs labels 1,0,1,0 -> tp 1, fp 1, fn 1 -> F1 0.5
    # batch 2: preds 1,1 vs labels 1,1 -> F1 1
    b1 = (nd.array([1, 0, 1, 0]), nd.array([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1], [0.7, 0.3]]))
    b2 = (nd.array([1, 1]), nd.array([[0.1, 0.9], [0.3, 0.7]]))
    macro, micro = metric.F1(), metric.F1(average='micro')
    for m in (macro, micro):
        m.update(*b1)
        assert m.get() == ('f1', 0.5)
        m.update(*b2)
    assert macro.get()[1] == pytest.approx(0.75)
    # pooled: tp 3, fp 1, fn 1 -> precision = recall = 0.75
    assert micro.get()[1] == pytest.approx(0.75)
    probs = metric.F1()
    probs.update(nd.array([1, 0, 1]), nd.array([0.9, 0.2, 0.4]))  # 1-D probabilities
    assert probs.get()[1] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    with pytest.raises(MXNetError, match='binary'):
        metric.F1().update(nd.array([0, 2]), nd.array([[0.5, 0.5], [0.1, 0.9]]))


def test_regression_metrics():
    label = nd.array([1.0, 2.0, 3.0, 4.0])
    pred = nd.array([[1.5], [2.0], [2.0], [6.0]])  # (N, 1) against (N,) labels: no broadcasting
    err = np.array([0.5, 0.0, -1.0, 2.0])
    for name, expected in [('mae', np.abs(err).mean()), ('mse', (err ** 2).mean()),
                           ('rmse', np.sqrt((err ** 2).mean()))]:
        m = metric.create(name)
        m.update(label, pred)
        assert m.get() == (name, pytest.approx(expected))
    # MXNet 1.x averages the per-update values
    mse = metric.MSE()
    mse.update(nd.array([0.0]), nd.array([2.0]))
    mse.update(nd.array([0.0, 0.0]), nd.array([0.0, 0.0]))
    assert mse.get()[1] == pytest.approx(2.0)
    with pytest.raises(MXNetError, match='do not match'):
        metric.MAE().update(nd.array([1.0, 2.0]), nd.array([1.0, 2.0, 3.0]))
    r = metric.create('pearsonr')
    r.update(nd.array([1.0, 2.0, 3.0]), nd.array([2.0, 4.0, 6.5]))
    assert r.get()[1] == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])


def test_cross_entropy_nll_perplexity():
    probs = nd.array([[0.5, 0.5], [0.1, 0.9], [0.8, 0.2]])
    label = nd.array([0, 1, 1])
    expected = -(np.log(0.5) + np.log(0.9) + np.log(0.2)) / 3
    ce = metric.create('ce')
    ce.update(label, probs)
    assert ce.get() == ('cross-entropy', pytest.approx(expected))
    nll = metric.create('nll_loss')
    nll.update([label], [probs])
    assert nll.get() == ('nll-loss', pytest.approx(expected))
    ppl = metric.Perplexity(ignore_label=None)
    ppl.update(label, probs)
    assert ppl.get()[1] == pytest.approx(math.exp(expected))
    ign = metric.Perplexity(ignore_label=1)
    ign.update(label, probs)  # only the first sample counts
    assert ign.get()[1] == pytest.approx(2.0)
    with pytest.raises(MXNetError, match=r'labels must be in \[0, 2\)'):
        metric.CrossEntropy().update(nd.array([0, 5]), nd.array([[0.5, 0.5], [0.5, 0.5]]))


def test_loss_metric():
    loss = metric.Loss()
    loss.update(None, nd.array([1.0, 2.0, 3.0]))
    loss.update(None, [nd.array([[6.0]])])
    assert loss.get() == ('loss', 3.0)


def test_composite_and_create():
    comp = metric.create(['acc', metric.TopKAccuracy(2)])
    assert isinstance(comp, metric.CompositeEvalMetric)
    comp.update(nd.array(LABELS), nd.array(SCORES))
    assert comp.get() == (['accuracy', 'top_k_accuracy_2'], [0.5, 0.75])
    assert comp.get_name_value() == [('accuracy', 0.5), ('top_k_accuracy_2', 0.75)]
    comp.add('mse')
    assert comp.get_metric(2).name == 'mse'
    comp.reset()
    assert all(math.isnan(v) for v in comp.get()[1])
    empty = metric.CompositeEvalMetric()
    empty.add(metric.Accuracy())
    assert len(empty.metrics) == 1
    assert isinstance(metric.create('accuracy'), metric.Accuracy)
    assert isinstance(metric.create('F1'), metric.F1)
    with pytest.raises(MXNetError, match="unknown metric 'accuracyy'"):
        metric.create('accuracyy')


def test_custom_metric():
    def exact(label, pred):
        return float((label == pred).all())

    m = metric.create(exact)
    m.update(nd.array([1, 2]), nd.array([1, 2]))
    m.update(nd.array([1, 2]), nd.array([1, 3]))
    assert m.get() == ('exact', 0.5)
    pair = metric.np(lambda label, pred: (float(np.abs(label - pred).sum()), label.size))
    pair.update([nd.array([1.0, 2.0])], [nd.array([2.0, 2.0])])
    assert pair.get()[0].startswith('custom(') and pair.get()[1] == 0.5
