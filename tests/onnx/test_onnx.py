"""ONNX export checked by onnxruntime, and the export -> import -> run round trip, for every zoo
model, the seed models and a block that uses every op with an ONNX translation."""
import sys
from pathlib import Path

import numpy as np
import pytest

import engine as mx
from engine import gluon, nd
from engine.gluon import nn
from engine.gluon.model_zoo import vision

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

EXAMPLES = Path(__file__).resolve().parents[2] / 'examples'


def run_ort(path, *inputs):
    s = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = [i.name for i in s.get_inputs()]
    return s.run(None, dict(zip(names, inputs)))


def check(net, shape, tmp_path, dtype=np.float32, tol=1e-4, data=None):
    """Export with a free batch axis; onnxruntime and the re-imported block (eager and
    hybridized) must equal the engine at two batch sizes."""
    x = data if data is not None else np.random.RandomState(0).uniform(-1, 1, shape).astype(dtype)
    ref = net(nd.array(x, dtype=dtype)).asnumpy()
    path = mx.onnx.export_model(net, None, [shape], dtype, str(tmp_path / 'm.onnx'), dynamic=True)
    scale = max(1.0, float(np.abs(ref).max()))
    for rows in (slice(None), slice(0, 1)):
        np.testing.assert_allclose(run_ort(path, x[rows])[0], ref[rows], atol=tol * scale, rtol=tol)
    back = mx.onnx.import_model(path)
    np.testing.assert_allclose(back(nd.array(x, dtype=dtype)).asnumpy(), ref, atol=tol * scale, rtol=tol)
    back.hybridize()
    np.testing.assert_allclose(back(nd.array(x[:1], dtype=dtype)).asnumpy(), ref[:1], atol=tol * scale,
                               rtol=tol)
    return path


ZOO = [('lenet', (2, 1, 28, 28)), ('mlp', (2, 1, 28, 28)), ('alexnet', (2, 3, 67, 67)),
       ('vgg11', (2, 3, 32, 32)), ('vgg11_bn', (2, 3, 32, 32)), ('resnet18_v1', (2, 3, 32, 32)),
       ('resnet18_v2', (2, 3, 32, 32)), ('resnet50_v1', (2, 3, 32, 32)), ('resnet50_v2', (2, 3, 32, 32)),
       ('mobilenet1.0', (2, 3, 32, 32)), ('mobilenetv2_1.0', (2, 3, 32, 32)),
       ('squeezenet1.0', (2, 3, 48, 48)), ('squeezenet1.1', (2, 3, 48, 48)),
       ('densenet121', (2, 3, 32, 32)), ('inceptionv3', (2, 3, 75, 75)), ('unet', (2, 3, 32, 32))]


