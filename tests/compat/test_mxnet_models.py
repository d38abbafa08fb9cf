"""Models written by real MXNet 1.9.1 (tests/fixtures/mxnet/generate_models.py) run here, eagerly
and hybridized, with MXNet's outputs; models exported here load back (MXNet's side of that is
checked by tests/fixtures/mxnet/check_export_in_mxnet.py)."""
import json
import os

import numpy as np
import pytest

import engine as mx
from engine import MXNetError, nd
from engine.gluon import SymbolBlock, nn
from engine.gluon.model_zoo import vision

HERE = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'mxnet')
TOL = dict(rtol=1e-4, atol=1e-4)


def fixture(name):
    return os.path.join(HERE, name)


def io(prefix):
    return np.load(fixture(prefix + '-io.npz'))


@pytest.mark.parametrize('prefix', ['model_lenet', 'model_ops'])
@pytest.mark.parametrize('hybridize', [False, True])
def test_gluon_exports_run_with_mxnets_outputs(prefix, hybridize):
    z = io(prefix)
    net = SymbolBlock.imports(fixture(prefix + '-symbol.json'), ['data'], fixture(prefix + '-0000.params'))
    if hybridize:
        net.hybridize()
    x = nd.array(z['input'])
    for _ in range(2 if hybridize else 1):     # the second hybridized call runs the compiled graph
        out = net(x).asnumpy()
        np.testing.assert_allclose(out, z['eager'], **TOL)
        np.testing.assert_allclose(out, z['imported'], **TOL)


def test_lenet_export_structure():
    net = SymbolBlock.imports(fixture('model_lenet-symbol.json'), ['data'], fixture('model_lenet-0000.params'))
    params = net.collect_params()
    assert params['lenet_batchnorm0_running_var'].grad_req == 'null'
    assert params['lenet_conv0_weight'].grad_req == 'write'
    assert params['lenet_conv0_weight'].shape == (6, 1, 5, 5)


def test_module_checkpoint():
    z = io('module_mlp')
    sym, arg, aux = mx.model.load_checkpoint(fixture('module_mlp'), 3)
    assert sorted(aux) == ['bn1_moving_mean', 'bn1_moving_var']
    assert 'fc1_weight' in arg and 'softmax_label' not in arg
    x, label = nd.array(z['input']), nd.array(z['label'])
    out = sym.eval(data=x, softmax_label=label, **arg, **aux)[0]
    np.testing.assert_allclose(out.asnumpy(), z['output'], **TOL)
    ex = sym.simple_bind(mx.cpu(), grad_req='null', data=x.shape)
    ex.copy_params_from(arg, aux)
    np.testing.assert_allclose(ex.forward(data=x)[0].asnumpy(), z['output'], **TOL)
    net = SymbolBlock(sym, [mx.sym.var('data'), mx.sym.var('softmax_label')])
    net.set_parameters({**arg, **aux})
    net.hybridize()
    np.testing.assert_allclose(net(x, label).asnumpy(), z['output'], **TOL)


