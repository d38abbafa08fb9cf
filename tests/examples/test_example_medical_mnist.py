"""examples/medical_mnist.py: the seed's linear softmax model and a small CNN."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
needs_data = pytest.mark.skipif(not (DATA / 'medical_mnist_64.npz').exists(),
                                reason=f'medical_mnist_64.npz not in {DATA}')


@pytest.mark.parametrize('model', ['linear', 'cnn'])
def test_models_shapes(model):
    import medical_mnist
    import engine as mx
    from engine import nd
    net = medical_mnist.make_net(model)
    net.initialize(mx.init.Xavier())
    assert net(nd.zeros((3, 1, 64, 64))).shape == (3, 6)


@needs_data
@pytest.mark.parametrize('model,limit,epochs', [('linear', 1500, 2), ('cnn', 640, 1)])
def test_fast_slice(model, limit, epochs):
    import medical_mnist
    res = medical_mnist.run(model, DATA, epochs=epochs, limit=limit, progress=False, verbose=False)
    loss = res['history'].step_loss
    k = max(2, len(loss) // 5)
    assert np.mean(loss[-k:]) < 0.7 * np.mean(loss[:k])
    assert res['val_acc'] > 0.5


def test_missing_data_exits_with_message(tmp_path):
    import medical_mnist
    with pytest.raises(SystemExit) as e:
        medical_mnist.main(['--data-root', str(tmp_path)])
    assert 'medical_mnist_64.npz' in str(e.value)


@pytest.mark.slow
@needs_data
def test_linear_full_run_reaches_bar():
    import medical_mnist
    assert medical_mnist.main(['--model', 'linear'])['val_acc'] >= 0.95


@pytest.mark.slow
@needs_data
def test_cnn_full_run_reaches_bar():
    import medical_mnist
    assert medical_mnist.main(['--model', 'cnn'])['val_acc'] >= 0.99
