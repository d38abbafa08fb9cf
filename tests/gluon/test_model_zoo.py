"""gluon.model_zoo.vision: every model builds and runs, eager == hybridized, parameter counts of the
published architectures, pretrained files (local only), get_model errors, and PyTorch import.

Parameter-count convention: TRAINABLE parameters only (grad_req != 'null'), i.e. BatchNorm
running mean/variance (and the fixed gamma/beta of ResNetV2's input BatchNorm) are excluded; this
is the convention of torchvision's published counts and of Keras' "trainable params".
Counts need every deferred shape; `_count` gets them by tracing the (uninitialized) network on a
symbolic input of the reference size, which runs the shape rules only: no compute, no memory.
"""
import re

import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon.model_zoo import import_torch_state_dict, vision
from engine.graph.trace import Tracer

RTOL, ATOL = 1e-4, 1e-5
# He initialization scaled by fan-in keeps activations O(1) through every architecture (the
# default uniform init shrinks e.g. MobileNet's outputs to ~1e-10, which would make the
# eager-vs-hybridized comparison vacuous at atol=1e-5)
INIT = mx.init.MSRAPrelu(factor_type='in')


def _count(net, shape):
    """(trainable, total) parameter counts of `net` for an input of `shape`."""
    with Tracer('count', mx.cpu()) as tracer:
        net(tracer.input(tuple(shape), np.dtype(np.float32), 'data'))
    params = list(net.collect_params().values())
    total = sum(int(np.prod(p.shape)) for p in params)
    trainable = sum(int(np.prod(p.shape)) for p in params if p.grad_req != 'null')
    return trainable, total


def _input(shape, seed=0):
    return nd.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ---- parameter counts (1000 classes, reference input sizes) ----------------------------------
RGB224, RGB299, MNIST = (1, 3, 224, 224), (1, 3, 299, 299), (1, 1, 28, 28)
TORCHVISION_RESNET50 = 25_557_032
# MXNet's BottleneckV1 keeps biases on its two 1x1 body convs (torchvision's has none):
# (64+256)*3 + (128+512)*4 + (256+1024)*6 + (512+2048)*3 = 18,880 more for resnet50_v1
BOTTLENECK_V1_BIASES_50 = 18_880
TORCHVISION_MOBILENET_V2 = 3_504_872
# MXNet's MobileNetV2: + 32*32 expansion conv and its BN gamma/beta (64) in the first bottleneck,
# - 1000 output biases (the classifier is a bias-free 1x1 conv)
MXNET_MOBILENET_V2_DELTA = 32 * 32 + 64 - 1000

COUNTS = {
    'lenet': (MNIST, 233_578),                 # the seed notebook's torchsummary total
    'mlp': (MNIST, 784 * 300 + 300 + 300 * 10 + 10),
    'alexnet': (RGB224, 61_100_840),
    'vgg11': (RGB224, 132_863_336), 'vgg13': (RGB224, 133_047_848),
    'vgg16': (RGB224, 138_357_544), 'vgg19': (RGB224, 143_667_240),
    'vgg11_bn': (RGB224, 132_868_840), 'vgg13_bn': (RGB224, 133_053_736),
    'vgg16_bn': (RGB224, 138_365_992), 'vgg19_bn': (RGB224, 143_678_248),
    'resnet18_v1': (RGB224, 11_689_512), 'resnet34_v1': (RGB224, 21_797_672),
    'resnet50_v1': (RGB224, TORCHVISION_RESNET50 + BOTTLENECK_V1_BIASES_50),
    'resnet101_v1': (RGB224, 44_549_160 + BOTTLENECK_V1_BIASES_50 + 17 * (256 + 1024)),
    'resnet152_v1': (RGB224, 60_192_808 + BOTTLENECK_V1_BIASES_50
                     + 4 * (128 + 512) + 30 * (256 + 1024)),
    'resnet18_v2': (RGB224, 11_687_848), 'resnet34_v2': (RGB224, 21_796_008),
    'resnet50_v2': (RGB224, 25_549_480),
    'squeezenet1.0': (RGB224, 1_248_424), 'squeezenet1.1': (RGB224, 1_235_496),
    'densenet121': (RGB224, 7_978_856), 'densenet161': (RGB224, 28_681_000),
    'densenet169': (RGB224, 14_149_480), 'densenet201': (RGB224, 20_013_928),
    'mobilenet1.0': (RGB224, 4_231_976),
    'mobilenetv2_1.0': (RGB224, TORCHVISION_MOBILENET_V2 + MXNET_MOBILENET_V2_DELTA),
    'inceptionv3': (RGB299, 23_834_568),       # torchvision inception_v3 without AuxLogits
    'unet': ((1, 3, 64, 64), 31_031_745),      # checked against PyTorch in test_unet_count_matches_torch
}