def draw(rs, name, shape):
    """generate_models.draw: the rule the ResNet-18 parameters were drawn with."""
    if name.endswith(('running_var', 'gamma')):
        return rs.uniform(0.5, 1.5, size=shape).astype(np.float32)
    if name.endswith(('beta', 'bias', 'running_mean')):
        return (0.1 * rs.standard_normal(size=shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (np.sqrt(2.0 / fan_in) * rs.standard_normal(size=shape)).astype(np.float32)


def resnet18_spec():
    with open(fixture('resnet18_v1-params.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def resnet18_params():
    spec = resnet18_spec()
    rs = np.random.RandomState(spec['seed'])
    return {name: nd.array(draw(rs, name, tuple(shape))) for name, shape in spec['params']}


@pytest.mark.parametrize('hybridize', [False, True])
def test_resnet18_export_from_mxnet(resnet18_params, hybridize):
    z = io('resnet18_v1')
    net = SymbolBlock.imports(fixture('resnet18_v1-symbol.json'), ['data'])
    net.set_parameters(resnet18_params)
    if hybridize:
        net.hybridize()
    out = net(nd.array(z['input'])).asnumpy()
    np.testing.assert_allclose(out, z['imported'], **TOL)
    np.testing.assert_allclose(out, z['eager'], **TOL)


@pytest.mark.parametrize('hybridize', [False, True])
def test_resnet18_zoo_model_gives_mxnets_output(resnet18_params, hybridize):
    z = io('resnet18_v1')
    net = vision.resnet18_v1()
    net.initialize()
    x = nd.array(z['input'])
    net(x)
    # MXNet's parameter names after the model's prefix ('resnetv10_' for the first one made)
    params = {name[len(net.prefix):]: p for name, p in net.collect_params().items()}
    values = {name[len('resnetv10_'):]: v for name, v in resnet18_params.items()}
    assert sorted(params) == sorted(values)
    for name, p in params.items():
        p.set_data(values[name])
    if hybridize:
        net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), z['eager'], **TOL)


def test_missing_or_extra_parameters_are_errors(tmp_path):
    sym_file = fixture('model_lenet-symbol.json')
    loaded = nd.load(fixture('model_lenet-0000.params'))
    partial = {k: v for k, v in loaded.items() if 'dense2' not in k}
    nd.save(str(tmp_path / 'p.params'), partial)
    with pytest.raises(MXNetError, match='missing.*lenet_dense2'):
        SymbolBlock.imports(sym_file, ['data'], str(tmp_path / 'p.params'))
    nd.save(str(tmp_path / 'q.params'), dict(loaded, **{'arg:extra': nd.ones((1,))}))
    with pytest.raises(MXNetError, match='extra'):
        SymbolBlock.imports(sym_file, ['data'], str(tmp_path / 'q.params'))
    with pytest.raises(MXNetError, match="'x'.*not variables"):
        SymbolBlock.imports(sym_file, ['x'])


def test_unsupported_op_names_op_and_node(tmp_path):
    with open(fixture('model_ops-symbol.json')) as f:
        d = json.load(f)
    d['nodes'][5]['op'] = '_contrib_DeformableConvolution'
    name = d['nodes'][5]['name']
    p = tmp_path / 'bad-symbol.json'
    p.write_text(json.dumps(d))
    with pytest.raises(MXNetError, match=f"_contrib_DeformableConvolution'.*node '{name}'"):
        SymbolBlock.imports(str(p), ['data'])


# ---- exported here ---------------------------------------------------------------------------

def _small_net():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, padding=1, activation='relu'), nn.BatchNorm(), nn.MaxPool2D(),
                nn.Flatten(), nn.Dense(8), nn.SELU(), nn.Dropout(0.3), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    return net


@pytest.mark.parametrize('hybridize', [False, True])
def test_export_writes_mxnet_files_that_import_back(tmp_path, hybridize):
    net = _small_net()
    x = nd.array(np.random.RandomState(0).uniform(size=(2, 3, 6, 6)))
    if hybridize:
        net.hybridize()
    ref = net(x).asnumpy()
    sym_file, param_file = net.export(str(tmp_path / 'small'), epoch=7)
    assert param_file.endswith('small-0007.params')
    d = json.load(open(sym_file))
    ops = [n['op'] for n in d['nodes']]
    assert 'LeakyReLU' in ops and 'Convolution' in ops and d['nodes'][0]['name'] == 'data'
    with open(param_file, 'rb') as f:       # MXNet's binary NDArray-list magic
        assert int.from_bytes(f.read(8), 'little') == 0x112
    keys = sorted(nd.load(param_file))
    assert any(k.startswith('aux:') and k.endswith('running_var') for k in keys)
    assert all(k.startswith(('arg:', 'aux:')) for k in keys)
    back = SymbolBlock.imports(sym_file, ['data'], param_file)
    np.testing.assert_allclose(back(x).asnumpy(), ref, rtol=1e-5, atol=1e-6)
    sym, arg, aux = mx.model.load_checkpoint(str(tmp_path / 'small'), 7)
    np.testing.assert_allclose(sym.eval(data=x, **arg, **aux)[0].asnumpy(), ref, rtol=1e-5, atol=1e-6)


def test_save_checkpoint_round_trip(tmp_path):
    sym, arg, aux = mx.model.load_checkpoint(fixture('module_mlp'), 3)
    mx.model.save_checkpoint(str(tmp_path / 'ck'), 1, sym, arg, aux)
    sym2, arg2, aux2 = mx.model.load_checkpoint(str(tmp_path / 'ck'), 1)
    assert sym2.tojson() == sym.tojson()
    assert sorted(arg2) == sorted(arg) and sorted(aux2) == sorted(aux)
    np.testing.assert_array_equal(arg2['fc1_weight'].asnumpy(), arg['fc1_weight'].asnumpy())
    nd.save(str(tmp_path / 'plain-0001.params'), {'w': nd.ones((1,))})
    (tmp_path / 'plain-symbol.json').write_text(sym.tojson())
    with pytest.raises(MXNetError, match="not named 'arg:"):
        mx.model.load_checkpoint(str(tmp_path / 'plain'), 1)


def test_old_engine_graph_files_still_import(tmp_path):
    net = _small_net()
    net.hybridize()
    x = nd.ones((1, 3, 6, 6))
    ref = net(x).asnumpy()
    sym_file, param_file = net._cached_op.export(str(tmp_path / 'old'), 0)   # the older format
    assert json.load(open(sym_file))['format'] == 'engine-graph'
    back = SymbolBlock.imports(sym_file, ['data'], param_file)
    np.testing.assert_allclose(back(x).asnumpy(), ref, rtol=1e-5, atol=1e-6)


def test_imported_graph_is_shape_free_and_trains():
    """An MXNet graph holds no shapes: another batch size runs; gradients agree eagerly and
    hybridized (the block is one tape node whose backward is the compiled backward graph)."""
    from engine import autograd
    x = nd.array(np.random.RandomState(3).uniform(size=(5, 1, 28, 28)))
    grads = []
    for hybridize in (False, True):
        net = SymbolBlock.imports(fixture('model_lenet-symbol.json'), ['data'],
                                  fixture('model_lenet-0000.params'))
        if hybridize:
            net.hybridize()
        with autograd.record(train_mode=False):     # no dropout draws: both modes comparable
            loss = (net(x) ** 2).sum()
        loss.backward()
        grads.append({k: p.grad().asnumpy() for k, p in net.collect_params().items()
                      if p.grad_req != 'null'})
    assert sorted(grads[0]) == sorted(grads[1]) and 'lenet_conv0_weight' in grads[0]
    for k in grads[0]:
        assert np.abs(grads[0][k]).sum() > 0, k
        np.testing.assert_allclose(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_export_of_a_block_that_reads_input_shapes(tmp_path):
    """U-Net checks x.shape in hybrid_forward: export composes it on 'data' with the shape of the
    last hybridized call, and writes a shape-free file."""
    net = vision.unet(depth=2, base_filters=2, classes=1)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = nd.array(np.random.RandomState(1).uniform(size=(1, 3, 8, 8)))
    ref = net(x).asnumpy()
    sym_file, param_file = net.export(str(tmp_path / 'unet'))
    d = json.load(open(sym_file))
    assert 'attrs' not in d['nodes'][0] and 'Deconvolution' in [n['op'] for n in d['nodes']]
    back = SymbolBlock.imports(sym_file, ['data'], param_file)
    np.testing.assert_allclose(back(x).asnumpy(), ref, rtol=1e-5, atol=1e-6)


def test_symbol_block_exports_and_shares_parameters(tmp_path):
    net = SymbolBlock.imports(fixture('model_lenet-symbol.json'), ['data'], fixture('model_lenet-0000.params'))
    z = io('model_lenet')
    x = nd.array(z['input'])
    sym_file, param_file = net.export(str(tmp_path / 'again'))
    again = SymbolBlock.imports(sym_file, ['data'], param_file)
    np.testing.assert_allclose(again(x).asnumpy(), z['eager'], **TOL)
    # a feature extractor over an internal output, sharing the first block's parameters
    sym = mx.sym.load(fixture('model_lenet-symbol.json'))
    feat = sym.get_internals()['lenet_flatten0_flatten0_output']
    head = SymbolBlock(feat, mx.sym.var('data'), params=net.collect_params())
    assert head.collect_params()['lenet_conv0_weight'] is net.collect_params()['lenet_conv0_weight']
    assert head(x).shape == (2, 400)
    assert 'lenet_dense0_weight' not in head.collect_params()   # only what its graph reads


def test_resnet18_zoo_model_loads_mxnets_save_parameters_names(resnet18_params, tmp_path):
    """MXNet's save_parameters names ('features.4.0.body.0.weight', recorded by the generator)
    are the zoo model's: such a file, here written with the seed's values, loads and gives
    MXNet's output (the binary format of MXNet's own files is covered by the LeNet fixture)."""
    z = io('resnet18_v1')
    structural = dict(resnet18_spec()['structural'])
    nd.save(str(tmp_path / 'r18.params'), {k: resnet18_params[v] for k, v in structural.items()})
    net = vision.resnet18_v1()
    net.load_parameters(str(tmp_path / 'r18.params'))
    np.testing.assert_allclose(net(nd.array(z['input'])).asnumpy(), z['eager'], **TOL)
