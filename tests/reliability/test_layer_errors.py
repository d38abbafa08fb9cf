"""Part 6: errors name the layer (block path and the user's line) and say what was wrong with
the values given; allocation requests that cannot be met are an MXNetError with the size."""
import tracemalloc

import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.gluon import nn


class _Model(nn.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential()
            self.features.add(nn.Conv2D(4, 3, in_channels=3), nn.Activation('relu'), nn.MaxPool2D(),
                              nn.Conv2D(8, 3, in_channels=5))
            self.output = nn.Dense(2)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


@pytest.mark.parametrize('hybrid', [False, True])
def test_shape_error_names_block_path_op_and_user_line(hybrid):
    net = _Model()
    net.initialize()
    if hybrid:
        net.hybridize()
    with pytest.raises(mx.MXNetError) as e:
        net(nd.ones((1, 3, 12, 12)))   # the line the error must point at
    msg = str(e.value)
    assert msg.startswith('features.3 (Conv2D): Convolution: weight must be (num_filter, 4, kh, kw)'), msg
    assert f'{__file__}:' in msg and 'test_layer_errors.py' in msg


def test_error_in_a_user_forward_points_at_its_line():
    class Net(nn.Block):
        def forward(self, x):
            return nd.Convolution(x, nd.ones((1, 2, 3, 3)), kernel=(3, 3), num_filter=1, no_bias=True)
    with pytest.raises(mx.MXNetError) as e:
        Net()(nd.ones((1, 3, 5, 5)))
    msg = str(e.value)
    assert '(Net): Convolution:' in msg
    lines = [i for i, l in enumerate(open(__file__).read().splitlines(), 1) if 'nd.Convolution(x, nd.ones' in l]
    assert msg.endswith(f'{__file__}:{lines[0]})'), msg


def test_the_message_is_annotated_once_through_nested_blocks():
    outer = nn.Sequential()
    inner = nn.Sequential()
    inner.add(nn.Dense(3, in_units=5))
    outer.add(inner)
    outer.initialize()
    with pytest.raises(mx.MXNetError) as e:
        outer(nd.ones((2, 4)))
    assert str(e.value).count('(at ') == 1 and str(e.value).startswith('0.0 (Dense): FullyConnected')


@pytest.mark.parametrize('training', [False, True])
def test_batchnorm_shape_errors_are_reported_as_batchnorm(training):
    bn = nn.BatchNorm(in_channels=3)
    bn.initialize()
    with pytest.raises(mx.MXNetError, match=r'\(BatchNorm\): BatchNorm: gamma has shape \(3,\), expected \(4,\)'):
        if training:
            with mx.autograd.record():
                bn(nd.ones((2, 4, 5)))
        else:
            bn(nd.ones((2, 4, 5)))
    with pytest.raises(mx.MXNetError, match=r'BatchNorm: axis 3 is out of range'):
        nd.BatchNorm(nd.ones((2, 3)), *[nd.ones((3,))] * 4, axis=3)


@pytest.mark.parametrize('call, match', [
    (lambda: nd.zeros((-1, 2)), r'zeros: shape \(-1, 2\) has a negative dimension'),
    (lambda: nd.full((2, -3), 1.0), r'full: shape \(2, -3\) has a negative dimension'),
    (lambda: nd.ones((1 << 40, 1 << 12)), r'ones: cannot allocate an array of shape \(1099511627776, 4096\) '
                                          r'float32 \(1.68e\+07 GiB\)'),
    (lambda: mx.random.normal(shape=(1 << 40, 1 << 12)), r'random.normal: cannot allocate .* float32'),
    (lambda: mx.random.uniform(shape=(2, -1)), r'random.uniform: shape \(2, -1\) has a negative dimension'),
    (lambda: nd.arange(0, 5, 0), r'arange: step must be nonzero .* step=0'),
    (lambda: nd.tile(nd.ones((2,)), (-1,)), r'tile: reps=\(-1,\) must be non-negative'),
    (lambda: nd.repeat(nd.ones((2,)), -1), r'repeat: repeats=-1 must be non-negative'),
    (lambda: nd.one_hot(nd.array([1]), -2), r'one_hot: depth=-2 must be non-negative'),
    (lambda: mx.random.randint(5, 1, shape=(2,)), r'random.randint: needs an integer dtype and low < high'),
    (lambda: nd.tile(nd.ones((1 << 20,)), (1 << 22,)),
     r'tile: out of memory on cpu\(0\) allocating its outputs \[\(4398046511104,\) float32\] \(1.64e\+04 GiB\)'),
], ids=['negative zeros', 'negative full', 'huge ones', 'huge normal', 'negative uniform', 'arange step 0',
        'tile', 'repeat', 'one_hot', 'randint', 'op out of memory'])
def test_creation_errors_say_the_values(call, match):
    with pytest.raises(mx.MXNetError, match=match):
        call()


def test_random_normal_float32_does_not_allocate_float64_first():
    n = 1 << 21   # 8 MiB as float32; a float64 draw first would peak at 24 MiB
    tracemalloc.start()
    try:
        a = mx.random.normal(1.0, 2.0, shape=(n,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert a.dtype == np.float32 and peak < 1.5 * 4 * n, peak
    v = a.asnumpy()
    assert abs(v.mean() - 1.0) < 0.01 and abs(v.std() - 2.0) < 0.01
    u = mx.random.uniform(-1, 3, shape=(1000,), dtype='float16').asnumpy()
    assert u.dtype == np.float16 and u.min() >= -1 and u.max() <= 3


@pytest.mark.parametrize('call', [
    lambda: nd.softmax(nd.ones((2, 3), dtype='int32')),
    lambda: nd.LayerNorm(*[nd.ones(s, dtype='int32') for s in ((2, 3), (3,), (3,))]),
], ids=['softmax', 'LayerNorm'])
def test_integer_input_to_a_float_kernel_names_the_dtypes(call):
    with pytest.raises(mx.MXNetError, match=r'no CPU kernel for input dtypes \(int32.*\); these kernels take '
                                            r'float16, float32 or float64') as e:
        call()
    assert len(str(e.value)) < 400   # not a page of compiler output


@pytest.mark.parametrize('key, why', [
    (5, 'index 5 is out of range for axis 0 of size 3'),
    ((None, 1, 5), 'index 5 is out of range for axis 1 of size 2'),
    ((Ellipsis, -3), 'index -3 is out of range for axis 1 of size 2'),
    ((0, 0, 0), '3 indices for an array of 2 dimensions'),
])
def test_bad_keys_are_explained_in_the_ops_words(key, why):
    a = nd.arange(6).reshape(3, 2)
    with pytest.raises(mx.MXNetError, match=rf'getitem: {why} \(array of shape \(3, 2\)\)'):
        a[key]
    with pytest.raises(mx.MXNetError, match=rf'setitem: cannot assign .* of shape \(3, 2\): {why}$'):
        a[key] = 1.0


@pytest.mark.parametrize('op, attr, value, why', [
    ('Convolution', 'stride', '(0, 0)', r'Convolution: stride and dilate must be >= 1'),
    ('Convolution', 'kernel', '(5, 5)', r'Convolution: kernel=\(5, 5\) does not match weight shape'),
    ('Pooling', 'pad', '(2, 2)', r'max_pool2d: pad must be smaller than the kernel'),
])
def test_a_tampered_exported_model_is_refused_by_the_shape_rules(tmp_path, op, attr, value, why):
    import json
    net = nn.HybridSequential()
    net.add(nn.Conv2D(2, 3, in_channels=1), nn.MaxPool2D(2))
    net.initialize()
    net.hybridize()
    net(nd.ones((1, 1, 8, 8)))
    net.export(str(tmp_path / 'm'))
    graph = json.loads((tmp_path / 'm-symbol.json').read_text())
    for node in graph['nodes']:
        if node['op'] == op:
            node['attrs'][attr] = value
    (tmp_path / 'm-symbol.json').write_text(json.dumps(graph))
    with pytest.raises(mx.MXNetError, match=why):
        block = mx.gluon.SymbolBlock.imports(str(tmp_path / 'm-symbol.json'), ['data'],
                                             str(tmp_path / 'm-0000.params'))
        block(nd.ones((1, 1, 8, 8)))


def test_an_error_in_a_compiled_program_points_at_the_users_call():
    class Divide(nn.HybridBlock):
        def hybrid_forward(self, F, x, y):
            return (x + 1) / y
    net = Divide()
    net.hybridize()
    x, y = nd.array([1, 2], dtype='int32'), nd.array([1, 0], dtype='int32')
    with pytest.raises(mx.MXNetError) as e:
        net(x, y)   # the compiled program's frames are the engine's, not the user's
    line = next(i for i, l in enumerate(open(__file__).read().splitlines(), 1) if 'net(x, y)   # the compiled' in l)
    assert str(e.value).endswith(f'(Divide): divide: integer division by zero (dtypes int32 and int32); cast to '
                                 f'a float dtype for inf/nan results (at {__file__}:{line})'), str(e.value)


def test_norm_layers_with_an_axis_out_of_range_say_so():
    for layer, name in ((nn.LayerNorm(axis=5), 'LayerNorm'), (nn.BatchNorm(axis=4), 'BatchNorm')):
        layer.initialize()
        with pytest.raises(mx.MXNetError, match=rf'\({name}\): {name}: axis \d is out of range for an input of '
                                                r'shape \(2, 3\)'):
            layer(nd.ones((2, 3)))
