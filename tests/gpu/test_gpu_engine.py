"""The engine on a GPU agrees with the engine on the CPU (issue 7). Every test needs a CUDA device
(marked `gpu`; tests/conftest.py skips them without one): run `pytest -m gpu` on a GPU machine.

Tolerances: float32 results may differ from the CPU's by reduction order (cuBLAS GEMMs, parallel
sums) and by CUDA's math library (last-bit differences in exp/log/erf): rtol 1e-4, atol 1e-5 for
single ops, rtol 1e-3 with atol 1e-4 x the output's scale for whole networks. float64 single ops:
rtol 1e-9, atol 1e-11. Random draws come from per-device generators, so random ops are compared
by shape, dtype and statistics, not values."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine import random as mx_random
from engine.base import MXNetError
from engine.gluon.model_zoo import vision
from engine.ndarray import NDArray
from engine.ops.registry import REGISTRY

from cudakit import load_op_cases

pytestmark = pytest.mark.gpu

OP_TOL = {'float32': (1e-4, 1e-5), 'float64': (1e-9, 1e-11)}
NET_RTOL, NET_ATOL = 1e-3, 1e-4
RANDOM_OPS = {'dropout_mask', 'random_normal_like'}


CASES = load_op_cases()
ALL_CASES = [(op, k, fn, inputs) for op, cs in CASES.CASES.items() for k, (fn, inputs, _) in enumerate(cs)]


@pytest.fixture
def gpu():
    return mx.gpu(0)


def _cupy():
    import cupy
    return cupy


def _as_list(out):
    return [out] if isinstance(out, NDArray) else list(out)


def _close(got, want, dtype, what):
    rtol, atol = OP_TOL[np.dtype(dtype).name] if np.dtype(dtype).kind == 'f' else (0, 0)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=rtol, atol=atol, err_msg=what)


# ---- every kernel: the GPU kernel (with and without out=) equals the CPU kernel -----------------

def _kernel_calls():
    calls = CASES._kernel_calls()
    seen, unique = set(), []
    for op, arrays, attrs in calls:   # one call per (op, input shapes/dtypes, attrs) is enough
        key = (op.name, tuple((a.shape, a.dtype.str) for a in arrays), repr(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append((op, [np.array(a, copy=True) for a in arrays], attrs))
    return unique


def _outputs(op, res):
    return list(res) if op.multi_output else [res]


def test_every_gpu_kernel_matches_cpu_kernel():
    cp = _cupy()
    checked = set()
    for op, arrays, attrs in _kernel_calls():
        where = f'{op.name} on inputs {[(a.shape, a.dtype.name) for a in arrays]} with {attrs}'
        want = _outputs(op, op.kernel('cpu')(*[a.copy() for a in arrays], **attrs))
        got = _outputs(op, op.kernel('gpu')(*[cp.asarray(a) for a in arrays], **attrs))
        shapes, dtypes = op.infer([a.shape for a in arrays], [a.dtype for a in arrays], **attrs)
        bufs = [cp.full(s, 7, dtype=d) for s, d in zip(shapes, dtypes)]   # garbage to overwrite
        got_out = _outputs(op, op.kernel('gpu')(*[cp.asarray(a) for a in arrays],
                                                out=tuple(bufs) if op.multi_output else bufs[0], **attrs))
        for g, b in zip(got_out, bufs):
            assert g is b, f'{where}: the GPU kernel did not return the out buffer'
        for w, g, g_out, s, d in zip(want, got, got_out, shapes, dtypes):
            assert isinstance(g, cp.ndarray), f'{where}: the GPU kernel returned {type(g).__name__}'
            assert g.shape == tuple(s) and g.dtype == d, f'{where}: got {g.shape} {g.dtype}, want {s} {d}'
            if op.name in RANDOM_OPS:
                continue
            _close(g.get(), w, d, f'{where}: GPU vs CPU')
            _close(g_out.get(), w, d, f'{where}: GPU with out= vs CPU')
        checked.add(op.name)
    missing = sorted(set(REGISTRY) - checked)
    assert not missing, f'registered ops no GPU kernel check reached: {missing}'


# ---- every op through the public API: outputs and gradients, float32 and float64 ----------------

def _run_case(fn, inputs, dtype, ctx, heads):
    """Outputs and input gradients of fn on `ctx` (inside `with ctx`, so arrays fn creates
    itself land there too)."""
    with ctx:
        xs = [nd.array(a, ctx=ctx, dtype=dtype if a.dtype.kind == 'f' else a.dtype) for a in inputs]
        for x in xs:
            if np.dtype(x.dtype).kind == 'f':
                x.attach_grad()
        with autograd.record():
            outs = _as_list(fn(*xs))
        outs = [o for o in outs if o._entry is not None] or outs
        if heads is None:
            rng = np.random.default_rng(0)
            heads = [rng.standard_normal(o.shape) for o in outs]
        if all(o._entry is not None for o in outs):
            autograd.backward(outs, [nd.array(h, ctx=ctx, dtype=o.dtype) for h, o in zip(heads, outs)])
        grads = [x.grad.asnumpy() if x.grad is not None else None for x in xs]
        return [o.asnumpy() for o in outs], grads, heads


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('op,k,fn,inputs', ALL_CASES, ids=[f'{c[0]}-{c[1]}' for c in ALL_CASES])
def test_op_and_gradient_match_cpu(op, k, fn, inputs, dtype, gpu):
    try:
        outs_gpu, grads_gpu, heads = _run_case(fn, inputs, dtype, gpu, None)
    except MXNetError as e:
        # a case that closes over an array made on the CPU when it was defined mixes contexts
        # by construction: what the engine owes it is this clear error, not a result
        assert 'different contexts' in str(e) and 'as_in_context' in str(e), str(e)
        return
    outs_cpu, grads_cpu, _ = _run_case(fn, inputs, dtype, mx.cpu(), heads)
    for i, (g, c) in enumerate(zip(outs_gpu, outs_cpu)):
        _close(g, c, c.dtype, f'{op}-{k} ({dtype}): output {i}, GPU vs CPU')
    for i, (g, c) in enumerate(zip(grads_gpu, grads_cpu)):
        if c is not None:
            _close(g, c, c.dtype, f'{op}-{k} ({dtype}): gradient of input {i}, GPU vs CPU')


def test_random_ops_on_gpu(gpu):
    x = nd.ones((200, 500), ctx=gpu)
    with autograd.train_mode():
        y = nd.Dropout(x, p=0.3)
    kept = float((y.asnumpy() != 0).mean())
    assert y.context == gpu and abs(kept - 0.7) < 0.01, kept
    np.testing.assert_allclose(y.asnumpy()[y.asnumpy() != 0], 1 / 0.7, rtol=1e-6)
    eps = nd.random_normal_like(x).asnumpy()
    assert abs(eps.mean()) < 0.02 and abs(eps.std() - 1) < 0.02


# ---- contexts and data movement --------------------------------------------------------------

def test_copies_between_devices(gpu):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = nd.array(a)
    g = x.as_in_context(gpu)
    assert g.context == gpu and isinstance(g._data, _cupy().ndarray)
    np.testing.assert_array_equal(g.asnumpy(), a)
    np.testing.assert_array_equal(g.copyto(mx.cpu()).asnumpy(), a)
    target = nd.zeros((3, 4), ctx=gpu)
    assert x.copyto(target) is target
    np.testing.assert_array_equal(target.asnumpy(), a)
    target[:] = np.ones((3, 4), dtype=np.float32)          # a host array written into a GPU array
    np.testing.assert_array_equal(target.asnumpy(), 1)
    assert nd.array(a, ctx=gpu).as_in_context(gpu).context == gpu


def test_mixed_contexts_in_one_op_are_a_clear_error(gpu):
    with pytest.raises(MXNetError) as e:
        nd.zeros((2, 3)) + nd.zeros((2, 3), ctx=gpu)
    assert 'add' in str(e.value) and 'cpu(0)' in str(e.value) and 'gpu(0)' in str(e.value)


def test_gradient_flows_back_across_devices(gpu):
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = (x.as_in_context(gpu) ** 2).sum()
    y.backward()
    assert x.grad.context == mx.cpu()
    np.testing.assert_allclose(x.grad.asnumpy(), [2, 4, 6])


def test_waitall_and_wait_to_read(gpu):
    y = nd.ones((256, 256), ctx=gpu)
    y = nd.dot(y, y)
    y.wait_to_read()
    nd.waitall()
    assert float(y[0, 0].asscalar()) == 256.0


def test_random_generation_on_gpu_is_seeded(gpu):
    mx_random.seed(3)
    a = nd.random.normal(0, 1, shape=(1000,), ctx=gpu)
    b = nd.random.uniform(-1, 1, shape=(1000,), ctx=gpu)
    mx_random.seed(3)
    np.testing.assert_array_equal(nd.random.normal(0, 1, shape=(1000,), ctx=gpu).asnumpy(), a.asnumpy())
    assert a.context == gpu and b.context == gpu
    assert abs(float(a.asnumpy().mean())) < 0.15 and float(b.asnumpy().min()) >= -1
    r = nd.random.randint(0, 5, shape=(100,), ctx=gpu).asnumpy()
    assert r.min() >= 0 and r.max() < 5


def test_parameters_initialize_on_gpu_and_trainer_updates_them(gpu):
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(ctx=gpu)
    assert net.weight.data().context == gpu and net.weight.grad().context == gpu
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    x = nd.ones((2, 4), ctx=gpu)
    before = net.weight.data().asnumpy()
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    trainer.step(2)
    np.testing.assert_allclose(net.weight.data().asnumpy(), before - 0.1 * np.ones((3, 4)), rtol=1e-6)


def test_dataloader_batches_move_to_gpu(gpu):
    data = gluon.data.ArrayDataset(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    for xb, yb in gluon.data.DataLoader(data, batch_size=4):
        xg, yg = xb.as_in_context(gpu), yb.as_in_context(gpu)
        assert xg.context == gpu and yg.context == gpu
        np.testing.assert_array_equal(xg.asnumpy(), xb.asnumpy())


@pytest.mark.parametrize('name,opts', [('sgd', {'momentum': 0.9, 'wd': 1e-3}), ('sgd', {}),
                                       ('nag', {'momentum': 0.9}), ('adam', {'wd': 1e-3}),
                                       ('adamw', {}), ('rmsprop', {}), ('rmsprop', {'centered': True}),
                                       ('adagrad', {'clip_gradient': 0.5})])
def test_optimizer_updates_on_gpu_match_cpu(name, opts, gpu):
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((3, 5, 7)).astype(np.float32)
    results = []
    for ctx in (mx.cpu(), gpu):
        updater = mx.optimizer.get_updater(mx.optimizer.create(name, learning_rate=0.05, **opts))
        w = nd.array(w0, ctx=ctx)
        for g in grads:
            updater(0, nd.array(g, ctx=ctx), w)
        assert w.context == ctx
        results.append(w.asnumpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6,
                               err_msg=f'{name} {opts}: GPU update vs CPU update')


# ---- hybridized graphs on the GPU --------------------------------------------------------------

class _Chain(gluon.HybridBlock):
    """A dense layer followed by a chain of elementwise ops (one fused kernel)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = gluon.nn.Dense(16)

    def hybrid_forward(self, F, x):
        h = self.dense(x)
        return F.tanh(h) * 2.0 + F.sigmoid(h) - 1.0