@pytest.mark.parametrize('name', sorted(COUNTS))
def test_parameter_count(name):
    shape, expected = COUNTS[name]
    trainable, total = _count(vision.get_model(name), shape)
    assert trainable == expected, f'{name}: {trainable:,} trainable parameters, expected {expected:,}'
    assert total >= trainable


def test_counts_scale_with_classes():
    base, _ = _count(vision.resnet18_v1(), RGB224)
    ten, _ = _count(vision.resnet18_v1(classes=10), RGB224)
    assert base - ten == 990 * (512 + 1)


@pytest.mark.torch
def test_unet_count_matches_torch():
    """The seed U-Net written in PyTorch (as in the seed R-torch notebook) has the same count."""
    torch = pytest.importorskip('torch')
    tnn = torch.nn

    def conv_block(cin, cout):
        return tnn.Sequential(tnn.Conv2d(cin, cout, 3, padding=1), tnn.ReLU(), tnn.Dropout(0.6),
                              tnn.Conv2d(cout, cout, 3, padding=1), tnn.ReLU())

    widths = [64 * 2 ** i for i in range(5)]
    mods, prev = [], 3
    for w in widths:
        mods.append(conv_block(prev, w))
        prev = w
    for w in reversed(widths[:-1]):
        mods += [tnn.ConvTranspose2d(prev, w, 2, stride=2), conv_block(prev, w)]
        prev = w
    mods.append(tnn.Conv2d(prev, 1, 1))
    expected = sum(p.numel() for p in tnn.ModuleList(mods).parameters())
    assert _count(vision.unet(), (1, 3, 64, 64))[0] == expected


# ---- every model builds; get_model and the registry ------------------------------------------
def test_every_model_builds_with_features_and_output():
    for name in vision.model_names():
        net = vision.get_model(name, classes=7)
        assert isinstance(net, mx.gluon.HybridBlock), name
        assert isinstance(net.features, mx.gluon.HybridBlock), name
        assert isinstance(net.output, mx.gluon.HybridBlock), name
        params = net.collect_params()          # raises if two parameters share a name
        assert len(params) == len(net._structural_params()), name
    net = vision.resnet18_v1()
    assert isinstance(net.features, mx.gluon.nn.HybridSequential)
    names = list(net.collect_params())         # MXNet's naming scheme
    assert any(re.fullmatch(r'resnetv1\d+_stage1_conv(2d)?0_weight', n) for n in names), names[:8]
    assert any(re.fullmatch(r'resnetv1\d+_dense0_bias', n) for n in names), names[-4:]


def test_get_model_accepts_constructor_names():
    assert isinstance(vision.get_model('mobilenet_v2_1_0'), vision.MobileNetV2)
    assert isinstance(vision.get_model('MobileNet1.0'), vision.MobileNet)
    assert isinstance(vision.get_model('inception_v3'), vision.Inception3)
    assert isinstance(vision.get_model('squeezenet1_1'), vision.SqueezeNet)
    assert isinstance(mx.gluon.model_zoo.vision.get_model('unet', depth=2), vision.UNet)


