"""No input (labels, indices, tampered attributes) makes a kernel read or write out of bounds.
The cases that crashed the interpreter before their fix run in one subprocess per group
(isolation.run_cases), so a regression fails tests instead of killing the run."""
import textwrap

import numpy as np
import pytest

import engine as mx
from engine import autograd, nd


_SOFTMAX_OUTPUT = """
from engine.gluon import nn
class Net(nn.HybridBlock):
    def hybrid_forward(self, F, x, lab):
        return F.SoftmaxOutput(x, lab)
net = Net()
if {hybrid}:
    net.hybridize()
x = nd.ones((2, 3)); x.attach_grad()
with autograd.record():
    y = net(x, nd.array([0, {label}]))
y.backward()
x.grad.wait_to_read()
"""

# cases that crashed the interpreter before the fix: (code, strings the MXNetError must hold)
_CRASHERS = {
    **{f'SoftmaxOutput label {lab} hybrid={h}': (_SOFTMAX_OUTPUT.format(label=lab, hybrid=h),
                                                 ('softmax_cross_entropy_backward', lab, '3 classes'))
       for lab in ('100000', '-1', '1.5') for h in (False, True)},
    'embedding indices changed in place before backward': ("""
idx = nd.array([0, 1]); w = nd.ones((3, 2)); w.attach_grad()
with autograd.record():
    y = nd.Embedding(idx, w, input_dim=3, output_dim=2)
idx[:] = 10 ** 8
y.backward()
""", ('embedding_backward', '100000000', 'num_rows=3')),
    'max_pool2d_backward argmax out of range': ("""
import numpy as np
from engine.imperative import invoke
from engine.ops.registry import get_op
g = nd.ones((1, 1, 2, 2)); idx = nd.array(np.full((1, 1, 2, 2), 10 ** 7), dtype='int32')
invoke(get_op('max_pool2d_backward'), [g, idx], {'x_shape': (1, 1, 4, 4)})
""", ('max_pool2d_backward', '10000000', '4x4')),
}


@pytest.fixture(scope='module')
def crasher_results():
    from isolation import run_cases
    return run_cases({k: code for k, (code, _) in _CRASHERS.items()})


@pytest.mark.parametrize('case', sorted(_CRASHERS))
def test_bad_indices_give_an_error_not_a_crash(crasher_results, case):
    outcome, msg = crasher_results[case]
    assert outcome == 'MXNetError', (outcome, msg)
    for part in _CRASHERS[case][1]:
        assert part in msg, (part, msg)


def test_softmax_output_valid_labels_give_the_cross_entropy_gradient():
    x = nd.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    x.attach_grad()
    with autograd.record():
        y = nd.SoftmaxOutput(x, nd.array([2, 0]))
    y.backward()
    p = np.exp(x.asnumpy()) / np.exp(x.asnumpy()).sum(1, keepdims=True)
    p[0, 2] -= 1
    p[1, 0] -= 1
    np.testing.assert_allclose(x.grad.asnumpy(), p, rtol=1e-6)


# backward ops called directly with attributes that do not match their inputs, as a tampered
# exported graph would: each shape rule must refuse them before any kernel runs
_TAMPERED = {
    'max_pool2d_backward': '''
        y, i = _invoke('max_pool2d', [nd.ones((1, 1, 512, 512))],
                       dict(kernel=(1, 1), stride=(1, 1), pad=(0, 0), ceil_mode=False))
        _invoke('max_pool2d_backward', [y, i], {'x_shape': (1, 1, 1, 1)})''',
    'embedding_backward': '''
        _invoke('embedding_backward', [nd.ones((4, 2)), nd.array([0, 1, 2, 3])], {'num_rows': 1})''',
    'conv2d_backward_data': '''
        _invoke('conv2d_backward_data', [nd.ones((1, 1, 64, 64)), nd.ones((1, 1, 3, 3))],
                dict(x_shape=(1, 1, 2, 2), stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1))''',
    'conv2d_backward_weight': '''
        _invoke('conv2d_backward_weight', [nd.ones((1, 1, 62, 62)), nd.ones((1, 1, 64, 64))],
                dict(w_shape=(1, 1, 1, 1), stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1))''',
    'conv2d_transpose_backward_data': '''
        _invoke('conv2d_transpose_backward_data', [nd.ones((1, 1, 66, 66)), nd.ones((1, 1, 3, 3))],
                dict(x_shape=(1, 1, 2, 2), stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1))''',
    'conv2d_transpose_backward_weight': '''
        _invoke('conv2d_transpose_backward_weight', [nd.ones((1, 1, 66, 66)), nd.ones((1, 1, 64, 64))],
                dict(w_shape=(1, 1, 1, 1), stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1))''',
    'avg_pool2d_backward': '''
        _invoke('avg_pool2d_backward', [nd.ones((1, 1, 64, 64))],
                dict(x_shape=(1, 1, 2, 2), kernel=(1, 1), stride=(1, 1), pad=(0, 0), ceil_mode=False,
                     count_include_pad=True))''',
    'batch_norm_backward': '''
        _invoke('batch_norm_backward', [nd.ones((2, 3)), nd.ones((2, 3)), nd.ones((3,)), nd.ones((1,)),
                                        nd.ones((1,))], dict(axis=1, fix_gamma=False))''',
    'layer_norm_backward': '''
        _invoke('layer_norm_backward', [nd.ones((2, 3)), nd.ones((2, 3)), nd.ones((3,)), nd.ones((1,)),
                                        nd.ones((1,))], dict(axis=1))''',
    'softmax_cross_entropy_backward': '''
        _invoke('softmax_cross_entropy_backward', [nd.ones((1,)), nd.ones((4, 3)), nd.zeros((1,))],
                dict(axis=1, sparse=True))''',
    'softmax_backward': '''
        _invoke('softmax_backward', [nd.ones((4, 3)), nd.ones((1, 3))], dict(axis=1))''',
    '_take_backward': '''
        _invoke('_take_backward', [nd.ones((5, 2)), nd.array([0, 1, 2, 3, 4])],
                dict(axis=0, mode='clip', shape=(1, 7)))''',
    '_pick_backward': '''
        _invoke('_pick_backward', [nd.ones((5,)), nd.array([0, 1, 2, 3, 4])],
                dict(axis=1, keepdims=False, mode='clip', shape=(1, 3)))''',
    'rnn_layer_backward': '''
        # rnn_tanh: heads (dy, dht), x (T, N, C), h0, i2h (H, C), h2h (H, H), y; y and dy claim T=50
        T, N, C, H = 2, 1, 3, 4
        _invoke('rnn_layer_backward', [nd.ones((50, N, H)), nd.ones((N, H)), nd.ones((T, N, C)),
                                       nd.ones((N, H)), nd.ones((H, C)), nd.ones((H, H)), nd.ones((50, N, H))],
                dict(mode='rnn_tanh', reverse=False))''',
    '_getitem_backward': '''
        from engine.ops.index import encode_key
        key, arrs = encode_key((slice(0, 3),))
        _invoke('_getitem_backward', [nd.ones((5, 2))], dict(key=key, shape=(2, 2)))''',
}


