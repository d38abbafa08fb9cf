"""Parameter and ParameterDict on their own, as MXNet 1.9's Gluon defines them: copies on several
contexts, deferred initialization and shape inference, grad_req 'write' / 'add' / 'null',
zero_grad, set_data, cast, reset_ctx, names and prefixes, collect_params(select), sharing with
params=..., and the errors for misuse (their MXNet exception types and a message naming the
parameter)."""
import warnings

import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.gluon import nn
from engine.gluon.parameter import DeferredInitializationError

CTXS = [mx.cpu(0), mx.cpu(1)]


def initialized(shape=(3, 4), ctx=None, **kw):
    p = gluon.Parameter('weight', shape=shape, **kw)
    p.initialize(init=mx.init.Uniform(1.0), ctx=ctx)
    return p


def backward_through(p, scale, ctx=None):
    """One backward of sum(scale * p) on `ctx`'s copy: the gradient there is `scale` everywhere."""
    with autograd.record():
        y = (p.data(ctx) * scale).sum()
    y.backward()


# ---- several contexts ---------------------------------------------------------------------------

def test_a_copy_per_context_each_with_its_gradient():
    p = initialized(ctx=CTXS)
    assert p.list_ctx() == CTXS
    assert [d.context for d in p.list_data()] == CTXS
    assert [g.context for g in p.list_grad()] == CTXS
    a, b = (p.data(c) for c in CTXS)
    assert a.context == CTXS[0] and b.context == CTXS[1] and a.shape == b.shape == (3, 4)
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())       # one initialization, copied
    assert not np.shares_memory(np.asarray(a), np.asarray(b))
    backward_through(p, 2.0, CTXS[1])
    np.testing.assert_array_equal(p.grad(CTXS[1]).asnumpy(), np.full((3, 4), 2.0))
    np.testing.assert_array_equal(p.grad(CTXS[0]).asnumpy(), np.zeros((3, 4)))


def test_data_without_a_context_is_the_current_contexts_copy():
    p = initialized(ctx=CTXS)
    assert p.data().context == mx.current_context() == CTXS[0]
    with mx.Context(CTXS[1]):
        assert p.data().context == CTXS[1]
    one = initialized(ctx=CTXS[1])
    assert one.data().context == CTXS[1]      # a single copy is returned whatever is current


def test_a_context_the_parameter_is_not_on_is_a_clear_error():
    p = initialized(ctx=CTXS)
    with pytest.raises(mx.MXNetError, match=r'parameter weight .*cpu\(0\).*cpu\(1\).*not on cpu\(3\)'):
        p.data(mx.cpu(3))


def test_set_data_writes_every_copy():
    p = initialized(ctx=CTXS)
    value = np.arange(12.0).reshape(3, 4)
    p.set_data(nd.array(value))
    for d in p.list_data():
        np.testing.assert_array_equal(d.asnumpy(), value)
        assert d.dtype == np.float32
    with pytest.raises(mx.MXNetError, match=r'parameter weight: set_data with shape \(4, 3\), expected \(3, 4\)'):
        p.set_data(np.zeros((4, 3)))


def test_reset_ctx_moves_the_mean_of_the_copies_with_fresh_gradients():
    p = initialized(ctx=CTXS)
    p.data(CTXS[0])[:] = 1.0
    p.data(CTXS[1])[:] = 3.0
    backward_through(p, 5.0, CTXS[0])
    new = [mx.cpu(2), mx.cpu(1)]
    p.reset_ctx(new)
    assert p.list_ctx() == new
    for d, g in zip(p.list_data(), p.list_grad()):
        np.testing.assert_array_equal(d.asnumpy(), np.full((3, 4), 2.0))
        np.testing.assert_array_equal(g.asnumpy(), np.zeros((3, 4)))
    with pytest.raises(mx.MXNetError, match='not on cpu'):
        p.data(CTXS[0])
    backward_through(p, 1.0, mx.cpu(2))          # the moved copies are still differentiable
    np.testing.assert_array_equal(p.grad(mx.cpu(2)).asnumpy(), np.ones((3, 4)))


def test_reset_ctx_of_a_deferred_parameter_changes_where_it_will_live():
    p = gluon.Parameter('w', shape=(0, 2), allow_deferred_init=True)
    p.initialize(ctx=CTXS[0])
    p.reset_ctx(CTXS[1])
    assert p.list_ctx() == [CTXS[1]]
    p._finish_deferred_init((5, 2))
    assert p.data().context == CTXS[1] and p.shape == (5, 2)


