"""Threads, as PyTorch offers them: concurrent inference on one warm hybridized net, concurrent
eager training of separate nets, and a fresh block's first call made from two threads."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.gluon import nn


@pytest.fixture
def fast_switching():
    """Switch threads every microsecond, so a race inside a call shows up in a short test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run_threads(fn, n=2):
    errors = []

    def wrapped(k):
        try:
            fn(k)
        except BaseException as e:   # re-raised in the main thread
            errors.append(e)
    threads = [threading.Thread(target=wrapped, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(256, activation="relu"), nn.Dense(256, activation="tanh"), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    return net


def test_concurrent_inference_on_one_warm_net_equals_serial(fast_switching):
    net = _mlp()
    net.hybridize()
    rs = np.random.RandomState(0)
    xs = [nd.array(rs.randn(64, 64).astype('float32')) for _ in range(6)]
    expected = [net(x).asnumpy() for x in xs]
    got = {}

    def infer(k):
        for it in range(25):
            i = (it + k) % len(xs)
            got.setdefault((k, i), []).append(net(xs[i]).asnumpy())
    _run_threads(infer)
    for (k, i), outs in got.items():
        for out in outs:
            np.testing.assert_allclose(out, expected[i], rtol=1e-6, atol=1e-7,
                                       err_msg=f'thread {k}, input {i}')


def test_concurrent_inference_at_different_batch_sizes_equals_serial(fast_switching):
    """Threads calling the one program of the dynamic batch axis, each at its own batch size."""
    net = _mlp()
    net.hybridize()
    rs = np.random.RandomState(3)
    xs = [nd.array(rs.randn(b, 32).astype('float32')) for b in (8, 16, 24, 40, 56, 64)]
    expected = [net(x).asnumpy() for x in xs]
    assert any(type(f).__name__ == '_Dynamic' for f in net._cached_op._families.values())
    got = []

    def infer(k):
        for it in range(20):
            i = (2 * it + k) % len(xs)
            got.append((i, net(xs[i]).asnumpy()))
    _run_threads(infer)
    for i, out in got:
        np.testing.assert_allclose(out, expected[i], rtol=1e-6, atol=1e-7, err_msg=f'batch {xs[i].shape[0]}')


class _SlowCountingInit(mx.init.Initializer):
    """Counts the arrays it fills and takes long enough that a second thread's first call overlaps."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def _init_weight(self, name, arr):
        import time
        self.calls += 1
        time.sleep(0.02)
        arr[:] = np.random.uniform(-0.5, 0.5, arr.shape)


@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_a_fresh_blocks_first_call_from_two_threads_initializes_once(hybridize, fast_switching):
    init = _SlowCountingInit()
    net = nn.HybridSequential()
    net.add(nn.Dense(8), nn.Dense(4))          # deferred: input sizes come from the first call
    net.initialize(init)
    if hybridize:
        net.hybridize()
    x = nd.array(np.random.RandomState(1).randn(3, 5).astype('float32'))
    start, outs = threading.Barrier(2), {}

    def first_call(k):
        start.wait()
        outs[k] = net(x).asnumpy()
    _run_threads(first_call)
    assert init.calls == 2                      # two weights, each filled once
    expected = net(x).asnumpy()
    for k in outs:
        np.testing.assert_allclose(outs[k], expected, rtol=1e-6, err_msg=f'thread {k}')


_TRAIN_TWO_NETS = textwrap.dedent('''
    import threading, numpy as np
    import engine as mx
    import kernels.cpu.parallel as par
    from engine import nd, autograd, gluon
    from engine.gluon import nn
    par.PARALLEL_MIN_WORK = 0        # every twin kernel launches its parallel version

    def make(seed):
        net = nn.HybridSequential()
        net.add(nn.Conv2D(4, 3, activation='relu'), nn.MaxPool2D(), nn.Flatten(), nn.Dense(10))
        net.initialize(mx.init.Uniform(0.3))
        rs = np.random.RandomState(seed)
        net(nd.zeros((8, 3, 16, 16)))
        for p in net.collect_params().values():
            p.set_data(rs.uniform(-0.3, 0.3, p.shape).astype('float32'))
        return net

    def train(net, seed, out):
        tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        rs = np.random.RandomState(seed)
        for _ in range(4):
            x = nd.array(rs.randn(8, 3, 16, 16).astype('float32'))
            y = nd.array(rs.randint(0, 10, 8).astype('float32'))
            with autograd.record():
                l = loss(net(x), y)
            l.backward()
            tr.step(8)
        out[seed] = [p.data().asnumpy() for p in net.collect_params().values()]

    serial, threaded = {}, {}
    for s in (0, 1):
        train(make(s), s, serial)
    nets = [make(0), make(1)]
    ts = [threading.Thread(target=train, args=(nets[s], s, threaded)) for s in (0, 1)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    for s in (0, 1):
        for a, b in zip(serial[s], threaded[s]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print('SAME')
''')


def test_concurrent_eager_training_of_two_nets_equals_serial():
    """Run in a subprocess: Numba's workqueue layer aborts the process on concurrent launches."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, '-c', _TRAIN_TWO_NETS], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0 and 'SAME' in r.stdout, r.stderr[-3000:]
