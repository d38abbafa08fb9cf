"""Data-parallel benchmark (engine.distributed over mpi4py) on this machine.

    python benchmarks/distributed.py --steps 30   # launches the runs below and prints the tables
    python benchmarks/distributed.py --only allreduce [--against OLD_collectives.py]

1. Allreduce throughput under `mpiexec -n 2`: raw mpi4py `Allreduce(IN_PLACE, buf)` on one
   float32 buffer (and with the datatype named, `[buf, MPI.FLOAT]`) vs the library's gradient path
   (`allreduce_buffers`, what DistributedTrainer calls) and `hvd.allreduce` (an NDArray averaged
   into a new array) on the same bytes, and as 16 arrays (packed into one bucket and back) vs 16
   raw calls.
   With `--against OLD.py` (an earlier engine/distributed/collectives.py, e.g. from `git show`),
   that module is loaded beside the current one and both are timed in the same processes.
2. A hybridized LeNet training step, global batch 256, 28x28 inputs: 1 rank x 2 threads vs
   2 ranks x 1 thread (each rank batch 128, gradients averaged).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
# this folder holds benchmarks/kernels.py, which would shadow the engine's `kernels` package
sys.path = [p for p in sys.path if Path(p or '.').resolve() != HERE.parent]

import engine  # noqa: E402,F401  (first: the engine's OpenBLAS setting is read when numpy loads)
import numpy as np  # noqa: E402

SIZES = [1 << 12, 1 << 16, 1 << 20, 1 << 24, 1 << 26]     # bytes


def _medians(fns, seconds=1.0, warm=3, quantile=None):
    """Median seconds per call of each of `fns` (or, with `quantile`, (median, that quantile)),
    called in turn within every round (after a barrier), so that the load of the (shared) machine
    drifting over time hits all alike. They are collectives: rank 0 sizes the round count from the
    warm-up and broadcasts it, so every rank calls them equally."""
    from engine.distributed._mpi import comm
    comm().Barrier()
    t0 = time.perf_counter()
    for _ in range(warm):
        for fn in fns:
            fn()
    count = np.array([max(warm, min(2000, int(seconds * warm / (time.perf_counter() - t0))))])
    comm().Bcast(count, root=0)
    times = [[] for _ in fns]
    for _ in range(int(count[0])):
        for fn, ts in zip(fns, times):
            comm().Barrier()            # each call starts with the ranks in step
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    if quantile is None:
        return [statistics.median(ts) for ts in times]
    return [(statistics.median(ts), float(np.quantile(ts, quantile))) for ts in times]


def worker_allreduce():
    import engine.distributed as hvd
    import engine as mx
    from engine.distributed._mpi import comm, mpi
    from engine.distributed.collectives import allreduce_buffers
    hvd.init()
    c, in_place, MPI = comm(), mpi().IN_PLACE, mpi()
    rows = []
    for nbytes in SIZES:
        n = nbytes // 4
        raw = np.ones(n, np.float32)
        spec = [raw, MPI.FLOAT]
        one = [np.ones(n, np.float32)]
        nd = mx.nd.ones((n,))
        many = [np.ones(n // 16, np.float32) for _ in range(16)]
        times = _medians([
            lambda: c.Allreduce(in_place, raw), lambda: c.Allreduce(in_place, spec),
            lambda: allreduce_buffers(one), lambda: hvd.allreduce(nd),
            lambda: [c.Allreduce(in_place, a) for a in many], lambda: allreduce_buffers(many)], quantile=0.1)
        names = ('raw', 'spec', 'one', 'nd', 'raw16', 'many')
        row = {'bytes': nbytes, **{k: t[0] for k, t in zip(names, times)}}
        row.update({k + '_p10': t[1] for k, t in zip(names, times)})
        rows.append(row)
    if hvd.rank() == 0:
        print('RESULT ' + json.dumps(rows), flush=True)


def worker_against(path):
    """The current collectives vs an earlier collectives.py (loaded beside it, on the same MPI
    world), on the small messages where the Python per call shows; each in its own buffers."""
    import importlib.util
    import engine as mx
    import engine.distributed as hvd
    from engine.distributed import collectives as new
    from engine.distributed._mpi import comm, mpi
    hvd.init()
    spec = importlib.util.spec_from_file_location('engine.distributed._collectives_before', path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    c, in_place = comm(), mpi().IN_PLACE
    lenet = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 784), (120,), (84, 120), (84,), (10, 84), (10,)]

    def cases(mod):
        one, nd = [np.ones(1024, np.float32)], mx.nd.ones((1024,))
        many = [np.ones(64, np.float32) for _ in range(16)]
        grads = [np.ones(s, np.float32) for s in lenet]
        return [lambda: mod.allreduce_buffers(one), lambda: mod.allreduce(nd),
                lambda: mod.allreduce_buffers(many), lambda: mod.allreduce_buffers(grads)]
    raw = np.ones(1024, np.float32)
    fns = [lambda: c.Allreduce(in_place, raw)] + cases(new) + cases(old)
    times = _medians(fns, quantile=0.1)
    if hvd.rank() == 0:
        print('RESULT ' + json.dumps(times), flush=True)


def worker_lenet(global_batch, steps):
    import engine as mx
    import engine.distributed as hvd
    from engine import autograd, gluon
    from engine.gluon import nn
    hvd.init()
    n, r = hvd.size(), hvd.rank()
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 5, padding=2, in_channels=1, activation='relu'), nn.MaxPool2D(2),
            nn.Conv2D(16, 5, padding=2, in_channels=6, activation='relu'), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dense(120, in_units=784, activation='relu'),
            nn.Dense(84, in_units=120, activation='relu'), nn.Dense(10, in_units=84))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    hvd.broadcast_parameters(net.collect_params())
    trainer = hvd.DistributedTrainer(net.collect_params(), 'sgd', {'learning_rate': 0.01, 'momentum': 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rs = np.random.RandomState(r)
    per = global_batch // n
    x = mx.nd.array(rs.rand(per, 1, 28, 28).astype(np.float32))
    y = mx.nd.array(rs.randint(0, 10, per).astype(np.float32))

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(per)
        loss.wait_to_read()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        hvd.barrier()
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    med = hvd.allreduce(mx.nd.array([statistics.median(times)]), average=False).asscalar() / n
    if r == 0:
        print('RESULT ' + json.dumps({'ranks': n, 'step_s': float(med)}), flush=True)


def _launch(ranks, threads, args):
    exe = Path(sys.executable).with_name('mpiexec')
    cmd = ([str(exe if exe.exists() else 'mpiexec'), '-n', str(ranks)] if ranks > 1 else []) + \
        [sys.executable, str(HERE)] + args
    env = dict(os.environ, ENGINE_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    for line in out.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    raise SystemExit(f'{" ".join(cmd)} failed:\n{out.stdout}\n{out.stderr}')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--worker', choices=['allreduce', 'lenet', 'against'])
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--only', choices=['allreduce', 'lenet'], help='run one of the two parts')
    p.add_argument('--against', metavar='OLD.py', help='also time this earlier collectives.py')
    args = p.parse_args()
    if args.worker == 'against':
        return worker_against(args.against)
    if args.worker == 'allreduce':
        return worker_allreduce()
    if args.worker == 'lenet':
        return worker_lenet(256, args.steps)

    if args.only != 'lenet':
        _allreduce_table()
    if args.only != 'allreduce':
        _lenet_table(args.steps)
    if args.against:
        _against_table(str(Path(args.against).resolve()))


def _allreduce_table():
    load = os.getloadavg()
    rows = _launch(2, 1, ['--worker', 'allreduce'])
    print(f'allreduce, 2 ranks, float32, median per call (load average before: {load[0]:.2f}, '
          f'after: {os.getloadavg()[0]:.2f})')
    print('| size | raw Allreduce, 1 buffer | raw, datatype named | engine buffers, 1 array | vs raw '
          '| hvd.allreduce (average, new array) | vs raw | raw, 16 buffers (16 calls) '
          '| engine, 16 arrays (1 fused call) | vs raw 16 calls |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for r in rows:
        cell = {k: f"{r[k] * 1e6:.1f} us" if r['bytes'] < 1 << 20 else f"{r[k] * 1e6:.0f} us"
                for k in ('raw', 'spec', 'one', 'nd', 'raw16', 'many')}
        size = f"{r['bytes'] >> 20} MiB" if r['bytes'] >= 1 << 20 else f"{r['bytes'] >> 10} KiB"
        print(f"| {size} | {cell['raw']} | {cell['spec']} | {cell['one']} | {r['raw'] / r['one']:.2f}x "
              f"| {cell['nd']} | {r['raw'] / r['nd']:.2f}x | {cell['raw16']} | {cell['many']} "
              f"| {r['raw16'] / r['many']:.2f}x |")
    # the fastest tenth of the calls: the fixed cost per call, less of the other jobs' preemptions
    print('\nsame runs, 10th percentile per call, vs raw: ' + '; '.join(
        f"{r['bytes'] >> 10} KiB engine {r['raw_p10'] / r['one_p10']:.2f}x, hvd.allreduce "
        f"{r['raw_p10'] / r['nd_p10']:.2f}x ({r['raw_p10'] * 1e6:.1f} / {r['one_p10'] * 1e6:.1f} / "
        f"{r['nd_p10'] * 1e6:.1f} us)" for r in rows if r['bytes'] < 1 << 20))


def _against_table(path):
    t = _launch(2, 1, ['--worker', 'against', '--against', path])
    print(f'\ncurrent vs {path}, 2 ranks, median (10th percentile) per call; raw Allreduce of 4 KiB: '
          f'{t[0][0] * 1e6:.1f} ({t[0][1] * 1e6:.1f}) us')
    print('| call | current | earlier | earlier / current |')
    print('| --- | ---: | ---: | ---: |')
    names = ['allreduce_buffers, 1 array of 4 KiB', 'hvd.allreduce, 4 KiB, average into a new array',
             'allreduce_buffers, 16 arrays of 256 B', "allreduce_buffers, LeNet's 10 gradients (430 KB)"]
    for name, cur, before in zip(names, t[1:5], t[5:9]):
        print(f'| {name} | {cur[0] * 1e6:.1f} ({cur[1] * 1e6:.1f}) us | {before[0] * 1e6:.1f} '
              f'({before[1] * 1e6:.1f}) us | {before[0] / cur[0]:.2f}x |')


def _lenet_table(steps):
    one = _launch(1, 2, ['--worker', 'lenet', '--steps', str(steps)])
    two = _launch(2, 1, ['--worker', 'lenet', '--steps', str(steps)])
    print('\nhybridized LeNet training step, global batch 256 (28x28), median')
    print('| layout | step | samples/s |')
    print('| --- | ---: | ---: |')
    for name, r in [('1 rank x 2 threads', one), ('2 ranks x 1 thread (batch 128 each)', two)]:
        print(f"| {name} | {r['step_s'] * 1e3:.1f} ms | {256 / r['step_s']:.0f} |")


if __name__ == '__main__':
    main()
