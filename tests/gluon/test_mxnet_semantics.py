"""Regression tests for behaviour that differed silently from MXNet 1.9 (issue 19): each test
states what MXNet does and checks the engine does the same."""
import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.base import MXNetError


# ---- array creation and conversion ---------------------------------------------------------
@pytest.mark.parametrize('make, value', [
    (lambda out: nd.zeros((2, 3), out=out), 0.0),
    (lambda out: nd.ones((2, 3), out=out), 1.0),
    (lambda out: nd.full((2, 3), 7, out=out), 7.0),
])
def test_creation_functions_write_into_out_and_return_it(make, value):
    out = nd.array(np.full((2, 3), -1.0))
    res = make(out)
    assert res is out
    np.testing.assert_array_equal(out.asnumpy(), np.full((2, 3), value, np.float32))


def test_creation_out_with_another_shape_or_dtype_is_a_clear_error():
    with pytest.raises(MXNetError, match=r'ones: shape \(3, 2\) does not match out of shape \(2, 3\)'):
        nd.ones((3, 2), out=nd.zeros((2, 3)))
    with pytest.raises(MXNetError, match='zeros: dtype int32 does not match out of dtype float32'):
        nd.zeros((2, 3), dtype='int32', out=nd.zeros((2, 3)))


def test_asscalar_returns_a_numpy_scalar_of_the_arrays_dtype():
    for dtype in ('float32', 'float64', 'int32', 'int64'):
        v = nd.array([3], dtype=dtype).asscalar()
        assert type(v) is np.dtype(dtype).type and v == 3
    assert type(nd.array([2.5]).item()) is float      # item() stays NumPy's Python scalar
    with pytest.raises(ValueError, match=r'asscalar: array has shape \(2,\)'):
        nd.array([1, 2]).asscalar()


def test_truth_value_of_empty_single_and_ambiguous_arrays():
    assert bool(nd.zeros((0,))) is False and bool(nd.zeros((2, 0))) is False
    assert bool(nd.array([0.0])) is False and bool(nd.array([[2.0]])) is True
    with pytest.raises(ValueError, match=r'truth value of an NDArray of shape \(2,\) is ambiguous'):
        bool(nd.array([1, 1]))
    with pytest.raises(MXNetError):        # also an MXNetError
        bool(nd.array([1, 1]))


# ---- parameter sharing ----------------------------------------------------------------------
def test_params_argument_shares_the_same_initialized_parameters():
    from engine.gluon import nn
    a = nn.Dense(4, in_units=3)
    a.initialize()
    b = nn.Dense(4, in_units=3, params=a.collect_params())
    assert b.weight is a.weight and b.bias is a.bias       # the same Parameter, not a copy
    x = nd.array(np.arange(6.).reshape(2, 3))
    np.testing.assert_array_equal(b(x).asnumpy(), a(x).asnumpy())   # already initialized
    assert list(b.collect_params()) == list(a.collect_params())


def test_children_of_a_block_built_with_shared_params_share_too():
    from engine.gluon import nn

    def net(prefix, params=None):
        n = nn.HybridSequential(prefix=prefix, params=params)
        with n.name_scope():
            n.add(nn.Dense(5, in_units=2), nn.Dense(3))
        return n
    n1 = net('net1_')
    n1.initialize()
    n2 = net('net2_', params=n1.collect_params())
    for p, q in zip(n1.collect_params().values(), n2.collect_params().values()):
        assert p is q
    x = nd.ones((2, 2))
    n2.hybridize()
    np.testing.assert_allclose(n2(x).asnumpy(), n1(x).asnumpy(), rtol=1e-6)
    # a gradient through either network lands in the one shared parameter
    from engine import autograd
    with autograd.record():
        loss = n1(x).sum() + n2(x).sum()
    loss.backward()
    with autograd.record():
        once = n1(x).sum()
    g_both = n1[0].weight.grad().asnumpy().copy()
    once.backward()
    np.testing.assert_allclose(g_both, 2 * n1[0].weight.grad().asnumpy(), rtol=1e-5)


# ---- None inputs --------------------------------------------------------------------------------
class _Optional(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, a, b=None):
        if a is None:
            return b * 3
        return a * 2 if b is None else a + b


