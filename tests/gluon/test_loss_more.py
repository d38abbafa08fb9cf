"""CTCLoss (the ctc_loss op), SDMLLoss and KLDivLoss's reduction: against numbers MXNet 1.9.1
produced (literals below, printed in MXNet's venv from the same inputs; float32 there) and
against torch.nn.functional.ctc_loss in float64."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import loss as gloss


def _ctc_inputs():
    rs = np.random.RandomState(1)
    pred = rs.randn(3, 6, 5)          # (N, T, C); the blank is class 4
    label = np.array([[0, 1, 1, -1], [2, 3, -1, -1], [3, -1, -1, -1]], dtype=np.float64)
    return pred, label


# mx.gluon.loss.CTCLoss()(pred, label) etc. in MXNet 1.9.1 (float32)
MX_NO_LENGTHS = [3.8423891067504883, 5.704905033111572, 5.105771064758301]
MX_LENGTHS = [4.403803825378418, 4.531957149505615, 2.320094108581543]     # pred_lengths [6, 5, 3], label_lengths [2, 2, 1]
MX_TNC_HALF = [1.9211945533752441, 2.852452516555786, 2.5528855323791504]  # layout TNC/TN, weight=0.5
MX_GRAD_0_01 = [[-0.42460840940475464, 0.060771845281124115, 0.06606975942850113, 0.03831779584288597,
                 0.25944867730140686],
                [0.007435434497892857, -0.30053216218948364, 0.055297184735536575, 0.1628725379705429,
                 0.07492668181657791]]                                     # d loss.sum() / d pred[0, :2]


def test_ctc_loss_matches_mxnet():
    pred, label = _ctc_inputs()
    L = gloss.CTCLoss()
    np.testing.assert_allclose(L(nd.array(pred), nd.array(label)).asnumpy(), MX_NO_LENGTHS, rtol=1e-5)
    got = L(nd.array(pred), nd.array(label), nd.array([6, 5, 3]), nd.array([2, 2, 1]))
    np.testing.assert_allclose(got.asnumpy(), MX_LENGTHS, rtol=1e-5)
    L2 = gloss.CTCLoss(layout='TNC', label_layout='TN', weight=0.5)
    got = L2(nd.array(pred.transpose(1, 0, 2)), nd.array(label.T))
    np.testing.assert_allclose(got.asnumpy(), MX_TNC_HALF, rtol=1e-5)
    x = nd.array(pred)
    x.attach_grad()
    with autograd.record():
        y = L(x, nd.array(label))
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy()[0, :2], MX_GRAD_0_01, rtol=1e-4, atol=1e-6)


def test_ctc_loss_hybridized_equals_eager():
    pred, label = _ctc_inputs()
    L = gloss.CTCLoss()
    eager = L(nd.array(pred), nd.array(label)).asnumpy()
    L.hybridize()
    x = nd.array(pred)
    x.attach_grad()
    with autograd.record():
        y = L(x, nd.array(label))
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), eager, rtol=1e-6)
    np.testing.assert_allclose(x.grad.asnumpy()[0, :2], MX_GRAD_0_01, rtol=1e-4, atol=1e-6)


@pytest.mark.torch
def test_ctc_loss_matches_torch_float64():
    torch = pytest.importorskip('torch')
    rs = np.random.RandomState(4)
    T, N, C = 9, 4, 6
    x = rs.randn(T, N, C) * 2
    lab = np.array([[1, 2, 2, 3], [5, 5, 0, 0], [4, 0, 0, 0], [1, 3, 1, 2]])   # blank 0, padded with 0
    tl, ll = np.array([9, 7, 3, 8]), np.array([4, 2, 1, 4])
    head = np.array([1.0, -0.5, 2.0, 0.25])
    xd = nd.array(x, dtype='float64')
    xd.attach_grad()
    with autograd.record():
        loss = nd.ctc_loss(xd, nd.array(lab, dtype='float64'), nd.array(tl, dtype='float64'),
                           nd.array(ll, dtype='float64'), use_data_lengths=True, use_label_lengths=True)
    loss.backward(nd.array(head, dtype='float64'))
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.ctc_loss(torch.log_softmax(xt, 2), torch.tensor(lab), torch.tensor(tl),
                                      torch.tensor(ll), blank=0, reduction='none')
    (lt * torch.tensor(head)).sum().backward()
    np.testing.assert_allclose(loss.asnumpy(), lt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xd.grad.asnumpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_ctc_loss_infeasible_alignment_is_inf_with_zero_gradient():
    # "aa" needs 3 steps (a, blank, a); 2 steps cannot align it
    x = nd.array(np.zeros((2, 1, 3)), dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = nd.ctc_loss(x, nd.array([[1, 1]], dtype='float64'))
    y.backward()
    assert np.isinf(y.asnumpy()[0])
    np.testing.assert_array_equal(x.grad.asnumpy(), 0.0)


def test_ctc_loss_bad_input_is_a_clear_error():
    pred, label = _ctc_inputs()
    L = gloss.CTCLoss()
    with pytest.raises(MXNetError, match=r'ctc_loss: labels must be integers in \[0, 5\) other than the blank label 4'):
        L(nd.array(pred), nd.array([[0, 4, -1, -1]] * 3))
    with pytest.raises(MXNetError, match=r'ctc_loss: data_lengths must be integers in \[1, 6\]'):
        L(nd.array(pred), nd.array(label), nd.array([7, 5, 3]))
    with pytest.raises(MXNetError, match='ctc_loss: label must be'):
        L(nd.array(pred), nd.array(label[:2]))
    with pytest.raises(MXNetError, match="CTCLoss: layout must be 'NTC' or 'TNC'"):
        gloss.CTCLoss(layout='NCT')
    with pytest.raises(MXNetError, match='ctc_loss: the gradient of its gradient'):
        x = nd.array(pred)
        x.attach_grad()
        with autograd.record():
            y = L(x, nd.array(label))
            (g,) = autograd.grad(y, [x], create_graph=True)
            z = g.sum()
        z.backward()


def test_sdml_and_kldiv_match_mxnet():
    # MXNet 1.9.1: SDMLLoss()(x1, x2) and KLDivLoss()(log_softmax(p), y) on these inputs
    x1 = nd.array([[1., 2], [0, 1], [2, 0]])
    x2 = nd.array([[1., 2.5], [0.5, 1], [2, 1]])
    np.testing.assert_allclose(gloss.SDMLLoss()(x1, x2).asnumpy(),
                               [0.02654484, 0.26443106, 0.5581436], rtol=2e-4)
    p = nd.log_softmax(nd.array([[1., 2, 3], [0, 0, 1]]))
    y = nd.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(gloss.KLDivLoss()(p, y).asnumpy(), [0.07795081, 0.11241198], rtol=1e-4)
    with pytest.raises(MXNetError, match='SDMLLoss: x1 and x2 must both be'):
        gloss.SDMLLoss()(x1, nd.ones((3, 3)))