def test_hybridized_graph_runs_fused_cuda_kernels(gpu):
    net = _Chain()
    net.initialize(ctx=gpu)
    x = nd.array(np.random.default_rng(0).standard_normal((4, 10)), ctx=gpu)
    with autograd.predict_mode():
        eager = net(x).asnumpy()
    net.hybridize()
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward()
    assert y.context == gpu and isinstance(y._data, _cupy().ndarray) and x.grad.context == gpu
    with autograd.predict_mode():
        hybrid = net(x)
    program = net._cached_op._inference_program(net._cached_op._last)
    assert program.ctx == gpu and all(isinstance(b, _cupy().ndarray) for b in program.buffers)
    fused = [n for n in program.graph.nodes if n.op.name.startswith('fused[')]
    assert fused, program.source
    assert all('gpu' in n.op.kernels and '__global__' in n.op.source for n in fused)
    np.testing.assert_allclose(hybrid.asnumpy(), eager, rtol=1e-5, atol=1e-6)
    grad_hybrid = x.grad.asnumpy()
    net.hybridize(active=False)
    with autograd.record():
        y = net(x)
    y.backward()
    np.testing.assert_allclose(grad_hybrid, x.grad.asnumpy(), rtol=1e-5, atol=1e-6)


# ---- every model zoo model: GPU == CPU, eager and hybridized ---------------------------------
# (name, input shape, constructor options): small inputs, as in tests/gluon/test_model_zoo.py
SMALL = [
    ('lenet', (2, 1, 28, 28), {}),
    ('mlp', (2, 1, 28, 28), {'hidden_units': (32, 16)}),
    ('alexnet', (1, 3, 63, 63), {}),
    ('vgg11_bn', (1, 3, 32, 32), {}),
    ('resnet18_v1', (2, 3, 32, 32), {}),
    ('resnet18_v2', (2, 3, 32, 32), {}),
    ('resnet50_v1', (1, 3, 32, 32), {}),
    ('mobilenet0.25', (2, 3, 32, 32), {}),
    ('mobilenetv2_0.25', (2, 3, 32, 32), {}),
    ('squeezenet1.1', (1, 3, 48, 48), {}),
    ('densenet121', (1, 3, 32, 32), {}),
    ('inceptionv3', (1, 3, 75, 75), {}),
    ('unet', (1, 3, 16, 16), {'depth': 3, 'base_filters': 4, 'classes': 2}),
]
INIT = mx.init.MSRAPrelu(factor_type='in')   # keeps activations O(1), so the comparison means something