@pytest.mark.parametrize('name, shape', ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_exports_and_round_trips(name, shape, tmp_path):
    mx.random.seed(0)
    net = vision.get_model(name)
    net.initialize(mx.init.Xavier())
    net(nd.zeros(shape))
    # trained-looking BatchNorm statistics, so that inference BN is not the identity
    rng = np.random.RandomState(1)
    for p in net.collect_params().values():
        if p.name.endswith(('running_mean', 'running_var')):
            p.set_data(nd.array(rng.uniform(0.5, 1.5, p.shape) if 'var' in p.name else rng.randn(*p.shape) * 0.1))
    check(net, shape, tmp_path)


def _example(module):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return __import__(module)


def test_seed_lenet_with_selu(tmp_path):
    net = _example('mnist_lenet').make_net(use_zoo=False)
    net.initialize(mx.init.Xavier())
    check(net, (2, 1, 28, 28), tmp_path)


def test_seed_medical_cnn(tmp_path):
    net = _example('medical_mnist').make_net('cnn')
    net.initialize(mx.init.Xavier())
    check(net, (2, 1, 64, 64), tmp_path)


def test_seed_text_cnn_with_embedding(tmp_path):
    net = _example('names_textcnn').TextCNN(vocab_size=12)
    net.init_like_pytorch()
    x = np.random.RandomState(0).randint(0, 12, size=(3, 23)).astype(np.float32)
    check(net, (3, 23), tmp_path, data=x)


class EveryOp(gluon.HybridBlock):
    """Uses each elementwise, shape and reduction op that has an ONNX translation."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.emb = nn.Embedding(10, 6)
            self.norm = nn.LayerNorm()

    def hybrid_forward(self, F, x, idx):
        y = F.concat(x, F.sin(x), F.cos(x) * 2.0, dim=1)                         # (N, 6)
        y = y + F.exp(-F.abs(y)) - F.sqrt(F.square(y) + 1.0) / 3.0 + F.rsqrt(y * y + 2.0)
        y = F.log1p(F.abs(y)) + F.expm1(y * 0.1) + F.tanh(y) * F.sigmoid(y) + F.erf(y)
        y = F.maximum(y, F.minimum(y * 0.5, 0.1)) + F.clip(y, -0.5, 0.5) + (y > 0.2) + (y <= -0.1)
        y = y + F.where(y > 0, F.relu(y), F.LeakyReLU(y, act_type='elu', slope=0.7))
        y = y + F.LeakyReLU(y, slope=0.1) + F.selu(y) + F.gelu(y) + F.softsign(y) + F.round(y * 3)
        y = y + F.floor(y) * 0.1 + F.ceil(y) * 0.1 + F.sign(y) + 1.0 / (F.abs(y) + 1.0) + 2.0 ** (y * 0.1)
        y = y + (y * 10) % 3.0 + F.reciprocal(F.abs(y) + 1.0) + (y != 0.5) + (y == 0.5)
        e = self.emb(idx)                                                      # (N, 6)
        y = self.norm(y + e) + F.zeros_like(y) + F.ones_like(y)
        a, b = F.split(y, num_outputs=2, axis=1)
        z = F.concat(F.flip(a, axis=1), F.transpose(b.reshape((-1, 3, 1)), axes=(0, 2, 1)).reshape((-1, 3)), dim=1)
        z = F.pad(z.reshape((-1, 1, 2, 3)), mode='constant', pad_width=(0, 0, 0, 0, 1, 1, 2, 2),
                  constant_value=0.5).reshape((-1, 4 * 7))
        s = F.softmax(z, axis=-1) + F.log_softmax(z, axis=1) * 0.1
        r = F.sum(s, axis=1, keepdims=True) + F.mean(s, axis=1, keepdims=True) + F.max(s, axis=1, keepdims=True)
        r = r + F.min(s, axis=1, keepdims=True) + F.norm(s, axis=1, keepdims=True) + F.argmax(s, axis=1, keepdims=True)
        return F.concat(s, F.broadcast_to(r, (r.shape[0], 3)), F.tile(r, reps=(1, 2)), dim=1)


@pytest.mark.parametrize('opset', [17, 18])
def test_every_translated_op(tmp_path, opset):
    net = EveryOp()
    net.initialize(mx.init.Xavier())
    x = np.random.RandomState(0).uniform(-1, 1, (4, 2)).astype(np.float32)
    idx = np.array([1, 0, 7, 9], np.float32)
    ref = net(nd.array(x), nd.array(idx)).asnumpy()
    path = mx.onnx.export_model(net, None, [x.shape, idx.shape], [np.float32, np.float32],
                                str(tmp_path / 'ops.onnx'), dynamic=True, opset_version=opset)
    assert onnx.load(path).opset_import[0].version == opset
    np.testing.assert_allclose(run_ort(path, x, idx)[0], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(run_ort(path, x[:2], idx[:2])[0], ref[:2], rtol=1e-4, atol=1e-4)
    back = mx.onnx.import_model(path)
    np.testing.assert_allclose(back(nd.array(x), nd.array(idx)).asnumpy(), ref, rtol=1e-5, atol=1e-5)
    back.hybridize()
    np.testing.assert_allclose(back(nd.array(x[:3]), nd.array(idx[:3])).asnumpy(), ref[:3], rtol=1e-4, atol=1e-4)


def test_static_export_keeps_the_shapes_and_checks(tmp_path):
    net = vision.get_model('lenet')
    net.initialize()
    path = mx.onnx.export_model(net, None, [(3, 1, 28, 28)], np.float32, str(tmp_path / 'l.onnx'),
                                opset_version=13)
    x = np.random.RandomState(0).rand(3, 1, 28, 28).astype(np.float32)
    np.testing.assert_allclose(run_ort(path, x)[0], net(nd.array(x)).asnumpy(), rtol=1e-4, atol=1e-5)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 1, 28, 28]
    meta = mx.onnx.get_model_metadata(path)
    assert meta['input_tensor_data'] == [('data', (3, 1, 28, 28), np.dtype('float32'))]
    assert meta['output_tensor_data'][0][1] == (3, 10)


def test_symbol_with_params_exports(tmp_path):
    data = mx.sym.var('data')
    fc = mx.sym.FullyConnected(data, num_hidden=4, name='fc')
    out = mx.sym.softmax(mx.sym.relu(fc), axis=-1)
    rng = np.random.RandomState(0)
    params = {'arg:fc_weight': nd.array(rng.randn(4, 3)), 'arg:fc_bias': nd.array(rng.randn(4))}
    path = mx.onnx.export_model(out, params, [(2, 3)], np.float32, str(tmp_path / 's.onnx'))
    x = rng.randn(2, 3).astype(np.float32)
    logits = np.maximum(x @ params['arg:fc_weight'].asnumpy().T + params['arg:fc_bias'].asnumpy(), 0)
    ref = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(run_ort(path, x)[0], ref, rtol=1e-5)


def test_an_op_without_translation_is_named(tmp_path):
    class Picks(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.pick(x, F.zeros_like(x).sum(axis=1), axis=1)
    with pytest.raises(mx.MXNetError, match="'pick' has no ONNX translation"):
        mx.onnx.export_model(Picks(), None, [(2, 3)], np.float32, str(tmp_path / 'p.onnx'))
    assert not (tmp_path / 'p.onnx').exists()


def test_batch_mixing_reshape_refuses_dynamic(tmp_path):
    class Merge(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return x.reshape((-1,))
    with pytest.raises(mx.MXNetError, match='batch axis'):
        mx.onnx.export_model(Merge(), None, [(2, 3)], np.float32, str(tmp_path / 'r.onnx'), dynamic=True)
    mx.onnx.export_model(Merge(), None, [(2, 3)], np.float32, str(tmp_path / 'r.onnx'))


def test_bad_onnx_files_are_clear_errors(tmp_path):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'\x00garbage')
    with pytest.raises(mx.MXNetError, match='not a valid ONNX model'):
        mx.onnx.import_model(str(bad))
    with pytest.raises(mx.MXNetError, match='no such file'):
        mx.onnx.import_model(str(tmp_path / 'missing.onnx'))
    h = onnx.helper
    g = h.make_graph([h.make_node('Hardmax', ['x'], ['y'])], 'g',
                     [h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [2, 3])],
                     [h.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [2, 3])])
    path = tmp_path / 'hardmax.onnx'
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid('', 17)]), str(path))
    with pytest.raises(mx.MXNetError, match="'Hardmax'"):
        mx.onnx.import_model(str(path))