@pytest.mark.parametrize('hybridize', [False, True])
def test_none_inputs_reach_forward_as_none(hybridize):
    blk = _Optional()
    if hybridize:
        blk.hybridize()
    x = nd.array([1.0, 2.0])
    for _ in range(2):      # the second call runs the cached graph
        np.testing.assert_array_equal(blk(x, None).asnumpy(), [2, 4])
        np.testing.assert_array_equal(blk(None, x).asnumpy(), [3, 6])
        np.testing.assert_array_equal(blk(x, x).asnumpy(), [2, 4])
    x.attach_grad()
    with mx.autograd.record():
        y = blk(None, x)
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [3, 3])


def test_hybridized_block_with_a_number_input_raises_value_error():
    blk = _Optional()
    blk.hybridize()
    with pytest.raises(ValueError, match='NDArray inputs, got int'):
        blk(nd.ones((2,)), 1)


# ---- layouts ------------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip('torch')


@pytest.mark.parametrize('layer, layout, shape', [
    ('MaxPool1D', 'NWC', (2, 7, 3)), ('AvgPool1D', 'NWC', (2, 7, 3)),
    ('MaxPool2D', 'NHWC', (2, 6, 5, 3)), ('AvgPool2D', 'NHWC', (2, 6, 5, 3)),
    ('GlobalMaxPool1D', 'NWC', (2, 7, 3)), ('GlobalAvgPool2D', 'NHWC', (2, 6, 5, 3)),
])
@pytest.mark.parametrize('hybridize', [False, True])
def test_channels_last_pooling_pools_the_spatial_axes(layer, layout, shape, hybridize):
    torch = _torch()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    glob = layer.startswith('Global')
    blk = getattr(mx.gluon.nn, layer)(layout=layout) if glob else getattr(mx.gluon.nn, layer)(2, layout=layout)
    if hybridize:
        blk.hybridize()
    got = blk(nd.array(x)).asnumpy()
    n = len(shape) - 2
    xt = torch.from_numpy(np.moveaxis(x, -1, 1))      # the reference pools channels-first
    kind = 'max' if 'Max' in layer else 'avg'
    if glob:
        ref = xt.amax(dim=tuple(range(2, n + 2)), keepdim=True) if kind == 'max' else \
            xt.mean(dim=tuple(range(2, n + 2)), keepdim=True)
    else:
        ref = getattr(torch.nn.functional, f'{kind}_pool{n}d')(xt, 2)
    np.testing.assert_allclose(got, np.moveaxis(ref.numpy(), 1, -1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('layer, layout, shape', [('Conv1D', 'NWC', (2, 9, 4)),
                                                  ('Conv2D', 'NHWC', (2, 7, 6, 4))])
def test_channels_last_conv_matches_torch_and_keeps_mxnet_weight_layout(layer, layout, shape):
    torch = _torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    n = len(shape) - 2
    conv = getattr(mx.gluon.nn, layer)(6, 3, strides=1, padding=1, groups=2, layout=layout)
    conv.initialize(mx.init.Normal(1.0))
    conv.bias.set_data(rng.standard_normal(6))
    got = conv(nd.array(x)).asnumpy()
    assert conv.weight.shape == (6,) + (3,) * n + (2,)    # MXNet's (O, *kernel, I/groups)
    w = torch.from_numpy(np.moveaxis(conv.weight.data().asnumpy(), -1, 1))
    ref = getattr(torch.nn.functional, f'conv{n}d')(torch.from_numpy(np.moveaxis(x, -1, 1)), w,
                                                     torch.from_numpy(conv.bias.data().asnumpy()),
                                                     padding=1, groups=2)
    np.testing.assert_allclose(got, np.moveaxis(ref.numpy(), 1, -1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('make', [lambda: mx.gluon.nn.Conv1D(3, 2, layout='NWC', in_channels=2),
                                  lambda: mx.gluon.nn.MaxPool1D(2, layout='NWC')])
def test_channels_last_layers_gradients_match_finite_differences(make):
    from engine.test_utils import check_numeric_gradient
    blk = make()
    blk.initialize()
    blk.cast('float64')
    x = np.random.default_rng(2).standard_normal((2, 5, 2))
    check_numeric_gradient(lambda x: blk(x), [x], rtol=1e-5, atol=1e-7)
    if blk.collect_params():       # and the weight's gradient, in its (O, kernel, I) layout
        xa = nd.array(x, dtype='float64')
        check_numeric_gradient(lambda w, b: blk.hybrid_forward(nd, xa, w, b),
                               [blk.weight.data(), blk.bias.data()])


def test_unknown_layouts_are_a_clear_error():
    with pytest.raises(MXNetError, match="MaxPool2D: layout must be 'NCHW' or 'NHWC', got 'NWC'"):
        mx.gluon.nn.MaxPool2D(layout='NWC')
    with pytest.raises(MXNetError, match="Conv2DTranspose: layout must be 'NCHW', got 'NHWC'"):
        mx.gluon.nn.Conv2DTranspose(2, 3, layout='NHWC')


# ---- split_data ---------------------------------------------------------------------------------
def test_uneven_split_data_puts_the_larger_slices_first():
    from engine.gluon.utils import split_data
    x = nd.arange(10)
    parts = split_data(x, 3, even_split=False)
    assert [p.asnumpy().tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    sizes = [p.shape[1] for p in split_data(nd.zeros((2, 11)), 4, batch_axis=1, even_split=False)]
    assert sizes == [len(a) for a in np.array_split(np.zeros(11), 4)] == [3, 3, 3, 2]
    with pytest.raises(ValueError, match=r'shape \(10,\) cannot be split evenly into 3'):
        split_data(x, 3)


# ---- F.* on symbols -----------------------------------------------------------------------------
class _Likes(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.zeros_like(x) + F.ones_like(x) * 2 + x * x


@pytest.mark.parametrize('hybridize', [False, True])
def test_zeros_like_and_ones_like_work_on_traced_symbols(hybridize):
    blk = _Likes()
    if hybridize:
        blk.hybridize()
    x = nd.array([1.0, 3.0])
    x.attach_grad()
    with mx.autograd.record():
        y = blk(x)
    y.backward()
    np.testing.assert_array_equal(y.asnumpy(), [3, 11])
    np.testing.assert_array_equal(x.grad.asnumpy(), [2, 6])    # the constants add no gradient


def test_zeros_like_and_ones_like_keep_dtype_and_take_out():
    x = nd.array([[1, 2]], dtype='int32')
    z = nd.ones_like(x)
    assert z.dtype == np.int32 and z.asnumpy().tolist() == [[1, 1]]
    out = nd.full((1, 2), 5, dtype='int32')
    assert nd.zeros_like(x, out=out) is out and out.asnumpy().tolist() == [[0, 0]]


# ---- block attributes, warnings, repr -----------------------------------------------------------
def test_a_child_or_parameter_attribute_cannot_change_kind():
    from engine.gluon import Block, Parameter
    b = Block()
    b.a = None
    b.a = 1                                  # plain attributes may change type
    b.c = Block()
    b.c = Block()                            # a block for a block: replaced
    with pytest.raises(TypeError, match=r'Block\.c: changing the attribute from Block to tuple'):
        b.c = (2,)
    b.p = Parameter('w', shape=(1,))
    with pytest.raises(TypeError, match='from Parameter to int'):
        b.p = 3


def test_blocks_in_a_list_attribute_warn_when_params_are_collected():
    from engine.gluon import Block, nn

    class Listed(Block):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Dense(2), nn.Dense(3)]

    class Registered(Block):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential()
            self.layers.add(nn.Dense(2))
            self.config = {'a': 1}

    with pytest.warns(UserWarning, match='"Listed.layers" is an unregistered container with Blocks'):
        Listed().collect_params()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Registered().collect_params()


def test_sequential_of_hybrid_blocks_warns_on_hybridize():
    from engine.gluon import nn
    seq = nn.Sequential()
    seq.add(nn.Dense(2))
    with pytest.warns(UserWarning, match='Consider using HybridSequential'):
        seq.hybridize()


def test_parameter_dict_repr_starts_with_its_prefix():
    from engine.gluon import nn
    net = nn.HybridSequential(prefix='net1_')
    with net.name_scope():
        net.add(nn.Dense(10, in_units=5, use_bias=False))
    lines = str(net.collect_params()).splitlines()
    assert lines[0] == 'net1_ (' and lines[2] == ')'
    assert 'net1_dense0_weight' in lines[1] and '(10, 5)' in lines[1] and 'float32' in lines[1]


def test_sparse_storage_types_are_a_clear_error():
    from engine.gluon import Parameter
    assert Parameter('w', shape=(2,), stype='default', grad_stype='default').shape == (2,)
    with pytest.raises(MXNetError, match="parameter w: stype='row_sparse' is not supported"):
        Parameter('w', shape=(2,), stype='row_sparse')


# ---- more of MXNet's API ------------------------------------------------------------------------
def test_a_hybrid_block_without_any_array_input_is_a_value_error():
    for hybridize in (False, True):
        blk = _Optional()
        if hybridize:
            blk.hybridize()
        with pytest.raises(ValueError, match='at least one'):
            blk(None, None)


def test_summary_accepts_nested_outputs_and_inputs(capsys):
    class Pair(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x, state):
            return x * 2, [state[0] + 1, state[1]]
    blk = Pair()
    blk.summary(nd.ones((2, 3)), [nd.ones((1, 3)), nd.ones((1, 4))])
    out = capsys.readouterr().out
    assert '(2, 3), (1, 3), (1, 4)' in out


def test_mark_variables_writes_gradients_into_the_given_buffers():
    x, y = nd.array([1.0, 2.0]), nd.array([3.0])
    gx, gy = nd.zeros((2,)), nd.ones((1,))
    mx.autograd.mark_variables([x, y], [gx, gy], grad_reqs=['write', 'add'])
    with mx.autograd.record():
        z = (x * x).sum() + y * 5
    z.backward()
    np.testing.assert_array_equal(gx.asnumpy(), [2, 4])
    np.testing.assert_array_equal(gy.asnumpy(), [6])         # 1 + 5: 'add' keeps the old value
    with pytest.raises(MXNetError, match='gradient of shape'):
        mx.autograd.mark_variables(x, nd.zeros((3,)))


def test_stype_tostype_and_legacy_random_names():
    x = nd.array([1.0, 2.0])
    assert x.stype == 'default'
    y = x.tostype('default')
    assert y is not x and y.asnumpy().tolist() == [1.0, 2.0]
    assert nd.uniform(0, 1, shape=(3,)).shape == (3,) and nd.normal(shape=(2, 2)).shape == (2, 2)


def test_eye_linspace_and_from_numpy_match_numpy():
    np.testing.assert_array_equal(nd.eye(3, 4, 1).asnumpy(), np.eye(3, 4, 1))
    np.testing.assert_array_equal(nd.eye(3, k=-1, dtype='int32').asnumpy(), np.eye(3, k=-1))
    np.testing.assert_allclose(nd.linspace(2, 7, 6, endpoint=False).asnumpy(),
                               np.linspace(2, 7, 6, endpoint=False), rtol=1e-6)
    a = np.arange(6.0).reshape(2, 3)
    copy = nd.from_numpy(a, zero_copy=False)
    shared = nd.from_numpy(a)
    assert shared.dtype == np.float64 and not a.flags.writeable   # MXNet: the source is read-only
    shared[1, 1] = 100                                            # and shares memory
    assert a[1, 1] == 100 and copy.asnumpy()[1, 1] == 4
    again = nd.from_numpy(a)               # a source already read-only still shares memory
    again[0, 0] = -1
    assert a[0, 0] == -1 and shared.asnumpy()[0, 0] == -1
    for odd in (np.array(2.0).reshape(()), np.zeros((1, 0, 2))):
        assert nd.from_numpy(odd).shape == odd.shape
    with pytest.raises(MXNetError, match='C-contiguous'):
        nd.from_numpy(np.ones((3, 2)).T)


@pytest.mark.parametrize('hybridize', [False, True])
def test_concatenate_moveaxis_add_n_work_eagerly_and_traced(hybridize):
    class Mix(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.ElementWiseSum(F.moveaxis(F.concatenate([x, x], axis=1), 0, -1),
                                    F.moveaxis(F.concatenate([x, -x], axis=1), 0, 2))
    x = np.arange(12.0).reshape(2, 3, 2)
    blk = Mix()
    if hybridize:
        blk.hybridize()
    ref = np.moveaxis(np.concatenate([x, x], 1), 0, -1) + np.moveaxis(np.concatenate([x, -x], 1), 0, 2)
    np.testing.assert_array_equal(blk(nd.array(x)).asnumpy(), ref)
    with pytest.raises(MXNetError, match='add_n: all arrays must have one shape'):
        nd.add_n(nd.ones((2,)), nd.ones((3,)))


def test_one_element_array_assigns_like_its_value():
    b = nd.zeros(2)
    b[0] = np.array([47.844944], dtype=np.float32)
    b[1] = nd.array([[3.0]])
    np.testing.assert_array_equal(b.asnumpy(), np.array([47.844944, 3.0], np.float32))


def test_clip_global_norm_warns_on_nan_and_returns_an_array_without_the_check():
    import warnings
    from engine.gluon.utils import clip_global_norm
    x1, x2 = nd.ones((3, 3)), nd.ones((4, 4))
    assert clip_global_norm([x1, x2], 1.0) == 5.0
    np.testing.assert_allclose(x1.asnumpy(), np.ones((3, 3)) / 5, rtol=1e-6)
    y = nd.ones((3, 4))
    norm = clip_global_norm([y], 100.0, check_isfinite=False)
    assert isinstance(norm, nd.NDArray) and norm.shape == (1,)
    np.testing.assert_allclose(norm.asnumpy(), [np.sqrt(12)], rtol=1e-6)
    bad = nd.array([1.0, float('nan')])
    with pytest.warns(UserWarning, match='nan or inf'):
        clip_global_norm([bad], 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        clip_global_norm([bad], 1.0, check_isfinite=False)


def test_reset_arrays_zeroes_in_place():
    a, b = nd.ones((2,)), nd.full((1, 3), 4.0)
    nd.reset_arrays(a, b, num_arrays=2)
    assert a.asnumpy().tolist() == [0, 0] and b.asnumpy().tolist() == [[0, 0, 0]]


# ---- GroupNorm, ReflectionPad2D ---------------------------------------------------------------
@pytest.mark.parametrize('groups', [1, 2, 5])
@pytest.mark.parametrize('hybridize', [False, True])
def test_group_norm_matches_torch(groups, hybridize):
    torch = _torch()
    x = np.random.default_rng(3).standard_normal((2, 10, 3, 4)).astype(np.float32)
    layer = mx.gluon.nn.GroupNorm(num_groups=groups)
    layer.initialize()
    assert layer.gamma.shape == (groups,)          # MXNet 1.9: one scale per group
    if hybridize:
        layer.hybridize()
    ref = torch.nn.functional.group_norm(torch.from_numpy(x), groups, eps=1e-5).numpy()
    np.testing.assert_allclose(layer(nd.array(x)).asnumpy(), ref, rtol=1e-4, atol=1e-5)


def test_group_norm_gradients_match_finite_differences():
    from engine.test_utils import check_numeric_gradient
    layer = mx.gluon.nn.GroupNorm(num_groups=2)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3))
    check_numeric_gradient(lambda x, g, b: layer.hybrid_forward(nd, x, g, b),
                           [x, rng.standard_normal(2), rng.standard_normal(2)], rtol=1e-5, atol=1e-7)
    with pytest.raises(MXNetError, match='divisible by num_groups=3'):
        layer2 = mx.gluon.nn.GroupNorm(num_groups=3)
        layer2.initialize()
        layer2(nd.ones((2, 4, 3)))


def test_reflection_pad_matches_numpy():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    got = mx.gluon.nn.ReflectionPad2D(2)(nd.array(x)).asnumpy()
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode='reflect'))
    with pytest.raises(MXNetError, match='ReflectionPad2D: padding must be'):
        mx.gluon.nn.ReflectionPad2D((1, 1, 0, 0, 1, 1, 1, 1))


def test_fresh_grad_is_set_by_backward_and_cleared_by_the_user():
    x, y = nd.ones((2,)), nd.ones((2,))
    x.attach_grad()
    y.attach_grad()
    assert x._fresh_grad is False
    with mx.autograd.record():
        z = x * 2
    z.backward()
    assert x._fresh_grad is True and y._fresh_grad is False   # y took no part
    x._fresh_grad = False
    assert x._fresh_grad is False
    with pytest.raises(MXNetError, match='not a variable'):
        nd.ones((1,))._fresh_grad = True


def test_hybridized_inputs_on_two_contexts_or_mixed_with_symbols_are_value_errors():
    blk = _Optional()
    blk.hybridize()
    with pytest.raises(ValueError, match='several contexts'):
        blk(nd.ones((2,), ctx=mx.cpu(1)), nd.ones((2,), ctx=mx.cpu(2)))
    with pytest.raises(ValueError, match='mix mx.sym Symbols and NDArrays'):
        blk(nd.ones((2,)), mx.sym.var('a'))


def test_parameter_var_and_grad_list():
    from engine.gluon import Parameter
    p = Parameter('weight', shape=(3, 2), lr_mult=0.5)
    assert p._grad is None                     # not initialized
    p.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    assert len(p._grad) == 2 and p._grad[1].shape == (3, 2)
    p.grad_req = 'null'
    assert p._grad is None
    v = p.var()
    assert v.name == 'weight' and v.list_arguments() == ['weight']


def test_legacy_save_params_load_params_round_trip(tmp_path):
    from engine.gluon import nn

    def net():
        n = nn.HybridSequential(prefix='legacy_')
        with n.name_scope():
            n.add(nn.Dense(3, in_units=2))
        return n
    a, b = net(), net()
    a.initialize()
    b.initialize(mx.init.Zero())
    with pytest.warns(DeprecationWarning, match='save_params is deprecated'):
        a.save_params(str(tmp_path / 'p.params'))
    with pytest.warns(DeprecationWarning, match='load_params is deprecated'):
        b.load_params(str(tmp_path / 'p.params'))
    x = nd.ones((1, 2))
    np.testing.assert_array_equal(a(x).asnumpy(), b(x).asnumpy())
    assert nn.SymbolBlock is mx.gluon.SymbolBlock


def test_reshape_to_another_size_is_a_value_error():
    with pytest.raises(ValueError, match=r'reshape: cannot reshape \(2, 3, 5\) into \(2, 3\)'):
        nd.zeros((2, 3, 5)).reshape((2, 3))


def test_initializing_twice_warns_and_keeps_the_values():
    from engine.gluon import nn
    net = nn.Dense(2, in_units=2)
    net.initialize()
    before = net.weight.data().asnumpy().copy()
    with pytest.warns(UserWarning, match="Parameter 'dense.*weight' is already initialized"):
        net.initialize()
    np.testing.assert_array_equal(net.weight.data().asnumpy(), before)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        net.initialize(mx.init.Zero(), force_reinit=True)
    assert not net.weight.data().asnumpy().any()


@pytest.mark.parametrize('hybridize', [False, True])
def test_contrib_isnan_isinf_isfinite_match_numpy(hybridize):
    class Tests(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.contrib.isnan(x), F.contrib.isinf(x), F.contrib.isfinite(x)
    x = np.array([[1.0, np.inf], [-np.inf, np.nan], [0.0, -3.0]], np.float32)
    blk = Tests()
    if hybridize:
        blk.hybridize()
    for got, ref in zip(blk(nd.array(x)), (np.isnan(x), np.isinf(x), np.isfinite(x))):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.asnumpy(), ref.astype(np.float32))


def test_from_numpy_of_a_non_contiguous_array_is_a_value_error():
    with pytest.raises(ValueError, match='C-contiguous'):
        nd.from_numpy(np.ones((3, 2)).T)


def test_moveaxis_with_bad_axes_is_a_value_error():
    x = nd.zeros((1, 2, 3))
    for src, dst in [(3, 0), (-4, 0), ([0, 0], [0, 1]), (0, [0, 1])]:
        with pytest.raises(ValueError, match='moveaxis'):
            nd.moveaxis(x, src, dst)


# ---- gluon.contrib.nn ------------------------------------------------------------------------
def test_contrib_concurrent_blocks_concatenate_their_children_outputs():
    from engine.gluon.contrib.nn import Concurrent, HybridConcurrent
    x = nd.array(np.random.rand(2, 4))
    for cls in (Concurrent, HybridConcurrent):
        net = cls(axis=1)
        net.add(mx.gluon.nn.Dense(2), mx.gluon.nn.Dense(3))
        net.initialize()
        want = np.concatenate([net[0](x).asnumpy(), net[1](x).asnumpy()], axis=1)
        np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-6)


def test_contrib_sync_batchnorm_on_one_device_is_batchnorm_and_refuses_more():
    from engine.gluon.contrib.nn import SyncBatchNorm
    x = nd.array(np.random.rand(6, 3, 4))
    bn, sbn = mx.gluon.nn.BatchNorm(in_channels=3), SyncBatchNorm(in_channels=3)
    bn.initialize()
    sbn.initialize()
    with mx.autograd.record():
        a, b = bn(x), sbn(x)
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), sbn.running_mean.data().asnumpy())
    with pytest.raises(MXNetError, match='num_devices'):
        SyncBatchNorm(in_channels=3, num_devices=2)


