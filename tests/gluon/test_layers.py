"""Every layer of gluon.nn (issue 4 and 5): the forward against a NumPy reference (and PyTorch
where installed, tests marked `torch`), and eager vs hybridized: the same parameters give the
same outputs, parameter gradients and input gradients, in training and predict mode, for two
batch sizes (so the hybridized block retraces). Tolerances: float32 outputs vs the float64 NumPy
references rtol 1e-4 / atol 1e-5 unless stated; eager vs hybridized rtol 1e-4 / atol 1e-5."""
import numpy as np
import pytest
import scipy.special

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn

RTOL, ATOL = 1e-4, 1e-5


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _close(actual, expected, rtol=RTOL, atol=ATOL, what=''):
    actual = actual.asnumpy() if hasattr(actual, 'asnumpy') else actual
    assert actual.shape == tuple(expected.shape), what
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _run(block, *xs, train=False):
    with autograd.record(train_mode=train):
        return block(*[nd.array(x, dtype=x.dtype) for x in xs])


def _np(p):
    return p.data().asnumpy().astype(np.float64)


# ---- NumPy references -------------------------------------------------------------------------

def np_conv2d(x, w, b, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1):
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilate
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, f, oh, ow))
    fg = f // groups
    for g in range(groups):
        xs, ws = xp[:, g * cg:(g + 1) * cg], w[g * fg:(g + 1) * fg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * fg:(g + 1) * fg] += np.einsum('nchw,fc->nfhw', patch, ws[:, :, i, j])
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def np_conv2d_transpose(x, w, b, stride, pad, adj, dilate=(1, 1), groups=1):
    """Scatter form: every input pixel adds weight * value to its output window."""
    n, c, h, wd = x.shape
    _, fg, kh, kw = w.shape
    (sh, sw), (ph, pw), (ah, aw), (dh, dw) = stride, pad, adj, dilate
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + ah + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + aw + 1
    full = np.zeros((n, fg * groups, (h - 1) * sh + dh * (kh - 1) + 1 + ah, (wd - 1) * sw + dw * (kw - 1) + 1 + aw))
    cg = c // groups
    for g in range(groups):
        xs, ws = x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                full[:, g * fg:(g + 1) * fg, i * dh:i * dh + sh * (h - 1) + 1:sh,
                     j * dw:j * dw + sw * (wd - 1) + 1:sw] += np.einsum('nchw,cf->nfhw', xs, ws[:, :, i, j])
    out = full[:, :, ph:ph + oh, pw:pw + ow]
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def _pool_len(n, k, s, p, ceil):
    if not ceil:
        return (n + 2 * p - k) // s + 1
    o = -(-(n + 2 * p - k) // s) + 1
    return o - 1 if (o - 1) * s >= n + p else o      # no window may start in the right padding


def np_pool2d(x, kernel, stride, pad, kind, ceil=False, count_include_pad=True):
    n, c, h, w = x.shape
    oh, ow = (_pool_len(d, k, s, p, ceil) for d, k, s, p in zip((h, w), kernel, stride, pad))
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
            h1, w1 = h0 + kernel[0], w0 + kernel[1]
            win = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
            if kind == 'max':
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                if count_include_pad:   # the window clipped to the padded input
                    cnt = (min(h1, h + pad[0]) - h0) * (min(w1, w + pad[1]) - w0)
                else:
                    cnt = win.shape[2] * win.shape[3]
                out[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return out


def np_batchnorm_train(x, gamma, beta, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)
    return y, mean, var


# ---- Dense ---------------------------------------------------------------------------------------

def test_dense_flatten_true_and_false():
    rng = np.random.default_rng(0)
    x = _rand(rng, 4, 3, 5)
    d = nn.Dense(6, activation='tanh', weight_initializer=mx.init.Normal(0.5), bias_initializer='normal')
    d.initialize()
    y = _run(d, x)
    w, b = _np(d.weight), _np(d.bias)
    assert w.shape == (6, 15)
    _close(y, np.tanh(x.reshape(4, -1) @ w.T + b))
    d2 = nn.Dense(6, flatten=False, use_bias=False)
    d2.initialize()
    y2 = _run(d2, x)
    assert d2.weight.shape == (6, 5) and d2.bias is None
    _close(y2, x @ _np(d2.weight).T)


# ---- convolution -----------------------------------------------------------------------------------

CONV_CASES = {
    'conv1d': (lambda: nn.Conv1D(4, 3, strides=2, padding=1, dilation=2, in_channels=0), (3, 9)),
    'conv2d': (lambda: nn.Conv2D(5, (3, 2), padding=(1, 0)), (3, 7, 6)),
    'conv2d_groups_dilation_stride': (lambda: nn.Conv2D(6, 3, strides=(2, 1), padding=2, dilation=(2, 1),
                                                        groups=2), (4, 9, 8)),
    'conv2d_depthwise_relu': (lambda: nn.Conv2D(4, 3, padding=1, groups=4, activation='relu'), (4, 6, 6)),
    'conv2d_no_bias': (lambda: nn.Conv2D(3, 1, use_bias=False), (2, 5, 5)),
}


@pytest.mark.parametrize('case', list(CONV_CASES))
def test_conv_forward_vs_numpy(case):
    make, shape = CONV_CASES[case]
    rng = np.random.default_rng(1)
    x = _rand(rng, 2, *shape)
    conv = make()
    conv.initialize(mx.init.Normal(0.3))
    if conv.bias is not None:
        conv.bias.set_data(rng.standard_normal(conv._channels))
    y = _run(conv, x)
    kw = conv._kw
    w, b = _np(conv.weight), (None if conv.bias is None else _np(conv.bias))
    if len(shape) == 2:    # 1-d: the same as 2-d with a height of 1
        ref = np_conv2d(x[:, :, None], w[:, :, None], b, (1,) + kw['stride'], (0,) + kw['pad'],
                        (1,) + kw['dilate'], kw['num_group'])[:, :, 0]
    else:
        ref = np_conv2d(x.astype(np.float64), w, b, kw['stride'], kw['pad'], kw['dilate'], kw['num_group'])
    if conv._activation == 'relu':
        ref = np.maximum(ref, 0)
    _close(y, ref)


@pytest.mark.parametrize('groups', [1, 2])
def test_conv2d_transpose_stride2_output_padding_vs_numpy(groups):
    rng = np.random.default_rng(2)
    x = _rand(rng, 2, 4, 5, 4)
    deconv = nn.Conv2DTranspose(6, 3, strides=2, padding=1, output_padding=1, groups=groups)
    deconv.initialize(mx.init.Normal(0.3))
    deconv.bias.set_data(rng.standard_normal(6))
    y = _run(deconv, x)
    assert deconv.weight.shape == (4, 6 // groups, 3, 3)
    assert y.shape == (2, 6, 10, 8)          # (5-1)*2 - 2 + 3 + 1
    ref = np_conv2d_transpose(x.astype(np.float64), _np(deconv.weight), _np(deconv.bias), (2, 2), (1, 1),
                              (1, 1), groups=groups)
    _close(y, ref)


def test_conv_errors_name_the_layer_and_shapes():
    conv = nn.Conv2D(4, 3, groups=2)
    conv.initialize()
    with pytest.raises(MXNetError, match=r'Conv2D.*3 input channels.*groups=2'):
        conv(nd.ones((1, 3, 5, 5)))
    conv = nn.Conv2D(4, 3)
    conv.initialize()
    with pytest.raises(MXNetError, match=r'Conv2D: expected a 4-d'):
        conv(nd.ones((1, 3, 5)))
    with pytest.raises(MXNetError, match='NCHW'):     # NHWC is supported (test_mxnet_semantics)
        nn.Conv2D(4, 3, layout='NCW')


# ---- pooling ------------------------------------------------------------------------------------------

POOL_CASES = {
    'maxpool2d': (lambda: nn.MaxPool2D(), 'max', (2, 2), (2, 2), (0, 0), False, True),
    'maxpool2d_s1_pad': (lambda: nn.MaxPool2D(3, 1, 1), 'max', (3, 3), (1, 1), (1, 1), False, True),
    'maxpool2d_ceil': (lambda: nn.MaxPool2D(3, 2, ceil_mode=True), 'max', (3, 3), (2, 2), (0, 0), True, True),
    'avgpool2d': (lambda: nn.AvgPool2D(2), 'avg', (2, 2), (2, 2), (0, 0), False, True),
    'avgpool2d_pad_include': (lambda: nn.AvgPool2D(3, 2, 1), 'avg', (3, 3), (2, 2), (1, 1), False, True),
    'avgpool2d_pad_exclude': (lambda: nn.AvgPool2D(3, 2, 1, count_include_pad=False), 'avg', (3, 3), (2, 2),
                              (1, 1), False, False),
    'avgpool2d_ceil': (lambda: nn.AvgPool2D(3, 2, 1, ceil_mode=True), 'avg', (3, 3), (2, 2), (1, 1), True, True),
    'avgpool2d_ceil_exclude': (lambda: nn.AvgPool2D(2, 2, 1, ceil_mode=True, count_include_pad=False), 'avg',
                               (2, 2), (2, 2), (1, 1), True, False),
}


@pytest.mark.parametrize('case', list(POOL_CASES))
def test_pool2d_vs_numpy(case):
    make, kind, k, s, p, ceil, include = POOL_CASES[case]
    x = _rand(np.random.default_rng(3), 2, 3, 8, 7)
    _close(_run(make(), x), np_pool2d(x.astype(np.float64), k, s, p, kind, ceil, include))


@pytest.mark.parametrize('kind', ['max', 'avg'])
def test_pool1d_vs_numpy(kind):
    x = _rand(np.random.default_rng(4), 2, 3, 11)
    layer = (nn.MaxPool1D if kind == 'max' else nn.AvgPool1D)(3, 2, 1, ceil_mode=True)
    ref = np_pool2d(x[:, :, None].astype(np.float64), (1, 3), (1, 2), (0, 1), kind, True, True)[:, :, 0]
    _close(_run(layer, x), ref)
    layer = (nn.MaxPool1D if kind == 'max' else nn.AvgPool1D)(2)
    ref = np_pool2d(x[:, :, None].astype(np.float64), (1, 2), (1, 2), (0, 0), kind)[:, :, 0]
    _close(_run(layer, x), ref)


@pytest.mark.parametrize('layer,ndim,fn', [
    (nn.GlobalMaxPool1D, 1, np.max), (nn.GlobalAvgPool1D, 1, np.mean),
    (nn.GlobalMaxPool2D, 2, np.max), (nn.GlobalAvgPool2D, 2, np.mean)])
def test_global_pools(layer, ndim, fn):
    x = _rand(np.random.default_rng(5), 2, 3, *([5] * ndim))
    axes = tuple(range(2, 2 + ndim))
    _close(_run(layer(), x), fn(x, axis=axes, keepdims=True))


# ---- normalization --------------------------------------------------------------------------------------

def test_batchnorm_training_uses_batch_statistics_and_updates_running_ones():
    rng = np.random.default_rng(6)
    bn = nn.BatchNorm(momentum=0.8, epsilon=1e-3)
    bn.initialize()
    x = (_rand(rng, 4, 3, 5, 5) * 2 + 1).astype(np.float32)
    bn(nd.array(x))                      # predict mode: completes deferred shapes
    bn.gamma.set_data(rng.random(3) + 0.5)
    bn.beta.set_data(rng.standard_normal(3))
    y = _run(bn, x, train=True)
    ref, mean, var = np_batchnorm_train(x.astype(np.float64), _np(bn.gamma), _np(bn.beta), 1e-3)
    _close(y, ref)
    n = x.size // 3
    # running statistics: momentum * old + (1 - momentum) * batch (variance unbiased, as in PyTorch)
    _close(bn.running_mean.data(), 0.2 * mean)
    _close(bn.running_var.data(), 0.8 + 0.2 * var * n / (n - 1))


def test_batchnorm_predict_mode_uses_running_statistics():
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm(in_channels=3, epsilon=1e-5)
    bn.initialize()
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    g, b = rng.random(3) + 0.5, rng.standard_normal(3)
    for p, v in ((bn.running_mean, rm), (bn.running_var, rv), (bn.gamma, g), (bn.beta, b)):
        p.set_data(v)
    x = _rand(rng, 2, 3, 4)
    shape = (1, 3, 1)
    ref = (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + 1e-5) * g.reshape(shape) + b.reshape(shape)
    _close(_run(bn, x, train=False), ref)
    _close(bn.running_mean.data(), rm)      # unchanged in predict mode
    # use_global_stats: running statistics even while training
    bn2 = nn.BatchNorm(in_channels=3, use_global_stats=True)
    bn2.initialize()
    bn2.running_mean.set_data(rm)
    bn2.running_var.set_data(rv)
    _close(_run(bn2, x, train=True), (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + 1e-5))


@pytest.mark.parametrize('axis', [-1, 1])
def test_layernorm(axis):
    rng = np.random.default_rng(8)
    x = _rand(rng, 3, 4, 5)
    ln = nn.LayerNorm(axis=axis, epsilon=1e-5)
    ln.initialize()
    c = x.shape[axis]
    g, b = rng.random(c) + 0.5, rng.standard_normal(c)
    ln(nd.array(x))
    ln.gamma.set_data(g)
    ln.beta.set_data(b)
    shape = [1, 1, 1]
    shape[axis] = c
    m, v = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)
    _close(_run(ln, x, train=True), (x - m) / np.sqrt(v + 1e-5) * g.reshape(shape) + b.reshape(shape))


def test_instancenorm():
    rng = np.random.default_rng(9)
    x = _rand(rng, 2, 3, 4, 5)
    inorm = nn.InstanceNorm(scale=True, epsilon=1e-5)
    inorm.initialize()
    inorm(nd.array(x))
    g, b = rng.random(3) + 0.5, rng.standard_normal(3)
    inorm.gamma.set_data(g)
    inorm.beta.set_data(b)
    m, v = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    ref = (x - m) / np.sqrt(v + 1e-5) * g.reshape(1, 3, 1, 1) + b.reshape(1, 3, 1, 1)
    _close(_run(inorm, x, train=True), ref)


# ---- dropout -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_dropout_statistics(hybridize):
    rate = 0.3
    drop = nn.Dropout(rate)
    drop.initialize()
    if hybridize:
        drop.hybridize()
    x = nd.ones((100, 200))
    x.attach_grad()
    with autograd.record():
        y = drop(x)
    y.backward()
    out = y.asnumpy()
    zeros = (out == 0).mean()
    assert abs(zeros - rate) < 0.02                       # 20000 draws: sd ~ 0.003
    np.testing.assert_allclose(out[out != 0], 1 / (1 - rate), rtol=1e-6)
    np.testing.assert_array_equal(x.grad.asnumpy(), out)  # d(x * mask)/dx = mask
    with autograd.record():
        y2 = drop(x)
    assert not np.array_equal(y2.asnumpy(), out)          # a new mask on every call
    # predict mode (with and without recording): the identity
    with autograd.record(train_mode=False):
        np.testing.assert_array_equal(drop(x).asnumpy(), x.asnumpy())
    np.testing.assert_array_equal(drop(x).asnumpy(), x.asnumpy())


def test_dropout_axes_share_the_mask():
    drop = nn.Dropout(0.5, axes=(1,))
    with autograd.train_mode():
        out = drop(nd.ones((64, 10))).asnumpy()
    assert np.all(out == out[:, :1])
    with pytest.raises(MXNetError, match='rate'):
        nn.Dropout(1.0)


# ---- simple layers ---------------------------------------------------------------------------------

def test_flatten_embedding_identity_lambda():
    rng = np.random.default_rng(10)
    x = _rand(rng, 2, 3, 4)
    _close(_run(nn.Flatten(), x), x.reshape(2, 12))
    _close(_run(nn.Identity(), x), x)
    emb = nn.Embedding(10, 4)
    emb.initialize()
    idx = np.array([[1, 2, 9], [0, 0, 3]], np.float32)
    _close(_run(emb, idx), _np(emb.weight)[idx.astype(int)])
    with pytest.raises(MXNetError, match='out of range'):
        emb(nd.array([[10]]))
    _close(_run(nn.Lambda('tanh'), x), np.tanh(x))
    _close(_run(nn.Lambda(lambda a: a * 2 + 1), x), x * 2 + 1)
    _close(_run(nn.HybridLambda('sigmoid'), x), scipy.special.expit(x))
    _close(_run(nn.HybridLambda(lambda F, a: F.relu(a) - a), x), np.maximum(x, 0) - x)


_SELU_A, _SELU_L = 1.6732632423543772, 1.0507009873554805
ACTIVATIONS = {
    'relu': (lambda: nn.Activation('relu'), lambda x: np.maximum(x, 0)),
    'sigmoid': (lambda: nn.Activation('sigmoid'), scipy.special.expit),
    'tanh': (lambda: nn.Activation('tanh'), np.tanh),
    'softrelu': (lambda: nn.Activation('softrelu'), lambda x: np.log1p(np.exp(x))),
    'softsign': (lambda: nn.Activation('softsign'), lambda x: x / (1 + np.abs(x))),
    'leakyrelu': (lambda: nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    'elu': (lambda: nn.ELU(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    'selu': (lambda: nn.SELU(), lambda x: _SELU_L * np.where(x > 0, x, _SELU_A * np.expm1(x))),
    'gelu': (lambda: nn.GELU(), lambda x: 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))),
    'swish': (lambda: nn.Swish(1.5), lambda x: x * scipy.special.expit(1.5 * x)),
}


@pytest.mark.parametrize('name', list(ACTIVATIONS))
def test_activation_forward(name):
    make, ref = ACTIVATIONS[name]
    x = _rand(np.random.default_rng(11), 4, 6) * 3
    layer = make()
    layer.initialize()
    _close(_run(layer, x), ref(x.astype(np.float64)))


def test_prelu_per_channel():
    x = _rand(np.random.default_rng(12), 2, 3, 4)
    prelu = nn.PReLU(alpha_initializer=mx.init.Constant(np.array([0.1, 0.2, 0.3])), in_channels=3)
    prelu.initialize()
    alpha = np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1)
    _close(_run(prelu, x), np.where(x > 0, x, alpha * x))
    shared = nn.PReLU()
    shared.initialize()
    _close(_run(shared, x), np.where(x > 0, x, 0.25 * x))


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(MXNetError, match=r"unknown act_type 'swishy'"):
        nn.Activation('swishy')(nd.ones(2))


# ---- eager vs hybridized: every layer ---------------------------------------------------------------

def _x(*shape, seed=0):
    return nd.array(np.random.default_rng(seed).standard_normal(shape))


def _hybrid_cases():
    two = lambda *shape: [_x(2, *shape, seed=1), _x(3, *shape, seed=2)]    # noqa: E731
    idx = [nd.array([[1, 2], [3, 9]]), nd.array([[0, 1, 5], [2, 2, 2], [7, 8, 9]])]
    return {
        'Dense': (lambda: nn.Dense(4, activation='relu'), two(3, 5)),
        'Dense_flatten_false': (lambda: nn.Dense(4, flatten=False), two(3, 5)),
        'Conv1D': (lambda: nn.Conv1D(4, 3, padding=1, strides=2), two(3, 9)),
        'Conv2D': (lambda: nn.Conv2D(4, 3, padding=1, activation='relu'), two(3, 6, 6)),
        'Conv2D_groups_dilation_stride': (lambda: nn.Conv2D(4, 3, strides=2, padding=2, dilation=2, groups=2),
                                          two(4, 9, 9)),
        'Conv2DTranspose': (lambda: nn.Conv2DTranspose(3, 3, strides=2, padding=1, output_padding=1),
                            two(4, 5, 5)),
        'MaxPool1D': (lambda: nn.MaxPool1D(2), two(3, 8)),
        'MaxPool2D': (lambda: nn.MaxPool2D(3, 2, ceil_mode=True), two(3, 8, 8)),
        'AvgPool1D': (lambda: nn.AvgPool1D(3, 2, padding=1, count_include_pad=False), two(3, 8)),
        'AvgPool2D': (lambda: nn.AvgPool2D(3, 2, padding=1, ceil_mode=True), two(3, 8, 8)),
        'GlobalMaxPool1D': (nn.GlobalMaxPool1D, two(3, 8)),
        'GlobalMaxPool2D': (nn.GlobalMaxPool2D, two(3, 4, 4)),
        'GlobalAvgPool1D': (nn.GlobalAvgPool1D, two(3, 8)),
        'GlobalAvgPool2D': (nn.GlobalAvgPool2D, two(3, 4, 4)),
        'BatchNorm': (lambda: nn.BatchNorm(momentum=0.7), [_x(4, 3, 5, 5, seed=3), _x(6, 3, 5, 5, seed=4)]),
        'BatchNorm_no_scale': (lambda: nn.BatchNorm(scale=False, center=False), two(3, 4)),
        'LayerNorm': (nn.LayerNorm, two(4, 6)),
        'LayerNorm_axis1': (lambda: nn.LayerNorm(axis=1), two(4, 6)),
        'InstanceNorm': (lambda: nn.InstanceNorm(scale=True), two(3, 5, 5)),
        'Dropout_rate0': (lambda: nn.Dropout(0.0), two(6)),
        'Flatten': (nn.Flatten, two(3, 4)),
        'Embedding': (lambda: nn.Embedding(10, 4), idx),
        'Activation_relu': (lambda: nn.Activation('relu'), two(4)),
        'Activation_sigmoid': (lambda: nn.Activation('sigmoid'), two(4)),
        'Activation_tanh': (lambda: nn.Activation('tanh'), two(4)),
        'Activation_softrelu': (lambda: nn.Activation('softrelu'), two(4)),
        'Activation_softsign': (lambda: nn.Activation('softsign'), two(4)),
        'LeakyReLU': (lambda: nn.LeakyReLU(0.1), two(4)),
        'PReLU': (lambda: nn.PReLU(in_channels=3), two(3, 4)),
        'ELU': (nn.ELU, two(4)),
        'SELU': (nn.SELU, two(4)),
        'GELU': (nn.GELU, two(4)),
        'Swish': (nn.Swish, two(4)),
        'HybridLambda': (lambda: nn.HybridLambda(lambda F, x: F.relu(x) * 2 - F.tanh(x)), two(4)),
        'HybridLambda_name': (lambda: nn.HybridLambda('tanh'), two(4)),
        'Identity': (nn.Identity, two(4)),
        'HybridSequential_mixed': (lambda: _mixed_stack(), two(2, 6, 6)),
    }


def _mixed_stack():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'), nn.MaxPool2D(),
                nn.Conv2D(3, 1), nn.GELU(), nn.Flatten(), nn.Dense(5), nn.LayerNorm(), nn.Dense(2))
    return net


HYBRID_CASES = _hybrid_cases()


@pytest.mark.parametrize('case', list(HYBRID_CASES))
def test_hybridized_matches_eager(case, check_hybrid):
    make, inputs = HYBRID_CASES[case]
    check_hybrid(make, inputs)


def test_the_checker_catches_a_mismatch(check_hybrid):
    """A block that behaves differently when traced must fail the eager-vs-hybridized check."""
    class Sneaky(nn.HybridBlock):
        def hybrid_forward(self, F, x):
            return x * (2.0 if isinstance(x, nd.NDArray) else 3.0)

    with pytest.raises(AssertionError, match='hybridized vs eager'):
        check_hybrid(Sneaky, [_x(2, 3)])


def test_batchnorm_running_stats_update_when_hybridized():
    bn = nn.BatchNorm(in_channels=2, momentum=0.5)
    bn.initialize()
    bn.hybridize()
    x = nd.array(np.arange(16, dtype=np.float32).reshape(4, 2, 2) * [[[1.0], [2.0]]])
    for _ in range(2):
        with autograd.record():
            bn(x)
    xs = x.asnumpy().transpose(1, 0, 2).reshape(2, -1).astype(np.float64)
    mean = xs.mean(1)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), 0.75 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data().asnumpy(), 0.25 + 0.75 * xs.var(1, ddof=1), rtol=1e-5)
    before = bn.running_mean.data().asnumpy().copy()
    bn(x)                                       # predict mode: no update
    np.testing.assert_array_equal(bn.running_mean.data().asnumpy(), before)


