"""mx.mod.Module: symbolic training over the mx.sym executors, mx.sym.make_loss, and the losses
composed on shape-free mx.sym graphs."""
import numpy as np
import pytest

import engine as mx
from engine import gluon


def _mlp(nclass=3, hidden=16):
    data = mx.sym.var('data')
    fc1 = mx.sym.FullyConnected(data, name='fc1', num_hidden=hidden)
    act = mx.sym.Activation(fc1, name='relu1', act_type='relu')
    return mx.sym.FullyConnected(act, name='fc2', num_hidden=nclass)


def _blobs(n=120, nclass=3, dim=4, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-3, 3, size=(nclass, dim))
    y = rng.randint(0, nclass, size=n)
    x = centers[y] + 0.3 * rng.randn(n, dim)
    return x.astype(np.float32), y.astype(np.float32)


def test_fit_softmax_output_mlp_reaches_high_accuracy():
    mx.random.seed(1)
    x, y = _blobs()
    it = mx.io.NDArrayIter(x, y, batch_size=20, shuffle=True, label_name='softmax_label')
    net = mx.sym.SoftmaxOutput(_mlp(), name='softmax')
    mod = mx.mod.Module(net, data_names=('data',), label_names=('softmax_label',))
    seen = []
    mod.fit(it, num_epoch=30, optimizer='sgd', optimizer_params={'learning_rate': 0.5},
            initializer=mx.init.Xavier(), eval_metric='acc',
            batch_end_callback=lambda p: seen.append((p.epoch, p.nbatch)))
    assert seen[0] == (0, 0) and len(seen) == 30 * 6
    (name, acc), = mod.score(mx.io.NDArrayIter(x, y, batch_size=20), 'acc')
    assert name == 'accuracy' and acc > 0.95
    prob = mod.predict(mx.io.NDArrayIter(x, y, batch_size=50))     # padded last batch removed
    assert prob.shape == (120, 3)
    np.testing.assert_allclose(prob.asnumpy().sum(axis=1), 1.0, rtol=1e-5)
    assert (prob.asnumpy().argmax(axis=1) == y).mean() > 0.95


def test_forward_backward_gradients_equal_gluon():
    x = np.random.RandomState(0).randn(5, 4).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0], dtype=np.float32)
    loss = mx.sym.make_loss(gluon.loss.SoftmaxCrossEntropyLoss()(_mlp(), mx.sym.var('label')))
    mod = mx.mod.Module(loss, data_names=['data'], label_names=['label'])
    mod.bind(data_shapes=[('data', (5, 4))], label_shapes=[('label', (5,))])
    mod.init_params(mx.init.Xavier())
    arg, _ = mod.get_params()
    assert sorted(arg) == ['fc1_bias', 'fc1_weight', 'fc2_bias', 'fc2_weight']

    net = gluon.nn.HybridSequential(prefix='')
    net.add(gluon.nn.Dense(16, activation='relu', prefix='fc1_'), gluon.nn.Dense(3, prefix='fc2_'))
    net.initialize()
    net(mx.nd.array(x))
    for name, p in net.collect_params().items():
        p.set_data(arg[name])
    with mx.autograd.record():
        ref = gluon.loss.SoftmaxCrossEntropyLoss()(net(mx.nd.array(x)), mx.nd.array(y))
    ref.backward()

    batch = mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)])
    mod.forward(batch, is_train=True)
    mod.backward()
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), ref.asnumpy(), rtol=1e-5)
    grads = mod._exec.grad_dict
    for name, p in net.collect_params().items():
        np.testing.assert_allclose(grads[name].asnumpy(), p.grad().asnumpy(), rtol=1e-4, atol=1e-6)

    # update() is one SGD step with rescale_grad = 1 / batch size
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.1})
    mod.update()
    new, _ = mod.get_params()
    w = net.collect_params()['fc2_weight']
    np.testing.assert_allclose(new['fc2_weight'].asnumpy(),
                               arg['fc2_weight'].asnumpy() - 0.1 / 5 * w.grad().asnumpy(), rtol=1e-5, atol=1e-6)


