"""MCC, PCC, PearsonCorrelation(average=) and metric.create from a config, against values
MXNet 1.9.1 printed for the same batches (literals below) and NumPy."""
import json

import numpy as np
import pytest

from engine import metric, nd
from engine.base import MXNetError


def _batches():
    rs = np.random.RandomState(5)
    binary = [(rs.randint(0, 2, 8).astype('float32'), rs.rand(8, 2).astype('float32')) for _ in range(3)]
    binary.append((np.array([1, 1, 1, 0], 'float32'), np.array([[0, 1]] * 4, 'float32')))  # constant predictor
    multi = [(np.array([0, 1, 1, 0, 1], 'float32'), rs.rand(5, 2).astype('float32')),
             (np.array([2, 0, 3, 1, 2, 3], 'float32'), rs.rand(6, 4).astype('float32')),
             (np.array([4, 1, 0], 'float32'), np.array([4, 2, 0], 'float32'))]       # class indices
    reg = [(rs.randn(6).astype('float32'), rs.randn(6).astype('float32')) for _ in range(3)]
    return binary, multi, reg


def _run(m, batches):
    out = []
    for label, pred in batches:
        m.update([nd.array(label)], [nd.array(pred)])
        out.append(m.get()[1])
    return out + [m.get_global()[1]]


# get() after each update, then get_global(), printed by MXNet 1.9.1 for these batches
MXNET = {'mcc_macro': [0.57735, 0.512282, 0.291831, 0.218873, 0.218873],
         'mcc_micro': [0.57735, 0.377964, 0.174825, 0.206725, 0.206725],
         'pcc': [-0.166667, 0.12563, 0.248712, 0.248712],
         'pearson_macro': [-0.152096, -0.140987, -0.098465, -0.098465],
         # MXNet's micro get_global() returns 0.0 (it never fills the global sums); ours returns
         # the pooled correlation, which is what get() gives
         'pearson_micro': [-0.152096, -0.072943, -0.128652, -0.128652]}


def test_mcc_pcc_pearson_match_mxnet():
    binary, multi, reg = _batches()
    got = {'mcc_macro': _run(metric.MCC(), binary), 'mcc_micro': _run(metric.create('mcc', average='micro'), binary),
           'pcc': _run(metric.create('pcc'), multi), 'pearson_macro': _run(metric.PearsonCorrelation(), reg),
           'pearson_micro': _run(metric.PearsonCorrelation(average='micro'), reg)}
    for k, want in MXNET.items():
        np.testing.assert_allclose(got[k], want, rtol=0, atol=2e-6, err_msg=k)


def test_pooled_pearson_and_mcc_equal_numpy_on_all_samples():
    binary, _, reg = _batches()
    m = metric.PearsonCorrelation(average='micro')
    for label, pred in reg:
        m.update(nd.array(label), nd.array(pred))
    labels = np.concatenate([b[0] for b in reg]).astype(np.float64)
    preds = np.concatenate([b[1] for b in reg]).astype(np.float64)
    assert abs(m.get()[1] - np.corrcoef(labels, preds)[0, 1]) < 1e-12
    mcc = metric.MCC(average='micro')
    for label, pred in binary[:3]:
        mcc.update(nd.array(label), nd.array(pred))
    y = np.concatenate([b[0] for b in binary[:3]])
    p = np.concatenate([b[1].argmax(1) for b in binary[:3]])
    # with no empty confusion row/column, MXNet's MCC is the textbook one: the correlation
    assert abs(mcc.get()[1] - np.corrcoef(y, p)[0, 1]) < 1e-6


def test_create_from_config_round_trips():
    for m in [metric.MCC(average='micro', name='m'), metric.PearsonCorrelation(average='micro'),
              metric.Accuracy(axis=1, name='acc2'), metric.PCC()]:
        config = m.get_config()
        for again in (metric.create(**config), metric.create(config), metric.create(json.dumps(config))):
            assert type(again) is type(m) and again.name == m.name
            assert getattr(again, 'average', None) == getattr(m, 'average', None)
    comp = metric.create(['acc', 'mcc'])
    again = metric.create(comp.get_config())
    assert [type(x) for x in again.metrics] == [metric.Accuracy, metric.MCC]
    assert type(metric.create('["pearsonr", {"average": "micro"}]')) is metric.PearsonCorrelation
    with pytest.raises(MXNetError, match='not a valid JSON config'):
        metric.create('{"metric": ')
    with pytest.raises(MXNetError, match="MCC: average must be 'macro' or 'micro'"):
        metric.MCC(average='weighted')
    with pytest.raises(MXNetError, match='pcc: labels and predicted classes must be integers >= 0'):
        metric.PCC().update(nd.array([0, -1]), nd.array([0, 1]))
