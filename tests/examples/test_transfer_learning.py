"""examples/transfer_learning.py: the head, freezing/unfreezing (eager and hybridized), the
model-zoo pretrained round trip, a tiny end-to-end run, and (slow) the full run's bar."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
has_medical = (DATA / 'medical_mnist_64.npz').exists()
has_mnist = all((DATA / 'mnist' / f).exists() for f in
                ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
                 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'))
needs_data = pytest.mark.skipif(not (has_medical and has_mnist),
                                reason=f'medical_mnist_64.npz or mnist/ not in {DATA}')


@pytest.fixture
def one_thread():
    """Single-threaded kernels for these tests (multi-threaded BLAS stalls on a busy machine);
    the previous setting is restored afterwards."""
    import engine as mx
    before = mx.get_num_threads()
    mx.set_num_threads(1)
    yield
    mx.set_num_threads(before)


def _backbone(seed=0):
    import engine as mx
    import transfer_learning as tl
    mx.random.seed(seed)
    from engine import nd
    net = tl.vision.resnet18_v1(classes=10)
    net.initialize(tl.INIT)
    net(nd.zeros((1, 3, 32, 32)))       # the stem's input channels are inferred on the first call
    return net


def _snapshot(block):
    return {name: p.data().asnumpy().copy() for name, p in block.collect_params().items()}


def test_head_structure_and_output_shape(one_thread):
    import transfer_learning as tl
    from engine import nd
    from engine.gluon import nn
    net = tl.TransferNet(tl.trunk(_backbone()), classes=6)
    kinds = [type(b).__name__ for b in net.output]
    assert kinds == ['GlobalAvgPool2D', 'Flatten', 'BatchNorm', 'Dropout', 'Dense', 'Activation',
                     'BatchNorm', 'Dropout', 'Dense']
    assert not isinstance(net.features[len(net.features) - 1], nn.GlobalAvgPool2D)   # pool moved to the head
    out = net(nd.array(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)))
    assert out.shape == (2, 6) and np.all(np.isfinite(out.asnumpy()))


@pytest.mark.parametrize('hybridize', [False, True])
def test_freeze_trains_only_the_head_then_unfreeze_trains_all(hybridize, one_thread):
    import transfer_learning as tl
    from engine import autograd, gluon, nd
    rng = np.random.default_rng(1)
    x = nd.array(rng.normal(size=(8, 3, 32, 32)).astype(np.float32))
    y = nd.array(rng.integers(0, 6, size=8).astype(np.float32))
    net = tl.TransferNet(tl.trunk(_backbone()), classes=6)
    if hybridize:
        net.hybridize()
    net(x)                              # completes the head's deferred shapes (predict mode)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step(params):
        trainer = gluon.Trainer(params, 'sgd', {'learning_rate': 0.1})
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(8)

    before = tl.freeze(net.features)
    trainable = tl.trainable(net)
    assert trainable and all(name.startswith(net.output.prefix) for name in trainable)
    feats, head = _snapshot(net.features), _snapshot(net.output)
    step(trainable)
    for name, value in _snapshot(net.features).items():
        if 'running' not in name:      # BatchNorm statistics still adapt in training mode
            np.testing.assert_array_equal(value, feats[name], err_msg=name)
    assert any(not np.array_equal(v, head[k]) for k, v in _snapshot(net.output).items())

    tl.unfreeze(net.features, before)
    assert all(p.grad_req == before[n] for n, p in net.features.collect_params().items())
    feats = _snapshot(net.features)
    step(tl.trainable(net))
    conv_weights = [n for n in feats if n.endswith('weight') and 'conv' in n]
    assert conv_weights
    assert all(not np.array_equal(_snapshot(net.features)[n], feats[n]) for n in conv_weights)


def test_pretrained_round_trip_through_the_model_zoo(tmp_path, one_thread):
    import transfer_learning as tl
    from engine import nd
    import engine as mx
    net = _backbone(3)
    x = nd.array(np.random.default_rng(2).normal(size=(2, 3, 32, 32)).astype(np.float32))
    net.save_parameters(str(tmp_path / 'resnet18_v1.params'))
    loaded = tl.vision.resnet18_v1(pretrained=True, root=str(tmp_path), classes=10)
    np.testing.assert_allclose(loaded(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(mx.base.MXNetError, match='resnet18_v1.params'):
        tl.vision.resnet18_v1(pretrained=True, root=str(tmp_path / 'empty'), classes=10)


def test_missing_data_exits_with_message(tmp_path):
    import transfer_learning as tl
    with pytest.raises(SystemExit) as e:
        tl.main(['--data-root', str(tmp_path), '--root', str(tmp_path / 'models')])
    assert 'medical_mnist_64.npz' in str(e.value)


@needs_data
def test_data_preparation():
    import transfer_learning as tl
    (xtr, ytr), (xte, yte), classes = tl.load_medical32(DATA, 60, 30)
    assert xtr.shape == (60, 3, 32, 32) and xte.shape == (30, 3, 32, 32) and len(classes) == 6
    assert abs(float(xtr.mean())) < 1e-3 and abs(float(xtr.std()) - 1) < 1e-3
    np.testing.assert_array_equal(xtr[:, 0], xtr[:, 2])
    assert set(np.unique(ytr)) <= set(range(6))
    (mtr, mytr), (mte, myte) = tl.load_mnist32(DATA / 'mnist', 50, 20)
    assert mtr.shape == (50, 3, 32, 32) and mte.shape == (20, 3, 32, 32)
    assert set(np.unique(mytr)) <= set(range(10))


@needs_data
def test_tiny_end_to_end_run(tmp_path, one_thread):
    """Every stage on tiny subsets (eager, so no compilation): the pretrained file is written and
    loaded back, losses are finite and the pretraining loss falls."""
    import transfer_learning as tl
    res = tl.run(DATA, root=str(tmp_path), pretrain_epochs=2, epochs=1, batch_size=32,
                 pretrain_limit=320, limit=128, test_limit=64, eager=True, progress=False, verbose=False)
    assert (tmp_path / 'resnet18_v1.params').exists()
    pre = res['pretrain_history'].step_loss
    assert np.all(np.isfinite(pre)) and np.mean(pre[-4:]) < np.mean(pre[:4])
    for h in res['histories'] + res['random_histories']:
        assert np.all(np.isfinite(h.step_loss))
    for key in ('pretrain_acc', 'frozen_acc', 'finetune_acc', 'random_frozen_acc'):
        assert 0.0 <= res[key] <= 1.0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    tl.plot(res, tmp_path / 'tl.png')
    assert (tmp_path / 'tl.png').stat().st_size > 0


@pytest.mark.slow
@needs_data
def test_full_run_transfer_helps(tmp_path):
    import transfer_learning as tl
    res = tl.main(['--root', str(tmp_path)])
    assert res['finetune_acc'] > res['random_frozen_acc']