def test_make_loss_ignores_the_head_gradient():
    x = mx.nd.array([1., -2., 3.])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.make_loss(x * 3, grad_scale=0.5)
    y.backward(mx.nd.array([7., 7., 7.]))
    np.testing.assert_allclose(x.grad.asnumpy(), [1.5, 1.5, 1.5])
    with mx.autograd.record():
        y = mx.nd.make_loss(x * 3, normalization='batch')
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [1., 1., 1.])
    with pytest.raises(mx.MXNetError, match='normalization'):
        mx.nd.make_loss(x, normalization='bogus')


@pytest.mark.parametrize('loss', [gluon.loss.L2Loss(), gluon.loss.L1Loss(), gluon.loss.HuberLoss(),
                                  gluon.loss.HingeLoss(), gluon.loss.SigmoidBCELoss(),
                                  gluon.loss.KLDivLoss(), gluon.loss.SoftmaxCELoss(sparse_label=False)])
def test_losses_compose_on_shape_free_symbols(loss):
    rng = np.random.RandomState(3)
    p, lab = rng.rand(4, 3).astype(np.float32), rng.rand(4, 3).astype(np.float32)
    sym = loss(mx.sym.var('p'), mx.sym.var('l'))
    out = sym.bind(mx.cpu(), {'p': mx.nd.array(p), 'l': mx.nd.array(lab)}).forward()[0]
    np.testing.assert_allclose(out.asnumpy(), loss(mx.nd.array(p), mx.nd.array(lab)).asnumpy(), rtol=1e-5)


def test_variable_init_and_prelu_default_and_aux_init():
    sym = mx.sym.LeakyReLU(mx.sym.var('data'), act_type='prelu', name='pr')
    mod = mx.mod.Module(sym)      # the default label name is not read by the symbol: ignored
    mod.bind(data_shapes=[('data', (2, 5))])
    mod.init_params()
    np.testing.assert_array_equal(mod.get_params()[0]['pr_gamma'].asnumpy(), 0.25)
    g = mx.sym.var('g', init=mx.init.Constant(3.0))
    mod = mx.mod.Module(mx.sym.LeakyReLU(mx.sym.var('data'), gamma=g, act_type='prelu'))
    mod.bind(data_shapes=[('data', (2, 5))])
    mod.init_params()
    np.testing.assert_array_equal(mod.get_params()[0]['g'].asnumpy(), 3.0)
    mod = mx.mod.Module(mx.sym.BatchNorm(mx.sym.var('data'), name='bn'))
    mod.bind(data_shapes=[('data', (4, 3, 2, 2))])
    mod.init_params()
    aux = mod.get_params()[1]
    np.testing.assert_array_equal(aux['bn_moving_var'].asnumpy(), 1)
    np.testing.assert_array_equal(aux['bn_moving_mean'].asnumpy(), 0)


def test_lr_mult_from_the_variable_attribute():
    w = mx.sym.var('fc_weight', lr_mult=0.0)
    out = mx.sym.make_loss(mx.sym.sum(mx.sym.FullyConnected(mx.sym.var('data'), weight=w,
                                                            num_hidden=2, name='fc')))
    mod = mx.mod.Module(out, label_names=None)
    mod.bind(data_shapes=[('data', (3, 4))])
    mod.init_params(mx.init.Uniform(1.0))
    mod.init_optimizer(optimizer_params={'learning_rate': 1.0})
    before, _ = mod.get_params()
    mod.forward_backward(mx.io.DataBatch([mx.nd.ones((3, 4))]))
    mod.update()
    after, _ = mod.get_params()
    np.testing.assert_array_equal(after['fc_weight'].asnumpy(), before['fc_weight'].asnumpy())
    assert not np.allclose(after['fc_bias'].asnumpy(), before['fc_bias'].asnumpy())