def _net_close(got, want, what):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=NET_RTOL, atol=NET_ATOL * scale, err_msg=what)


def _train_pass(net, x, ctx, head):
    xs = x.as_in_context(ctx)
    with autograd.record():
        y = net(xs)
    y.backward(nd.array(head, ctx=ctx))
    grads = {n: p.grad(ctx).asnumpy() for n, p in net.collect_params().items() if p.grad_req != 'null'}
    return y.asnumpy(), grads


@pytest.mark.parametrize('name,shape,opts', SMALL, ids=[s[0] for s in SMALL])
def test_model_zoo_gpu_matches_cpu(name, shape, opts, gpu):
    x = nd.array(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    net = vision.get_model(name, **opts)
    net.initialize(INIT)
    for hybridized in (False, True):
        mode = 'hybridized' if hybridized else 'eager'
        net.hybridize(active=hybridized)
        net.collect_params().reset_ctx(mx.cpu())
        with autograd.predict_mode():
            want = net(x).asnumpy()
        net.collect_params().reset_ctx(gpu)
        with autograd.predict_mode():
            got = net(x.as_in_context(gpu))
        assert got.context == gpu
        _net_close(got.asnumpy(), want, f'{name} {mode} predict: GPU vs CPU')


TRAINED = [s for s in SMALL if s[0] in ('lenet', 'resnet18_v1', 'mobilenetv2_0.25', 'unet')]


@pytest.mark.parametrize('name,shape,opts', TRAINED, ids=[s[0] for s in TRAINED])
def test_model_zoo_training_pass_gpu_matches_cpu(name, shape, opts, gpu):
    """Training mode (batch statistics; dropout off: each device draws its own masks), forward
    and every parameter gradient, eager and hybridized."""
    if name in ('lenet', 'unet'):
        opts = dict(opts, dropout=0.0)
    x = nd.array(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    net = vision.get_model(name, **opts)
    net.initialize(INIT)
    with autograd.predict_mode():
        head = np.random.default_rng(1).standard_normal(net(x).shape).astype(np.float32)
    snapshot = {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()}
    for hybridized in (False, True):
        mode = 'hybridized' if hybridized else 'eager'
        net.hybridize(active=hybridized)
        results = []
        for ctx in (mx.cpu(), gpu):
            net.collect_params().reset_ctx(ctx)
            for n, p in net.collect_params().items():     # running statistics back to the start
                p.set_data(snapshot[n])
            results.append(_train_pass(net, x, ctx, head))
        (y_cpu, g_cpu), (y_gpu, g_gpu) = results
        _net_close(y_gpu, y_cpu, f'{name} {mode} training output: GPU vs CPU')
        for n in g_cpu:
            _net_close(g_gpu[n], g_cpu[n], f'{name} {mode}: gradient of {n}, GPU vs CPU')


# ---- a LeNet training step ---------------------------------------------------------------------

def _lenet_step(ctx, hybridized, x, y):
    mx_random.seed(42)                   # the same initial weights (drawn on the host) on both devices
    net = vision.lenet(dropout=0.0)      # each device draws its own dropout masks
    net.initialize(mx.init.Xavier(), ctx=ctx)
    net.hybridize(active=hybridized)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for _ in range(2):
        with autograd.record():
            loss = loss_fn(net(x.as_in_context(ctx)), y.as_in_context(ctx))
        loss.backward()
        trainer.step(x.shape[0])
        losses.append(loss.asnumpy())
    params = {n.split('_', 1)[-1]: p.data(ctx).asnumpy() for n, p in net.collect_params().items()}
    return losses, params


@pytest.mark.parametrize('hybridized', [False, True], ids=['eager', 'hybridized'])
def test_lenet_training_step_gpu_matches_cpu(hybridized, gpu):
    rng = np.random.default_rng(0)
    x = nd.array(rng.standard_normal((8, 1, 28, 28)).astype(np.float32))
    y = nd.array(rng.integers(0, 10, 8).astype(np.float32))
    losses_cpu, params_cpu = _lenet_step(mx.cpu(), hybridized, x, y)
    losses_gpu, params_gpu = _lenet_step(gpu, hybridized, x, y)
    for step, (a, b) in enumerate(zip(losses_gpu, losses_cpu)):
        _net_close(a, b, f'LeNet step {step} loss: GPU vs CPU')
    for n in params_cpu:
        _net_close(params_gpu[n], params_cpu[n], f'LeNet parameter {n} after two steps: GPU vs CPU')
