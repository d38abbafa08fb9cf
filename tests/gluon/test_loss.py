"""gluon.loss: every loss against a NumPy formula (float64 references; rtol 1e-4, atol 1e-5 on
float32), PyTorch where a loss maps onto one (tests marked `torch`), sample_weight and weight,
eager vs hybridized equality (outputs and gradients), and a custom Dice loss."""
import numpy as np
import pytest
import scipy.special

from engine import autograd, gluon, nd
from engine.base import MXNetError
from engine.gluon import loss as gloss

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(0)


def _f32(a):
    return np.asarray(a, dtype=np.float32)


PRED = _f32(rng.standard_normal((4, 5)) * 2)
LABEL = _f32(rng.standard_normal((4, 5)))
BINARY = _f32(rng.random((4, 5)) > 0.5)
SIGNED = 2 * BINARY - 1
CLASSES = rng.integers(0, 5, 4)
DIST = _f32(scipy.special.softmax(rng.standard_normal((4, 5)), axis=1))
LOGP = _f32(scipy.special.log_softmax(PRED.astype(np.float64), axis=1))
IMG = _f32(rng.standard_normal((2, 3, 4, 5)))
PIX = rng.integers(0, 3, (2, 4, 5))
A, B = _f32(rng.standard_normal((4, 6))), _f32(rng.standard_normal((4, 6)))
PAIR = _f32([1, -1, 1, -1])
COUNTS = _f32(rng.poisson(2.0, (4, 5)))
SW = _f32(rng.random((4, 1)) + 0.5)


def _loss_value(loss, *args):
    return loss(*[nd.array(a) if a is not None else None for a in args]).asnumpy()


def _close(actual, expected, rtol=RTOL, atol=ATOL, what=''):
    np.testing.assert_allclose(actual, np.asarray(expected), rtol=rtol, atol=atol, err_msg=what)
    assert np.shape(actual) == np.shape(expected), what


def _stirling(t):
    s = np.maximum(t, 1.0)
    return np.where(t > 1, s * np.log(s) - s + 0.5 * np.log(2 * np.pi * s), 0.0)


def _np_softplus(x):
    return np.logaddexp(0, x)


