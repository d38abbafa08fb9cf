"""engine.distributions.Normal: densities vs SciPy, gradients, sampling, hybridized use."""
import math

import numpy as np
import pytest
import scipy.stats as st

import engine as mx
from engine import autograd, gluon, nd
from engine.distributions import Normal, kl_divergence
from engine.test_utils import check_numeric_gradient

LOC = np.array([0.5, -1.0, 2.0, 0.0])
SCALE = np.array([1.0, 0.3, 2.5, 0.05])
X = np.array([[0.1, 0.2, 3.0, 0.01], [1.0, -1.2, -3.0, -0.1]])


def test_log_prob_matches_scipy():
    d = Normal(nd.array(LOC), nd.array(SCALE))
    np.testing.assert_allclose(d.log_prob(nd.array(X)).asnumpy(), st.norm.logpdf(X, LOC, SCALE),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.prob(nd.array(X)).asnumpy(), st.norm.pdf(X, LOC, SCALE), rtol=1e-5)
    np.testing.assert_allclose(d.cdf(nd.array(X)).asnumpy(), st.norm.cdf(X, LOC, SCALE), rtol=1e-5, atol=1e-6)


def test_float64_and_numbers():
    d = Normal(nd.array(LOC, dtype='float64'), nd.array(SCALE, dtype='float64'))
    lp = d.log_prob(nd.array(X, dtype='float64'))
    assert lp.dtype == np.float64
    np.testing.assert_allclose(lp.asnumpy(), st.norm.logpdf(X, LOC, SCALE), rtol=1e-12)
    assert math.isclose(Normal(1.0, 2.0).log_prob(0.3), st.norm.logpdf(0.3, 1.0, 2.0))
    # a number for one parameter broadcasts against an array for the other
    np.testing.assert_allclose(Normal(0.5, nd.array(SCALE)).log_prob(nd.array(X)).asnumpy(),
                               st.norm.logpdf(X, 0.5, SCALE), rtol=1e-5, atol=1e-5)


def test_moments_and_entropy():
    d = Normal(nd.array(LOC), nd.array(SCALE))
    np.testing.assert_allclose(d.mean.asnumpy(), LOC, rtol=1e-6)
    np.testing.assert_allclose(d.stddev.asnumpy(), SCALE, rtol=1e-6)
    np.testing.assert_allclose(d.variance.asnumpy(), SCALE ** 2, rtol=1e-6)
    np.testing.assert_allclose(d.entropy().asnumpy(), st.norm.entropy(LOC, SCALE), rtol=1e-5)
    assert d.batch_shape == (4,)
    b = Normal(nd.zeros((3, 1)), nd.ones(4))
    assert b.batch_shape == (3, 4)
    assert b.mean.shape == b.stddev.shape == b.entropy().shape == (3, 4)
    with pytest.raises(mx.MXNetError, match='broadcast'):
        Normal(nd.zeros(3), nd.ones(4))


def test_validate_args():
    with pytest.raises(mx.MXNetError, match='positive'):
        Normal(0.0, nd.array([1.0, -1.0]), validate_args=True)
    with pytest.raises(mx.MXNetError, match='positive'):
        Normal(0.0, 0.0, validate_args=True)


def test_gradients_match_finite_differences():
    check_numeric_gradient(lambda m, s, x: Normal(m, s).log_prob(x), [LOC, SCALE, X], rtol=1e-5, atol=1e-6)
    check_numeric_gradient(lambda m, s: Normal(m, s).entropy(), [LOC, SCALE])
    check_numeric_gradient(lambda m, s, x: Normal(m, s).cdf(x), [LOC, SCALE, X], rtol=1e-5, atol=1e-7)
    # the seed's scale parameterization: 1e-3 + softplus(0.3 * raw)
    check_numeric_gradient(lambda m, r, x: Normal(m, 1e-3 + nd.softplus(0.3 * r)).log_prob(x),
                           [LOC, np.array([-2.0, 0.0, 1.0, 3.0]), X])
    check_numeric_gradient(lambda m1, s1, m2, s2: kl_divergence(Normal(m1, s1), Normal(m2, s2)),
                           [LOC, SCALE, LOC[::-1].copy(), SCALE[::-1].copy()])