def test_get_model_unknown_name_lists_models():
    with pytest.raises(MXNetError, match='unknown model .resnet19_v1.') as err:
        vision.get_model('resnet19_v1')
    for name in ('resnet18_v1', 'mobilenetv2_1.0', 'squeezenet1.0', 'inceptionv3', 'unet', 'lenet'):
        assert name in str(err.value)
    with pytest.raises(ValueError):       # MXNet raised ValueError; both work
        vision.get_model('nope')


# ---- pretrained: local files only ------------------------------------------------------------
def test_pretrained_without_file_raises_clear_error(tmp_path):
    for name, ctor in [('resnet18_v1', vision.resnet18_v1), ('mobilenet1.0', vision.mobilenet1_0),
                       ('inceptionv3', vision.inception_v3), ('squeezenet1.1', vision.squeezenet1_1)]:
        with pytest.raises(MXNetError) as err:
            ctor(pretrained=True, root=str(tmp_path))
        msg = str(err.value)
        assert str(tmp_path / f'{name}.params') in msg and 'never downloads' in msg, msg
    with pytest.raises(MXNetError, match=r'vgg16_bn\.params'):
        vision.get_model('vgg16_bn', pretrained=True, root=str(tmp_path))


def test_pretrained_loads_local_file(tmp_path):
    x = _input((2, 3, 32, 32))
    src = vision.mobilenet0_25(classes=5)
    src.initialize(INIT)
    with autograd.predict_mode():
        expected = src(x).asnumpy()
    src.save_parameters(str(tmp_path / 'mobilenet0.25.params'))
    net = vision.get_model('mobilenet0.25', classes=5, pretrained=True, root=str(tmp_path))
    with autograd.predict_mode():
        np.testing.assert_array_equal(net(x).asnumpy(), expected)
    with pytest.raises(MXNetError, match='shape'):       # wrong head size: clear shape error
        vision.mobilenet0_25(classes=6, pretrained=True, root=str(tmp_path))


# ---- forward on small inputs; eager == hybridized ------------------------------------------
# (name, input shape, constructor options): the smallest inputs each architecture allows
SMALL = [
    ('lenet', (2, 1, 28, 28), {}),
    ('mlp', (2, 1, 28, 28), {'hidden_units': (32, 16)}),
    ('alexnet', (1, 3, 63, 63), {}),
    ('vgg11', (1, 3, 32, 32), {}),
    ('vgg11_bn', (1, 3, 32, 32), {}),
    ('resnet18_v1', (1, 3, 32, 32), {}),
    ('resnet18_v2', (1, 3, 32, 32), {}),
    ('resnet50_v1', (1, 3, 32, 32), {}),
    ('resnet50_v2', (1, 3, 32, 32), {}),
    ('resnet18_v1', (1, 3, 16, 16), {'thumbnail': True}),
    ('mobilenet0.25', (1, 3, 32, 32), {}),
    ('mobilenetv2_0.25', (1, 3, 32, 32), {}),
    ('squeezenet1.0', (1, 3, 48, 48), {}),
    ('squeezenet1.1', (1, 3, 48, 48), {}),
    ('densenet121', (1, 3, 32, 32), {}),
    ('inceptionv3', (1, 3, 75, 75), {}),
    ('unet', (1, 3, 16, 16), {'depth': 3, 'base_filters': 4, 'classes': 2}),
]


def _predict(net, x, hybridized):
    net.hybridize(active=hybridized)
    with autograd.predict_mode():
        return net(x).asnumpy()