def test_reset_ctx_before_initialize_is_a_value_error():
    p = gluon.Parameter('lonely', shape=(2,))
    with pytest.raises(ValueError, match='parameter lonely: cannot reset its context before it is initialized'):
        p.reset_ctx(CTXS[1])


def test_parameter_dict_reset_ctx_and_list_ctx():
    params = gluon.ParameterDict('net_')
    params.get('w0', shape=(2, 2))
    params.get('w1', shape=(3,))
    params.initialize(ctx=CTXS[0])
    params.reset_ctx([mx.cpu(4), mx.cpu(2)])
    for p in params.values():
        assert p.list_ctx() == [mx.cpu(4), mx.cpu(2)]
    assert set(params.list_ctx()) == {mx.cpu(4), mx.cpu(2)}


# ---- deferred initialization and shape inference ------------------------------------------------

def test_a_deferred_parameter_is_unusable_until_its_shape_is_known():
    p = gluon.Parameter('w', shape=(0, 3), allow_deferred_init=True, init=mx.init.One())
    p.initialize(ctx=CTXS)
    assert p.list_ctx() == CTXS
    with pytest.raises(DeferredInitializationError, match=r'parameter w .*shape \(0, 3\) is inferred'):
        p.data()
    assert isinstance(DeferredInitializationError('x'), mx.MXNetError)
    p._finish_deferred_init((4, 3))
    assert [d.shape for d in p.list_data()] == [(4, 3), (4, 3)]
    np.testing.assert_array_equal(p.data(CTXS[1]).asnumpy(), np.ones((4, 3)))   # its own init


def test_an_inferred_shape_must_complete_the_declared_one():
    p = gluon.Parameter('w', shape=(0, 3), allow_deferred_init=True)
    with pytest.raises(AssertionError, match=r'parameter w: inferred shape \(4, 2\) is incompatible with the '
                                             r'declared shape \(0, 3\)'):
        p.shape = (4, 2)
    with pytest.raises(mx.MXNetError, match='incompatible'):
        p.shape = (4, 3, 1)
    p.shape = (4, 3)
    assert p.shape == (4, 3)


@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_layers_infer_their_parameter_shapes_on_the_first_call(hybridize):
    net = nn.HybridSequential()
    net.add(nn.Dense(4, activation='relu'), nn.Dense(2))
    net.initialize(mx.init.Xavier())
    shapes = [p.shape for p in net.collect_params().values()]
    assert shapes == [(4, 0), (4,), (2, 0), (2,)]
    if hybridize:
        net.hybridize()
    y = net(nd.ones((3, 7)))
    assert y.shape == (3, 2)
    assert [p.shape for p in net.collect_params().values()] == [(4, 7), (4,), (2, 4), (2,)]
    np.testing.assert_array_equal(net[0].bias.data().asnumpy(), np.zeros(4))   # bias rule by name


def test_deferred_layers_give_the_same_result_eager_and_hybridized():
    def first_call(hybridize):
        net = nn.HybridSequential()
        net.add(nn.Dense(5, activation='tanh'), nn.Dense(3))
        net.initialize()
        if hybridize:
            net.hybridize()
        mx.random.seed(7)               # the deferred initialization draws during the call
        return net, net(x).asnumpy()
    x = nd.array(np.linspace(-1, 1, 12).reshape(3, 4))
    (eager, y_eager), (hybrid, y_hybrid) = first_call(False), first_call(True)
    np.testing.assert_allclose(y_hybrid, y_eager, rtol=1e-6, atol=1e-7)
    for a, b in zip(eager.collect_params().values(), hybrid.collect_params().values()):
        np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())


def test_set_data_on_a_deferred_parameter_fixes_its_shape():
    p = gluon.Parameter('w', shape=(0, 2), allow_deferred_init=True)
    p.initialize()
    p.set_data(np.ones((3, 2)))
    assert p.shape == (3, 2)
    np.testing.assert_array_equal(p.data().asnumpy(), np.ones((3, 2)))


# ---- initialization errors ----------------------------------------------------------------------

def test_an_unknown_shape_without_deferred_init_is_a_value_error():
    p = gluon.Parameter('w', shape=(0, 3))
    with pytest.raises(ValueError, match=r'parameter w: cannot initialize with unknown shape \(0, 3\)'):
        p.initialize()


