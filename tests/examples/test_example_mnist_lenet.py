"""examples/mnist_lenet.py: the seed LeNet with AdamW + one-cycle."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
MNIST = DATA / 'mnist'
needs_mnist = pytest.mark.skipif(not (MNIST / 't10k-labels-idx1-ubyte.gz').exists(),
                                 reason=f'MNIST files not in {MNIST}')


def test_lenet_architecture():
    import mnist_lenet
    from engine import nd
    for use_zoo in (True, False):
        net = mnist_lenet.make_net(use_zoo)
        net.initialize()
        assert net(nd.zeros((2, 1, 28, 28))).shape == (2, 10)
        assert sum(p.data().size for p in net.collect_params().values()) == 233578


@needs_mnist
def test_lenet_fast_slice(tmp_path):
    import mnist_lenet
    res = mnist_lenet.run(MNIST, epochs=1, batch_size=32, limit=1600, test_limit=300, progress=False,
                          verbose=False)
    loss = res['history'].step_loss
    assert np.mean(loss[-8:]) < 0.7 * np.mean(loss[:8])
    assert res['test_acc'] > 0.6
    lr = np.array(res['lr'])                  # one cycle: up to max_lr at 30%, then down
    peak = int(lr.argmax())
    assert abs(lr.max() - 3e-3) < 3e-4 and 0.2 * len(lr) < peak < 0.4 * len(lr)
    assert lr[-1] < lr[0] < lr.max()


def test_lenet_plot(tmp_path):
    pytest.importorskip('matplotlib')
    import common
    import mnist_lenet
    hist = common.History()
    hist.step_loss = list(np.linspace(2.0, 0.1, 30))
    for acc in (0.9, 0.95, 0.97):
        hist.add({'loss': 0.1, 'val_acc': acc})
    res = {'history': hist, 'test_acc': 0.97, 'lr': list(np.linspace(1e-3, 1e-2, 30))}
    mnist_lenet.plot(res, tmp_path / 'lenet.png')
    assert (tmp_path / 'lenet.png').stat().st_size > 0


def test_lenet_missing_data_exits_with_message(tmp_path):
    import mnist_lenet
    with pytest.raises(SystemExit) as e:
        mnist_lenet.main(['--data-root', str(tmp_path)])
    assert 'MNIST' in str(e.value)


@pytest.mark.slow
@needs_mnist
def test_lenet_full_run_reaches_bar():
    import mnist_lenet
    res = mnist_lenet.main(['--data-root', str(MNIST)])
    assert res['test_acc'] >= 0.985


@needs_mnist
def test_lenet_amp_fast_slice():
    import mnist_lenet
    import engine as mx
    res = mnist_lenet.run(MNIST, epochs=1, batch_size=32, limit=1600, test_limit=300, progress=False,
                          verbose=False, amp=True)
    assert not mx.amp.is_enabled()                       # run() turns it off again
    loss = res['history'].step_loss
    assert np.mean(loss[-8:]) < 0.7 * np.mean(loss[:8])
    assert res['test_acc'] > 0.6


@pytest.mark.slow
@needs_mnist
def test_lenet_amp_reaches_float32_accuracy():
    import mnist_lenet
    fp32 = mnist_lenet.run(MNIST, progress=False, verbose=False)
    mixed = mnist_lenet.run(MNIST, progress=False, verbose=False, amp=True)
    print(f"LeNet MNIST test accuracy: float32 {100 * fp32['test_acc']:.2f}%, amp {100 * mixed['test_acc']:.2f}%")
    assert mixed['test_acc'] >= fp32['test_acc'] - 0.005
