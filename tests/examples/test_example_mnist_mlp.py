"""examples/mnist_mlp.py: fast checks on a slice of MNIST (or synthetic data), and the full run."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
MNIST = DATA / 'mnist'
needs_mnist = pytest.mark.skipif(not (MNIST / 't10k-labels-idx1-ubyte.gz').exists(),
                                 reason=f'MNIST files not in {MNIST}')


def _falls(losses, k=10):
    return np.mean(losses[-k:]) < 0.7 * np.mean(losses[:k])


def test_mlp_learns_synthetic_data():
    import common
    import mnist_mlp
    import engine as mx
    from engine import gluon
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(10, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 400).astype(np.int32)
    x = centers[y] + 0.5 * rng.normal(size=(400, 1, 28, 28)).astype(np.float32)
    net = mnist_mlp.make_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
    hist = common.fit(net, trainer, common.loader(x, y, 40), 3, loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      progress=False, verbose=False)
    assert _falls(hist.step_loss)
    assert common.accuracy(net, x, y) > 0.9


@needs_mnist
def test_mlp_fast_slice_eager_matches_hybridized():
    import mnist_mlp
    kw = dict(data_root=MNIST, epochs=1, batch_size=50, limit=2000, test_limit=500, progress=False,
              verbose=False)
    hyb = mnist_mlp.run(**kw)
    eager = mnist_mlp.run(eager=True, **kw)
    assert _falls(hyb['history'].step_loss)
    assert hyb['test_acc'] > 0.8
    np.testing.assert_allclose(hyb['history'].step_loss, eager['history'].step_loss, rtol=1e-3, atol=1e-4)


def test_mlp_missing_data_exits_with_message(tmp_path, capsys):
    import mnist_mlp
    with pytest.raises(SystemExit) as e:
        mnist_mlp.main(['--data-root', str(tmp_path / 'nowhere'), '--epochs', '1'])
    assert 'MNIST' in str(e.value) and 'nowhere' in str(e.value)


@pytest.mark.slow
@needs_mnist
def test_mlp_full_run_reaches_bar(tmp_path):
    pytest.importorskip('matplotlib')
    import mnist_mlp
    res = mnist_mlp.main(['--data-root', str(MNIST), '--plot', str(tmp_path / 'mlp.png')])
    assert res['test_acc'] >= 0.975
    assert (tmp_path / 'mlp.png').stat().st_size > 0
