"""Run by tests/distributed/test_mpi.py under `mpiexec -n 2`: one scenario per invocation.

    train   LeNet on scikit-learn digits, 20 steps with DistributedTrainer (SGD momentum) and with
            Trainer(kvstore='horovod') (Adam); rank 0 also trains the same model in this process
            alone on the whole global batch and prints the largest parameter difference
    shapes  rank 1 builds a wider model: broadcast_parameters must fail clearly on every rank
    raise / kill / hang   rank 1 raises, is killed, or stops answering at step 3
"""
import os
import signal
import sys
import time

import engine as mx  # first: the engine's OpenBLAS setting is read when numpy loads
import numpy as np

import engine.distributed as hvd
from engine import autograd, gluon
from engine.gluon import nn

STEPS, GLOBAL_BATCH = 20, 64


def lenet(hidden=32):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 3, padding=1, in_channels=1, activation='relu'), nn.MaxPool2D(2),
            nn.Conv2D(16, 3, padding=1, in_channels=6, activation='relu'), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dense(hidden, in_units=64, activation='relu'), nn.Dense(10, in_units=hidden))
    return net


def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.float32)


def values(net):
    return [p.data().asnumpy() for p in net.collect_params().values()]


def make(seed, hidden=32):
    mx.random.seed(seed)
    net = lenet(hidden)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    return net


def train_distributed(net, trainer, loader, global_step, fault=None):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for step, (x, y) in enumerate(loader):
        if step == STEPS:
            break
        if fault is not None and step == 3 and hvd.rank() == 1:
            fault()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(GLOBAL_BATCH if global_step else x.shape[0])