def test_using_a_parameter_never_initialized_names_it():
    p = gluon.Parameter('never', shape=(2,))
    for use in (p.data, p.list_data, p.grad):
        with pytest.raises(mx.MXNetError, match='parameter never has not been initialized; call'):
            use()


def test_initialize_twice_warns_and_keeps_values_unless_forced():
    p = initialized()
    before = p.data().asnumpy().copy()
    with pytest.warns(UserWarning, match="Parameter 'weight' is already initialized"):
        p.initialize(init=mx.init.Zero())
    np.testing.assert_array_equal(p.data().asnumpy(), before)
    p.initialize(init=mx.init.One(), force_reinit=True)
    np.testing.assert_array_equal(p.data().asnumpy(), np.ones((3, 4)))


def test_an_unknown_initializer_name_lists_the_known_ones():
    p = gluon.Parameter('w', shape=(2,), init='no_such_init')
    with pytest.raises(mx.MXNetError, match="unknown initializer 'no_such_init'; registered initializers: .*xavier"):
        p.initialize()


@pytest.mark.parametrize('kw', [{'stype': 'dense'}, {'grad_stype': 'sparse'}])
def test_a_bad_storage_type_is_an_assertion_error(kw):
    with pytest.raises(AssertionError, match='is not a storage type'):
        gluon.Parameter('w', shape=(2,), **kw)


# ---- grad_req ------------------------------------------------------------------------------------

def test_write_replaces_and_add_accumulates():
    w, a = initialized(grad_req='write'), initialized(grad_req='add')
    for scale in (2.0, 3.0):
        backward_through(w, scale)
        backward_through(a, scale)
    np.testing.assert_array_equal(w.grad().asnumpy(), np.full((3, 4), 3.0))
    np.testing.assert_array_equal(a.grad().asnumpy(), np.full((3, 4), 5.0))


def test_null_has_no_gradient_and_passes_none_to_the_tape():
    p = initialized(grad_req='null')
    with pytest.raises(mx.MXNetError, match="parameter weight has grad_req='null'; it has no gradient"):
        p.grad()
    assert p._grad is None
    x = nd.ones((3, 4))
    x.attach_grad()
    with autograd.record():
        y = (p.data() * x).sum()
    y.backward()              # the parameter is a constant of the graph; x still gets its gradient
    np.testing.assert_array_equal(x.grad.asnumpy(), p.data().asnumpy())


def test_switching_grad_req_after_initialization():
    p = initialized(grad_req='add')
    backward_through(p, 2.0)
    p.grad_req = 'add'                    # the same request: the accumulated gradient stays
    np.testing.assert_array_equal(p.grad().asnumpy(), np.full((3, 4), 2.0))
    p.grad_req = 'null'
    with pytest.raises(mx.MXNetError, match="grad_req='null'"):
        p.grad()
    p.grad_req = 'write'                  # a fresh, zero gradient
    np.testing.assert_array_equal(p.grad().asnumpy(), np.zeros((3, 4)))
    backward_through(p, 4.0)
    np.testing.assert_array_equal(p.grad().asnumpy(), np.full((3, 4), 4.0))


def test_a_bad_grad_req_is_an_assertion_error_naming_the_parameter():
    p = initialized()
    with pytest.raises(AssertionError, match="parameter weight: grad_req must be 'write', 'add' or 'null', got 'sum'"):
        p.grad_req = 'sum'
    assert p.grad_req == 'write'


def test_non_differentiable_parameters_stay_null():
    """As MXNet: BatchNorm's running statistics are not differentiable; unfreezing a whole net
    (or asking for gradient accumulation) must not make them trainable."""
    net = nn.HybridSequential()
    net.add(nn.Dense(3, in_units=4), nn.BatchNorm(in_channels=3))
    net.initialize()
    net.collect_params().setattr('grad_req', 'add')
    stats = net.collect_params('.*running_(mean|var)$').values()
    assert len(stats) == 2 and all(p.grad_req == 'null' for p in stats)
    assert [p.grad_req for p in net.collect_params('.*(weight|bias|gamma|beta)$').values()] == ['add'] * 4
    p = gluon.Parameter('stat', shape=(2,), differentiable=False)
    p.grad_req = 'write'
    assert p.grad_req == 'null'


