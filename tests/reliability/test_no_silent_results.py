"""Part 1: invalid inputs and attributes are refused with the op and the values, never turned
into a silently wrong number."""
import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.gluon import nn


def _conv_net(hybrid):
    net = nn.Conv2D(1, 3, in_channels=1, use_bias=False)
    net.initialize(mx.init.Constant(1.163))
    if hybrid:
        net.hybridize()
    return net


@pytest.mark.parametrize('hybrid', [False, True])
@pytest.mark.parametrize('dtype', ['int32', 'bool', 'float64'])
def test_conv_refuses_input_and_weight_of_different_dtypes(hybrid, dtype):
    net = _conv_net(hybrid)
    with pytest.raises(mx.MXNetError, match=rf'conv2d: inputs have different dtypes \(data: {dtype}, '
                                            r'weight: float32'):
        net(nd.ones((1, 1, 3, 3), dtype=dtype))
    # the same values as float32 give the right number
    np.testing.assert_allclose(net(nd.ones((1, 1, 3, 3))).asnumpy().ravel(), [9 * 1.163], rtol=1e-6)


_MIXED = {
    'Deconvolution': lambda: nd.Deconvolution(nd.ones((1, 1, 3, 3), dtype='int32'), nd.ones((1, 1, 3, 3)),
                                              kernel=(3, 3), num_filter=1),
    'BatchNorm': lambda: nd.BatchNorm(nd.ones((2, 3), dtype='float64'), *[nd.ones((3,))] * 4),
    'LayerNorm': lambda: nd.LayerNorm(nd.ones((2, 3)), nd.ones((3,), dtype='float16'), nd.zeros((3,))),
}


def _bn_train():
    from engine import autograd
    with autograd.train_mode():
        return nd.BatchNorm(nd.ones((2, 3), dtype='float64'), *[nd.ones((3,))] * 4)


@pytest.mark.parametrize('name, call, op', [
    ('Deconvolution', _MIXED['Deconvolution'], 'conv2d_transpose'),
    ('BatchNorm (training)', _bn_train, 'batch_norm'),
    ('LayerNorm', _MIXED['LayerNorm'], 'layer_norm'),
])
def test_ops_with_several_data_inputs_refuse_mixed_dtypes(name, call, op):
    with pytest.raises(mx.MXNetError, match=f'{op}: inputs have different dtypes'):
        call()


def test_index_and_label_inputs_may_have_any_dtype():
    w = nd.arange(6).reshape(3, 2)
    for dt in ('int32', 'int64', 'float32'):
        idx = nd.array([2, 0], dtype=dt)
        assert nd.Embedding(idx, w, input_dim=3, output_dim=2).asnumpy().tolist() == [[4, 5], [0, 1]]
        assert nd.take(w, idx).asnumpy().tolist() == [[4, 5], [0, 1]]
        assert nd.pick(w, nd.array([1, 0, 1], dtype=dt)).asnumpy().tolist() == [1, 2, 5]
        assert nd.softmax_cross_entropy(nd.zeros((2, 3)), idx).shape in ((), (1,))
    # elementwise ops promote as NumPy does: a correct result for any mix
    assert (nd.ones(2, dtype='int32') + nd.ones(2) * 0.5).asnumpy().tolist() == [1.5, 1.5]


@pytest.mark.parametrize('pool_type', ['max', 'avg'])
def test_pooling_refuses_pad_not_smaller_than_kernel(pool_type):
    with pytest.raises(mx.MXNetError, match=r'pool2d: pad must be smaller than the kernel \(kernel=\(2, 2\), '
                                            r'pad=\(2, 2\)\)'):
        nd.Pooling(nd.ones((1, 1, 3, 3)), kernel=(2, 2), pad=(2, 2), pool_type=pool_type)


@pytest.mark.parametrize('pool_type', ['max', 'avg', 'sum'])
def test_global_pooling_refuses_an_empty_map(pool_type):
    with pytest.raises(mx.MXNetError, match=rf'Pooling: global {pool_type} pooling of an empty \(0, 0\) map'):
        nd.Pooling(nd.ones((1, 1, 0, 0)), global_pool=True, pool_type=pool_type)


def test_asnumpy_is_a_copy_and_asarray_is_a_view():
    a = nd.ones((2, 2))
    b = a.asnumpy()
    b[0, 0] = 5
    assert a.asnumpy()[0, 0] == 1
    v = np.asarray(a)   # the documented zero-copy route
    assert np.shares_memory(v, a._data)
    assert not np.shares_memory(np.array(a), a._data)


