"""Initializers: name dispatch, fixed values, random statistics, registry and errors."""
import json

import numpy as np
import pytest

import engine as mx
from engine import initializer as init
from engine import nd
from engine.base import MXNetError


@pytest.mark.parametrize('name,value', [
    ('fc1_bias', 0.0), ('bn_gamma', 1.0), ('bn_beta', 0.0), ('bn_running_mean', 0.0),
    ('bn_running_var', 1.0), ('bn_moving_mean', 0.0), ('bn_moving_var', 1.0),
])
def test_dispatch_by_name_suffix(name, value):
    arr = nd.full((3, 4), 7.0)
    buf = arr._data
    init.Xavier()(name, arr)
    np.testing.assert_array_equal(arr.asnumpy(), np.full((3, 4), value))
    assert arr._data is buf  # filled in place


def test_weight_uses_the_initializers_rule_and_unknown_names_fail():
    arr = nd.zeros((3, 4))
    init.One()('conv0_weight', arr)
    np.testing.assert_array_equal(arr.asnumpy(), 1.0)
    with pytest.raises(MXNetError, match="unknown initialization pattern for 'fc_scale'"):
        init.Normal()('fc_scale', arr)


def test_initdesc_with_own_init_ignores_the_suffix():
    """Gluon semantics: a parameter's own init fills it whatever its name."""
    arr = nd.zeros((5,))
    init.Uniform()(init.InitDesc('dense0_bias', {'__init__': 'ones'}), arr)
    np.testing.assert_array_equal(arr.asnumpy(), 1.0)
    init.Uniform()(init.InitDesc('dense0_bias', {'__init__': init.Constant(0.25)}), arr)
    np.testing.assert_array_equal(arr.asnumpy(), 0.25)
    desc = init.InitDesc('fc_bias')
    g = init.Xavier()
    g(desc, arr)  # no own init: by name
    np.testing.assert_array_equal(arr.asnumpy(), 0.0)
    assert desc.global_init is g


def test_constant_zero_one_and_dtype():
    a = nd.zeros((2, 3), dtype='float64')
    init.Constant(2.5)('w_weight', a)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a.asnumpy(), 2.5)
    init.Constant(nd.array([1.0, 2.0, 3.0]))('w_weight', a)  # broadcast over rows
    np.testing.assert_array_equal(a.asnumpy(), [[1, 2, 3], [1, 2, 3]])
    with pytest.raises(MXNetError, match='does not broadcast'):
        init.Constant([1.0, 2.0])('w_weight', a)
    init.Zero()('w_weight', a)
    assert not a.asnumpy().any()


def test_uniform_and_normal_statistics():
    a = nd.zeros((400, 500))
    init.Uniform(0.5)('x_weight', a)
    v = a.asnumpy()
    assert v.min() >= -0.5 and v.max() <= 0.5
    assert abs(v.std() - 0.5 / np.sqrt(3)) < 0.01 and abs(v.mean()) < 0.01
    init.Normal(0.2)('x_weight', a)
    assert abs(a.asnumpy().std() - 0.2) < 0.005


@pytest.mark.parametrize('rnd_type,factor_type', [('uniform', 'avg'), ('uniform', 'in'),
                                                   ('gaussian', 'out'), ('gaussian', 'avg')])
def test_xavier_std(rnd_type, factor_type):
    shape = (256, 128, 3, 3)  # fan_in = 128*9, fan_out = 256*9
    a = nd.zeros(shape)
    init.Xavier(rnd_type=rnd_type, factor_type=factor_type, magnitude=2.0)('c_weight', a)
    fan_in, fan_out = 128 * 9, 256 * 9
    factor = {'avg': (fan_in + fan_out) / 2, 'in': fan_in, 'out': fan_out}[factor_type]
    scale = np.sqrt(2.0 / factor)
    expected_std = scale / np.sqrt(3) if rnd_type == 'uniform' else scale
    v = a.asnumpy()
    assert abs(v.std() / expected_std - 1) < 0.1
    if rnd_type == 'uniform':
        assert np.abs(v).max() <= scale * (1 + 1e-6)