P64 = PRED.astype(np.float64)
COS = (A * B).sum(1) / np.linalg.norm(A.astype(np.float64), axis=1) / np.linalg.norm(B.astype(np.float64), axis=1)
# name -> (loss factory, inputs, NumPy reference)
CASES = {
    'L2Loss': (gloss.L2Loss, (PRED, LABEL), 0.5 * ((P64 - LABEL) ** 2).mean(1)),
    'L2Loss_weight': (lambda: gloss.L2Loss(weight=3.0), (PRED, LABEL), 1.5 * ((P64 - LABEL) ** 2).mean(1)),
    'L1Loss': (gloss.L1Loss, (PRED, LABEL), np.abs(P64 - LABEL).mean(1)),
    'SigmoidBCELoss_logits': (gloss.SigmoidBCELoss, (PRED, BINARY),
                              (_np_softplus(P64) - P64 * BINARY).mean(1)),
    'SigmoidBCELoss_prob': (lambda: gloss.SigmoidBCELoss(from_sigmoid=True), (scipy.special.expit(PRED), BINARY),
                            -(BINARY * np.log(scipy.special.expit(P64))
                              + (1 - BINARY) * np.log(1 - scipy.special.expit(P64))).mean(1)),
    'SoftmaxCELoss': (gloss.SoftmaxCELoss, (PRED, CLASSES),
                      -scipy.special.log_softmax(P64, axis=1)[np.arange(4), CLASSES]),
    'SoftmaxCELoss_label_n1': (gloss.SoftmaxCELoss, (PRED, CLASSES.reshape(4, 1)),
                               -scipy.special.log_softmax(P64, axis=1)[np.arange(4), CLASSES]),
    'SoftmaxCELoss_dense': (lambda: gloss.SoftmaxCELoss(sparse_label=False), (PRED, DIST),
                            -(DIST * scipy.special.log_softmax(P64, axis=1)).sum(1)),
    'SoftmaxCELoss_from_logits': (lambda: gloss.SoftmaxCELoss(from_logits=True), (LOGP, CLASSES),
                                  -LOGP[np.arange(4), CLASSES]),
    'SoftmaxCELoss_per_pixel': (lambda: gloss.SoftmaxCELoss(axis=1), (IMG, PIX),
                                -np.take_along_axis(scipy.special.log_softmax(IMG.astype(np.float64), axis=1),
                                                    PIX[:, None], axis=1)[:, 0].mean(axis=(1, 2))),
    'KLDivLoss': (gloss.KLDivLoss, (LOGP, DIST), (DIST * (np.log(DIST) - LOGP)).sum(1)),  # MXNet 1.9 sums
    'KLDivLoss_from_scores': (lambda: gloss.KLDivLoss(from_logits=False), (PRED, DIST),
                              (DIST * (np.log(DIST) - scipy.special.log_softmax(P64, axis=1))).sum(1)),
    'HuberLoss': (lambda: gloss.HuberLoss(rho=0.7), (PRED, LABEL),
                  np.where(np.abs(P64 - LABEL) > 0.7, np.abs(P64 - LABEL) - 0.35,
                           0.5 / 0.7 * (P64 - LABEL) ** 2).mean(1)),
    'HingeLoss': (lambda: gloss.HingeLoss(margin=1.5), (PRED, SIGNED), np.maximum(0, 1.5 - P64 * SIGNED).mean(1)),
    'SquaredHingeLoss': (gloss.SquaredHingeLoss, (PRED, SIGNED), np.maximum(0, 1 - P64 * SIGNED).__pow__(2).mean(1)),
    'LogisticLoss_signed': (gloss.LogisticLoss, (PRED, SIGNED), np.log1p(np.exp(-P64 * SIGNED)).mean(1)),
    'LogisticLoss_binary': (lambda: gloss.LogisticLoss(label_format='binary'), (PRED, BINARY),
                            np.log1p(np.exp(-P64 * SIGNED)).mean(1)),
    'TripletLoss': (lambda: gloss.TripletLoss(margin=0.5), (PRED, LABEL, PRED * 0.5),
                    np.maximum(0, ((LABEL - P64) ** 2 - (0.5 * P64 - P64) ** 2).sum(1) + 0.5)),
    'CosineEmbeddingLoss': (lambda: gloss.CosineEmbeddingLoss(margin=0.1), (A, B, PAIR),
                            np.where(PAIR == 1, 1 - COS, np.maximum(0, COS - 0.1))),
    'PoissonNLLLoss': (gloss.PoissonNLLLoss, (PRED, COUNTS), (np.exp(P64) - COUNTS * P64).mean()),
    'PoissonNLLLoss_full': (lambda: gloss.PoissonNLLLoss(compute_full=True), (PRED, COUNTS),
                            (np.exp(P64) - COUNTS * P64 + _stirling(COUNTS.astype(np.float64))).mean()),
    'PoissonNLLLoss_rate': (lambda: gloss.PoissonNLLLoss(from_logits=False), (np.exp(PRED), COUNTS),
                            (np.exp(P64) - COUNTS * np.log(np.exp(P64) + 1e-8)).mean()),
}


@pytest.mark.parametrize('name', list(CASES))
def test_loss_vs_numpy(name):
    make, args, ref = CASES[name]
    _close(_loss_value(make(), *args), ref, what=name)


@pytest.mark.parametrize('name', [n for n in CASES if not n.startswith(('PoissonNLL', 'CosineEmbedding', 'Triplet'))])
def test_sample_weight_scales_each_sample(name):
    make, args, ref = CASES[name]
    if name == 'SoftmaxCELoss_per_pixel':
        sw = _f32(rng.random((2, 1, 1)) + 0.5)    # one weight per image
        expected = ref * sw.reshape(2)
    else:
        sw, expected = SW, ref * SW.reshape(4)
    _close(_loss_value(make(), *args, sw), expected, what=name)


def test_sample_weight_of_cosine_triplet_and_poisson():
    sw = _f32([1.0, 0.0, 2.0, 0.5])
    for name in ('CosineEmbeddingLoss', 'TripletLoss'):
        make, args, ref = CASES[name]
        _close(_loss_value(make(), *args, sw), ref * sw, what=name)
    make, args, ref = CASES['PoissonNLLLoss']
    weights = _f32(rng.random((4, 5)))
    expected = ((np.exp(P64) - COUNTS * P64) * weights).mean()
    _close(_loss_value(make(), *args, weights), expected)


def test_per_pixel_weights_for_segmentation():
    weights = _f32(rng.random((2, 4, 5)))
    logp = scipy.special.log_softmax(IMG.astype(np.float64), axis=1)
    per_pixel = -np.take_along_axis(logp, PIX[:, None], axis=1)[:, 0]
    _close(_loss_value(gloss.SoftmaxCELoss(axis=1), IMG, PIX, weights), (per_pixel * weights).mean(axis=(1, 2)))


