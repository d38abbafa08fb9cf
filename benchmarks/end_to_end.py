"""End-to-end training-step and inference throughput: engine eager vs engine hybridized vs
PyTorch CPU eager (when installed), side by side in one run with the same thread count.

    python benchmarks/end_to_end.py                 # all workloads, table + results/end_to_end.json
    python benchmarks/end_to_end.py --only lenet32 tiny_mlp --steps 20
    python benchmarks/end_to_end.py --ctx gpu       # on mx.gpu(0) vs PyTorch CUDA (needs a GPU)
    python benchmarks/end_to_end.py --step-overhead # Trainer.step vs per-parameter updates

A training step is forward + loss + backward + optimizer update (Adam). Times are medians.
Also reports the first hybridized call (trace + compile) with a cold and a warm kernel cache, and
the hybridized step written the way users write scripts ("user" column: a fresh process that
imports numpy before the engine, SGD with momentum, hybridize(static_alloc=True,
static_shape=True), nd.waitall() after each step), which should match the harness's figure.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# this folder holds kernels.py, which must not shadow the `kernels` package
sys.path = [p for p in sys.path if os.path.abspath(p or '.') != HERE]

# PyTorch is timed in its own process with the environment this script was started with: importing
# the engine sets thread-pool variables (OpenBLAS, libgomp) that PyTorch's libraries would read too.
START_ENV = dict(os.environ)
TORCH_PEER = '--torch-peer' in sys.argv
if not TORCH_PEER:
    import engine  # noqa: F401,E402  (the user-style variant imports numpy first: either order works)
import numpy as np  # noqa: E402


def engine_model(name):
    from engine.gluon import nn
    from engine.gluon.model_zoo import vision
    if name == 'lenet':
        return vision.get_model('lenet')
    if name.startswith('mlp'):
        sizes = [int(s) for s in name.split(':')[1].split('-')]
        net = nn.HybridSequential()
        for s in sizes[1:-1]:
            net.add(nn.Dense(s, activation='relu'))
        net.add(nn.Dense(sizes[-1]))
        return net
    if name == 'resnet18':
        return vision.resnet18_v1(classes=10)
    if name == 'unet':
        return vision.get_model('unet', depth=3, base_filters=16, in_channels=1, classes=1)
    raise ValueError(name)


def _torch_models():
    import importlib.util
    spec = importlib.util.spec_from_file_location('torch_models', os.path.join(HERE, 'torch_models.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_model(name):
    tm = _torch_models()
    if name == 'lenet':
        return tm.lenet()
    if name.startswith('mlp'):
        return tm.mlp([int(s) for s in name.split(':')[1].split('-')])
    if name == 'resnet18':
        return tm.resnet18(classes=10)
    if name == 'unet':
        return tm.UNet(depth=3, base=16, cin=1, classes=1)
    raise ValueError(name)


# name: (model, input shape, classes or None for a segmentation target)
WORKLOADS = {
    'tiny_mlp': ('mlp:10-10-10', (1, 10), 10),
    'mlp_b100': ('mlp:784-300-10', (100, 784), 10),
    'lenet32': ('lenet', (32, 1, 28, 28), 10),
    'lenet256': ('lenet', (256, 1, 28, 28), 10),
    'resnet18': ('resnet18', (16, 3, 49, 49), 10),
    'unet': ('unet', (4, 1, 64, 64), None),
}


def median_time(fn, steps, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def bench_engine(model, shape, classes, hybridize, steps, device='cpu'):
    import engine as mx
    from engine import autograd, gluon, nd
    mx.random.seed(0)
    ctx = mx.gpu(0) if device == 'gpu' else mx.cpu()
    net = engine_model(model)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    x = nd.random.normal(shape=shape, ctx=ctx)
    if classes:
        y = nd.array(np.random.randint(0, classes, shape[0]), ctx=ctx)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    else:
        y = nd.array((np.random.rand(shape[0], 1, *shape[2:]) > 0.5).astype(np.float32), ctx=ctx)
        loss_fn = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True)
    net(x)
    if hybridize:
        net.hybridize()
        loss_fn.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
    t0 = time.perf_counter()

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(shape[0])
        mx.nd.waitall()    # GPU kernels run asynchronously: time until they are done
    step()
    first = time.perf_counter() - t0
    train = median_time(step, steps)
    infer = median_time(lambda: (net(x), mx.nd.waitall()), steps)
    return {'train_s': train, 'infer_s': infer, 'first_call_s': first}


def bench_torch(model, shape, classes, steps, compile_=False, device='cpu'):
    import torch
    torch.manual_seed(0)
    dev = 'cuda' if device == 'gpu' else 'cpu'
    net = torch_model(model).to(dev)
    x = torch.randn(*shape, device=dev)
    if classes:
        y = torch.randint(0, classes, (shape[0],), device=dev)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        y = (torch.rand(shape[0], 1, *shape[2:], device=dev) > 0.5).float()
        loss_fn = torch.nn.functional.binary_cross_entropy
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    fwd = torch.compile(net) if compile_ else net

    def step():
        opt.zero_grad()
        loss_fn(fwd(x), y).backward()
        opt.step()
        if dev == 'cuda':
            torch.cuda.synchronize()
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    train = median_time(step, steps)
    net.eval()
    with torch.no_grad():
        infer = median_time(lambda: (fwd(x), dev == 'cuda' and torch.cuda.synchronize()), steps)
    return {'train_s': train, 'infer_s': infer, 'first_call_s': first}


_COLD_WARM = '''
import time, numpy as np, sys
t0 = time.perf_counter()
import engine as mx
from engine import nd, autograd, gluon
import importlib.util
spec = importlib.util.spec_from_file_location('end_to_end', {here!r} + '/end_to_end.py')
e2e = importlib.util.module_from_spec(spec); spec.loader.exec_module(e2e)
engine_model = e2e.engine_model
t_import = time.perf_counter() - t0
net = engine_model('lenet'); net.initialize(); net.hybridize()
x = nd.random.normal(shape=(32, 1, 28, 28)); y = nd.array(np.arange(32) % 10)
L = gluon.loss.SoftmaxCrossEntropyLoss()
t0 = time.perf_counter()
with autograd.record():
    loss = L(net(x), y)
loss.backward()
print(time.perf_counter() - t0, t_import)
'''


_USER_STYLE = '''
import numpy as np                     # numpy first, as most scripts do
import json, time, sys
import engine as mx
from engine import autograd, gluon, nd
import importlib.util
spec = importlib.util.spec_from_file_location('end_to_end', {here!r} + '/end_to_end.py')
e2e = importlib.util.module_from_spec(spec); spec.loader.exec_module(e2e)
model, shape, classes = e2e.WORKLOADS[{workload!r}]
mx.set_num_threads({threads})
net = e2e.engine_model(model)
net.initialize(mx.init.Xavier())
net.hybridize(static_alloc=True, static_shape=True)
x = nd.array(np.random.randn(*shape).astype(np.float32))
if classes:
    y = nd.array(np.random.randint(0, classes, shape[0]))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
else:
    y = nd.array((np.random.rand(shape[0], 1, *shape[2:]) > 0.5).astype(np.float32))
    loss_fn = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True)
trainer = gluon.Trainer(net.collect_params(), 'sgd', {{'learning_rate': 0.01, 'momentum': 0.9}})
times = []
for i in range({steps} + 3):
    t0 = time.perf_counter()
    with autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    trainer.step(shape[0])
    nd.waitall()
    times.append(time.perf_counter() - t0)
print(json.dumps({{'train_s': float(np.median(times[3:]))}}))
'''


def user_style(workload, steps, threads):
    """The hybridized training step of a user's script, in a fresh process (see _USER_STYLE)."""
    code = _USER_STYLE.format(here=HERE, workload=workload, steps=steps, threads=threads)
    r = subprocess.run([sys.executable, '-c', code], env=START_ENV, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'user-style run failed for {workload}:\n{r.stderr[-2000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def first_call_cold_warm():
    """First hybridized LeNet training call in a fresh process: empty cache, then warm cache."""
    cache = tempfile.mkdtemp(prefix='engine-cache-')
    env = dict(os.environ, ENGINE_CACHE_DIR=cache)
    out = []
    for _ in range(2):
        r = subprocess.run([sys.executable, '-c', _COLD_WARM.format(here=HERE)], env=env,
                           capture_output=True, text=True, check=True)
        out.append(float(r.stdout.split()[0]))
    return {'cold_s': out[0], 'warm_s': out[1]}


def step_overhead(rounds=6, calls=300):
    """Trainer.step on the tiny MLP's parameters (one multi-tensor kernel call) vs updating them
    one by one through the same Updater (`updater(i, grad, weight)`, the per-parameter path),
    alternating in one process: {optimizer: (step us, one-by-one us)}, medians of the rounds."""
    import engine as mx
    from engine import autograd, gluon, nd
    out = {}
    for name, params in (('sgd', {'learning_rate': 0.01, 'momentum': 0.9}), ('adam', {'learning_rate': 1e-3})):
        net = engine_model(WORKLOADS['tiny_mlp'][0])
        net.initialize(mx.init.Xavier())
        net.hybridize()
        with autograd.record():
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(nd.ones((1, 10))), nd.array([3]))
        loss.backward()
        trainer = gluon.Trainer(net.collect_params(), name, params)
        trainer.step(1)
        updater, ps = trainer._updaters[0], list(net.collect_params().values())

        def one_by_one():
            trainer._prepare(1)
            for i, p in enumerate(ps):
                updater(i, p.grad(), p.data())
        ts = {'multi': [], 'single': []}
        for _ in range(rounds):
            for key, fn in (('multi', lambda: trainer.step(1)), ('single', one_by_one)):
                ts[key].append(median_time(fn, calls))
        out[name] = (1e6 * float(np.median(ts['multi'])), 1e6 * float(np.median(ts['single'])))
    return out


