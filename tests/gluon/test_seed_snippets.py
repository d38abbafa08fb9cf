"""The code of the seed talk ("Differentiable programming in Gluon"), run as written with
`import engine as mx` (slide numbers in the test names). Where a slide's code is not valid
Python (typos, a non-default argument after a default one) the smallest fix is noted."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.gluon import nn
from engine.gluon import nn as gnn


def _assert_same(a, b, rtol=1e-4, atol=1e-5):
    a = a if isinstance(a, (list, tuple)) else [a]
    b = b if isinstance(b, (list, tuple)) else [b]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y.asnumpy(), x.asnumpy(), rtol=rtol, atol=atol)


def test_slide17_shapes_are_computed_on_first_run():
    conv = gluon.nn.Conv2D(16, kernel_size=(3, 3), padding=(1, 1))
    conv.collect_params().initialize()
    assert conv(nd.zeros((1, 3, 256, 256))).shape == (1, 16, 256, 256)
    assert conv(nd.zeros((4, 3, 128, 128))).shape == (4, 16, 128, 128)
    dense = gluon.nn.Dense(16)
    dense.collect_params().initialize()
    assert dense(nd.zeros((10, 128, 256))).shape == (10, 16)
    assert dense(nd.zeros((5, 128, 256))).shape == (5, 16)    # the slide's comment says (4, 16)


def test_slide19_sequential():
    net = nn.Sequential()
    net.add(nn.Conv2D(3, kernel_size=5, padding=2))
    net.add(nn.Conv2D(6, kernel_size=5, padding=2))
    net.add(nn.Flatten())
    net.add(nn.Dense(12))
    net.collect_params().initialize()
    out = net(nd.random.uniform(shape=(2, 1, 16, 16)))
    assert out.shape == (2, 12)
    assert len(net) == 4 and net[0].weight.shape == (3, 1, 5, 5) and net[3].weight.shape == (12, 6 * 16 * 16)


class MLP(gnn.Block):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense0 = nn.Dense(128)
            self.dense1 = nn.Dense(64)
            self.dense2 = nn.Dense(10)

    def forward(self, x):
        x = nd.relu(self.dense0(x))
        x = nd.relu(self.dense1(x))
        return self.dense2(x)


def test_slide20_block_mlp():
    net = MLP()
    net.collect_params().initialize()
    x = nd.random.uniform(shape=(4, 32))
    out = net(x)
    assert out.shape == (4, 10)
    names = list(net.collect_params())
    assert names[0] == net.prefix + 'dense0_weight' and names[-1] == net.prefix + 'dense2_bias'
    w0, b0 = net.dense0.weight.data().asnumpy(), net.dense0.bias.data().asnumpy()
    w1, b1 = net.dense1.weight.data().asnumpy(), net.dense1.bias.data().asnumpy()
    w2, b2 = net.dense2.weight.data().asnumpy(), net.dense2.bias.data().asnumpy()
    h = np.maximum(x.asnumpy() @ w0.T + b0, 0)
    h = np.maximum(h @ w1.T + b1, 0)
    np.testing.assert_allclose(out.asnumpy(), h @ w2.T + b2, rtol=1e-4, atol=1e-5)


class HybridNet(gluon.nn.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = nn.Conv2D(3, kernel_size=5, padding=2)

    # see the F?
    def hybrid_forward(self, F, x):
        return self.conv(x)


class BigNet(gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.convin = nn.Conv2D(3, kernel_size=5, padding=2)
            self.iterative_process = HybridNet(prefix='iter_')
            self.convout = nn.Conv2D(6, kernel_size=5, padding=2)

    def hybrid_forward(self, F, x):
        x = x_in = self.convin(x)
        for _ in range(2):
            x = self.iterative_process(x)
        x = F.concat(x_in, x, dim=1)
        return self.convout(x)


def test_slide21_hybridnet_eager_and_hybridized():
    net = HybridNet()
    x = mx.sym.Variable('x')
    y = net(x)
    assert isinstance(y, mx.sym.Symbol) and y.list_arguments()[0] == 'x'
    net.collect_params().initialize()
    arr = nd.random.uniform(shape=(2, 3, 12, 12))
    eager = net(arr)
    net.hybridize()
    hybrid = net(arr)
    assert hybrid.shape == (2, 3, 12, 12)
    _assert_same(eager, hybrid)


def test_slide22_bignet_eager_and_hybridized(check_hybrid):
    net = BigNet()
    net.collect_params().initialize()
    x = nd.random.uniform(shape=(2, 3, 10, 10))
    eager = net(x)
    assert eager.shape == (2, 6, 10, 10)
    # the child used twice has its parameters once; HybridNet creates its conv outside its own
    # name_scope, so (as in MXNet) the conv is named in BigNet's scope, between convin and convout
    assert net.iterative_process.prefix == net.prefix + 'iter_'
    assert net.iterative_process.conv.weight.name == net.prefix + 'conv1_weight'
    assert len(net.collect_params()) == 6
    net.hybridize()
    hybrid = net(x)
    _assert_same(eager, hybrid)
    # the loop was unrolled: the shared conv appears twice in the graph, with the same weight
    graph = str(net.graph())
    assert graph.count('conv2d(') == 4 and graph.count('concat(') == 1
    check_hybrid(BigNet, [nd.random.uniform(shape=(2, 3, 8, 8)), nd.random.uniform(shape=(3, 3, 8, 8))])


def squared_diff_loss(x, y):
    return ((x - y.reshape_like(x))**2).sum()


def test_slide24_squared_diff_loss():
    x = nd.array([[1.0, 2.0], [3.0, 4.0]])
    y = nd.array([0.0, 2.0, 1.0, 1.0])
    x.attach_grad()
    with autograd.record():
        loss = squared_diff_loss(x, y)
    loss.backward()
    assert loss.asscalar() == pytest.approx(1 + 0 + 4 + 9)
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * (x.asnumpy() - y.asnumpy().reshape(2, 2)))


def test_slide26_27_trainer_and_training_loop():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, kernel_size=3, padding=1, activation='relu'))
        net.add(nn.Conv2D(2, kernel_size=1))
    # the slide initializes with mx.init.Normal() on mx.gpu(0); sigma 0.01 makes this tiny net
    # learn too slowly for a quick test, so a wider normal on the CPU
    net.collect_params().initialize(mx.init.Normal(0.5), ctx=mx.cpu(0))
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 1.0})
    loss_function = gluon.loss.SoftmaxCrossEntropyLoss(axis=1)
    computation_context = mx.cpu()
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 1, 6, 6)).astype(np.float32)
    masks = (images[:, 0] > 0).astype(np.float32)

    class Batch:
        def __init__(self, i):
            self.data = [nd.array(images[i:i + 4])]
            self.label = [nd.array(masks[i:i + 4])]

    train_data = [Batch(0), Batch(4)]
    losses = []
    for epoch in range(15):
        total = 0.0
        for batch in train_data:
            data = batch.data[0].as_in_context(computation_context)
            label = batch.label[0].as_in_context(computation_context)
            # record the computational graph
            with mx.autograd.record():
                prediction = net(data)
                # compute the loss
                loss = loss_function(prediction, label)
            # compute the gradients
            loss.backward()
            # run one optimization step
            trainer.step(data.shape[0])
            total += loss.mean().asscalar()
        losses.append(total)
    assert losses[-1] < 0.6 * losses[0], losses


class MobileNetLike(gluon.nn.HybridBlock):
    """The model-zoo shape of slide 28: `features` then `output`."""

    def __init__(self, multiplier=1.0, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            with self.features.name_scope():
                self.features.add(nn.Conv2D(int(8 * multiplier), kernel_size=3, padding=1, activation='relu'))
                self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        x = self.features(x)
        return self.output(x)


class FineTunedClassifier(gluon.nn.HybridBlock):
    # the slide has `def __init__(self, classes=20, donor)`, which Python rejects
    def __init__(self, donor, classes=20):
        super().__init__()
        self.features = donor.features
        self.output = gluon.nn.HybridSequential('output')
        with self.output.name_scope():
            self.output.add(gluon.nn.Flatten())
            self.output.add(gluon.nn.Dense(classes))

    def hybrid_forward(self, F, x):
        x = self.features(x)
        return self.output(x)


def test_slide30_fine_tuning_reuses_donor_features(tmp_path):
    donor = MobileNetLike(classes=10)
    donor.initialize(mx.init.Xavier())
    x = nd.random.uniform(shape=(2, 3, 8, 8))
    donor(x)
    finetuned_net = FineTunedClassifier(classes=4, donor=donor)
    finetuned_net.output.initialize()
    out = finetuned_net(x)
    assert out.shape == (2, 4)
    # the features are shared, not copied
    assert finetuned_net.features is donor.features
    donor_w = donor.features[0].weight
    assert any(p is donor_w for p in finetuned_net.collect_params().values())
    # train only the new head: freeze the donor's features
    finetuned_net.features.collect_params().setattr('grad_req', 'null')
    finetuned_net.hybridize()
    _assert_same(out, finetuned_net(x))
    before = donor_w.data().asnumpy().copy()
    trainer = gluon.Trainer(finetuned_net.collect_params(), 'sgd', {'learning_rate': 0.1})
    with autograd.record():
        loss = gluon.loss.SoftmaxCELoss()(finetuned_net(x), nd.array([0, 3]))
    loss.backward()
    trainer.step(2)
    np.testing.assert_array_equal(donor_w.data().asnumpy(), before)
    finetuned_net.save_parameters(str(tmp_path / 'ft.params'))
    copy = FineTunedClassifier(classes=4, donor=MobileNetLike(classes=10))
    copy.load_parameters(str(tmp_path / 'ft.params'))
    _assert_same(finetuned_net(x), copy(x), rtol=0, atol=0)


class ViewEstimator(nn.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.translation = nn.HybridSequential()
        self.translation.add(gluon.nn.Flatten())
        self.translation.add(gluon.nn.Dense(3))
        self.rotation = nn.HybridSequential()
        self.rotation.add(gluon.nn.Flatten())
        self.rotation.add(gluon.nn.Dense(3))

    def hybrid_forward(self, F, x):
        return [self.translation(x), self.rotation(x)]


def test_slide37_view_estimator_two_outputs_hybridized(check_hybrid):
    net = ViewEstimator()
    net.initialize()
    x = nd.random.uniform(shape=(4, 2, 5, 5))
    eager = net(x)
    assert isinstance(eager, list) and [o.shape for o in eager] == [(4, 3), (4, 3)]
    net.hybridize()
    hybrid = net(x)
    assert isinstance(hybrid, list)
    _assert_same(eager, hybrid)
    loss = gluon.loss.L2Loss()
    target_t, target_r = nd.ones((4, 3)), nd.zeros((4, 3))
    with autograd.record():
        t, r = net(x)
        total = loss(t, target_t) + loss(r, target_r)
    total.backward()
    assert np.abs(net.translation[1].weight.grad().asnumpy()).sum() > 0
    assert np.abs(net.rotation[1].weight.grad().asnumpy()).sum() > 0
    check_hybrid(ViewEstimator, [nd.random.uniform(shape=(4, 2, 5, 5)), nd.random.uniform(shape=(2, 2, 5, 5))])


def test_slide34_36_preprocessor_and_segmentator_blocks():
    class Preprocessor(nn.HybridSequential):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.add(nn.Conv2D(4, kernel_size=(3, 3), padding=(1, 1), activation='relu'))
                self.add(nn.Conv2D(1, kernel_size=(1, 1)))

    class Segmentator(nn.HybridBlock):
        def __init__(self, num_output_classes, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.conv0 = nn.Conv2D(4, kernel_size=3, padding=1, activation='relu')
                self.conv_out = nn.Conv2D(num_output_classes, kernel_size=(1, 1))

        def hybrid_forward(self, F, x):
            x = self.conv0(x)
            return self.conv_out(x)

    pre, seg = Preprocessor(), Segmentator(3)
    for b in (pre, seg):
        b.initialize()
    x = nd.random.uniform(shape=(2, 1, 8, 8))
    eager = seg(pre(x))
    pre.hybridize()
    seg.hybridize()
    _assert_same(eager, seg(pre(x)))
    label = nd.array(np.random.default_rng(0).integers(0, 3, (2, 8, 8)))
    loss = gluon.loss.SoftmaxCrossEntropyLoss(axis=1)
    with autograd.record():
        value = loss(seg(pre(x)), label)
    value.backward()
    assert value.shape == (2,)
    assert np.abs(pre[0].weight.grad().asnumpy()).sum() > 0