_W = nd.ones((1, 1, 3, 3))


@pytest.mark.parametrize('call, match', [
    (lambda: nd.Convolution(nd.ones((1, 1, 5, 5)), _W, kernel=(3, 3), num_filter=1, no_bias=True, stride=0),
     r'stride=\(0, 0\)'),
    (lambda: nd.Convolution(nd.ones((1, 1, 5, 5)), _W, kernel=(3, 3), num_filter=1, no_bias=True, dilate=(1, 0)),
     r'dilate=\(1, 0\)'),
    (lambda: nd.Convolution(nd.ones((1, 1, 5, 5)), _W, kernel=(3, 3), num_filter=1, no_bias=True,
                            stride=(1, 1, 1)), r'Convolution: stride=\(1, 1, 1\) must have 2 entries'),
    (lambda: nd.Pooling(nd.ones((1, 1, 4, 4)), kernel=(2, 2), stride=0), r'stride=\(0, 0\)'),
    (lambda: nd.Deconvolution(nd.ones((1, 1, 3, 3)), _W, kernel=(3, 3), num_filter=1, stride=(2, 2), adj=(2, 0)),
     r'Deconvolution: adj must be >= 0 and smaller than stride, got adj=\(2, 0\) stride=\(2, 2\)'),
    (lambda: nd.LayerNorm(nd.ones((2, 3)), nd.ones((3,)), nd.zeros((3,)), axis=5),
     r'LayerNorm: axis 5 is out of range for a 2-d input'),
    (lambda: nd.slice(nd.ones((2, 3)), begin=(0, 0), end=(1, 1, 1)), r'slice: begin=\(0, 0\), end=\(1, 1, 1\)'),
    (lambda: nd.slice(nd.ones((2, 3)), begin=(0, 0, 0), end=(1, 1, 1)), r'at most 2 for shape \(2, 3\)'),
    (lambda: nd.ones((3, 2))[nd.array([1, 0], dtype='bool')],
     r'getitem: boolean index of shape \(2,\) does not match the indexed dimensions \(3,\)'),
    (lambda: nd.ones((3, 2))[:, np.array([True, False, True])], r'boolean index of shape \(3,\)'),
    (lambda: nd.ones((3, 2))[1.5], r'getitem: index 1.5 is a float'),
    (lambda: nd.ones((3, 2))[[0.5, 1]], r'getitem: index array \[0.5, 1\] holds non-integer values'),
    (lambda: nd.concat(nd.ones((2, 2)), dim=5), r'concat: axis 5 is out of range for 2 dimensions'),
    (lambda: nd.array([1, 2], dtype='int32') / nd.array([0, 1], dtype='int32'), r'divide: integer division by zero'),
    (lambda: nd.array([1, 2], dtype='int32') / 0, r'divide: integer division by zero'),
    (lambda: 3 % nd.array([1, 0], dtype='int64'), r'modulo: integer division by zero'),
], ids=['conv stride 0', 'conv dilate 0', 'conv stride length', 'pool stride 0', 'deconv adj >= stride',
        'layernorm axis', 'slice extra end', 'slice too many', 'bool mask length', 'bool mask length axis 1',
        'float index', 'float list', 'concat one array dim', 'int div by zero', 'int div scalar 0', 'int rmod 0'])
def test_invalid_attributes_and_indices_are_refused(call, match):
    with pytest.raises(mx.MXNetError, match=match):
        call()


def test_valid_neighbours_of_the_refused_cases_still_work():
    a = nd.arange(6).reshape(3, 2)
    assert a[nd.array([1, 0, 1], dtype='bool')].asnumpy().tolist() == [[0, 1], [4, 5]]
    assert a[np.array([[True, False], [False, True], [True, True]])].asnumpy().tolist() == [0, 3, 4, 5]
    assert a[..., np.array([False, True])].asnumpy().tolist() == [[1], [3], [5]]
    assert a[[0.0, 2.0]].asnumpy().tolist() == [[0, 1], [4, 5]]
    assert nd.slice(a, begin=(1,), end=(3,)).shape == (2, 2)
    assert nd.concat(a, dim=-1) is a
    assert (nd.array([7, -7], dtype='int32') / 2).asnumpy().tolist() == [3, -3]
    assert np.isinf((nd.ones(2) / 0).asnumpy()).all()
    y = nd.Pooling(nd.ones((1, 1, 4, 4)), kernel=(3, 3), pad=(2, 2), pool_type='max')
    assert y.shape == (1, 1, 6, 6) and np.isfinite(y.asnumpy()).all()