def test_checkpoint_round_trip_with_optimizer_states(tmp_path):
    x, y = _blobs(n=40)
    it = mx.io.NDArrayIter(x, y, batch_size=10)
    net = mx.sym.SoftmaxOutput(_mlp(), name='softmax')
    mod = mx.mod.Module(net)
    mod.fit(it, num_epoch=2, optimizer='adam', initializer=mx.init.Xavier())
    prefix = str(tmp_path / 'm')
    mod.save_checkpoint(prefix, 2, save_optimizer_states=True)
    ref = mod.predict(it).asnumpy()
    back = mx.mod.Module.load(prefix, 2, load_optimizer_states=True)
    back.bind(data_shapes=it.provide_data, label_shapes=it.provide_label)
    np.testing.assert_allclose(back.predict(it).asnumpy(), ref, rtol=1e-6)
    back.init_optimizer(optimizer='adam')
    assert set(back._updater.states) == set(range(4))     # Adam's moments came back
    a, b = mod.get_params()[0], back.get_params()[0]
    for k in a:
        np.testing.assert_array_equal(a[k].asnumpy(), b[k].asnumpy())


def test_reshape_on_a_batch_of_another_size():
    net = mx.sym.SoftmaxOutput(_mlp(), name='softmax')
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[('data', (8, 4))], label_shapes=[('softmax_label', (8,))], for_training=False)
    mod.init_params()
    mod.forward(mx.io.DataBatch([mx.nd.ones((3, 4))]), is_train=False)
    assert mod.get_outputs()[0].shape == (3, 3)


def test_bad_use_is_a_clear_error():
    net = mx.sym.SoftmaxOutput(_mlp(), name='softmax')
    with pytest.raises(mx.MXNetError, match="data name 'x'"):
        mx.mod.Module(net, data_names=['x'])
    with pytest.raises(mx.MXNetError, match='Symbol'):
        mx.mod.Module('not a symbol')
    mod = mx.mod.Module(net)
    with pytest.raises(mx.MXNetError, match='bind'):
        mod.forward(mx.io.DataBatch([mx.nd.ones((2, 4))]))
    with pytest.raises(mx.MXNetError, match='data_shapes'):
        mod.bind(data_shapes=[('other', (2, 4))])
    mod.bind(data_shapes=[('data', (2, 4))], label_shapes=[('softmax_label', (2,))])
    with pytest.raises(mx.MXNetError, match='init_params'):
        mod.forward(mx.io.DataBatch([mx.nd.ones((2, 4))], [mx.nd.zeros((2,))]))
    with pytest.raises(mx.MXNetError, match='not in the given parameters'):
        mod.init_params(arg_params={'fc1_weight': mx.nd.zeros((16, 4))})
    mod.init_params()
    with pytest.raises(mx.MXNetError, match='init_optimizer'):
        mod.update()
    with pytest.raises(mx.MXNetError, match='num_epoch'):
        mod.fit(mx.io.NDArrayIter(np.ones((4, 4)), np.zeros(4), batch_size=2))


