"""examples/guided_backprop.py: the GuidedReLU autograd.Function and the saliency maps."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
MNIST = DATA / 'mnist'


def test_guided_relu_backward_masks_gradients():
    from guided_backprop import GuidedReLU
    from engine import autograd, nd
    x = nd.array([[-2.0, -0.5, 0.5, 2.0], [1.0, -1.0, 3.0, -3.0]])
    dy = np.array([[1.0, 1.0, -1.0, 2.0], [-2.0, 5.0, 0.5, 1.0]], dtype=np.float32)
    x.attach_grad()
    with autograd.record():
        y = GuidedReLU()(x)
    y.backward(nd.array(dy))
    np.testing.assert_array_equal(y.asnumpy(), np.maximum(x.asnumpy(), 0))
    expected = dy * (x.asnumpy() > 0) * (dy > 0)
    np.testing.assert_array_equal(x.grad.asnumpy(), expected)


def test_saliency_on_digits(tmp_path):
    import guided_backprop
    try:
        import matplotlib  # noqa: F401  (optional: the `examples` extra)
        out = tmp_path / 'gb.png'
    except ImportError:
        out = None
    res = guided_backprop.run(out=out and str(out), digits=True, epochs=3, limit=800, n_images=3,
                              progress=False, verbose=False)
    assert out is None or (out.exists() and out.stat().st_size > 0)
    loss = res['history'].step_loss
    assert np.mean(loss[-5:]) < 0.7 * np.mean(loss[:5])
    for plain, guided, target, prob in res['maps']:
        assert plain.shape == guided.shape == (8, 8)
        assert np.isfinite(guided).all() and np.abs(guided).max() > 0
        assert not np.allclose(plain, guided)
        assert 0 <= target < 10 and 0 < prob <= 1
    # hybridized again afterwards: predictions agree with the eager ones
    import common
    x = np.stack(res['images'])
    hyb = common.predict(res['net'], x)
    res['net'].hybridize(False)
    np.testing.assert_allclose(common.predict(res['net'], x), hyb, rtol=1e-4, atol=1e-5)


def test_guided_relu_inside_eager_net_differs_from_plain_relu():
    import guided_backprop
    import engine as mx
    net = guided_backprop.SmallCNN()
    net.initialize(mx.init.Xavier())
    img = np.random.default_rng(0).uniform(size=(1, 12, 12)).astype(np.float32)
    plain, target, _ = guided_backprop.input_gradient(net, img, guided=False)
    guided, target2, _ = guided_backprop.input_gradient(net, img, guided=True)
    assert target == target2 and not net.guided
    assert not np.allclose(plain, guided)


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST / 't10k-labels-idx1-ubyte.gz').exists(), reason='MNIST absent')
def test_full_run_on_mnist(tmp_path, capsys):
    pytest.importorskip('matplotlib')
    import guided_backprop
    res = guided_backprop.main(['--out', str(tmp_path / 'gb.png')])
    assert res['dataset'] == 'MNIST' and res['test_acc'] > 0.95
    assert (tmp_path / 'gb.png').exists()
    assert str(tmp_path / 'gb.png') in capsys.readouterr().out