_X, _K = nd.ones((1, 1, 4, 4)), nd.ones((1, 1, 3, 3))


@pytest.mark.parametrize('call, match', [
    (lambda: nd.Convolution(_X, _K, kernel=(3, 3), num_filter=1, no_bias=True, layout='NHWC'),
     r"Convolution: layout='NHWC' is not supported for a 4-d input"),
    (lambda: nd.Pooling(_X, kernel=(2, 2), layout='NWC'), r"Pooling: layout='NWC' is not supported"),
    (lambda: nd.Deconvolution(_X, _K, kernel=(3, 3), num_filter=1, target_shape=(8, 8)),
     r'Deconvolution: target_shape=\(8, 8\) is not supported'),
    (lambda: nd.softmax(nd.ones((2,)), temperature=0), r'softmax: temperature must be nonzero'),
    (lambda: nd.log_softmax(nd.ones((2,)), use_length=True), r'log_softmax: use_length=True is not supported'),
    (lambda: nd.SoftmaxOutput(nd.ones((2, 3)), nd.zeros((2,)), use_ignore=True),
     r'SoftmaxOutput: use_ignore=True is not supported'),
    (lambda: nd.SoftmaxOutput(nd.ones((2, 3)), nd.zeros((2,)), normalization='batch'),
     r"SoftmaxOutput: normalization='batch' is not supported \(only 'null'\)"),
    (lambda: nd.BatchNorm(nd.ones((2, 3)), *[nd.ones((3,))] * 4, output_mean_var=True),
     r'BatchNorm: output_mean_var=True is not supported'),
    (lambda: nd.LayerNorm(nd.ones((2, 3)), nd.ones((3,)), nd.zeros((3,)), output_mean_var=True),
     r'LayerNorm: output_mean_var=True is not supported'),
    (lambda: nd.Pooling(_X, kernel=(2, 2, 2)), r'Pooling: kernel=\(2, 2, 2\) must have 2 entries'),
    (lambda: nd.Dropout(nd.ones((2, 3)), p=0.5, axes=(5,), mode='always'), r'Dropout: axis 5 is out of range'),
    (lambda: nd.LeakyReLU(nd.ones((2, 3)), nd.ones((5,)), act_type='prelu'),
     r'LeakyReLU: prelu gamma must have shape \(1,\) or \(3,\)'),
    (lambda: nd.max(nd.ones((0, 3)), axis=0), r'max: cannot reduce an empty axis \(input shape \(0, 3\)'),
    (lambda: nd.argmin(nd.ones((0, 3)), axis=0), r'argmin: cannot reduce an empty axis'),
    (lambda: nd.softmax_cross_entropy(nd.ones(()), nd.ones(())), r'softmax_cross_entropy: axis -1 is out of range'),
], ids=['conv layout', 'pool layout', 'deconv target_shape', 'softmax temperature 0', 'use_length',
        'use_ignore', 'normalization', 'batchnorm output_mean_var', 'layernorm output_mean_var',
        'pool kernel length', 'dropout axes', 'prelu gamma', 'max of empty', 'argmin of empty', 'ce 0-d'])
def test_mxnet_options_not_implemented_are_refused_not_ignored(call, match):
    with pytest.raises(mx.MXNetError, match=match):
        call()


def test_the_defaults_of_those_options_are_accepted():
    assert nd.Convolution(_X, _K, kernel=(3, 3), num_filter=1, no_bias=True, layout='NCHW').shape == (1, 1, 2, 2)
    assert nd.SoftmaxOutput(nd.ones((2, 3)), nd.zeros((2,)), normalization='null', use_ignore=False).shape == (2, 3)
    np.testing.assert_allclose(nd.softmax(nd.array([0.0, 2.0]), temperature=2.0).asnumpy(),
                               np.exp([0, 1]) / np.exp([0, 1]).sum(), rtol=1e-6)


def test_empty_results_where_they_are_defined():
    assert nd.one_hot(nd.array([1, 2]), 0).shape == (2, 0)
    assert nd.sum(nd.ones((0, 3)), axis=0).asnumpy().tolist() == [0, 0, 0]
    assert nd.max(nd.ones((0, 3)), axis=1).shape == (0,)
