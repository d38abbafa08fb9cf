"""Devices on a machine without a GPU (these run everywhere): mx.gpu() is a clear error, the
engine imports and trains with CuPy missing, CPU work never imports CuPy, and the GPU side of the
op library and of the fuser is in place (registered kernels, CUDA fused ops) without a device."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import engine as mx
from engine.base import MXNetError, array_module
from engine.context import Context
from engine.graph import fusion
from engine.graph.ir import Graph
from engine.ops.registry import REGISTRY, get_op

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
no_gpu = pytest.mark.skipif(mx.num_gpus() > 0, reason='a GPU is present')


def _python(*pieces):
    """Run the code pieces (each dedented) in a fresh interpreter at the repository root;
    returns its stdout."""
    code = '\n'.join(textwrap.dedent(p) for p in pieces)
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, ENGINE_NUM_THREADS='1'))
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@no_gpu
def test_gpu_without_a_device_is_a_clear_error():
    assert mx.num_gpus() == 0
    with pytest.raises(MXNetError) as e:
        mx.gpu(0)
    msg = str(e.value)
    assert 'gpu(0)' in msg and 'not available' in msg and 'engine.cpu()' in msg
    with pytest.raises(MXNetError, match='gpu\\(0\\).*CuPy'):   # a hand-made context has no array module
        Context('gpu', 0).xp


# A small training run through every layer that has GPU code: eager and hybridized forward and
# backward (conv, pooling, batch norm, dropout, softmax-CE, fused elementwise), a Trainer step
# and waitall().
_TRAIN = '''
    import numpy as np
    import engine as mx
    from engine import autograd, gluon, nd
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, activation='relu'), gluon.nn.BatchNorm(), gluon.nn.MaxPool2D(),
            gluon.nn.Dropout(0.3), gluon.nn.Dense(5))
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), 'adam')
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x, y = nd.array(np.random.rand(4, 1, 8, 8)), nd.array([0, 1, 2, 3])
    for hybrid in (False, True):
        net.hybridize(active=hybrid)
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(4)
    nd.waitall()
    assert np.isfinite(loss.asnumpy()).all()
'''


def test_engine_imports_and_trains_without_cupy():
    out = _python('''
        import sys
        sys.modules['cupy'] = None          # any `import cupy` now raises ImportError
        import engine as mx
        from engine.base import MXNetError
        assert mx.num_gpus() == 0
        try:
            mx.gpu(0)
            raise AssertionError('mx.gpu(0) did not raise')
        except MXNetError as e:
            assert 'CuPy is not installed or no CUDA device is visible' in str(e), e
    ''', _TRAIN, '''
        print('ok')
    ''')
    assert out.strip().endswith('ok')


def test_cpu_work_never_imports_cupy():
    """The CUDA twins and CuPy are imported on first GPU use only (backends.per_device)."""
    out = _python(_TRAIN, '''
        import sys
        print(sorted(m for m in sys.modules if m == 'cupy' or m.startswith('kernels.cuda')))
    ''')
    assert out.strip().endswith('[]'), out


def test_array_module_is_numpy_for_host_arrays():
    assert array_module(np.zeros(3), np.float32(1.0), 2.0) is np
    assert Context('cpu').xp is np


def test_every_op_has_a_kernel_for_each_device():
    """31 ops have device-specific kernels ('cpu' and 'gpu'); the others one array-module
    generic kernel ('any') that takes NumPy and CuPy arrays alike."""
    for name, op in REGISTRY.items():
        kinds = set(op.kernels)
        assert kinds in ({'any'}, {'cpu', 'gpu'}), f'{name}: kernels for {sorted(kinds)}'
    assert sum(set(op.kernels) == {'cpu', 'gpu'} for op in REGISTRY.values()) >= 31


def test_missing_kernel_names_op_and_device():
    with pytest.raises(MXNetError, match="conv2d: no kernel for device type 'tpu'"):
        get_op('conv2d').kernel('tpu')


def _node(g, name, inputs, **attrs):
    op = get_op(name)
    shapes, dtypes = op.infer([v.shape for v in inputs], [v.dtype for v in inputs], **attrs)
    return g.add_node(op, inputs, attrs, shapes, dtypes).outputs[0]


def _chain():
    """tanh(relu(exp(x) * 0.5) + y): one fusable group."""
    g = Graph()
    x, y = g.add_input((4, 5), np.float32, 'x'), g.add_input((4, 5), np.float32, 'y')
    h = _node(g, 'relu', [_node(g, '_mul_scalar', [_node(g, 'exp', [x])], scalar=0.5)])
    g.outputs = [_node(g, 'tanh', [_node(g, 'add', [h, y])])]
    return g


def test_gpu_fusion_builds_cuda_kernels_without_a_device():
    """fuse_elementwise(graph, 'gpu') renders CUDA source and registers a 'gpu' kernel; CuPy is
    needed only when the kernel is launched."""
    g = fusion.fuse_elementwise(_chain(), 'gpu')
    fused = [n for n in g.nodes if n.op.name.startswith('fused[')]
    assert [n.op.name for n in fused] == ['fused[exp+_mul_scalar+relu+add+tanh]']
    op = fused[0].op
    assert set(op.kernels) == {'gpu'}
    assert 'extern "C" __global__ void fused_' in op.source and 'tanhf(' in op.source
    assert '0.5f' in op.source     # float32 groups keep float32 literals and functions


def test_process_settings_applied_at_import():
    """glibc keeps large freed blocks for reuse (no page faults per training step), and OpenBLAS
    gets a short spin timeout unless the user set one (see engine/__init__.py, engine/memory.py)."""
    import os
    import sys
    from engine import memory
    assert os.environ.get('OPENBLAS_THREAD_TIMEOUT')
    if sys.platform.startswith('linux'):
        assert memory.tune_malloc() is True
    os.environ['ENGINE_MALLOC_TUNE'] = '0'
    try:
        assert memory.tune_malloc() is False
    finally:
        del os.environ['ENGINE_MALLOC_TUNE']


def test_cpu_pinned_and_cpu_shared_are_host_contexts():
    # MXNet's page-locked / shared host memory: plain host memory here, usable like cpu()
    for ctx in (mx.cpu_pinned(0), mx.cpu_shared(0), Context('cpu_shared', 0)):
        assert ctx.device_type == 'cpu' and ctx == mx.cpu(0)
        x = mx.nd.ones((2,), ctx=ctx) + mx.nd.ones((2,))
        assert x.asnumpy().tolist() == [2.0, 2.0]
    with pytest.raises(MXNetError, match="'cpu_shared'"):
        Context('tpu', 0)


def test_mxnet_error_is_a_runtime_error_and_value_errors_are_both():
    from engine.base import MXNetValueError
    assert issubclass(MXNetError, RuntimeError)
    assert issubclass(MXNetValueError, MXNetError) and issubclass(MXNetValueError, ValueError)