def test_zero_grad_clears_every_copy_and_skips_null():
    p = initialized(ctx=CTXS, grad_req='add')
    for c in CTXS:
        backward_through(p, 2.0, c)
    frozen = initialized(grad_req='null')
    params = gluon.ParameterDict()
    params.update({'a': p, 'b': frozen})
    params.zero_grad()
    for g in p.list_grad():
        np.testing.assert_array_equal(g.asnumpy(), np.zeros((3, 4)))


def test_setattr_applies_to_every_parameter():
    params = gluon.ParameterDict('m_')
    for n in ('a', 'b'):
        params.get(n, shape=(2,))
    params.initialize()
    params.setattr('grad_req', 'null')
    params.setattr('lr_mult', 0.5)
    assert all(p.grad_req == 'null' and p.lr_mult == 0.5 for p in params.values())


# ---- cast ------------------------------------------------------------------------------------------

def test_cast_converts_data_and_gradients_keeping_their_values():
    p = initialized(ctx=CTXS, grad_req='add')
    backward_through(p, 3.0, CTXS[1])
    before = p.data(CTXS[1]).asnumpy()
    p.cast('float64')
    assert p.dtype == np.float64
    for d, g in zip(p.list_data(), p.list_grad()):
        assert d.dtype == g.dtype == np.float64
    np.testing.assert_array_equal(p.data(CTXS[1]).asnumpy(), before.astype(np.float64))
    np.testing.assert_array_equal(p.grad(CTXS[1]).asnumpy(), np.full((3, 4), 3.0))
    backward_through(p, 1.0, CTXS[1])           # still attached: 'add' goes on accumulating
    np.testing.assert_array_equal(p.grad(CTXS[1]).asnumpy(), np.full((3, 4), 4.0))


def test_setting_dtype_casts_as_in_mxnet():
    p = initialized()
    p.dtype = 'float16'
    assert p.data().dtype == p.grad().dtype == np.float16


def test_cast_before_initialization_sets_the_dtype_it_starts_with():
    p = gluon.Parameter('w', shape=(2, 2))
    p.cast('float64')
    p.initialize()
    assert p.data().dtype == p.grad().dtype == np.float64


# ---- names, prefixes, select -------------------------------------------------------------------

def test_parameter_dict_names_are_the_prefix_plus_the_name():
    params = gluon.ParameterDict('net_')
    w0 = params.get('w0', shape=(10, 10))
    params.get('w1', shape=(10,))
    assert list(params.keys()) == ['net_w0', 'net_w1'] and w0.name == 'net_w0'
    assert params.get('w0') is w0
    lines = repr(params).splitlines()
    assert lines[0] == 'net_ (' and lines[-1] == ')'
    assert 'net_w0' in lines[1] and '(10, 10)' in lines[1] and 'float32' in lines[1]


def test_get_checks_the_attributes_of_an_existing_parameter():
    params = gluon.ParameterDict('net_')
    w = params.get('w', shape=(0, 3), init=mx.init.One())
    assert params.get('w', shape=(4, 0)) is w and w.shape == (4, 3)     # unknown dimensions completed
    assert params.get('w', shape=(4, 3), dtype=np.float32, init=mx.init.One()) is w
    for bad, what in (({'shape': (5, 3)}, 'shape'), ({'dtype': 'float16'}, 'dtype'),
                      ({'init': mx.init.Zero()}, 'init'), ({'grad_req': 'null'}, 'grad_req')):
        with pytest.raises(AssertionError, match=f'parameter net_w exists with {what}=.*cannot retrieve it with {what}='):
            params.get('w', **bad)
    assert w.shape == (4, 3) and w.grad_req == 'write'


def test_get_sets_an_attribute_the_parameter_lacks():
    params = gluon.ParameterDict()
    w = params.get('w')
    assert w.shape is None
    params.get('w', shape=(2, 5))
    assert w.shape == (2, 5)


def test_nested_name_scopes_prefix_the_parameter_names():
    net = nn.HybridSequential(prefix='model_')
    with net.name_scope():
        net.add(nn.Dense(3, in_units=2), nn.Dense(3, in_units=3))
    assert list(net.collect_params().keys()) == ['model_dense0_weight', 'model_dense0_bias',
                                                 'model_dense1_weight', 'model_dense1_bias']
    assert net.collect_params().prefix == 'model_'