@pytest.mark.parametrize('name,shape,kwargs', SMALL, ids=[f'{n}-{s[-1]}' for n, s, _ in SMALL])
def test_forward_eager_matches_hybridized(name, shape, kwargs):
    """Predict mode, two batch sizes (the hybridized block retraces): same outputs."""
    kwargs = dict({'classes': 10}, **kwargs)
    mx.random.seed(0)
    net = vision.get_model(name, **kwargs)
    net.initialize(INIT)
    classes = kwargs['classes']
    for batch in (shape[0], shape[0] + 1):
        x = _input((batch,) + shape[1:], seed=batch)
        eager = _predict(net, x, hybridized=False)
        assert eager.shape == ((batch, classes) + shape[2:] if name == 'unet' else (batch, classes))
        assert np.isfinite(eager).all() and np.abs(eager).max() > 1e-3, 'degenerate output'
        # float32 rounding differs between the paths (e.g. BatchNorm folded into the conv weights
        # in inference graphs): tolerances relative to the output's scale (ResNet-50: ~100)
        scale = max(1.0, float(np.abs(eager).max()))
        np.testing.assert_allclose(_predict(net, x, hybridized=True), eager, rtol=RTOL, atol=ATOL * scale,
                                   err_msg=f'{name}: hybridized vs eager, batch {batch}')


def _train_step(net, x, seed):
    """Seeded training-mode forward + backward; outputs, gradients, running stats."""
    mx.random.seed(seed)
    x = x.copy()
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward(_input(y.shape, seed=seed + 1))
    params = net.collect_params()
    grads = {k: p.grad().asnumpy().copy() for k, p in params.items() if p.grad_req != 'null'}
    values = {k: p.data().asnumpy().copy() for k, p in params.items()}
    return y.asnumpy(), x.grad.asnumpy(), grads, values


@pytest.mark.parametrize('name,shape,kwargs', [
    ('resnet18_v1', (2, 3, 32, 32), {'classes': 10}),
    ('unet', (2, 3, 16, 16), {'depth': 3, 'base_filters': 4, 'classes': 2, 'dropout': 0.5}),
])
def test_training_gradients_eager_match_hybridized(name, shape, kwargs):
    """Training mode (BatchNorm batch statistics, dropout masks from the same seed): outputs,
    every parameter gradient, the input gradient and the updated running statistics agree."""
    net = vision.get_model(name, **kwargs)
    net.initialize(INIT)
    x = _input(shape)
    with autograd.predict_mode():
        net(x)
    start = {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}
    eager = _train_step(net, x, seed=3)
    for k, p in net.collect_params().items():
        p.set_data(start[k])
    net.hybridize()
    hybrid = _train_step(net, x, seed=3)
    np.testing.assert_allclose(hybrid[0], eager[0], rtol=RTOL, atol=ATOL, err_msg='output')
    np.testing.assert_allclose(hybrid[1], eager[1], rtol=RTOL, atol=ATOL, err_msg='input gradient')
    assert sorted(hybrid[2]) == sorted(eager[2])
    for k in eager[2]:
        np.testing.assert_allclose(hybrid[2][k], eager[2][k], rtol=RTOL, atol=ATOL, err_msg=f'grad {k}')
    for k in eager[3]:
        np.testing.assert_allclose(hybrid[3][k], eager[3][k], rtol=RTOL, atol=ATOL, err_msg=f'value {k}')


def test_fine_tuning_replaces_output():
    """The seed talk's fine-tuning pattern: reuse `features`, new `output`."""
    donor = vision.get_model('mobilenet0.25')
    donor.initialize(INIT)

    class FineTuned(mx.gluon.HybridBlock):
        def __init__(self, donor, classes):
            super().__init__()
            with self.name_scope():
                self.features = donor.features
                self.output = mx.gluon.nn.HybridSequential(prefix='output')
                with self.output.name_scope():
                    self.output.add(mx.gluon.nn.Flatten(), mx.gluon.nn.Dense(classes))

        def hybrid_forward(self, F, x):
            return self.output(self.features(x))

    net = FineTuned(donor, 4)
    net.output.initialize(INIT)
    x = _input((2, 3, 32, 32))
    with autograd.predict_mode():
        eager = net(x).asnumpy()
        net.hybridize()
        np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=RTOL, atol=ATOL)
    assert eager.shape == (2, 4)


