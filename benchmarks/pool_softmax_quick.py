"""Quick timings (float32) of the pooling, softmax-cross-entropy and batch-norm kernels
against PyTorch CPU when installed.

    python benchmarks/pool_softmax_quick.py [--repeat 50] [--threads 2]

Times are the minimum over --repeat runs (this VM shares its host, so medians wander).
PyTorch runs in a child process with the same thread count: its OpenMP pool spins after
each op and would slow whichever library runs next on these 2 cores. "fwd" for max
pooling is the training path (ours writes the argmax index; torch under no_grad writes
none, so the comparison favours torch); "fwd+bwd" adds the gradient wrt the input (and
gamma/beta for batch norm). Results also go to benchmarks/results/pool_softmax_quick.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# run as a script, this folder comes first on sys.path and benchmarks/kernels.py would
# shadow the kernels package: put the repository root first instead
sys.path[:] = [os.path.dirname(HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]
RESULTS = os.path.join(HERE, "results", "pool_softmax_quick.json")


def best_time(fn, repeat):
    fn()  # warm-up: JIT compilation / cache load, allocator
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 28, 28), dtype=np.float32)
    ce = {}
    for shape in [(256, 10), (256, 1000), (8, 21, 64, 64)]:
        logits = rng.standard_normal(shape, dtype=np.float32)
        label = rng.integers(0, shape[1], shape[:1] + shape[2:])
        ce[shape] = (logits, label)
    return x, ce


# ----------------------------------------------------------------------------- ours

def ours_cases(x, ce):
    from kernels.cpu import norm, pool, softmax

    y, idx = pool.max_pool2d_forward(x, 2, 2)
    dy = np.ones_like(y)
    y3, idx3 = pool.max_pool2d_forward(x, 3, 2, 1)
    dy3 = np.ones_like(y3)

    def mp_fb():
        yy, ii = pool.max_pool2d_forward(x, 2, 2)
        pool.max_pool2d_backward(dy, ii, x.shape)

    def mp3_fb():
        yy, ii = pool.max_pool2d_forward(x, 3, 2, 1)
        pool.max_pool2d_backward(dy3, ii, x.shape)

    def ap_fb():
        pool.avg_pool2d_forward(x, 2, 2)
        pool.avg_pool2d_backward(dy, x.shape, 2, 2)

    cases = {
        "maxpool 2x2/2 (64,32,28,28) fwd": lambda: pool.max_pool2d_forward(x, 2, 2),
        "maxpool 2x2/2 (64,32,28,28) fwd+bwd": mp_fb,
        "maxpool 3x3/2 p1 (64,32,28,28) fwd": lambda: pool.max_pool2d_forward(x, 3, 2, 1),
        "maxpool 3x3/2 p1 (64,32,28,28) fwd+bwd": mp3_fb,
        "avgpool 2x2/2 (64,32,28,28) fwd": lambda: pool.avg_pool2d_forward(x, 2, 2),
        "avgpool 2x2/2 (64,32,28,28) fwd+bwd": ap_fb,
    }
    for shape, (logits, label) in ce.items():
        dloss = np.ones(label.shape, np.float32)

        def fwd(logits=logits, label=label):
            return softmax.softmax_cross_entropy_forward(logits, label, 1)

        def fwd_bwd(logits=logits, label=label, dloss=dloss):
            loss, prob = softmax.softmax_cross_entropy_forward(logits, label, 1)
            softmax.softmax_cross_entropy_backward(dloss, prob, label, 1)

        cases[f"softmax-CE {shape} fwd"] = fwd
        cases[f"softmax-CE {shape} fwd+bwd"] = fwd_bwd
    g, b = np.ones(32, np.float32), np.zeros(32, np.float32)
    dyb = np.ones_like(x)

    def bn_fb():
        _, m, s = norm.batch_norm_train_forward(x, g, b, 1e-5)
        norm.batch_norm_backward(dyb, x, g, m, s)

    cases["batchnorm train (64,32,28,28) fwd"] = lambda: norm.batch_norm_train_forward(x, g, b, 1e-5)
    cases["batchnorm train (64,32,28,28) fwd+bwd"] = bn_fb
    return cases


# ----------------------------------------------------------------------------- torch

def torch_cases(x, ce):
    import torch
    import torch.nn.functional as F

    tx = torch.from_numpy(x)
    txg = tx.clone().requires_grad_(True)

    def grad_case(f):
        def run():
            out = f(txg)
            out.backward(torch.ones_like(out))
            txg.grad = None
        return run

    def nograd(f):
        def run():
            with torch.no_grad():
                f(tx)
        return run

    cases = {
        "maxpool 2x2/2 (64,32,28,28) fwd": nograd(lambda t: F.max_pool2d(t, 2, 2)),
        "maxpool 2x2/2 (64,32,28,28) fwd+bwd": grad_case(lambda t: F.max_pool2d(t, 2, 2)),
        "maxpool 3x3/2 p1 (64,32,28,28) fwd": nograd(lambda t: F.max_pool2d(t, 3, 2, 1)),
        "maxpool 3x3/2 p1 (64,32,28,28) fwd+bwd": grad_case(lambda t: F.max_pool2d(t, 3, 2, 1)),
        "avgpool 2x2/2 (64,32,28,28) fwd": nograd(lambda t: F.avg_pool2d(t, 2, 2)),
        "avgpool 2x2/2 (64,32,28,28) fwd+bwd": grad_case(lambda t: F.avg_pool2d(t, 2, 2)),
    }
    for shape, (logits, label) in ce.items():
        tl = torch.from_numpy(logits)
        tlg = tl.clone().requires_grad_(True)
        tlab = torch.from_numpy(label)

        def fwd(tl=tl, tlab=tlab):
            with torch.no_grad():
                F.cross_entropy(tl, tlab, reduction="none")

        def fwd_bwd(tlg=tlg, tlab=tlab):
            loss = F.cross_entropy(tlg, tlab, reduction="none")
            loss.backward(torch.ones_like(loss))
            tlg.grad = None

        cases[f"softmax-CE {shape} fwd"] = fwd
        cases[f"softmax-CE {shape} fwd+bwd"] = fwd_bwd
    g, b = torch.ones(32, requires_grad=True), torch.zeros(32, requires_grad=True)
    rm, rv = torch.zeros(32), torch.ones(32)

    def bn_f():
        with torch.no_grad():
            F.batch_norm(tx, rm, rv, g, b, training=True)

    def bn_fb():
        y = F.batch_norm(txg, rm, rv, g, b, training=True)
        y.backward(torch.ones_like(y))
        txg.grad = g.grad = b.grad = None

    cases["batchnorm train (64,32,28,28) fwd"] = bn_f
    cases["batchnorm train (64,32,28,28) fwd+bwd"] = bn_fb
    return cases


def run_torch_subprocess(args):
    """{case: seconds} from a child process, or None when torch is not installed."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-only", "--repeat",
           str(args.repeat), "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    x, ce = inputs()
    if args.torch_only:
        import torch

        torch.set_num_threads(args.threads)
        cases = torch_cases(x, ce)
        print(json.dumps({k: best_time(f, args.repeat) for k, f in cases.items()}))
        return
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    ours = {name: best_time(fn, args.repeat) for name, fn in ours_cases(x, ce).items()}
    ref = run_torch_subprocess(args)  # after ours: keeps its exit and spin-down out of our runs
    rows = []
    print(f"{'case':42s} {'ours ms':>9s}" + (f" {'torch ms':>9s} {'speed-up':>8s}" if ref else ""))
    for name, t in ours.items():
        row = {"case": name, "ours_ms": t * 1e3}
        line = f"{name:42s} {t * 1e3:9.3f}"
        if ref:
            row["torch_ms"] = ref[name] * 1e3
            line += f" {ref[name] * 1e3:9.3f} {ref[name] / t:7.2f}x"
        rows.append(row)
        print(line, flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"threads": args.threads, "repeat": args.repeat, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