def test_collect_params_select_is_a_regex_matched_from_the_start():
    net = nn.HybridSequential(prefix='test_')
    with net.name_scope():
        net.add(nn.Conv2D(4, 3), nn.Dense(2))
    params = net.collect_params()
    assert set(net.collect_params('.*weight').keys()) == {'test_conv0_weight', 'test_dense0_weight'}
    assert set(net.collect_params('test_conv0_bias|test_dense0_bias').keys()) == {'test_conv0_bias',
                                                                                  'test_dense0_bias'}
    assert list(net.collect_params('weight').keys()) == []          # re.match: anchored at the start
    sel = params.select('.*bias')
    assert all(sel[k] is params[k] for k in sel)                    # the same Parameter objects


def test_update_refuses_a_different_parameter_under_a_taken_name():
    a, b = gluon.ParameterDict(), gluon.ParameterDict()
    a.get('w', shape=(2,))
    b.get('w', shape=(2,))
    a.update(a)                                                        # the same objects: fine
    with pytest.raises(mx.MXNetError, match='a different parameter named w exists'):
        a.update(b)


# ---- sharing ---------------------------------------------------------------------------------------

class _Two(gluon.HybridBlock):
    def __init__(self, in_units=0, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.d0 = nn.Dense(5, in_units=in_units)
            self.d1 = nn.Dense(5, in_units=in_units or 0)

    def hybrid_forward(self, F, x):
        return self.d1(self.d0(x))


def test_params_shares_the_same_parameter_objects():
    one = _Two(prefix='one_', in_units=5)
    two = _Two(prefix='two_', params=one.collect_params())
    assert list(two.collect_params().keys()) == list(one.collect_params().keys())
    assert all(a is b for a, b in zip(one.collect_params().values(), two.collect_params().values()))
    one.initialize()
    x = nd.ones((2, 5))
    np.testing.assert_array_equal(two(x).asnumpy(), one(x).asnumpy())
    with autograd.record():
        y = two(x).sum()
    y.backward()
    np.testing.assert_array_equal(one.d0.weight.grad().asnumpy(), two.d0.weight.grad().asnumpy())
    assert np.abs(one.d0.weight.grad().asnumpy()).sum() > 0


def test_a_shared_deferred_parameter_is_completed_by_either_block():
    one = _Two(prefix='a_')
    two = _Two(prefix='b_', in_units=5, params=one.collect_params())   # completes the shapes
    assert one.d0.weight.shape == (5, 5)
    one.initialize()
    two.hybridize()
    assert two(nd.ones((1, 5))).shape == (1, 5)
    assert one.d0.weight._data is not None


def test_sharing_with_an_incompatible_shape_is_an_error():
    one = _Two(prefix='c_', in_units=5)
    with pytest.raises(AssertionError, match=r'parameter c_dense0_weight exists with shape=\(5, 5\); cannot retrieve '
                                             r'it with shape=\(5, 4\)'):
        _Two(prefix='d_', in_units=4, params=one.collect_params())


def test_a_layer_may_share_a_weight_of_another_kind_of_layer():
    """A tied output layer: Dense (deferred shape) reuses an Embedding's (known shape) weight."""
    net = nn.Sequential()
    with net.name_scope():
        net.add(nn.Embedding(40, 30))
        net.add(nn.Dense(40, flatten=False, params=net[0].params))
    assert net[1].weight is net[0].weight
    net.initialize()
    out = net(nd.array([[1, 2, 3]]))
    w = net[0].weight.data().asnumpy()
    np.testing.assert_allclose(out.asnumpy()[0], w[[1, 2, 3]] @ w.T + net[1].bias.data().asnumpy(), rtol=1e-5)


def test_shared_parameters_keep_their_initializer():
    class Block(gluon.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.p = self.params.get('p', shape=(1,), init=mx.init.Constant(-10.0))
    b1 = Block()
    b2 = Block(params=b1.collect_params())
    b3 = Block()
    assert b2.p is b1.p and b3.p is not b1.p and b3.p.init == b1.p.init
    b1.initialize()
    np.testing.assert_array_equal(b2.p.data().asnumpy(), [-10.0])


# ---- constants ---------------------------------------------------------------------------------------

def test_get_constant_holds_a_fixed_value_without_gradient():
    params = gluon.ParameterDict('blk_')
    c = params.get_constant('c', [[1, 2], [3, 4]])
    assert params.get_constant('c', [[1, 2], [3, 4]]) is c
    assert c.grad_req == 'null' and c.name == 'blk_c'
    assert repr(c) == 'Constant blk_c (shape=(2, 2), dtype=float32)'
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # a first initialize does not warn
        params.initialize()
    np.testing.assert_array_equal(c.data().asnumpy(), [[1, 2], [3, 4]])