def test_layers_composed_on_symbols_name_their_nodes_as_mxnet():
    """MXNet names a layer's op 'fwd' under the layer prefix, an Activation block after its
    type ('relu0'), and Dense/Conv activations as child blocks ('dense0_relu_fwd')."""
    net = mx.gluon.nn.HybridSequential(prefix='n_')
    with net.name_scope():
        net.add(mx.gluon.nn.Dense(3, activation='relu'), mx.gluon.nn.Activation('tanh'),
                mx.gluon.nn.Conv2D(2, 3, activation='relu'), mx.gluon.nn.BatchNorm(),
                mx.gluon.nn.Dropout(0.5))
    outs = [o for o in net(mx.sym.var('data')).get_internals().list_outputs() if o.endswith('_output')]
    assert outs == ['n_dense0_fwd_output', 'n_dense0_relu_fwd_output', 'n_tanh0_fwd_output',
                    'n_conv0_fwd_output', 'n_conv0_relu_fwd_output', 'n_batchnorm0_fwd_output',
                    'n_dropout0_fwd_output']
    assert mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=2, name='fc1').name == 'fc1'
    dense = mx.gluon.nn.Dense(3, activation='relu')
    dense.initialize()
    x = nd.array(np.random.rand(2, 5))
    eager = dense(x).asnumpy()
    np.testing.assert_allclose(eager, np.maximum(x.asnumpy() @ dense.weight.data().asnumpy().T, 0), rtol=1e-5)
    dense.hybridize()
    np.testing.assert_allclose(dense(x).asnumpy(), eager, rtol=1e-5)