def test_fixed_params_and_input_gradients():
    out = mx.sym.make_loss(mx.sym.sum(_mlp(nclass=2)))
    mod = mx.mod.Module(out, label_names=None, fixed_param_names=['fc1_weight'])
    mod.bind(data_shapes=[('data', (3, 4))], inputs_need_grad=True)
    mod.init_params(mx.init.Uniform(0.5))
    mod.init_optimizer(optimizer_params={'learning_rate': 0.1})
    before, _ = mod.get_params()
    x = mx.nd.array(np.random.RandomState(1).randn(3, 4))
    mod.forward_backward(mx.io.DataBatch([x]))
    mod.update()
    after, _ = mod.get_params()
    np.testing.assert_array_equal(after['fc1_weight'].asnumpy(), before['fc1_weight'].asnumpy())
    assert not np.allclose(after['fc2_weight'].asnumpy(), before['fc2_weight'].asnumpy())
    # the input gradient equals autograd's on the same weights
    p = {k: v for k, v in before.items()}
    x.attach_grad()
    with mx.autograd.record():
        h = mx.nd.relu(mx.nd.FullyConnected(x, p['fc1_weight'], p['fc1_bias'], num_hidden=16))
        y = mx.nd.sum(mx.nd.FullyConnected(h, p['fc2_weight'], p['fc2_bias'], num_hidden=2))
    y.backward()
    np.testing.assert_allclose(mod.get_input_grads()[0].asnumpy(), x.grad.asnumpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(mx.MXNetError, match='for_training=False'):
        m2 = mx.mod.Module(out, label_names=None)
        m2.bind(data_shapes=[('data', (3, 4))], for_training=False)
        m2.init_params()
        m2.init_optimizer()


def test_lr_and_wd_mult_given_to_an_op_reach_its_parameters():
    bias = mx.sym.var('fc1_bias', lr_mult=1.0)     # a variable's own attribute wins
    fc1 = mx.sym.FullyConnected(mx.sym.var('data'), bias=bias, name='fc1', num_hidden=4, lr_mult=0)
    fc2 = mx.sym.FullyConnected(fc1, name='fc2', num_hidden=2, wd_mult=0.5)
    attrs = fc2.attr_dict()
    assert attrs['fc1_weight']['__lr_mult__'] == '0' and attrs['fc1_bias']['__lr_mult__'] == '1.0'
    assert attrs['fc2_bias']['__wd_mult__'] == '0.5'
    mod = mx.mod.Module(fc2, label_names=None)
    mod.bind(data_shapes=[('data', (3, 5))])
    mod.init_params(mx.init.Uniform(1.0))
    mod.init_optimizer(optimizer_params={'learning_rate': 1.0})
    assert mod._optimizer.lr_mult == {'fc1_bias': 1.0, 'fc1_weight': 0.0}
    assert mod._optimizer.wd_mult == {'fc1_bias': 0.0, 'fc2_bias': 0.5, 'fc2_weight': 0.5}
    back = mx.sym.load_json(fc2.tojson())       # the attributes travel in MXNet's JSON
    assert back.attr_dict()['fc1_weight']['__lr_mult__'] == '0'


def test_module_runs_an_exported_gluon_model(tmp_path):
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, padding=1), gluon.nn.BatchNorm(), gluon.nn.Activation('relu'),
            gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.random.normal(shape=(2, 3, 8, 8))
    with mx.autograd.record():      # moving statistics away from their initial values
        net(x)
    ref = net(x)
    prefix = str(tmp_path / 'net')
    net.export(prefix)
    mod = mx.mod.Module.load(prefix, 0, label_names=None)
    mod.bind(data_shapes=[('data', x.shape)], for_training=False)
    mod.forward(mx.io.DataBatch([x], None), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), ref.asnumpy(), rtol=1e-5, atol=1e-6)


def test_a_list_of_cpu_contexts_runs_each_batch_whole():
    net = mx.sym.Activation(mx.sym.var('data'), act_type='relu', __layout__='TNC')
    mod = mx.mod.Module(net, ('data',), None, context=[mx.cpu(0), mx.cpu(1)])
    mod.bind(data_shapes=[mx.io.DataDesc('data', (3, 8, 7), layout='TNC')], inputs_need_grad=True)
    mod.init_params()
    x = np.random.uniform(-1, 1, (3, 8, 7)).astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]))
    mod.backward([mx.nd.ones((3, 8, 7))])
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), np.maximum(x, 0))
    # per context, as MXNet would hold them: halves along the layout's batch axis (N of TNC)
    (first, second), = mod.get_outputs(merge_multi_context=False)
    np.testing.assert_allclose(first.asnumpy(), np.maximum(x[:, :4], 0))
    np.testing.assert_allclose(second.asnumpy(), np.maximum(x[:, 4:], 0))
    (g0, g1), = mod.get_input_grads(merge_multi_context=False)
    assert g0.shape == g1.shape == (3, 4, 7)
    np.testing.assert_allclose(g1.asnumpy(), (x[:, 4:] > 0).astype(np.float32))
    with pytest.raises(mx.MXNetError, match='other than the CPU'):
        mx.mod.Module(net, ('data',), None, context=[mx.Context('gpu', 0), mx.Context('gpu', 1)])


def test_backward_of_a_module_without_parameters_is_a_no_op():
    net = mx.sym.Activation(mx.sym.var('data'), act_type='relu')
    mod = mx.mod.Module(net, ('data',), None)
    mod.bind(data_shapes=[('data', (2, 3))])
    mod.init_params()
    mod.forward(mx.io.DataBatch([-mx.nd.ones((2, 3))]))
    mod.backward([mx.nd.ones((2, 3))])      # nothing has a gradient: as MXNet, nothing to do
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), np.zeros((2, 3)))