_HELPER = """
def _invoke(name, inputs, attrs):
    from engine.imperative import invoke
    from engine.ops.registry import get_op
    return invoke(get_op(name), inputs, attrs)
"""


@pytest.fixture(scope='module')
def tampered_results():
    from isolation import run_cases
    return run_cases({op: _HELPER + textwrap.dedent(code) for op, code in _TAMPERED.items()})


@pytest.mark.parametrize('op', sorted(_TAMPERED))
def test_backward_shape_rules_check_attributes_against_inputs(tampered_results, op):
    outcome, msg = tampered_results[op]
    assert outcome == 'MXNetError' and msg.startswith(op), (outcome, msg)


def test_take_clips_huge_and_nan_free_indices_to_the_last_row():
    a = nd.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(nd.take(a, nd.array([1e20, -1e20])).asnumpy(), [[4, 5], [0, 1]])
    np.testing.assert_array_equal(nd.take(a, nd.array([1e20]), mode='wrap').shape, (1, 2))


def test_take_and_pick_backward_clip_like_forward():
    a = nd.arange(6).reshape(3, 2)
    a.attach_grad()
    with autograd.record():
        y = nd.take(a, nd.array([7, -3]))
    y.backward()
    np.testing.assert_array_equal(a.grad.asnumpy(), [[1, 1], [0, 0], [1, 1]])
    with autograd.record():
        y = nd.pick(a, nd.array([5, -2, 1]), axis=1)
    y.backward()
    np.testing.assert_array_equal(a.grad.asnumpy(), [[0, 1], [1, 0], [0, 1]])


def test_one_hot_out_of_range_gives_an_off_row():
    np.testing.assert_array_equal(nd.one_hot(nd.array([-1, 5, 1]), 3).asnumpy(),
                                  [[0, 0, 0], [0, 0, 0], [0, 1, 0]])


def test_embedding_forward_rejects_out_of_range():
    with pytest.raises(mx.MXNetError, match='Embedding: index 3 is out of range'):
        nd.Embedding(nd.array([0, 3]), nd.ones((3, 2)), input_dim=3, output_dim=2)


@pytest.mark.parametrize('key, axis, bad', [
    (lambda: nd.array([0, 7]), 0, 7), (lambda: [0, -4], 0, -4),
    (lambda: (slice(None), nd.array([1, 2])), 1, 2),
], ids=['array', 'list', 'second axis'])
def test_integer_array_indices_are_checked_on_every_device(key, axis, bad):
    # NumPy raises on its own, CuPy would wrap around: the check is the engine's, in its words
    a = nd.arange(6).reshape(3, 2)
    n = a.shape[axis]
    with pytest.raises(mx.MXNetError, match=rf'getitem: index {bad} is out of range for axis {axis} of size {n}'):
        a[key()]
    with pytest.raises(mx.MXNetError, match=rf'setitem: index {bad} is out of range for axis {axis}'):
        a[key()] = 1.0
    with pytest.raises(mx.MXNetError, match=r'setitem: boolean index of shape \(2,\)'):
        a[nd.array([1, 0], dtype='bool')] = 1.0