def test_symbol_variables_keep_their_storage_type_and_symbol_blocks_refuse_sparse_parameters():
    from engine.ndarray import _STORAGE_TYPE_STR_TO_ID
    w = mx.sym.var('weight', stype='row_sparse')
    assert w.attr('__storage_type__') == str(_STORAGE_TYPE_STR_TO_ID['row_sparse'])
    with pytest.raises(MXNetError, match='stype'):
        mx.sym.var('w', stype='dense')
    data = mx.sym.var('data')
    out = mx.sym.broadcast_add(mx.sym.dot(data, w), mx.sym.var('bias'))
    with pytest.raises(AssertionError, match='weight'):
        mx.gluon.SymbolBlock(out, data)
    dense = mx.sym.broadcast_add(mx.sym.dot(data, mx.sym.var('weight', stype='default')), mx.sym.var('bias'))
    assert sorted(mx.gluon.SymbolBlock(dense, data).collect_params()) == ['bias', 'weight']


def test_symbol_block_structural_names_drop_the_common_prefix_so_a_new_instance_loads(tmp_path):
    def make():
        net = mx.gluon.nn.HybridSequential()
        with net.name_scope():
            net.add(mx.gluon.nn.Dense(3), mx.gluon.nn.Dense(2))
        data = mx.sym.var('data')
        return mx.gluon.SymbolBlock(net(data), data, params=net.collect_params())

    a, b = make(), make()           # prefixes numbered anew: hybridsequentialN_ differs
    assert sorted(a._structural_params()) == ['0_bias', '0_weight', '1_bias', '1_weight']
    a.initialize()
    x = nd.array(np.random.rand(4, 5))
    want = a(x).asnumpy()
    a.save_parameters(str(tmp_path / 'sb.params'))
    b.load_parameters(str(tmp_path / 'sb.params'))
    np.testing.assert_allclose(b(x).asnumpy(), want, rtol=1e-6)