def train_alone(net, trainer, x, y, n):
    """One process, one context, the whole global batch: rank r's part of batch k is the k-th
    batch of its SplitSampler part."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    per = GLOBAL_BATCH // n
    part = len(x) // n
    for step in range(STEPS):
        idx = np.concatenate([np.arange(r * part + step * per, r * part + (step + 1) * per) for r in range(n)])
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x[idx])), mx.nd.array(y[idx]))
        loss.backward()
        trainer.step(GLOBAL_BATCH)


def loader(x, y):
    n, r = hvd.size(), hvd.rank()
    sampler = gluon.data.SplitSampler(len(x), num_parts=n, part_index=r)
    return gluon.data.DataLoader(gluon.data.ArrayDataset(x, y), batch_size=GLOBAL_BATCH // n, sampler=sampler)


def scenario_train(out_dir):
    x, y = digits()
    n, r = hvd.size(), hvd.rank()
    results = {}
    for name, opt, params in [('dist_trainer', 'sgd', {'learning_rate': 0.1, 'momentum': 0.9}),
                              ('kv_horovod', 'adam', {'learning_rate': 0.01})]:
        net = make(seed=100 + r)                    # every rank starts elsewhere ...
        before = np.concatenate([v.ravel() for v in values(net)])
        hvd.broadcast_parameters(net.collect_params(), root_rank=0)
        after = np.concatenate([v.ravel() for v in values(net)])
        gathered = hvd.allgather(mx.nd.array(after[None])).asnumpy()
        print(f'RANK {r} {name} broadcast: changed={not np.array_equal(before, after)} '
              f'ranks_equal={bool((gathered == gathered[0]).all())}', flush=True)
        if name == 'dist_trainer':
            trainer = hvd.DistributedTrainer(net.collect_params(), opt, dict(params))
        else:
            trainer = gluon.Trainer(net.collect_params(), opt, dict(params), kvstore=mx.kv.create('horovod'))
        train_distributed(net, trainer, loader(x, y), global_step=name == 'kv_horovod')
        results[name] = values(net)
        hvd.save_parameters(net, os.path.join(out_dir, f'{name}.params'))
        trainer.save_states(os.path.join(out_dir, f'{name}.states'))
        if r == 0:
            ref = make(seed=100)
            ref_trainer = gluon.Trainer(ref.collect_params(), opt, dict(params))
            train_alone(ref, ref_trainer, x, y, n)
            diff = max(float(np.abs(a - b).max()) for a, b in zip(values(ref), results[name]))
            moved = max(float(np.abs(a - b).max()) for a, b in zip(values(make(seed=100)), results[name]))
            print(f'RANK 0 {name} max_diff_vs_one_process={diff:.3g} moved={moved:.3g}', flush=True)
        mine = np.concatenate([v.ravel() for v in results[name]])
        gathered = hvd.allgather(mx.nd.array(mine[None])).asnumpy()
        print(f'RANK {r} {name} final ranks_equal={bool((gathered == gathered[0]).all())}', flush=True)


def scenario_shapes(out_dir):
    net = make(seed=1, hidden=32 if hvd.rank() == 0 else 48)
    try:
        hvd.broadcast_parameters(net.collect_params(), root_rank=0)
    except mx.MXNetError as e:
        print(f'RANK {hvd.rank()} MXNetError: {e}', flush=True)
        return
    print(f'RANK {hvd.rank()} no error', flush=True)


def scenario_collectives():
    """Each collective against its definition, with values that differ per rank."""
    n, r = hvd.size(), hvd.rank()
    assert hvd.local_size() == n and hvd.local_rank() == r          # one machine
    a = mx.nd.array(np.arange(6, dtype=np.float32).reshape(2, 3) * (r + 1))
    total = np.arange(6, dtype=np.float32).reshape(2, 3) * sum(range(1, n + 1))
    np.testing.assert_allclose(hvd.allreduce(a, average=False).asnumpy(), total)
    np.testing.assert_allclose(hvd.allreduce(a).asnumpy(), total / n)
    np.testing.assert_allclose(a.asnumpy(), np.arange(6).reshape(2, 3) * (r + 1))   # not in place
    # many arrays, several dtypes, buckets far smaller than the arrays (ENGINE_DIST_BUCKET_MB)
    arrays = [mx.nd.array(np.full(k, r + 1.0), dtype=dt) for k, dt in
              [(5, 'float32'), (300, 'float32'), (7, 'float64'), (40, 'float16'), (1, 'float32'),
               (5_000_000, 'float32')]]          # 20 MB: reduced in place, in 16 MiB slices
    hvd.grouped_allreduce_(arrays, average=False, prescale_factor=2.0, postscale_factor=0.5)
    for t in arrays:
        np.testing.assert_allclose(t.asnumpy().astype(np.float64), sum(range(1, n + 1)))
    b = mx.nd.array(np.full((2,), float(r)))
    hvd.broadcast_(b, root_rank=1)
    np.testing.assert_array_equal(b.asnumpy(), [1.0, 1.0])
    g = hvd.allgather(mx.nd.array(np.full((r + 1, 2), float(r)))).asnumpy()
    np.testing.assert_array_equal(g, np.concatenate([np.full((q + 1, 2), float(q)) for q in range(n)]))
    kv = mx.kv.create('horovod')
    assert (kv.type, kv.rank, kv.num_workers) == ('horovod', r, n)
    v = [mx.nd.ones((3,)) * (r + 1), mx.nd.ones((3,), ctx=mx.cpu(1)) * (r + 1)]   # 2 devices per rank
    kv.pushpull('w', v)
    for t in v:
        np.testing.assert_allclose(t.asnumpy(), 2 * sum(range(1, n + 1)))
    parts = hvd.allgather(mx.nd.array(np.array(list(gluon.data.DistributedSampler(10, n, r, seed=4)),
                                               dtype=np.float32))).asnumpy()
    assert len(set(parts.tolist())) == len(parts) == 10 // n * n    # disjoint, same seed on every rank
    mx.random.seed(r)                                   # deferred shapes: broadcast at first forward
    net = nn.Dense(3)
    net.initialize()
    hvd.broadcast_parameters(net.collect_params())
    net(mx.nd.ones((1, 5)))
    w = hvd.allgather(mx.nd.array(net.weight.data().asnumpy()[None])).asnumpy()
    assert (w == w[0]).all() and w.shape == (n, 3, 5)
    check_reused_and_odd_buffers()
    print(f'RANK {r} collectives OK', flush=True)


def check_reused_and_odd_buffers():
    """The cached reduction plans (same arrays step after step, then one replaced), arrays that
    are views, integer dtypes and the out-of-place allreduce against their definitions."""
    from engine.base import MXNetError
    from engine.context import cpu
    from engine.distributed import collectives
    n, r = hvd.size(), hvd.rank()
    base = np.zeros((4, 6), np.float32)
    arrays = [mx.nd.zeros(s, dtype=dt) for s, dt in [((3, 4), 'float32'), ((100,), 'float32'),
                                                     ((100,), 'float32'), ((2, 2, 2), 'float64'),
                                                     ((7,), 'float16')]]
    arrays.append(mx.nd.NDArray(base[:, ::2], cpu()))            # a strided view: packed and written back
    for step in range(3):                                        # a plan is built once, then reused
        for k, t in enumerate(arrays):
            t._data[...] = (r + 1) * (k + 1) * (step + 1)
        hvd.grouped_allreduce_(arrays)
        for k, t in enumerate(arrays):
            np.testing.assert_allclose(t.asnumpy(), (k + 1) * (step + 1) * (n + 1) / 2)
    assert (base[:, 1::2] == 0).all() and (base[:, ::2] == 3 * 6 * (n + 1) / 2).all()
    plan = collectives._host_plan([t._data for t in arrays])
    arrays[2] = mx.nd.ones((5, 5)) * (r + 1)                      # another array: a new plan
    hvd.grouped_allreduce_(arrays, average=False)
    assert collectives._host_plan([t._data for t in arrays]) is not plan
    np.testing.assert_allclose(arrays[2].asnumpy(), np.full((5, 5), n * (n + 1) / 2))
    np.testing.assert_allclose(arrays[0].asnumpy(), 1 * 3 * (n + 1) / 2 * n)
    view = mx.nd.NDArray((np.arange(12, dtype=np.float32).reshape(3, 4) * (r + 1)).T, cpu())
    assert not view._data.flags.c_contiguous
    np.testing.assert_allclose(hvd.allreduce(view).asnumpy(), np.arange(12).reshape(3, 4).T * (n + 1) / 2)
    assert float(view._data[1, 0]) == 1 * (r + 1)                # the input is left alone
    for dt in ('int32', 'int64'):
        got = hvd.allreduce(mx.nd.array([1, 2, 3], dtype=dt) * (r + 1), average=False)
        assert got.dtype == np.dtype(dt) and got.asnumpy().tolist() == [q * n * (n + 1) // 2 for q in (1, 2, 3)]
        try:
            hvd.allreduce_(mx.nd.array([1, 2], dtype=dt))        # every rank fails alike, before any call
        except MXNetError as e:
            assert 'floating-point' in str(e) and dt in str(e), e
        else:
            raise AssertionError(f'averaging {dt} arrays must be refused')
    big = mx.nd.ones((5_000_000,)) * (r + 1)                     # alone, over 16 MiB: in slices
    hvd.allreduce_(big, average=False, prescale_factor=2.0)
    assert float(big.min().asscalar()) == float(big.max().asscalar()) == n * (n + 1)
    check_device_arrays_staged_through_the_host()


class DeviceStandIn:
    """Stands in for a CuPy array where CuPy is missing: its memory is reached only through
    get() and set(), so the collectives take the host-staging route (no NCCL)."""

    def __init__(self, host):
        self._host = host
        self.device = type('Device', (), {'id': 0})()
        self.dtype, self.shape, self.size, self.nbytes = host.dtype, host.shape, host.size, host.nbytes

    def get(self):
        return self._host.copy()

    def set(self, value):
        assert value.shape == self.shape and value.dtype == self.dtype
        self._host[...] = value


def check_device_arrays_staged_through_the_host():
    from engine.distributed import collectives, nccl
    if nccl.usable():
        return                          # a real NCCL would be handed the stand-ins
    n, r = hvd.size(), hvd.rank()
    hosts = [np.full(7, r + 1.0, np.float32), np.full((2, 3), r + 1.0, np.float16), np.full(3, r + 1.0)]
    collectives.allreduce_buffers([DeviceStandIn(h) for h in hosts], prescale=2.0, postscale=0.25)
    for h in hosts:
        np.testing.assert_allclose(h.astype(np.float64), n * (n + 1) / 4)
    hosts = [np.full(5, float(r), np.float32), np.full((2, 2), float(r))]
    collectives.broadcast_buffers([DeviceStandIn(h) for h in hosts], root_rank=1)
    assert all((h == 1.0).all() for h in hosts)


def scenario_gpu():
    """NCCL (and, with ENGINE_DIST_NCCL=0, host staging) on GPU buffers; DistributedTrainer on a
    GPU equals a plain Trainer there."""
    from engine.distributed import nccl
    assert nccl.usable(), 'cupy.cuda.nccl is not importable'
    n = hvd.size()
    for route in ('1', '0'):
        os.environ['ENGINE_DIST_NCCL'] = route
        arrays = [mx.nd.array(np.full(k, 1.5), dtype=dt, ctx=mx.gpu(0)) for k, dt in
                  [(5, 'float32'), (3000, 'float32'), (7, 'float64'), (40, 'float16')]]
        hvd.grouped_allreduce_(arrays, average=False, postscale_factor=2.0)
        for t in arrays:
            np.testing.assert_allclose(t.asnumpy().astype(np.float64), 3.0 * n)
    x, y = digits()
    nets = []
    for dist in (True, False):
        mx.random.seed(5)
        net = lenet()
        net.initialize(mx.init.Xavier(), ctx=mx.gpu(0))
        net.hybridize()
        params = {'learning_rate': 0.05, 'momentum': 0.9}
        trainer = (hvd.DistributedTrainer(net.collect_params(), 'sgd', params) if dist
                   else gluon.Trainer(net.collect_params(), 'sgd', params))
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        for step in range(5):
            xb = mx.nd.array(x[step * 32:(step + 1) * 32], ctx=mx.gpu(0))
            yb = mx.nd.array(y[step * 32:(step + 1) * 32], ctx=mx.gpu(0))
            with autograd.record():
                loss = loss_fn(net(xb), yb)
            loss.backward()
            trainer.step(32)
        nets.append(values(net))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*nets))
    assert diff < 1e-5, diff
    print(f'RANK {hvd.rank()} gpu OK (max diff {diff:.2g})', flush=True)


def scenario_fault(kind):
    def fault():
        if kind == 'raise':
            raise ValueError('a bug in rank 1')
        if kind == 'kill':
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)                              # hang: never reaches the next allreduce

    x, y = digits()
    net = make(seed=1)
    hvd.broadcast_parameters(net.collect_params())
    trainer = hvd.DistributedTrainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    train_distributed(net, trainer, loader(x, y), global_step=False, fault=fault)
    print(f'RANK {hvd.rank()} finished', flush=True)


if __name__ == '__main__':
    mx.set_num_threads(1)
    hvd.init()
    what, out = sys.argv[1], sys.argv[2]
    if what == 'train':
        scenario_train(out)
    elif what == 'gpu':
        scenario_gpu()
    elif what == 'collectives':
        scenario_collectives()
    elif what == 'shapes':
        scenario_shapes(out)
    else:
        scenario_fault(what)
