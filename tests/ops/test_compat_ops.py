"""MXNet 1.x functions composed from primitive ops (engine/ops/compat.py), reshape's special
codes, and the random distributions of nd.random: values against NumPy (or shapes MXNet 1.9.1
produced, written as literals), float64 finite-difference gradients, and clear errors."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.test_utils import check_numeric_gradient

_rng = np.random.default_rng(0)


def test_moveaxis_matches_numpy_and_differentiates():
    x = _rng.standard_normal((2, 3, 4))
    for src, dst in [(0, -1), (-1, 0), ([0, 1], [2, 0]), ((2, 0), (0, 1)), (1, 1)]:
        np.testing.assert_array_equal(nd.moveaxis(nd.array(x, dtype='float64'), src, dst).asnumpy(),
                                      np.moveaxis(x, src, dst), err_msg=f'{src} -> {dst}')
    check_numeric_gradient(lambda a: nd.moveaxis(a, [0, 1], [2, 0]), [x])
    with pytest.raises(MXNetError, match=r'moveaxis: axis 3 is out of range for shape \(2, 3, 4\)'):
        nd.moveaxis(nd.array(x), 3, 0)
    with pytest.raises(MXNetError, match='moveaxis: repeated axis'):
        nd.moveaxis(nd.array(x), [0, 0], [1, 2])


def test_crop_is_slice():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(nd.crop(nd.array(x), begin=(0, 1), end=(2, 3)).asnumpy(), x[0:2, 1:3])
    np.testing.assert_array_equal(nd.crop(nd.array(x), begin=(None, 0), end=(None, 4), step=(2, 2)).asnumpy(),
                                  x[::2, 0:4:2])


def test_moveaxis_traced_with_several_axes():
    class Net(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.moveaxis(x, [0, 2], [2, 0]) * 2

    x = _rng.standard_normal((2, 3, 4))
    net = Net()
    eager = net(nd.array(x)).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(nd.array(x)).asnumpy(), eager)
    np.testing.assert_allclose(eager, np.moveaxis(x, [0, 2], [2, 0]).astype(np.float32) * 2, rtol=1e-6)


def test_choose_element_0index_and_onehot_encode():
    x = _rng.standard_normal((3, 4))
    idx = np.array([0, 3, 1])
    np.testing.assert_allclose(nd.choose_element_0index(nd.array(x, dtype='float64'), nd.array(idx)).asnumpy(),
                               x[np.arange(3), idx])
    check_numeric_gradient(lambda a: nd.choose_element_0index(a, nd.array(idx, dtype='float64')), [x])
    out = nd.zeros((3, 5))
    assert nd.onehot_encode(nd.array([1, 4, 0]), out) is out
    np.testing.assert_array_equal(out.asnumpy(), np.eye(5)[[1, 4, 0]])
    with pytest.raises(MXNetError, match='choose_element_0index: expected lhs'):
        nd.choose_element_0index(nd.array(x), nd.array([0, 1]))
    with pytest.raises(MXNetError, match='onehot_encode: expected indices'):
        nd.onehot_encode(nd.array([1, 2]), nd.zeros((3, 5)))


# (source shape, spec, reverse); the results below were printed by MXNet 1.9.1 for these specs
RESHAPE_SPECS = [((2, 3, 4), (4, 0, 2), False), ((2, 3, 4), (0, -1), False), ((2, 3, 4), (-2,), False),
                 ((2, 3, 4), (2, -2), False), ((2, 3, 4), (-2, 1, 1), False), ((2, 3, 4), (-3, 4), False),
                 ((2, 3, 4, 5), (-3, -3), False), ((2, 3, 4), (0, -3), False), ((2, 3, 4, 5), (-3, -2), False),
                 ((2, 3, 4), (-4, 1, 2, -2), False), ((2, 3, 4), (2, -4, -1, 3, -2), False),
                 ((10, 5, 4), (-1, 0), False), ((10, 5, 4), (-1, 0), True), ((2, 3, 4), (0, 0, -4, 2, 2), False),
                 ((2, 3, 4), (-4, -1, 1, 0, 0), False), ((2, 3, 4), (-4, 1, -1, -2), True),
                 ((6, 4), (-4, 2, 3, 0), True), ((2, 3, 4, 5), (0, -3, 0), True),
                 ((6, 3, 4), (3, 2, -4, 0, 0), True), ((4, 6), (0, -1, 2, -4), True)]
MXNET_RESHAPED = [(4, 3, 2), (2, 12), (2, 3, 4), (2, 3, 4), (2, 3, 4, 1, 1), (6, 4), (6, 20), (2, 12),
                  (6, 4, 5), (1, 2, 3, 4), (2, 1, 3, 4), (40, 5), (50, 4), (2, 3, 2, 2), (2, 1, 3, 4),
                  'error', 'error', (2, 12, 5), (3, 2, 3, 4), (4, 3, 2)]


@pytest.mark.parametrize('case', range(len(RESHAPE_SPECS)))
def test_reshape_special_codes_match_mxnet(case):
    src, spec, reverse = RESHAPE_SPECS[case]
    want = MXNET_RESHAPED[case]
    x = nd.array(np.arange(np.prod(src), dtype=np.float64).reshape(src))
    if want == 'error':
        with pytest.raises(MXNetError, match='reshape'):
            nd.reshape(x, spec, reverse=reverse)
        return
    y = nd.reshape(x, spec, reverse=reverse)
    assert y.shape == want
    np.testing.assert_array_equal(y.asnumpy().ravel(), x.asnumpy().ravel())   # row-major order kept
    assert x.reshape(spec, reverse=reverse).shape == want


def test_random_aliases_and_shapes():
    assert nd.uniform is nd.random_uniform and nd.normal is nd.random_normal
    assert nd.random_poisson is nd.random.poisson and nd.sample_multinomial is nd.random.multinomial
    x = nd.random.randn(2, 3, dtype='float64')
    assert x.shape == (2, 3) and x.dtype == np.float64
    for f, kw in [(nd.random.exponential, dict(scale=2.0)), (nd.random.gamma, dict(alpha=2.0, beta=0.5)),
                  (nd.random.poisson, dict(lam=3.0)), (nd.random.negative_binomial, dict(k=3, p=0.4)),
                  (nd.random.generalized_negative_binomial, dict(mu=2.0, alpha=0.5))]:
        y = f(shape=(2, 5), **kw)
        assert y.shape == (2, 5) and y.dtype == np.float32, f.__name__


@pytest.mark.parametrize('name,kw,mean,var', [
    ('exponential', dict(scale=2.0), 2.0, 4.0),
    ('gamma', dict(alpha=2.0, beta=0.5), 1.0, 0.5),
    ('poisson', dict(lam=3.0), 3.0, 3.0),
    ('negative_binomial', dict(k=3, p=0.4), 4.5, 11.25),                  # k(1-p)/p, k(1-p)/p^2
    ('generalized_negative_binomial', dict(mu=2.0, alpha=0.5), 2.0, 4.0),  # mu, mu + alpha mu^2
])
def test_random_distribution_moments(name, kw, mean, var):
    mx.random.seed(3)
    y = getattr(nd.random, name)(shape=(40000,), dtype='float64', **kw).asnumpy()
    # 40000 draws: the standard error of the mean is sqrt(var/40000) < 0.02 here
    assert abs(y.mean() - mean) < 5 * np.sqrt(var / y.size), (y.mean(), mean)
    assert abs(y.var() - var) / var < 0.08, (y.var(), var)
    mx.random.seed(3)
    np.testing.assert_array_equal(getattr(nd.random, name)(shape=(40000,), dtype='float64', **kw).asnumpy(), y)


def test_random_bad_parameters():
    with pytest.raises(MXNetError, match=r'random.gamma: invalid parameter\(s\) alpha=-1'):
        nd.random.gamma(alpha=-1)
    with pytest.raises(MXNetError, match='random.negative_binomial: .*p=1.5'):
        nd.random.negative_binomial(k=2, p=1.5)
    with pytest.raises(MXNetError, match='random.multinomial: each row of data'):
        nd.random.multinomial(nd.array([[0.5, 0.7]]))


def test_multinomial_frequencies_and_log_prob_gradient():
    mx.random.seed(1)
    p = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    draws = nd.random.multinomial(nd.array(p), shape=20000)
    assert draws.shape == (2, 20000) and draws.dtype == np.int32
    freq = np.stack([np.bincount(r, minlength=3) / 20000 for r in draws.asnumpy()])
    np.testing.assert_allclose(freq, p, atol=0.015)
    data = nd.array(p, dtype='float64')
    data.attach_grad()
    with autograd.record():
        idx, logp = nd.random.multinomial(data, shape=4, get_prob=True)
    logp.backward()
    i = idx.asnumpy()
    np.testing.assert_allclose(logp.asnumpy(), np.log(p[np.arange(2)[:, None], i]))
    want = np.zeros_like(p)
    for r in range(2):
        for k in i[r]:
            want[r, k] += 1.0 / p[r, k]
    np.testing.assert_allclose(data.grad.asnumpy(), want)


def test_inplace_arguments_of_flatten_expand_dims_squeeze():
    # MXNet: these return a copy unless inplace=True asks for a view sharing the input's data
    for f, kw in [(lambda x, **k: x.flatten(**k), {}), (lambda x, **k: x.expand_dims(1, **k), {}),
                  (lambda x, **k: x.squeeze(**k), {}), (lambda x, **k: nd.flatten(x, **k), {})]:
        x = nd.ones((2, 3, 1))
        f(x)[:] = 5
        assert (x.asnumpy() == 1).all()
        f(x, inplace=True)[:] = 7
        assert (x.asnumpy() == 7).all()
    x = nd.array(_rng.standard_normal((2, 3, 1)), dtype='float64')
    check_numeric_gradient(lambda a: nd.flatten(a) * nd.squeeze(a).expand_dims(2).flatten(), [x.asnumpy()])


@pytest.mark.parametrize('name,params,mean,var', [
    ('normal', ([0.0, 10.0], [1.0, 0.5]), [0.0, 10.0], [1.0, 0.25]),
    ('uniform', ([0.0, 5.0], [1.0, 7.0]), [0.5, 6.0], [1 / 12, 4 / 12]),
    ('gamma', ([2.0, 0.5], [0.5, 2.0]), [1.0, 1.0], [0.5, 2.0]),
    ('exponential', ([2.0, 0.5],), [2.0, 0.5], [4.0, 0.25]),               # nd.random: the mean
    ('poisson', ([3.0, 0.5],), [3.0, 0.5], [3.0, 0.5]),
    ('negative_binomial', ([3.0, 1.0], [0.4, 0.5]), [4.5, 1.0], [11.25, 2.0]),
    ('generalized_negative_binomial', ([2.0, 3.0], [0.0, 0.5]), [2.0, 3.0], [2.0, 7.5]),
])
def test_random_with_per_element_parameters(name, params, mean, var):
    # MXNet: nd.random.<name>(NDArray params, shape=s) draws shape params.shape + s, each row
    # from its own parameters (the sample_* ops)
    mx.random.seed(4)
    y = getattr(nd.random, name)(*[nd.array(p, dtype='float64') for p in params], shape=(2, 20000))
    assert y.shape == (2, 2, 20000) and y.dtype == np.float64
    y = y.asnumpy().reshape(2, -1)
    for r in range(2):
        assert abs(y[r].mean() - mean[r]) < 5 * np.sqrt(var[r] / y.shape[1]), (r, y[r].mean())
        assert abs(y[r].var() - var[r]) / var[r] < 0.08, (r, y[r].var())
    lam = nd.array([2.0, 0.5])
    assert nd.sample_exponential(lam, shape=3).shape == (2, 3)   # sample_exponential takes the rate
    mx.random.seed(4)
    rate = nd.sample_exponential(nd.array([4.0]), shape=20000).asnumpy()
    assert abs(rate.mean() - 0.25) < 0.01
    with pytest.raises(MXNetError, match='sample_gamma: alpha must be > 0'):
        nd.sample_gamma(nd.array([-1.0]), nd.array([1.0]))
    with pytest.raises(MXNetError, match='parameter arrays must share one shape'):
        nd.sample_normal(nd.array([0.0, 1.0]), nd.array([1.0]))