def blas_info():
    """Which BLAS build and kernel NumPy runs (OPENBLAS_CORETYPE changes it; see RESULTS.md)."""
    from threadpoolctl import threadpool_info
    return [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} x{d.get('num_threads')}"
            for d in threadpool_info() if d.get('user_api') == 'blas']


def torch_peer(workload, steps, device, compile_=False):
    """bench_torch for one workload in a fresh process (see START_ENV), or None without PyTorch."""
    cmd = [sys.executable, os.path.abspath(__file__), '--torch-peer', workload, '--steps', str(steps),
           '--ctx', device] + (['--torch-compile'] if compile_ else [])
    r = subprocess.run(cmd, env=START_ENV, capture_output=True, text=True)
    if r.returncode != 0:
        if 'No module named' in r.stderr and 'torch' in r.stderr:
            return None
        raise RuntimeError(f'PyTorch peer failed for {workload}:\n{r.stderr[-2000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def device_name(ctx):
    if ctx == 'cpu':
        return f'{os.cpu_count()} CPU cores'
    import cupy
    return cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--only', nargs='*', default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--torch-compile', action='store_true', help='also time torch.compile (slow to start)')
    p.add_argument('--ctx', choices=['cpu', 'gpu'], default='cpu',
                   help='gpu: engine on mx.gpu(0) against PyTorch CUDA on the same device')
    p.add_argument('--out', default=None, help='JSON path (default results/end_to_end[_gpu].json)')
    p.add_argument('--step-overhead', action='store_true',
                   help='only time Trainer.step (one multi-tensor call) vs per-parameter updates')
    p.add_argument('--torch-peer', metavar='WORKLOAD', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step_overhead:
        for name, (multi, single) in step_overhead().items():
            print(f'{name}: Trainer.step {multi:.1f} us, per-parameter updates {single:.1f} us '
                  f'({single / multi:.2f}x)')
        return
    if args.torch_peer:     # the PyTorch side, in its own process (see torch_peer)
        import torch
        torch.set_num_threads(args.threads)
        model, shape, classes = WORKLOADS[args.torch_peer]
        print(json.dumps(bench_torch(model, shape, classes, args.steps, args.torch_compile, args.ctx)))
        return
    args.out = args.out or os.path.join(HERE, 'results', f"end_to_end{'_gpu' if args.ctx == 'gpu' else ''}.json")
    import engine
    if args.ctx == 'gpu' and engine.num_gpus() == 0:
        sys.exit('end_to_end.py --ctx gpu: no GPU visible to the engine (CuPy missing or no device)')
    engine.set_num_threads(args.threads)
    have_torch = importlib.util.find_spec('torch') is not None
    print(f'device: {device_name(args.ctx)}; BLAS: {blas_info()}')
    rows = []
    for w in args.only:
        model, shape, classes = WORKLOADS[w]
        r = {'workload': w, 'batch': shape[0],
             'eager': bench_engine(model, shape, classes, False, args.steps, args.ctx),
             'hybrid': bench_engine(model, shape, classes, True, args.steps, args.ctx)}
        if args.ctx == 'cpu':
            r['user_style'] = user_style(w, args.steps, args.threads)
        if have_torch:
            r['torch'] = torch_peer(w, args.steps, args.ctx)
            if args.torch_compile:
                r['torch_compile'] = torch_peer(w, args.steps, args.ctx, compile_=True)
        rows.append(r)
        _print_row(r)
    peer = (f"PyTorch {'CUDA' if args.ctx == 'gpu' else 'CPU'} eager, in its own process with this "
            "script's starting environment") if have_torch else None
    result = {'ctx': args.ctx, 'device': device_name(args.ctx), 'threads': args.threads, 'blas': blas_info(),
              'workloads': rows, 'peer': peer}
    if 'lenet32' in args.only and args.ctx == 'cpu':
        result['lenet_first_call'] = first_call_cold_warm()
        print(f"LeNet first hybridized call: cold cache {result['lenet_first_call']['cold_s']:.2f} s, "
              f"warm cache {result['lenet_first_call']['warm_s']:.2f} s")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'wrote {args.out}')


