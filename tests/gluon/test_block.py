"""Blocks and parameters (issue 4): deferred initialization, naming, containers, freezing,
save/load, cast, summary, hooks, apply, repr, multiple outputs."""
import contextlib
import io
import pickle
import re

import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.base import MXNetError
from engine.gluon import nn
from engine.gluon.parameter import DeferredInitializationError


class MLP(nn.Block):
    """The seed talk's MLP (a plain Block calling nd.relu)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense0 = nn.Dense(8)
            self.dense1 = nn.Dense(6)
            self.dense2 = nn.Dense(4)

    def forward(self, x):
        x = nd.relu(self.dense0(x))
        x = nd.relu(self.dense1(x))
        return self.dense2(x)


def _params_np(block):
    return {k: p.data().asnumpy().copy() for k, p in block.collect_params().items()}


def _small_net(prefix='net_'):
    net = nn.HybridSequential(prefix=prefix)
    with net.name_scope():
        net.add(nn.Dense(5, activation='relu'), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net(nd.ones((2, 4)))
    return net


# ---- deferred initialization --------------------------------------------------------------

def test_seed_talk_deferred_shapes():
    conv = gluon.nn.Conv2D(16, kernel_size=(3, 3), padding=(1, 1))
    conv.collect_params().initialize()
    assert conv(nd.zeros((1, 3, 256, 256))).shape == (1, 16, 256, 256)
    assert conv.weight.shape == (16, 3, 3, 3)
    assert conv(nd.zeros((4, 3, 128, 128))).shape == (4, 16, 128, 128)
    dense = gluon.nn.Dense(16)
    dense.collect_params().initialize()
    assert dense(nd.zeros((10, 128, 256))).shape == (10, 16)
    assert dense.weight.shape == (16, 128 * 256)
    assert dense(nd.zeros((5, 128, 256))).shape == (5, 16)


def test_deferred_shape_inferred_when_hybridized_too():
    dense = nn.Dense(3)
    dense.initialize()
    dense.hybridize()
    assert dense(nd.ones((2, 7))).shape == (2, 3)
    assert dense.weight.shape == (3, 7)


def test_parameter_used_before_its_shape_is_known_is_a_clear_error():
    dense = nn.Dense(4)
    dense.initialize()
    with pytest.raises(DeferredInitializationError, match=r'weight.*inferred on the first forward'):
        dense.weight.data()
    # the same input width afterwards works, a different one is a clear shape error
    dense(nd.ones((2, 3)))
    with pytest.raises(MXNetError, match='fully_connected|FullyConnected|shape'):
        dense(nd.ones((2, 5)))


def test_uninitialized_parameters_are_a_clear_error_eager_and_hybridized():
    dense = nn.Dense(4)
    with pytest.raises(MXNetError, match=r'not been initialized.*initialize\(\)'):
        dense(nd.ones((2, 3)))
    dense = nn.Dense(4)
    dense.hybridize()
    with pytest.raises(MXNetError, match=r'not been initialized.*initialize\(\)'):
        dense(nd.ones((2, 3)))


def test_incompatible_declared_shape_is_rejected():
    dense = nn.Dense(4, in_units=3)
    dense.initialize()
    with pytest.raises(MXNetError, match='incompatible|shape'):
        dense.weight.shape = (4, 5)


def test_own_initializers_win_over_the_model_default():
    dense = nn.Dense(3, in_units=2, weight_initializer=mx.init.Constant(0.5),
                     bias_initializer=mx.init.Constant(-2.0))
    dense.initialize(mx.init.Uniform())
    np.testing.assert_array_equal(dense.weight.data().asnumpy(), np.full((3, 2), 0.5, np.float32))
    np.testing.assert_array_equal(dense.bias.data().asnumpy(), np.full(3, -2.0, np.float32))
    bn = nn.BatchNorm(in_channels=2, gamma_initializer='zeros', running_variance_initializer='ones')
    bn.initialize()
    np.testing.assert_array_equal(bn.gamma.data().asnumpy(), [0, 0])
    np.testing.assert_array_equal(bn.running_var.data().asnumpy(), [1, 1])
    prelu = nn.PReLU()
    prelu.initialize(mx.init.Xavier())
    np.testing.assert_array_equal(prelu.alpha.data().asnumpy(), [0.25])


def test_custom_parameter_without_init_gets_the_default_rule():
    class Scale(nn.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.scale = self.params.get('scale', shape=(3,))

        def hybrid_forward(self, F, x, scale):
            return x * scale

    blk = Scale()
    blk.initialize(mx.init.One())
    np.testing.assert_array_equal(blk(nd.ones((2, 3))).asnumpy(), np.ones((2, 3)))


# ---- parameters: naming, selection, freezing --------------------------------------------------

def test_name_scope_prefixes():
    net = MLP(prefix='mlp_')
    assert net.prefix == 'mlp_' and net.name == 'mlp'
    assert net.dense0.name == 'mlp_dense0'
    assert list(net.collect_params()) == ['mlp_dense0_weight', 'mlp_dense0_bias', 'mlp_dense1_weight',
                                          'mlp_dense1_bias', 'mlp_dense2_weight', 'mlp_dense2_bias']
    # counters are per scope: a second MLP numbers its children from 0 again
    other = MLP(prefix='other_')
    assert other.dense0.weight.name == 'other_dense0_weight'
    # outside any scope the counters are global, so two unnamed layers get distinct names
    a, b = nn.Dense(2), nn.Dense(2)
    assert re.fullmatch(r'dense\d+_', a.prefix) and a.prefix != b.prefix
    assert a.weight.name == a.prefix + 'weight'


def test_collect_params_with_a_regex():
    net = MLP(prefix='mlp_')
    assert list(net.collect_params('.*dense1.*')) == ['mlp_dense1_weight', 'mlp_dense1_bias']
    assert list(net.collect_params('.*bias')) == ['mlp_dense0_bias', 'mlp_dense1_bias', 'mlp_dense2_bias']
    assert list(net.collect_params('nothing')) == []
    sel = net.collect_params('.*weight')
    assert all(isinstance(p, gluon.Parameter) for p in sel.values())


@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_freeze_with_grad_req_null(hybridize):
    net = _small_net()
    frozen = net.collect_params('.*dense0.*')
    frozen.setattr('grad_req', 'null')
    assert all(p.grad_req == 'null' for p in frozen.values())
    if hybridize:
        net.hybridize()
    before = _params_np(net)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    x = nd.array(np.random.default_rng(0).standard_normal((4, 4)))
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    with pytest.raises(MXNetError, match="grad_req='null'"):
        net[0].weight.grad()
    assert np.abs(net[1].weight.grad().asnumpy()).sum() > 0
    trainer.step(4)
    after = _params_np(net)
    for name in frozen:
        np.testing.assert_array_equal(after[name], before[name])
    assert not np.array_equal(after['net_dense1_weight'], before['net_dense1_weight'])
    # unfreezing brings the gradient back
    frozen.setattr('grad_req', 'write')
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    assert np.abs(net[0].weight.grad().asnumpy()).sum() > 0


def test_bad_grad_req_is_rejected():
    dense = nn.Dense(2, in_units=2)
    with pytest.raises(MXNetError, match="grad_req must be"):
        dense.collect_params().setattr('grad_req', 'sometimes')


def test_zero_grad():
    net = _small_net()
    with autograd.record():
        loss = net(nd.ones((2, 4))).sum()
    loss.backward()
    net.zero_grad()
    assert all(np.all(p.grad().asnumpy() == 0) for p in net.collect_params().values())


# ---- containers -----------------------------------------------------------------------------

@pytest.mark.parametrize('kind', [nn.Sequential, nn.HybridSequential])
def test_sequential_add_index_slice_len(kind):
    net = kind(prefix='seq_')
    with net.name_scope():
        net.add(nn.Dense(3))
        net.add(nn.Dense(4), nn.Dense(5))
    assert len(net) == 3
    assert isinstance(net[1], nn.Dense) and net[1].name == 'seq_dense1'
    assert net[-1] is list(net._children.values())[-1]
    tail = net[1:]
    assert isinstance(tail, kind) and len(tail) == 2
    assert tail[0] is net[1] and tail[1] is net[2]
    net.initialize()
    assert net(nd.ones((2, 6))).shape == (2, 5)
    # the slice shares the layers (and so the parameters)
    assert tail(nd.ones((2, 3))).shape == (2, 5)
    assert list(tail.collect_params()) == ['seq_dense1_weight', 'seq_dense1_bias',
                                           'seq_dense2_weight', 'seq_dense2_bias']


def test_register_child_and_attribute_registration():
    parent = nn.Block(prefix='p_')
    child = nn.Dense(2, prefix='c_')
    parent.register_child(child, 'head')
    assert parent._children['head'] is child
    assert list(parent.collect_params()) == ['c_weight', 'c_bias']

    class Holder(nn.Block):
        def __init__(self):
            super().__init__(prefix='h_')
            self.body = nn.Dense(2, prefix='body_')

        def forward(self, x):
            return self.body(x)

    h = Holder()
    assert list(h._children) == ['body']


def test_assigning_a_child_before_super_init_is_a_clear_error():
    class Broken(nn.Block):
        def __init__(self):
            self.dense = nn.Dense(2)
            super().__init__()

    with pytest.raises(MXNetError, match=r'super\(\).__init__\(\)'):
        Broken()


def test_shared_parameters_through_params():
    a = nn.Dense(3, in_units=2, prefix='shared_')
    b = nn.Dense(3, in_units=2, prefix='shared_', params=a.collect_params())
    a.initialize()
    assert b.weight is a.weight
    x = nd.ones((1, 2))
    np.testing.assert_array_equal(a(x).asnumpy(), b(x).asnumpy())


# ---- save / load --------------------------------------------------------------------------------

def test_save_load_round_trip_is_bit_exact(tmp_path):
    net = _small_net('src_')
    f = tmp_path / 'net.params'
    net.save_parameters(str(f))
    other = nn.HybridSequential(prefix='dst_')       # other names: loading is structural
    with other.name_scope():
        other.add(nn.Dense(5, activation='relu'), nn.Dense(3))
    other.load_parameters(str(f))                     # deferred shapes come from the file
    for (ka, pa), (kb, pb) in zip(net.collect_params().items(), other.collect_params().items()):
        assert pa.data().dtype == pb.data().dtype
        np.testing.assert_array_equal(pa.data().asnumpy(), pb.data().asnumpy())
    x = nd.array(np.random.default_rng(1).standard_normal((3, 4)))
    np.testing.assert_array_equal(net(x).asnumpy(), other(x).asnumpy())


def test_save_parameters_writes_the_mxnet_ndarray_format(tmp_path):
    net = _small_net()
    f = tmp_path / 'net.params'
    net.save_parameters(str(f))
    assert f.read_bytes()[:8] == (0x112).to_bytes(8, 'little')     # nd.save's list header
    assert sorted(nd.load(str(f))) == ['0.bias', '0.weight', '1.bias', '1.weight']


def test_allow_missing_and_ignore_extra(tmp_path):
    net = _small_net()
    f = tmp_path / 'partial.npz'
    np.savez(str(f), **{'0.weight': np.ones((5, 4), np.float32), 'extra.weight': np.ones(2, np.float32)})
    before = _params_np(net)
    with pytest.raises(MXNetError, match=r'missing.*allow_missing=True'):
        net.load_parameters(str(f), ignore_extra=True)
    with pytest.raises(MXNetError, match=r"extra\.weight.*ignore_extra=True"):
        net.load_parameters(str(f), allow_missing=True)
    assert all(np.array_equal(before[k], v) for k, v in _params_np(net).items())
    net.load_parameters(str(f), allow_missing=True, ignore_extra=True)
    after = _params_np(net)
    np.testing.assert_array_equal(after['net_dense0_weight'], np.ones((5, 4)))
    np.testing.assert_array_equal(after['net_dense1_weight'], before['net_dense1_weight'])


def _write_bad_files(tmp_path, good):
    data = good.read_bytes()
    files = {}
    files['truncated'] = tmp_path / 'truncated.params'
    files['truncated'].write_bytes(data[:len(data) // 2])
    files['text'] = tmp_path / 'notes.txt'
    files['text'].write_text('these are not parameters\n')
    files['pickle'] = tmp_path / 'model.pkl'
    files['pickle'].write_bytes(pickle.dumps({'0.weight': np.ones((5, 4))}))
    files['other names'] = tmp_path / 'other.npz'
    np.savez(str(files['other names']), foo=np.ones(3), bar=np.zeros((2, 2)))
    files['wrong shape'] = tmp_path / 'shape.npz'
    np.savez(str(files['wrong shape']), **{'0.weight': np.ones((5, 7)), '0.bias': np.ones(5),
                                            '1.weight': np.ones((3, 5)), '1.bias': np.ones(3)})
    files['strings'] = tmp_path / 'strings.npz'
    np.savez(str(files['strings']), **{'0.weight': np.full((5, 4), 'x'), '0.bias': np.ones(5),
                                        '1.weight': np.ones((3, 5)), '1.bias': np.ones(3)})
    files['empty'] = tmp_path / 'empty.params'
    files['empty'].write_bytes(b'')
    files['missing'] = tmp_path / 'does_not_exist.params'
    return files


def test_bad_parameter_files_give_a_clear_error_and_leave_the_model_unchanged(tmp_path):
    net = _small_net()
    good = tmp_path / 'good.params'
    net.save_parameters(str(good))
    # change the model after saving so that a partial load would be visible
    net.collect_params().initialize(mx.init.Normal(1.0), force_reinit=True)
    before = _params_np(net)
    for what, path in _write_bad_files(tmp_path, good).items():
        with pytest.raises(MXNetError) as err:
            net.load_parameters(str(path))
        assert path.name in str(err.value), what
        after = _params_np(net)
        for k in before:
            np.testing.assert_array_equal(after[k], before[k], err_msg=f'{what}: {k} changed')


def test_failed_save_keeps_the_previous_file(tmp_path):
    net = _small_net()
    f = tmp_path / 'net.params'
    net.save_parameters(str(f))
    data = f.read_bytes()
    lazy = nn.Dense(3)           # never initialized: saving it must fail
    with pytest.raises(MXNetError):
        lazy.save_parameters(str(f))
    assert f.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ['net.params']


# ---- cast, summary, hooks, apply, repr -------------------------------------------------------

@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_cast_float64(hybridize):
    net = _small_net()
    x32 = nd.array(np.random.default_rng(2).standard_normal((2, 4)))
    if hybridize:
        net.hybridize()                 # traced with float32 parameters first
    y32 = net(x32).asnumpy()
    net.cast('float64')
    assert all(p.dtype == np.float64 and p.data().dtype == np.float64
               for p in net.collect_params().values())
    if hybridize:
        assert net._cached_op is None or not net._cached_op.graphs      # retraced after the cast
    x64 = x32.astype('float64')
    x64.attach_grad()
    with autograd.record():
        y64 = net(x64)
    y64.backward()
    assert y64.dtype == np.float64
    assert net[0].weight.grad().dtype == np.float64 and x64.grad.dtype == np.float64
    np.testing.assert_allclose(y64.asnumpy(), y32, rtol=1e-5, atol=1e-6)


def test_hybridized_parent_retraces_when_a_child_parameter_changes_dtype_or_shape():
    net = _small_net()
    net.hybridize()
    x = nd.array(np.random.default_rng(3).standard_normal((2, 4)))
    y = net(x).asnumpy()
    net[0].cast('float64')            # the parent's graph was traced with float32 weights
    hybrid = net(x)
    net.hybridize(False)
    eager = net(x)
    assert hybrid.dtype == eager.dtype
    np.testing.assert_allclose(hybrid.asnumpy(), eager.asnumpy(), rtol=1e-6)
    net.hybridize()
    net[0].cast('float32')
    np.testing.assert_allclose(net(x).asnumpy(), y, rtol=1e-6)
    w = net[0].weight
    w.set_data(nd.zeros(w.shape))
    np.testing.assert_allclose(net(x).asnumpy(), net(x).asnumpy())
    assert not np.allclose(net(x).asnumpy(), y)


def test_summary_prints_a_table():
    net = MLP(prefix='mlp_')
    net.initialize()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        net.summary(nd.ones((2, 5)))
    text = buf.getvalue()
    lines = text.splitlines()
    assert lines[0].split()[:3] == ['Layer', '(type)', 'Output']
    rows = [l for l in lines if l.startswith('Dense-')]
    assert [r.split()[0] for r in rows] == ['Dense-1', 'Dense-2', 'Dense-3']
    assert '(2, 8)' in rows[0] and rows[0].split()[-1] == '48'      # 5*8 + 8
    assert '(2, 4)' in rows[2] and rows[2].split()[-1] == '28'      # 6*4 + 4
    total = 48 + 54 + 28
    assert f'Total params: {total}' in text
    assert f'Trainable params: {total}' in text and 'Non-trainable params: 0' in text
    # hooks used by summary are removed afterwards
    assert all(not b._forward_hooks for b in (net, net.dense0, net.dense1, net.dense2))


def test_summary_counts_frozen_parameters_as_non_trainable():
    net = nn.HybridSequential(prefix='s_')
    with net.name_scope():
        net.add(nn.Dense(4), nn.BatchNorm())
    net.initialize()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        net.summary(nd.ones((3, 2)))
    text = buf.getvalue()
    # dense: 2*4+4 = 12; batchnorm: gamma, beta (trainable) + running mean/var (not)
    assert 'Total params: 28' in text and 'Trainable params: 20' in text
    assert 'Non-trainable params: 8' in text


def test_forward_hooks_pre_hooks_and_detach():
    net = _small_net()
    calls = []
    pre = net[0].register_forward_pre_hook(lambda blk, args: calls.append(('pre', blk.name, args[0].shape)))
    post = net[0].register_forward_hook(lambda blk, args, out: calls.append(('post', blk.name, out.shape)))
    net(nd.ones((3, 4)))
    assert calls == [('pre', 'net_dense0', (3, 4)), ('post', 'net_dense0', (3, 5))]
    pre.detach()
    net(nd.ones((3, 4)))
    assert calls[2:] == [('post', 'net_dense0', (3, 5))]
    post.detach()
    post.detach()          # detaching twice is harmless
    net(nd.ones((3, 4)))
    assert len(calls) == 3


def test_hooks_on_a_hybridized_block_see_ndarrays():
    net = _small_net()
    net.hybridize()
    seen = []
    net.register_forward_pre_hook(lambda blk, args: seen.append(type(args[0])))
    net.register_forward_hook(lambda blk, args, out: seen.append((type(out), out.shape)))
    net(nd.ones((2, 4)))
    net(nd.ones((2, 4)))
    assert seen == [nd.NDArray, (nd.NDArray, (2, 3))] * 2


def test_hooks_of_children_of_a_hybridized_block_run_while_tracing():
    """As in MXNet: the compiled graph inlines the children, so their hooks run when the parent
    is traced (seeing graph symbols), not on every call; hooks on the parent itself run each call."""
    net = _small_net()
    net.hybridize()
    seen = []
    net[0].register_forward_hook(lambda blk, args, out: seen.append(out.shape))
    net(nd.ones((2, 4)))
    net(nd.ones((2, 4)))
    assert seen == [(2, 5)]
    net(nd.ones((3, 4)))              # a new input shape is a new trace
    assert seen == [(2, 5), (3, 5)]


def test_apply_visits_children_first():
    net = MLP(prefix='mlp_')
    names = []
    assert net.apply(lambda b: names.append(b.name)) is net
    assert names == ['mlp_dense0', 'mlp_dense1', 'mlp_dense2', 'mlp']
    net.apply(lambda b: b.collect_params().setattr('lr_mult', 0.5))
    assert all(p.lr_mult == 0.5 for p in net.collect_params().values())


def test_repr():
    net = nn.HybridSequential(prefix='r_')
    with net.name_scope():
        net.add(nn.Conv2D(4, kernel_size=3, padding=1), nn.Activation('relu'), nn.MaxPool2D(),
                nn.Flatten(), nn.Dense(10, in_units=16), nn.Dropout(0.5))
    text = repr(net)
    lines = text.splitlines()
    assert lines[0] == 'HybridSequential(' and lines[-1] == ')'
    assert lines[1] == '  (0): Conv2D(None -> 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))'
    assert lines[2] == '  (1): Activation(relu)'
    assert lines[3].startswith('  (2): MaxPool2D(size=(2, 2), stride=(2, 2)')
    assert lines[4] == '  (3): Flatten()'
    assert lines[5] == '  (4): Dense(16 -> 10, linear)'
    assert lines[6] == '  (5): Dropout(p = 0.5)'
    net.initialize()
    net(nd.ones((1, 2, 4, 4)))
    assert '(0): Conv2D(2 -> 4' in repr(net)
    assert repr(MLP(prefix='m_')).count('Dense(') == 3


# ---- outputs -----------------------------------------------------------------------------

class TwoHeads(nn.HybridBlock):
    def __init__(self, as_list, **kwargs):
        super().__init__(**kwargs)
        self._as_list = as_list
        with self.name_scope():
            self.a = nn.Dense(2)
            self.b = nn.Dense(3)

    def hybrid_forward(self, F, x):
        outs = (self.a(x), F.relu(self.b(x)))
        return list(outs) if self._as_list else outs


@pytest.mark.parametrize('as_list', [False, True], ids=['tuple', 'list'])
def test_blocks_returning_several_outputs(as_list, check_hybrid):
    kind = list if as_list else tuple
    net = TwoHeads(as_list)
    net.initialize()
    out = net(nd.ones((4, 5)))
    assert type(out) is kind and [o.shape for o in out] == [(4, 2), (4, 3)]
    net.hybridize()
    out = net(nd.ones((4, 5)))
    assert type(out) is kind and [o.shape for o in out] == [(4, 2), (4, 3)]
    rng = np.random.default_rng(3)
    check_hybrid(lambda: TwoHeads(as_list), [nd.array(rng.standard_normal((4, 5))),
                                            nd.array(rng.standard_normal((2, 5)))])


def test_nested_outputs_are_rejected_when_hybridized():
    lam = nn.HybridLambda(lambda F, x: (x, (x, x)))
    lam.hybridize()
    with pytest.raises(MXNetError, match='flat tuple/list'):
        lam(nd.ones((2, 2)))


def test_block_without_forward_is_a_clear_error():
    with pytest.raises(MXNetError, match='must define forward'):
        nn.Block()(nd.ones(2))
    with pytest.raises(MXNetError, match='hybrid_forward'):
        nn.HybridBlock()(nd.ones(2))


def test_forward_style_hybrid_block(check_hybrid):
    """The newer style: forward(x) reading parameters with .data()."""
    class Affine(nn.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.w = self.params.get('weight', shape=(3, 4))
                self.b = self.params.get('bias', shape=(3,), init='ones')

        def forward(self, x):
            return nd.FullyConnected(x, self.w.data(), self.b.data(), num_hidden=3) * 2

    rng = np.random.default_rng(4)
    net = check_hybrid(Affine, [nd.array(rng.standard_normal((2, 4))),
                                nd.array(rng.standard_normal((5, 4)))])
    np.testing.assert_array_equal(net.b.data().asnumpy(), np.ones(3))


# ---- ParameterDict save/load, constants ----------------------------------------------------------

def test_parameter_dict_save_load_with_prefixes(tmp_path):
    net = _small_net('pd_')
    f = str(tmp_path / 'pd.params')
    net.collect_params().save(f, strip_prefix='pd_')
    assert sorted(nd.load(f)) == ['dense0_bias', 'dense0_weight', 'dense1_bias', 'dense1_weight']
    other = nn.HybridSequential(prefix='pd2_')
    with other.name_scope():
        other.add(nn.Dense(5, activation='relu'), nn.Dense(3))
    other.collect_params().load(f, restore_prefix='pd2_')
    x = nd.ones((2, 4))
    np.testing.assert_array_equal(other(x).asnumpy(), net(x).asnumpy())
    with pytest.raises(MXNetError, match="restore_prefix is 'wrong_' but parameter pd2_"):
        other.collect_params().load(f, restore_prefix='wrong_')


def test_constant_parameters_are_not_trained():
    class AddConst(nn.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.c = self.params.get_constant('c', [1.0, 2.0, 3.0])

        def hybrid_forward(self, F, x, c):
            return x + c

    blk = AddConst()
    blk.initialize()
    assert blk.c.grad_req == 'null'
    for hybridize in (False, True):
        if hybridize:
            blk.hybridize()
        x = nd.zeros((2, 3))
        x.attach_grad()
        with autograd.record():
            y = blk(x)
        y.backward()
        np.testing.assert_array_equal(y.asnumpy(), [[1, 2, 3], [1, 2, 3]])
        np.testing.assert_array_equal(x.grad.asnumpy(), np.ones((2, 3)))


def test_parameter_set_data_checks_the_shape():
    dense = nn.Dense(2, in_units=3)
    dense.initialize()
    dense.weight.set_data(np.ones((2, 3)))
    np.testing.assert_array_equal(dense.weight.data().asnumpy(), np.ones((2, 3)))
    with pytest.raises(MXNetError, match=r'set_data with shape \(3, 2\)'):
        dense.weight.set_data(np.ones((3, 2)))


def test_initialize_twice_keeps_values_unless_forced():
    dense = nn.Dense(2, in_units=3)
    dense.initialize()
    w = dense.weight.data().asnumpy().copy()
    dense.initialize()
    np.testing.assert_array_equal(dense.weight.data().asnumpy(), w)
    dense.initialize(mx.init.Constant(3.0), force_reinit=True)
    np.testing.assert_array_equal(dense.weight.data().asnumpy(), np.full((2, 3), 3.0))


def test_summary_of_a_hybridized_net_lists_every_layer():
    net = nn.HybridSequential(prefix='hs_')
    with net.name_scope():
        net.add(nn.Dense(4, activation='relu'), nn.BatchNorm(), nn.Dense(2))
    net.initialize()
    net.hybridize()
    net(nd.ones((3, 5)))
    for batch in (3, 2):            # a cached signature and a new one
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            net.summary(nd.ones((batch, 5)))
        rows = [l.split()[0] for l in buf.getvalue().splitlines() if '-' in l.split()[0] and l[0].isalpha()]
        # as MXNet, Dense's activation is its child block (which finishes first)
        assert rows == ['Activation-1', 'Dense-2', 'BatchNorm-3', 'Dense-4'], buf.getvalue()
    assert net._active and len(net._cached_op.graphs) == 1      # still hybridized, nothing retraced