# ---- PyTorch references ------------------------------------------------------------------------

@pytest.mark.torch
def test_conv_layers_vs_torch():
    """Forward and all gradients of Conv1D/Conv2D(groups, dilation, stride)/Conv2DTranspose against
    torch (float32 both; rtol 1e-4, atol 1e-4)."""
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    rng = np.random.default_rng(13)
    cases = [
        (nn.Conv1D(4, 3, strides=2, padding=1, dilation=2), (2, 3, 11),
         lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2)),
        (nn.Conv2D(6, 3, strides=(2, 1), padding=(2, 1), dilation=(2, 1), groups=2), (2, 4, 9, 8),
         lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(2, 1), dilation=(2, 1), groups=2)),
        (nn.Conv2DTranspose(6, 3, strides=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 4),
         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)),
    ]
    for layer, shape, ref in cases:
        layer.initialize(mx.init.Normal(0.3))
        x = _rand(rng, *shape)
        layer(nd.array(x))
        layer.bias.set_data(rng.standard_normal(layer.bias.shape))
        xe = nd.array(x)
        xe.attach_grad()
        with autograd.record():
            y = layer(xe)
        head = _rand(rng, *y.shape)
        y.backward(nd.array(head))
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(layer.weight.data().asnumpy(), requires_grad=True)
        bt = torch.tensor(layer.bias.data().asnumpy(), requires_grad=True)
        yt = ref(xt, wt, bt)
        yt.backward(torch.tensor(head))
        what = type(layer).__name__
        _close(y, yt.detach().numpy(), atol=1e-4, what=what)
        _close(xe.grad, xt.grad.numpy(), atol=1e-4, what=f'{what} dx')
        _close(layer.weight.grad(), wt.grad.numpy(), atol=1e-4, what=f'{what} dw')
        _close(layer.bias.grad(), bt.grad.numpy(), atol=1e-4, what=f'{what} db')