_HEADER_DONE = []


def _print_row(r):
    if not _HEADER_DONE:
        print(f"{'workload':<10}{'eager ms':>10}{'hybrid ms':>11}{'user ms':>9}{'torch ms':>10}{'hyb/eager':>11}"
              f"{'hyb/torch':>11}{'user/torch':>12}{'infer hyb ms':>14}{'infer torch ms':>16}")
        _HEADER_DONE.append(1)
    e, h, t = r['eager']['train_s'], r['hybrid']['train_s'], r.get('torch', {}).get('train_s')
    ti = r.get('torch', {}).get('infer_s')
    tt = f'{1e3 * t:10.2f}' if t else f"{'-':>10}"
    ratio = f'{t / h:10.2f}x' if t else f"{'-':>11}"
    tis = f'{1e3 * ti:16.2f}' if ti else f"{'-':>16}"
    u = r.get('user_style', {}).get('train_s')
    us = f'{1e3 * u:9.2f}' if u else f"{'-':>9}"
    uratio = f'{t / u:11.2f}x' if u and t else f"{'-':>12}"
    print(f"{r['workload']:<10}{1e3 * e:10.2f}{1e3 * h:11.2f}{us}{tt}{e / h:10.2f}x{ratio}{uratio}"
          f"{1e3 * r['hybrid']['infer_s']:14.2f}{tis}")


if __name__ == '__main__':
    main()