def test_a_shape_that_is_not_ints_is_a_type_error():
    mod = mx.mod.Module(mx.sym.relu(mx.sym.var('data')), ('data',), None)
    with pytest.raises(TypeError, match="shape of 'data'.*tuple of ints"):
        mod.bind(data_shapes=[('data', mx.nd.array([10, 10]))])
    assert not mod.binded


def _bucket_sym(key):
    """A weight 'w' shared by all sequence lengths `key`; the loss is sum(data * w)."""
    data = mx.sym.var('data')
    w = mx.sym.var('w', shape=(1,), init=mx.init.One())
    return mx.sym.make_loss(mx.sym.broadcast_mul(data, w)), ('data',), None


def _bucket_batch(key, batch=2):
    return mx.io.DataBatch([mx.nd.ones((batch, key))], None, bucket_key=key,
                           provide_data=[mx.io.DataDesc('data', (batch, key))])


@pytest.mark.parametrize('grad_req', ['write', 'add'])
def test_bucketing_module_buckets_share_parameters_and_gradients(grad_req):
    mod = mx.mod.BucketingModule(_bucket_sym, default_bucket_key=4)
    mod.bind(data_shapes=[('data', (2, 4))], grad_req=grad_req)
    mod.init_params()
    mod.forward_backward(_bucket_batch(3))      # a new bucket, bound on first use
    assert mod._curr_module.get_outputs()[0].shape == (2, 3)
    grad = mod._curr_module._exec.grad_dict['w']
    np.testing.assert_allclose(grad.asnumpy(), [6.0])     # d sum(data * w) / dw = sum(data)
    mod.forward_backward(_bucket_batch(5))
    assert mod._curr_module._exec.grad_dict['w'] is grad   # one gradient array for all buckets
    np.testing.assert_allclose(grad.asnumpy(), [10.0] if grad_req == 'write' else [16.0])
    assert sorted(mod._buckets) == [3, 4, 5]


def test_bucketing_module_trains_one_set_of_parameters(tmp_path):
    mod = mx.mod.BucketingModule(_bucket_sym, default_bucket_key=4)
    mod.bind(data_shapes=[('data', (2, 4))])
    mod.init_params()
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.1, 'rescale_grad': 1.0})
    for key in (3, 5, 4):
        mod.forward_backward(_bucket_batch(key))
        mod.update()
    # w starts at 1 and loses lr * sum(data) per step: 0.1 * (6 + 10 + 8)
    np.testing.assert_allclose(mod.get_params()[0]['w'].asnumpy(), [1 - 2.4], rtol=1e-6)
    prefix = str(tmp_path / 'bucket')
    mod.save_checkpoint(prefix, 0)
    back = mx.mod.BucketingModule.load(prefix, 0, sym_gen=_bucket_sym, default_bucket_key=4)
    back.bind(data_shapes=[('data', (2, 4))])
    back.forward(_bucket_batch(6), is_train=False)
    np.testing.assert_allclose(back.get_outputs()[0].asnumpy(), np.full((2, 6), 1 - 2.4), rtol=1e-6)


def test_state_inputs_get_and_set():
    data, state = mx.sym.var('data'), mx.sym.var('state')
    net = mx.sym.make_loss(data + state)
    mod = mx.mod.Module(net, ('data',), None, state_names=['state'],
                        context=[mx.cpu(0), mx.cpu(1)])
    mod.bind(data_shapes=[('data', (4, 3))])
    mod.init_params()
    mod.set_states(value=2.0)
    np.testing.assert_allclose(mod.get_states()[0].asnumpy(), np.full((4, 3), 2.0))
    mod.set_states([[mx.nd.ones((2, 3)), mx.nd.full((2, 3), 5.0)]])     # per context
    (first, second), = mod.get_states(merge_multi_context=False)
    np.testing.assert_allclose(first.asnumpy(), 1.0)
    np.testing.assert_allclose(second.asnumpy(), 5.0)
    mod.forward(mx.io.DataBatch([mx.nd.ones((4, 3))]), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy()[:, 0], [2, 2, 6, 6])
    with pytest.raises(mx.MXNetError, match='one of states and value'):
        mod.set_states()