def test_export_and_import_roundtrip(tmp_path):
    net = vision.squeezenet1_1(classes=4)
    net.initialize(INIT)
    x = _input((1, 3, 48, 48))
    net.hybridize()
    expected = net(x).asnumpy()
    net.export(str(tmp_path / 'squeezenet'))
    loaded = mx.gluon.SymbolBlock.imports(str(tmp_path / 'squeezenet-symbol.json'), ['data'],
                                          str(tmp_path / 'squeezenet-0000.params'))
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=RTOL, atol=ATOL)


def test_predict_mode_gradients_through_downsample_block():
    """Gradients under record(train_mode=False) through a residual block with a projection."""
    block = vision.BasicBlockV1(8, 2, downsample=True, in_channels=4)
    block.initialize(INIT)
    x = _input((1, 4, 8, 8))
    block(x)
    block.hybridize()
    x.attach_grad()
    with autograd.record(train_mode=False):
        y = block(x)
    y.backward()
    assert x.grad.shape == x.shape


def test_unet_rejects_indivisible_input():
    net = vision.unet(depth=3, base_filters=4)
    net.initialize(INIT)
    with pytest.raises(MXNetError, match='divisible by 4'):
        net(_input((1, 3, 18, 18)))


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(set(vision.model_names()) - {'lenet', 'mlp', 'unet'}))
def test_reference_resolution_forward(name):
    """Every ImageNet model on its reference input size with 1000 classes (eager, predict)."""
    net = vision.get_model(name)
    net.initialize(INIT)
    shape = RGB299 if name == 'inceptionv3' else RGB224
    with autograd.predict_mode():
        y = net(_input(shape)).asnumpy()
    assert y.shape == (1, 1000) and np.isfinite(y).all()


# ---- PyTorch weights -------------------------------------------------------------------------
def _torch_resnet18(torch, classes):
    """torchvision's ResNet-18 structure (BasicBlock, names as torchvision), written out here."""
    tnn = torch.nn

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, cout in enumerate([64, 128, 256, 512]):
                stride = 1 if i == 0 else 2
                setattr(self, f'layer{i + 1}', tnn.Sequential(BasicBlock(cin, cout, stride),
                                                              BasicBlock(cout, cout, 1)))
                cin = cout
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18()


