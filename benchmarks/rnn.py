"""The fused LSTM layer (seq 35, batch 32, hidden 256, 2 layers, input 256): engine eager and
hybridized vs PyTorch CPU's nn.LSTM, a training step (forward + sum-of-squares loss + backward +
SGD update) and inference (forward without recording). PyTorch runs in its own process with the
environment this script was started with (as benchmarks/end_to_end.py does). Times are medians.
On a shared machine the load changes from minute to minute, so `--repeat R` runs R rounds, each
the engine then PyTorch back to back, and prints every round's ratios and load average.

    python benchmarks/rnn.py                     # table + results/rnn.json
    python benchmarks/rnn.py --steps 10 --threads 1 --repeat 3
    python benchmarks/rnn.py --ctx gpu           # on mx.gpu(0) vs PyTorch CUDA (results/rnn_gpu.json)
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or '.') != HERE]   # benchmarks/kernels.py shadows kernels
START_ENV = dict(os.environ)
TORCH_PEER = '--torch-peer' in sys.argv
if not TORCH_PEER:
    import engine  # noqa: F401,E402  (before numpy: the engine sets OpenBLAS's thread timeout)
import numpy as np  # noqa: E402

SEQ, BATCH, HIDDEN, LAYERS = 35, 32, 256, 2


def median_time(fn, steps, warmup=3):
    """(wall ms, CPU ms): medians over `steps` calls. The process's CPU time leaves out the time
    spent waiting for a core, which on an oversubscribed machine is most of the wall time."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)) * 1e3, float(np.median(cpu)) * 1e3


def timings(train, infer, steps):
    (tw, tc), (iw, ic) = median_time(train, steps), median_time(infer, steps)
    return {'train_ms': tw, 'infer_ms': iw, 'train_cpu_ms': tc, 'infer_cpu_ms': ic}


def bench_engine(hybridize, steps, device='cpu'):
    import engine as mx
    from engine import autograd, gluon, nd
    ctx = mx.gpu(0) if device == 'gpu' else mx.cpu()
    layer = gluon.rnn.LSTM(HIDDEN, num_layers=LAYERS, input_size=HIDDEN)
    layer.initialize(mx.init.Uniform(0.06), ctx=ctx)
    if hybridize:
        layer.hybridize()
    trainer = gluon.Trainer(layer.collect_params(), 'sgd', {'learning_rate': 1e-3})
    x = nd.array(np.random.default_rng(0).standard_normal((SEQ, BATCH, HIDDEN)), dtype='float32', ctx=ctx)

    def train():
        with autograd.record():
            loss = (layer(x) ** 2).sum()
        loss.backward()
        trainer.step(BATCH)
        nd.waitall()

    def infer():
        layer(x).wait_to_read()
        nd.waitall()
    return timings(train, infer, steps)


def bench_torch(steps, device='cpu'):
    import torch
    torch.manual_seed(0)
    dev = 'cuda' if device == 'gpu' else 'cpu'
    sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
    layer = torch.nn.LSTM(HIDDEN, HIDDEN, num_layers=LAYERS).to(dev)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)
    x = torch.tensor(np.random.default_rng(0).standard_normal((SEQ, BATCH, HIDDEN)), dtype=torch.float32,
                     device=dev)

    def train():
        opt.zero_grad()
        loss = (layer(x)[0] ** 2).sum()
        loss.backward()
        opt.step()
        sync()

    def infer():
        with torch.no_grad():
            layer(x)
        sync()
    return {**timings(train, infer, steps), 'torch': torch.__version__, 'threads': torch.get_num_threads()}


def torch_peer(steps, threads, device):
    env = dict(START_ENV, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), '--torch-peer', '--steps', str(steps), '--ctx', device]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {'error': r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'failed'}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--ctx', choices=['cpu', 'gpu'], default='cpu')
    p.add_argument('--repeat', type=int, default=1, help='rounds of engine-then-PyTorch (one table each)')
    p.add_argument('--out', default=None, help='JSON path (default results/rnn[_gpu].json)')
    p.add_argument('--torch-peer', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_peer:
        import torch
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', os.cpu_count())))
        print(json.dumps(bench_torch(args.steps, args.ctx)))
        return
    engine.set_num_threads(args.threads)
    args.out = args.out or os.path.join(HERE, 'results', f"rnn{'_gpu' if args.ctx == 'gpu' else ''}.json")
    try:
        import importlib.util
        has_torch = importlib.util.find_spec('torch') is not None
    except ValueError:
        has_torch = False
    workload = f'LSTM seq {SEQ}, batch {BATCH}, hidden {HIDDEN}, {LAYERS} layers'
    rounds = [run_round(args, has_torch) for _ in range(args.repeat)]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump({'workload': workload, 'threads': args.threads, 'ctx': args.ctx, 'rounds': rounds}, f, indent=1)
    print(f"{workload} on {args.ctx}, {args.threads} thread(s); times in ms (median of {args.steps})")
    print('wall ms (CPU ms of the process); the ratios are PyTorch / engine hybridized')
    print('| round (load avg 1 min) | pass | engine eager | engine hybridized | PyTorch | wall ratio | CPU ratio |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for k, res in enumerate(rounds):
        t = res['torch']
        load = f"{k + 1} ({res['load'][0]:.1f}-{res['load'][1]:.1f})"
        for key, label in (('train', 'training step'), ('infer', 'inference')):
            e, h = (f"{r[f'{key}_ms']:.1f} ({r[f'{key}_cpu_ms']:.1f})" for r in (res['eager'], res['hybridized']))
            if f'{key}_ms' not in t:
                print(f"| {load} | {label} | {e} | {h} | - | {t.get('error', '-')} | - |")
                continue
            pt = f"{t[f'{key}_ms']:.1f} ({t[f'{key}_cpu_ms']:.1f})"
            ratios = [t[f'{key}{u}'] / res['hybridized'][f'{key}{u}'] for u in ('_ms', '_cpu_ms')]
            print(f"| {load} | {label} | {e} | {h} | {pt} | {ratios[0]:.2f}x | {ratios[1]:.2f}x |")


def run_round(args, has_torch):
    """One round: engine eager, engine hybridized, then PyTorch; with the 1-minute load average
    before and after."""
    before = os.getloadavg()[0]
    res = {'eager': bench_engine(False, args.steps, args.ctx), 'hybridized': bench_engine(True, args.steps, args.ctx)}
    res['torch'] = torch_peer(args.steps, args.threads, args.ctx) if has_torch else {'error': 'torch not installed'}
    res['load'] = (before, os.getloadavg()[0])
    return res


if __name__ == '__main__':
    main()