def test_msra_prelu_std():
    a = nd.zeros((512, 1024))
    init.MSRAPrelu(factor_type='in', slope=0.0)('fc_weight', a)
    assert abs(a.asnumpy().std() / np.sqrt(2.0 / 1024) - 1) < 0.1
    init.MSRAPrelu()('fc_weight', a)  # avg fan, slope 0.25
    assert abs(a.asnumpy().std() / np.sqrt(2.0 / 1.0625 / 768) - 1) < 0.1


def test_xavier_errors():
    with pytest.raises(MXNetError, match='at least 2 dimensions'):
        init.Xavier()('fc_weight', nd.zeros((10,)))
    with pytest.raises(MXNetError, match='rnd_type'):
        init.Xavier(rnd_type='normal')
    with pytest.raises(MXNetError, match='factor_type'):
        init.Xavier(factor_type='sum')


@pytest.mark.parametrize('shape', [(32, 96), (96, 32), (16, 4, 3, 3)])
def test_orthogonal(shape):
    a = nd.zeros(shape)
    init.Orthogonal(scale=1.5, rand_type='normal')('o_weight', a)
    m = a.asnumpy().reshape(shape[0], -1).astype(np.float64) / 1.5
    small = min(m.shape)
    gram = m @ m.T if m.shape[0] == small else m.T @ m
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


def test_mixed_and_load():
    mixed = init.Mixed(['conv.*', '.*'], [init.Constant(0.5), init.Normal(1.0)])
    a, b = nd.zeros((3, 3)), nd.zeros((3, 3))
    mixed('conv1_weight', a)
    mixed('fc_weight', b)
    np.testing.assert_array_equal(a.asnumpy(), 0.5)
    assert b.asnumpy().std() > 0.1
    with pytest.raises(MXNetError, match='matched none'):
        init.Mixed(['conv.*'], [init.One()])('fc_weight', a)
    load = init.Load({'arg:fc_weight': np.full((3, 3), 4.0)}, default_init=init.One())
    load('fc_weight', a)
    load('other_weight', b)
    np.testing.assert_array_equal(a.asnumpy(), 4.0)
    np.testing.assert_array_equal(b.asnumpy(), 1.0)
    with pytest.raises(MXNetError, match='shape'):
        load('fc_weight', nd.zeros((2, 2)))


def test_bilinear_and_lstm_bias():
    w = nd.zeros((1, 1, 4, 4))
    init.Bilinear()('up_weight', w)
    k = w.asnumpy()[0, 0]
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k[1], [0.1875, 0.5625, 0.5625, 0.1875])
    b = nd.zeros((8,))
    init.LSTMBias(forget_bias=2.0)('lstm_bias', b)  # by name: a bias -> zeros
    assert not b.asnumpy().any()
    init.LSTMBias(forget_bias=2.0)._init_weight('lstm_bias', b)
    np.testing.assert_array_equal(b.asnumpy(), [0, 0, 2, 2, 0, 0, 0, 0])


def test_registry_create_and_dumps():
    assert type(init.create('xavier')) is init.Xavier
    assert type(init.create('zeros')) is init.Zero and type(init.create('ones')) is init.One
    n = init.create('normal', sigma=0.5)
    assert isinstance(n, init.Normal) and n.sigma == 0.5
    x = init.Xavier(rnd_type='gaussian', magnitude=2)
    assert init.create(x) is x
    name, kwargs = json.loads(x.dumps())
    assert name == 'xavier' and kwargs['magnitude'] == 2
    assert init.create(x.dumps()) == x
    with pytest.raises(MXNetError, match="unknown initializer 'glorot'"):
        init.create('glorot')
    with pytest.raises(MXNetError, match='bad arguments'):
        init.create('normal', scale=3)

    @init.register
    class Twos(init.Initializer):
        def _init_weight(self, _, arr):
            arr[:] = 2.0

    a = nd.zeros((2,))
    init.create('twos')('t_weight', a)
    np.testing.assert_array_equal(a.asnumpy(), 2.0)


def test_seeded_draws_are_reproducible():
    a, b = nd.zeros((20, 30)), nd.zeros((20, 30))
    mx.random.seed(42)
    init.Xavier()('w_weight', a)
    mx.random.seed(42)
    init.Xavier()('w_weight', b)
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