def _randomize_bn_stats(torch, model):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def _compare_with_torch(torch, tmodel, net, shape):
    tmodel.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    with autograd.predict_mode():
        got = net(nd.array(x)).asnumpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        net.hybridize()
        np.testing.assert_allclose(net(nd.array(x)).asnumpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.torch
def test_import_torch_resnet18_matches_torch_logits():
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    tmodel = _torch_resnet18(torch, classes=1000)
    _randomize_bn_stats(torch, tmodel)
    net = vision.resnet18_v1()
    import_torch_state_dict(net, tmodel.state_dict())      # uninitialized net: initialized from it
    _compare_with_torch(torch, tmodel, net, (1, 3, 64, 64))


@pytest.mark.torch
def test_import_torch_vgg_and_alexnet_layouts():
    """torchvision's VGG (features.<i> with separate ReLU/BN modules, classifier.0/3/6) and
    AlexNet (classifier.1/4/6) naming, on small stand-ins without the adaptive pooling (the
    identity at 224x224)."""
    torch = pytest.importorskip('torch')
    tnn = torch.nn
    torch.manual_seed(0)

    class Plain(tnn.Module):
        def __init__(self, features, classifier):
            super().__init__()
            self.features, self.classifier = features, classifier

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    vgg = Plain(tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(),
                               tnn.MaxPool2d(2, 2),
                               tnn.Conv2d(8, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(),
                               tnn.Conv2d(16, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(),
                               tnn.MaxPool2d(2, 2)),
                tnn.Sequential(tnn.Linear(16 * 4 * 4, 4096), tnn.ReLU(), tnn.Dropout(),
                               tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(),
                               tnn.Linear(4096, 10)))
    _randomize_bn_stats(torch, vgg)
    net = vision.VGG([1, 2], [8, 16], classes=10, batch_norm=True)
    net.initialize(INIT)
    import_torch_state_dict(net, {k: v.numpy() for k, v in vgg.state_dict().items()})
    _compare_with_torch(torch, vgg, net, (1, 3, 16, 16))

    alex = Plain(tnn.Sequential(tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                                tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                                tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(),
                                tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
                                tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
                 tnn.Sequential(tnn.Dropout(), tnn.Linear(256, 4096), tnn.ReLU(), tnn.Dropout(),
                                tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, 10)))
    net = vision.alexnet(classes=10)
    import_torch_state_dict(net, alex.state_dict())
    _compare_with_torch(torch, alex, net, (1, 3, 63, 63))


@pytest.mark.slow
@pytest.mark.torch
def test_import_torch_alexnet_at_224_with_adaptive_pooling():
    """torchvision's exact AlexNet (adaptive 6x6 average pooling before the classifier) equals ours
    at its reference 224x224 input."""
    torch = pytest.importorskip('torch')
    tnn = torch.nn
    torch.manual_seed(0)

    class TorchAlexNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 256, 3, padding=1),
                tnn.ReLU(), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(
                tnn.Dropout(), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(), tnn.Dropout(),
                tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    tmodel = TorchAlexNet()
    net = import_torch_state_dict(vision.alexnet(), tmodel.state_dict())
    _compare_with_torch(torch, tmodel, net, (1, 3, 224, 224))


def _numpy_resnet18_state(net):
    """A complete torchvision-named state_dict for `net` made of NumPy arrays."""
    from engine.gluon.model_zoo.torch_import import torch_parameter_map
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(p.shape).astype(np.float32)
            for k, p in torch_parameter_map(net).items()}


def test_import_errors_are_clear_and_assign_nothing():
    net = vision.resnet18_v1(classes=10)
    net.initialize(INIT)
    net(_input((1, 3, 32, 32)))                       # complete the deferred first conv
    state = _numpy_resnet18_state(net)
    before = net.output.weight.data().asnumpy().copy()

    missing = dict(state)
    del missing['layer2.0.downsample.1.running_var']
    with pytest.raises(MXNetError, match=r'missing.*layer2\.0\.downsample\.1\.running_var'):
        import_torch_state_dict(net, missing)
    extra = dict(state, **{'layer5.0.conv1.weight': np.zeros((1,), np.float32)})
    with pytest.raises(MXNetError, match=r'unexpected.*layer5\.0\.conv1\.weight'):
        import_torch_state_dict(net, extra)
    bad = dict(state, **{'fc.weight': np.zeros((1000, 512), np.float32)})
    with pytest.raises(MXNetError, match=r'fc\.weight has shape \(1000, 512\).*\(10, 512\)'):
        import_torch_state_dict(net, bad)
    np.testing.assert_array_equal(net.output.weight.data().asnumpy(), before)

    state['layer1.0.bn1.num_batches_tracked'] = np.array(5)    # torch bookkeeping is ignored
    import_torch_state_dict(net, state)
    np.testing.assert_array_equal(net.output.weight.data().asnumpy(), state['fc.weight'])
    np.testing.assert_array_equal(net.features[4][1].body[1].running_var.data().asnumpy(),
                                  state['layer1.1.bn1.running_var'])

    with pytest.raises(MXNetError, match='BottleneckV1'):
        import_torch_state_dict(vision.resnet50_v1(), {})
    with pytest.raises(MXNetError, match='no torchvision mapping for DenseNet'):
        import_torch_state_dict(vision.densenet121(), {})
