"""3-d convolution / transposed convolution / pooling layers (composed from the 2-d ops in
engine/ops/nn3d.py), GroupNorm (the layer and nd.GroupNorm) and ReflectionPad2D: against PyTorch (float64), numbers MXNet
1.9.1 produced (pooling with ceil_mode and padding, literals below) and NumPy, with float64
finite-difference gradients."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn
from engine.test_utils import check_numeric_gradient

_rng = np.random.default_rng(3)


def _layer(layer, *shape_in):
    layer.initialize()
    layer(nd.zeros(shape_in, dtype='float64').astype('float64'))   # complete deferred shapes
    return layer


@pytest.mark.torch
@pytest.mark.parametrize('kw', [dict(kernel_size=3, padding=1),
                                dict(kernel_size=(2, 3, 1), strides=(2, 1, 2), padding=(1, 0, 1), dilation=(2, 1, 1)),
                                dict(kernel_size=2, groups=2, use_bias=False)])
def test_conv3d_matches_torch(kw):
    torch = pytest.importorskip('torch')
    x = _rng.standard_normal((2, 4, 5, 4, 6))
    conv = nn.Conv3D(6, **kw)
    conv.cast('float64')
    conv.initialize()
    xd = nd.array(x, dtype='float64')
    xd.attach_grad()
    with autograd.record():
        y = conv(xd)
    head = _rng.standard_normal(y.shape)
    y.backward(nd.array(head, dtype='float64'))
    w = torch.tensor(conv.weight.data().asnumpy(), requires_grad=True)
    b = None if conv.bias is None else torch.tensor(conv.bias.data().asnumpy())
    xt = torch.tensor(x, requires_grad=True)
    t = lambda v: (v,) * 3 if isinstance(v, int) else v   # noqa: E731
    yt = torch.nn.functional.conv3d(xt, w, b, stride=t(kw.get('strides', 1)), padding=t(kw.get('padding', 0)),
                                    dilation=t(kw.get('dilation', 1)), groups=kw.get('groups', 1))
    (yt * torch.tensor(head)).sum().backward()
    np.testing.assert_allclose(y.asnumpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xd.grad.asnumpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad().asnumpy(), w.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize('kw', [dict(kernel_size=3, strides=2, padding=1, output_padding=1),
                                dict(kernel_size=(2, 3, 2), strides=(3, 1, 2), dilation=(2, 1, 1)),
                                dict(kernel_size=2, groups=2, strides=(1, 2, 1), use_bias=False)])
def test_conv3d_transpose_matches_torch(kw):
    torch = pytest.importorskip('torch')
    x = _rng.standard_normal((2, 4, 3, 4, 3))
    conv = nn.Conv3DTranspose(6, **kw)
    conv.cast('float64')
    conv.initialize()
    xd = nd.array(x, dtype='float64')
    xd.attach_grad()
    with autograd.record():
        y = conv(xd)
    head = _rng.standard_normal(y.shape)
    y.backward(nd.array(head, dtype='float64'))
    w = torch.tensor(conv.weight.data().asnumpy(), requires_grad=True)
    b = None if conv.bias is None else torch.tensor(conv.bias.data().asnumpy())
    xt = torch.tensor(x, requires_grad=True)
    t = lambda v: (v,) * 3 if isinstance(v, int) else v   # noqa: E731
    yt = torch.nn.functional.conv_transpose3d(
        xt, w, b, stride=t(kw.get('strides', 1)), padding=t(kw.get('padding', 0)),
        output_padding=t(kw.get('output_padding', 0)), dilation=t(kw.get('dilation', 1)), groups=kw.get('groups', 1))
    (yt * torch.tensor(head)).sum().backward()
    np.testing.assert_allclose(y.asnumpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xd.grad.asnumpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad().asnumpy(), w.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_3d_ops_finite_difference_gradients():
    x, w = _rng.standard_normal((1, 2, 3, 3, 3)), _rng.standard_normal((2, 1, 2, 2, 2))
    b = _rng.standard_normal(2)
    check_numeric_gradient(lambda x, w, b: nd.Convolution(x, w, b, kernel=(2, 2, 2), stride=(2, 1, 1),
                                                          pad=(1, 0, 1), num_filter=2, num_group=2), [x, w, b])
    check_numeric_gradient(lambda x, w: nd.Deconvolution(x, w, kernel=(2, 2, 2), stride=(2, 1, 2), pad=(1, 0, 0),
                                                         adj=(1, 0, 0), num_filter=2, num_group=2), [x, w])
    xp = _rng.permutation(54).reshape(1, 2, 3, 3, 3) * 0.1   # distinct values: no max ties
    check_numeric_gradient(lambda x: nd.Pooling(x, kernel=(2, 2, 2), pool_type='max', stride=(1, 2, 1),
                                                pad=(1, 1, 0)), [xp])
    check_numeric_gradient(lambda x: nd.Pooling(x, kernel=(2, 3, 2), pool_type='avg', stride=(1, 1, 2),
                                                pad=(0, 1, 1), count_include_pad=False,
                                                pooling_convention='full'), [x])


# MXNet 1.9.1: nn.<kind>(**kwargs)(x) for x = sin(0.7 * arange(180)).reshape(1, 2, 3, 5, 6)
POOL_REF = [
    ('MaxPool3D', {'pool_size': 2, 'strides': 2, 'ceil_mode': True}, (1, 2, 2, 3, 3),
     [0.83666, 0.99464, 0.98817, 0.85460, 0.99061, 0.99624, 0.71797, 0.99756, 0.99277, 0.79795, 0.11743, 0.99859, 0.74097, 0.99934, 0.99981, 0.77724, -0.48795, -0.50713, 0.80484, 1.00000, 0.99990, 0.78443, 0.99952, 0.99669, 0.82434, 0.99518, 0.99886, 0.68583, 0.28197, 0.99339, 0.84291, 0.99132, 0.98897, 0.66097, -0.62715, -0.35574]),
    ('MaxPool3D', {'pool_size': (2, 3, 3), 'strides': (1, 2, 2), 'padding': (1, 1, 1), 'ceil_mode': True}, (1, 2, 4, 3, 4),
     [0.64422, 0.98545, 0.98817, 0.98817, 0.85460, 0.99061, 0.98817, 0.98817, 0.66957, 0.99061, 0.99277, 0.99277, 0.83666, 0.99464, 0.98817, 0.98817, 0.85460, 0.99464, 0.99624, 0.99624, 0.81777, 0.99756, 0.99277, 0.99277, 0.83666, 0.99464, 0.99859, 0.99859, 0.81777, 0.99934, 0.99981, 0.99981, 0.81777, 0.99756, 0.99981, 0.99981, 0.79795, 0.22202, 0.99859, 0.99859, 0.79795, 0.99934, 0.99981, 0.99981, 0.77724, 0.18911, 0.99981, 0.99981, 0.76313, 1.00000, 0.99990, 0.99990, 0.78443, 0.99952, 0.99990, 0.99990, 0.78443, 0.99952, 0.99886, 0.99886, 0.80484, 1.00000, 0.99990, 0.99990, 0.80484, 0.99952, 0.99990, 0.99990, 0.82434, 0.99952, 0.99886, 0.99886, 0.80484, 0.99791, 0.99339, 0.99339, 0.84291, 0.99791, 0.99669, 0.99669, 0.82434, 0.99518, 0.98897, 0.98897, 0.68583, 0.28197, 0.99339, 0.99339, 0.84291, 0.99132, 0.98897, 0.98897, 0.66097, 0.31407, 0.98897, 0.98897]),
    ('AvgPool3D', {'pool_size': 2, 'strides': 2, 'ceil_mode': True, 'count_include_pad': True}, (1, 2, 2, 3, 3),
     [0.08441, 0.22043, -0.00948, 0.13489, -0.15518, -0.18764, -0.26113, 0.31278, 0.36745, -0.21380, -0.45349, 0.05965, -0.25073, 0.35406, 0.37109, 0.48318, -0.71174, -0.72512, 0.11822, 0.20935, -0.04705, 0.10274, -0.18037, -0.16405, -0.19679, 0.36174, 0.31976, -0.28163, -0.42387, 0.13754, -0.17983, 0.40187, 0.31644, 0.34154, -0.80430, -0.61495]),
    ('AvgPool3D', {'pool_size': 2, 'strides': 2, 'ceil_mode': True, 'count_include_pad': False}, (1, 2, 2, 3, 3),
     [0.08441, 0.22043, -0.00948, 0.13489, -0.15518, -0.18764, -0.26113, 0.31278, 0.36745, -0.21380, -0.45349, 0.05965, -0.25073, 0.35406, 0.37109, 0.48318, -0.71174, -0.72512, 0.11822, 0.20935, -0.04705, 0.10274, -0.18037, -0.16405, -0.19679, 0.36174, 0.31976, -0.28163, -0.42387, 0.13754, -0.17983, 0.40187, 0.31644, 0.34154, -0.80430, -0.61495]),
    ('AvgPool3D', {'pool_size': (2, 3, 3), 'strides': (1, 2, 2), 'padding': (1, 1, 1), 'ceil_mode': True, 'count_include_pad': True}, (1, 2, 4, 3, 4),
     [-0.06721, 0.04978, 0.13941, 0.05312, 0.00127, -0.00100, -0.00268, -0.00100, -0.06444, 0.05422, 0.13844, 0.05089, 0.03752, 0.13369, 0.04091, -0.03058, -0.00075, -0.00258, -0.00075, 0.00061, 0.04062, 0.13423, 0.03656, -0.03304, 0.05721, -0.05779, -0.13001, -0.04513, -0.00108, 0.00115, 0.00250, 0.00085, 0.05442, -0.06185, -0.12872, -0.04288, -0.04751, -0.14170, -0.03151, 0.03856, 0.00095, 0.00274, 0.00056, -0.00077, -0.05065, -0.14187, -0.02684, 0.04106, -0.05268, 0.07131, 0.13301, 0.04145, 0.00099, -0.00142, -0.00255, -0.00078, -0.04958, 0.07540, 0.13128, 0.03896, 0.05254, 0.13489, 0.01881, -0.04252, -0.00104, -0.00260, -0.00032, 0.00084, 0.05538, 0.13468, 0.01430, -0.04478, 0.04264, -0.07738, -0.12211, -0.03343, -0.00079, 0.00153, 0.00234, 0.00062, 0.03956, -0.08106, -0.12011, -0.03097, -0.06258, -0.14096, -0.00791, 0.05054, 0.00123, 0.00271, 0.00011, -0.00100, -0.06540, -0.14033, -0.00314, 0.05277]),
    ('AvgPool3D', {'pool_size': (2, 3, 3), 'strides': (1, 2, 2), 'padding': (1, 1, 1), 'ceil_mode': True, 'count_include_pad': False}, (1, 2, 4, 3, 4),
     [-0.30245, 0.14933, 0.41823, 0.31869, 0.00381, -0.00201, -0.00536, -0.00401, -0.29000, 0.16265, 0.41532, 0.30535, 0.08441, 0.20053, 0.06136, -0.09173, -0.00113, -0.00258, -0.00075, 0.00123, 0.09139, 0.20135, 0.05484, -0.09913, 0.12873, -0.08668, -0.19501, -0.13538, -0.00162, 0.00115, 0.00250, 0.00170, 0.12243, -0.09278, -0.19307, -0.12864, -0.21380, -0.42510, -0.09452, 0.23138, 0.00284, 0.00547, 0.00113, -0.00307, -0.22792, -0.42562, -0.08051, 0.24634, -0.23706, 0.21394, 0.39904, 0.24867, 0.00296, -0.00283, -0.00510, -0.00310, -0.22311, 0.22619, 0.39383, 0.23376, 0.11822, 0.20234, 0.02821, -0.12756, -0.00156, -0.00260, -0.00032, 0.00168, 0.12461, 0.20201, 0.02146, -0.13433, 0.09593, -0.11607, -0.18317, -0.10029, -0.00119, 0.00153, 0.00234, 0.00124, 0.08901, -0.12158, -0.18017, -0.09290, -0.28163, -0.42289, -0.02372, 0.30321, 0.00370, 0.00543, 0.00021, -0.00399, -0.29430, -0.42100, -0.00941, 0.31661]),
]


@pytest.mark.parametrize('case', range(len(POOL_REF)))
def test_3d_pooling_matches_mxnet(case):
    kind, kw, shape, want = POOL_REF[case]
    x = np.sin(np.arange(180, dtype=np.float64) * 0.7).reshape(1, 2, 3, 5, 6)
    y = getattr(nn, kind)(**kw)(nd.array(x, dtype='float64'))
    assert y.shape == shape
    np.testing.assert_allclose(y.asnumpy().ravel(), want, rtol=0, atol=1e-5)


def test_3d_layers_channels_last_global_and_hybridized():
    x = _rng.standard_normal((2, 3, 4, 5, 2))                  # NDHWC
    conv = nn.Conv3D(4, 3, padding=1, layout='NDHWC', activation='relu')
    conv.initialize()
    y = conv(nd.array(x))
    assert y.shape == (2, 3, 4, 5, 4)
    first = nn.Conv3D(4, 3, padding=1, activation='relu')
    first.initialize()
    first(nd.array(np.moveaxis(x, -1, 1)))
    first.weight.set_data(nd.array(np.moveaxis(conv.weight.data().asnumpy(), -1, 1)))
    np.testing.assert_allclose(np.moveaxis(first(nd.array(np.moveaxis(x, -1, 1))).asnumpy(), 1, -1),
                               y.asnumpy(), rtol=1e-5, atol=1e-6)
    pool = nn.MaxPool3D(layout='NDHWC')
    np.testing.assert_array_equal(pool(nd.array(x)).asnumpy(),
                                  np.moveaxis(nn.MaxPool3D()(nd.array(np.moveaxis(x, -1, 1))).asnumpy(), 1, -1))
    np.testing.assert_allclose(nn.GlobalAvgPool3D()(nd.array(x)).asnumpy()[..., 0, 0, 0],
                               x.mean(axis=(2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(nn.GlobalMaxPool3D()(nd.array(x)).asnumpy()[..., 0, 0, 0],
                               x.max(axis=(2, 3, 4)), rtol=1e-6)
    net = nn.HybridSequential()
    net.add(nn.Conv3D(3, 2), nn.AvgPool3D(pool_size=2, strides=1), nn.Conv3DTranspose(2, 2, strides=2))
    net.initialize()
    xin = nd.array(_rng.standard_normal((1, 2, 4, 4, 4)))
    eager = net(xin).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(xin).asnumpy(), eager, rtol=1e-5, atol=1e-6)


def test_3d_layer_errors():
    conv = nn.Conv3D(2, 3)
    conv.initialize()
    with pytest.raises(MXNetError, match='Conv3D: expected a 5-d input'):
        conv(nd.ones((1, 2, 3, 3)))
    with pytest.raises(MXNetError, match="Conv3D: layout must be 'NCDHW' or 'NDHWC'"):
        nn.Conv3D(2, 3, layout='NCHW')
    with pytest.raises(MXNetError, match='Convolution: the kernel depth 3'):
        nd.Convolution(nd.ones((1, 1, 2, 4, 4)), nd.ones((1, 1, 3, 1, 1)), kernel=(3, 1, 1), num_filter=1, no_bias=True)
    with pytest.raises(MXNetError, match=r'Deconvolution: num_filter=3 but weight \(2, 2, 1, 1, 1\)'):
        nd.Deconvolution(nd.ones((1, 2, 2, 2, 2)), nd.ones((2, 2, 1, 1, 1)), kernel=(1, 1, 1), num_filter=3)
    with pytest.raises(MXNetError, match="Pooling: layout='NDHWC' is not supported for a 5-d input"):
        nd.Pooling(nd.ones((1, 1, 2, 2, 2)), kernel=(2, 2, 2), layout='NDHWC')


def test_group_norm_matches_numpy_and_mxnet_parameters():
    x = _rng.standard_normal((2, 6, 3, 2))
    gn = nn.GroupNorm(num_groups=3, epsilon=1e-4)
    gn.cast('float64')
    gn.initialize()
    assert gn.gamma.shape == (3,) and gn.beta.shape == (3,)     # MXNet 1.9: one per group
    gamma, beta = np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.0, 0.3])
    gn.gamma.set_data(nd.array(gamma, dtype='float64'))
    gn.beta.set_data(nd.array(beta, dtype='float64'))
    xr = x.reshape(2, 3, -1)
    ref = (xr - xr.mean(-1, keepdims=True)) / np.sqrt(xr.var(-1, keepdims=True) + 1e-4)
    ref = (ref * gamma[None, :, None] + beta[None, :, None]).reshape(x.shape)
    np.testing.assert_allclose(gn(nd.array(x, dtype='float64')).asnumpy(), ref, rtol=1e-12, atol=1e-12)
    check_numeric_gradient(lambda x, g, b: nd.GroupNorm(x, g, b, num_groups=3), [x, gamma, beta])
    gn4 = nn.GroupNorm(4)
    gn4.initialize()
    with pytest.raises(MXNetError, match='GroupNorm: .*divisible by num_groups=4'):
        gn4(nd.ones((1, 6, 2)))


def test_reflection_pad2d():
    x = _rng.standard_normal((1, 2, 3, 4))
    np.testing.assert_allclose(nn.ReflectionPad2D(2)(nd.array(x, dtype='float64')).asnumpy(),
                               np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode='reflect'))
    pad = nn.ReflectionPad2D((0, 0, 0, 0, 1, 0, 2, 1))
    np.testing.assert_allclose(pad(nd.array(x, dtype='float64')).asnumpy(),
                               np.pad(x, ((0, 0), (0, 0), (1, 0), (2, 1)), mode='reflect'))
    check_numeric_gradient(lambda x: nn.ReflectionPad2D(1)(x), [x])
    with pytest.raises(MXNetError, match='ReflectionPad2D: padding must be'):
        nn.ReflectionPad2D((1, 1, 0, 0, 1, 1, 1, 1))
    with pytest.raises(MXNetError, match=r'ReflectionPad2D\).*pad_width needs 2 values per dimension'):
        nn.ReflectionPad2D(1)(nd.ones((2, 3, 3)))