def test_kl_divergence_closed_form():
    p, q = Normal(nd.array(LOC), nd.array(SCALE)), Normal(0.3, 1.7)
    # KL(p||q) = E_p[log p - log q]; check by quadrature on a grid
    grid = np.linspace(-15, 15, 200001)[:, None]
    lp, lq = st.norm.logpdf(grid, LOC, SCALE), st.norm.logpdf(grid, 0.3, 1.7)
    expected = np.trapezoid(np.exp(lp) * (lp - lq), grid[:, 0], axis=0)
    np.testing.assert_allclose(kl_divergence(p, q).asnumpy(), expected, rtol=1e-3)


def test_sample_statistics_and_shapes():
    mx.random.seed(3)
    d = Normal(nd.array(LOC), nd.array(SCALE))
    s = d.sample((40000,)).asnumpy()
    assert s.shape == (40000, 4) and s.dtype == np.float32
    n = len(s)
    assert np.all(np.abs(s.mean(0) - LOC) < 5 * SCALE / np.sqrt(n))
    assert np.all(np.abs(s.std(0) / SCALE - 1) < 5 / np.sqrt(2 * n))
    assert d.sample().shape == (4,)
    assert d.sample(3).shape == d.sample_n(3).shape == d.rsample((3,)).shape == (3, 4)
    assert Normal(nd.zeros((2, 1)), nd.ones(3)).sample((5,)).shape == (5, 2, 3)
    scalar = Normal(2.0, 0.5).sample((20000,)).asnumpy()
    assert abs(scalar.mean() - 2.0) < 0.02 and abs(scalar.std() - 0.5) < 0.02
    # seeded: the same seed gives the same draws
    mx.random.seed(7)
    a = d.sample((3,)).asnumpy()
    mx.random.seed(7)
    np.testing.assert_array_equal(a, d.sample((3,)).asnumpy())


def test_sample_is_reparameterized():
    loc, scale = nd.array(LOC), nd.array(SCALE)
    loc.attach_grad()
    scale.attach_grad()
    mx.random.seed(11)
    with autograd.record():
        s = Normal(loc, scale).sample((6,))
    s.backward()
    eps = (s.asnumpy() - LOC) / SCALE
    np.testing.assert_allclose(loc.grad.asnumpy(), np.full(4, 6.0), rtol=1e-6)
    np.testing.assert_allclose(scale.grad.asnumpy(), eps.sum(0), rtol=1e-4, atol=1e-5)


def test_noise_op_kernel_contract():
    """The noise op's kernel follows the op contract: writes into out=, seeded, right dtype."""
    from engine.distributions import standard_normal_like
    from engine.ops.registry import get_op
    _noise_op = get_op('random_normal_like')
    x = np.zeros((3, 5), dtype=np.float64)
    kernel = _noise_op.kernel('cpu')
    mx.random.seed(0)
    ref = kernel(x)
    out = np.full((3, 5), 7.0)
    mx.random.seed(0)
    assert kernel(x, out=out) is out
    np.testing.assert_array_equal(out, ref)
    assert ref.dtype == np.float64 and _noise_op.stateful and not _noise_op.differentiable
    assert standard_normal_like(nd.zeros((2, 3))).shape == (2, 3)


class _NLL(gluon.HybridBlock):
    """Dense(2) -> Normal(out[:, 0], 1e-3 + softplus(0.3 out[:, 1])); returns -log p(y), a sample."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = gluon.nn.Dense(2)

    def hybrid_forward(self, F, x, y):
        out = self.dense(x)
        d = Normal(out[:, 0], 1e-3 + F.softplus(0.3 * out[:, 1]))
        return -d.log_prob(y), d.sample()


def test_inside_hybridized_block_matches_eager():
    rng = np.random.default_rng(0)
    x, y = nd.array(rng.uniform(0, 5, (16, 1))), nd.array(rng.normal(size=16))
    net = _NLL()
    net.initialize(mx.init.Xavier())
    grads = []
    results = []
    for hybridize in (False, True):
        net.hybridize(hybridize)
        with autograd.record():
            nll, sample = net(x, y)
        nll.backward()
        results.append(nll.asnumpy())
        grads.append({k: p.grad().asnumpy().copy() for k, p in net.collect_params().items()})
        assert sample.shape == (16,) and np.isfinite(sample.asnumpy()).all()
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)
    for k in grads[0]:
        np.testing.assert_allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-5)
    # the compiled graph draws fresh noise on every call
    s1, s2 = net(x, y)[1].asnumpy(), net(x, y)[1].asnumpy()
    assert not np.allclose(s1, s2)
    assert 'random_normal_like' in str(net.graph())