def test_bce_pos_weight():
    pw = _f32([1.0, 2.0, 3.0, 0.5, 1.0])
    p = scipy.special.expit(P64)
    expected = -(pw * BINARY * np.log(p) + (1 - BINARY) * np.log(1 - p)).mean(1)
    _close(_loss_value(gloss.SigmoidBCELoss(), PRED, BINARY, None, pw), expected)
    _close(_loss_value(gloss.SigmoidBCELoss(from_sigmoid=True), p.astype(np.float32), BINARY, None, pw),
           expected)


def test_bce_is_stable_for_large_logits():
    x = _f32([[80.0, -80.0, 0.0]])
    z = _f32([[0.0, 1.0, 1.0]])
    _close(_loss_value(gloss.SigmoidBCELoss(), x, z), [(80 + 80 + np.log(2)) / 3])


def test_batch_axis():
    pred, label = PRED.T.copy(), LABEL.T.copy()
    _close(_loss_value(gloss.L2Loss(batch_axis=1), pred, label), 0.5 * ((P64 - LABEL) ** 2).mean(1))


def test_bad_labels_are_clear_errors():
    with pytest.raises(MXNetError, match='out of range'):
        gloss.SoftmaxCELoss()(nd.array(PRED), nd.array([0, 1, 2, 7]))
    with pytest.raises(MXNetError, match='label_format'):
        gloss.LogisticLoss(label_format='sometimes')


def test_repr_shows_weight_and_batch_axis():
    assert repr(gloss.L2Loss()) == 'L2Loss(batch_axis=0, w=1.0)'


# ---- eager vs hybridized ---------------------------------------------------------------------------

def _hybrid_inputs(args):
    first = tuple(nd.array(a) for a in args)
    second = tuple(nd.array(a[:3]) if np.ndim(a) and np.shape(a)[0] == 4 else nd.array(a) for a in args)
    return [first, second]


@pytest.mark.parametrize('name', list(CASES))
def test_loss_hybridized_matches_eager(name, check_hybrid):
    make, args, _ = CASES[name]
    if name == 'SoftmaxCELoss_per_pixel':
        inputs = [tuple(nd.array(a) for a in args), (nd.array(IMG[:1]), nd.array(PIX[:1]))]
    else:
        inputs = _hybrid_inputs(args)
    check_hybrid(make, inputs)


def test_loss_with_sample_weight_hybridized(check_hybrid):
    check_hybrid(gloss.SoftmaxCELoss, [(nd.array(PRED), nd.array(CLASSES), nd.array(SW))])
    check_hybrid(gloss.L1Loss, [(nd.array(PRED), nd.array(LABEL), nd.array(SW))])


def test_loss_gradient_of_softmax_ce():
    """d(CE)/d(logits) = softmax - onehot, hybridized too."""
    for hybridize in (False, True):
        loss = gloss.SoftmaxCELoss()
        if hybridize:
            loss.hybridize()
        x = nd.array(PRED)
        x.attach_grad()
        with autograd.record():
            out = loss(x, nd.array(CLASSES))
        out.backward()
        expected = scipy.special.softmax(P64, axis=1)
        expected[np.arange(4), CLASSES] -= 1
        _close(x.grad.asnumpy(), expected, what=f'hybridize={hybridize}')


# ---- a custom loss -------------------------------------------------------------------------------

class DiceLoss(gluon.loss.Loss):
    """1 - Dice coefficient per sample, on sigmoid probabilities of (N, 1, H, W) logits."""

    def __init__(self, smooth=1.0, **kwargs):
        super().__init__(**kwargs)
        self._smooth = smooth

    def hybrid_forward(self, F, pred, label):
        prob = F.sigmoid(pred)
        inter = F.sum(prob * label, axis=(1, 2, 3))
        union = F.sum(prob, axis=(1, 2, 3)) + F.sum(label, axis=(1, 2, 3))
        return 1 - (2 * inter + self._smooth) / (union + self._smooth)