@pytest.mark.torch
@pytest.mark.parametrize('ceil', [False, True])
def test_pools_vs_torch(ceil):
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    x = _rand(np.random.default_rng(14), 2, 3, 9, 8)
    xt = torch.tensor(x)
    _close(_run(nn.MaxPool2D(3, 2, 1, ceil_mode=ceil), x), F.max_pool2d(xt, 3, 2, 1, ceil_mode=ceil).numpy())
    for include in (True, False):
        _close(_run(nn.AvgPool2D(3, 2, 1, ceil_mode=ceil, count_include_pad=include), x),
               F.avg_pool2d(xt, 3, 2, 1, ceil_mode=ceil, count_include_pad=include).numpy())
    x1 = x[:, :, 0]
    _close(_run(nn.MaxPool1D(3, 2, 1, ceil_mode=ceil), x1),
           F.max_pool1d(torch.tensor(x1), 3, 2, 1, ceil_mode=ceil).numpy())
    _close(_run(nn.AvgPool1D(3, 2, 1, ceil_mode=ceil), x1),
           F.avg_pool1d(torch.tensor(x1), 3, 2, 1, ceil_mode=ceil).numpy())


@pytest.mark.torch
def test_norms_vs_torch():
    """BatchNorm (train: output, gradients, running stats), LayerNorm, InstanceNorm vs torch."""
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(15)
    x = _rand(rng, 4, 3, 5, 5) * 2 + 1
    bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    bn.initialize()
    bn(nd.array(x))
    g, b = rng.random(3).astype(np.float32) + 0.5, _rand(rng, 3)
    bn.gamma.set_data(g)
    bn.beta.set_data(b)
    tbn = torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(g))
        tbn.bias.copy_(torch.tensor(b))
    xe = nd.array(x)
    xe.attach_grad()
    head = _rand(rng, *x.shape)
    with autograd.record():
        y = bn(xe)
    y.backward(nd.array(head))
    xt = torch.tensor(x, requires_grad=True)
    yt = tbn.train()(xt)
    yt.backward(torch.tensor(head))
    _close(y, yt.detach().numpy(), atol=1e-4)
    _close(xe.grad, xt.grad.numpy(), atol=1e-4)
    _close(bn.gamma.grad(), tbn.weight.grad.numpy(), atol=1e-4)
    _close(bn.beta.grad(), tbn.bias.grad.numpy(), atol=1e-4)
    _close(bn.running_mean.data(), tbn.running_mean.numpy())
    _close(bn.running_var.data(), tbn.running_var.numpy())
    _close(_run(bn, x), tbn.eval()(torch.tensor(x)).detach().numpy(), atol=1e-4)

    ln = nn.LayerNorm()
    ln.initialize()
    xl = _rand(rng, 3, 7)
    _close(_run(ln, xl), torch.nn.functional.layer_norm(torch.tensor(xl), (7,)).numpy(), atol=1e-5)
    inorm = nn.InstanceNorm(epsilon=1e-5)
    inorm.initialize()
    _close(_run(inorm, x), torch.nn.functional.instance_norm(torch.tensor(x), eps=1e-5).numpy(), atol=1e-4)