def test_custom_dice_loss_eager_and_hybridized(check_hybrid):
    logits = _f32(rng.standard_normal((3, 1, 6, 6)))
    mask = _f32(rng.random((3, 1, 6, 6)) > 0.5)
    p = scipy.special.expit(logits.astype(np.float64))
    inter = (p * mask).sum(axis=(1, 2, 3))
    expected = 1 - (2 * inter + 1) / (p.sum(axis=(1, 2, 3)) + mask.sum(axis=(1, 2, 3)) + 1)
    dice = DiceLoss()
    _close(_loss_value(dice, logits, mask), expected)
    dice.hybridize()
    _close(_loss_value(dice, logits, mask), expected)
    assert 'sigmoid' in str(dice.graph())
    check_hybrid(DiceLoss, [(nd.array(logits), nd.array(mask)), (nd.array(logits[:1]), nd.array(mask[:1]))])
    # the BCE + Dice combination of the seed U-Net, differentiated through the hybridized blocks
    bce = gloss.SigmoidBCELoss()
    bce.hybridize()
    x = nd.array(logits)
    x.attach_grad()
    with autograd.record():
        total = bce(x, nd.array(mask)) + dice(x, nd.array(mask))
    total.backward()
    assert x.grad.shape == logits.shape and np.isfinite(x.grad.asnumpy()).all()


# ---- PyTorch ------------------------------------------------------------------------------------

@pytest.mark.torch
def test_losses_vs_torch():
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    t = torch.tensor

    def check(name, ours, theirs):
        _close(ours, theirs.detach().numpy().astype(np.float64), atol=1e-5, what=name)

    check('cross_entropy', _loss_value(gloss.SoftmaxCELoss(), PRED, CLASSES),
          F.cross_entropy(t(PRED), t(CLASSES), reduction='none'))
    check('cross_entropy per pixel (N,C,H,W) axis=1', _loss_value(gloss.SoftmaxCELoss(axis=1), IMG, PIX),
          F.cross_entropy(t(IMG), t(PIX), reduction='none').mean(dim=(1, 2)))
    check('cross_entropy with probabilities', _loss_value(gloss.SoftmaxCELoss(sparse_label=False), PRED, DIST),
          F.cross_entropy(t(PRED), t(DIST), reduction='none'))
    check('bce with logits', _loss_value(gloss.SigmoidBCELoss(), PRED, BINARY),
          F.binary_cross_entropy_with_logits(t(PRED), t(BINARY), reduction='none').mean(1))
    pw = _f32([1.0, 2.0, 3.0, 0.5, 1.0])
    check('bce with logits and pos_weight', _loss_value(gloss.SigmoidBCELoss(), PRED, BINARY, None, pw),
          F.binary_cross_entropy_with_logits(t(PRED), t(BINARY), pos_weight=t(pw), reduction='none').mean(1))
    check('kl_div', _loss_value(gloss.KLDivLoss(), LOGP, DIST), F.kl_div(t(LOGP), t(DIST), reduction='none').sum(1))
    check('smooth_l1', _loss_value(gloss.HuberLoss(rho=0.7), PRED, LABEL),
          F.smooth_l1_loss(t(PRED), t(LABEL), beta=0.7, reduction='none').mean(1))
    check('huber(delta=1) = smooth_l1(beta=1)', _loss_value(gloss.HuberLoss(), PRED, LABEL),
          F.huber_loss(t(PRED), t(LABEL), delta=1.0, reduction='none').mean(1))
    check('hinge (multilabel soft margin analogue)', _loss_value(gloss.HingeLoss(), PRED, SIGNED),
          torch.clamp(1 - t(PRED) * t(SIGNED), min=0).mean(1))
    check('cosine_embedding', _loss_value(gloss.CosineEmbeddingLoss(margin=0.1), A, B, PAIR),
          F.cosine_embedding_loss(t(A), t(B), t(PAIR), margin=0.1, reduction='none'))
    check('poisson_nll', _loss_value(gloss.PoissonNLLLoss(), PRED, COUNTS),
          F.poisson_nll_loss(t(PRED), t(COUNTS), log_input=True, reduction='mean'))
    check('poisson_nll full', _loss_value(gloss.PoissonNLLLoss(compute_full=True), PRED, COUNTS),
          F.poisson_nll_loss(t(PRED), t(COUNTS), log_input=True, full=True, reduction='mean'))
    check('soft_margin', _loss_value(gloss.LogisticLoss(), PRED, SIGNED),
          F.soft_margin_loss(t(PRED), t(SIGNED), reduction='none').mean(1))
    check('triplet (squared distances, no sqrt)', _loss_value(gloss.TripletLoss(margin=0.5), PRED, LABEL, PRED * 0.5),
          torch.clamp(((t(LABEL) - t(PRED)) ** 2).sum(1) - ((t(PRED) * 0.5 - t(PRED)) ** 2).sum(1) + 0.5, min=0))
