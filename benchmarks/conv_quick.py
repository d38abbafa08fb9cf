"""Quick conv2d timing (float32): kernels.cpu.conv vs PyTorch CPU when installed.

    python benchmarks/conv_quick.py [--repeat 10] [--threads 2]

"fwd+bwd" is forward + data, weight and bias gradients (torch: x, w and b
all require grad). Times are the minimum over --repeat runs. PyTorch runs in
a separate process, with the environment this script was started with
(importing ``kernels`` sets OMP_WAIT_POLICY, which would change torch's
OpenMP behaviour): its OpenMP pool spins after each op and would slow
whichever library runs next on these cores (and vice versa).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

_START_ENV = dict(os.environ)  # before kernels is imported (see docstring)

# Run as a script, sys.path[0] is this folder, and a benchmarks/kernels.py
# there would shadow the ``kernels`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

SHAPES = [
    # N, C, H, W, K, k, stride, pad
    (64, 1, 28, 28, 32, 3, 1, 1),
    (64, 32, 14, 14, 32, 5, 1, 0),
    (16, 64, 56, 56, 64, 3, 1, 1),
    (16, 3, 224, 224, 64, 7, 2, 3),
]


def best_time(fn, repeat):
    fn()  # warm-up: JIT compilation, workspace allocation
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours(x, w, b, s, p, repeat):
    from kernels.cpu import conv

    st, pd, dl = (s, s), (p, p), (1, 1)

    def fwd():
        return conv.conv2d_forward(x, w, b, st, pd, dl, 1)

    y = fwd()
    dy = np.ones_like(y)

    def fwd_bwd():
        conv.conv2d_forward(x, w, b, st, pd, dl, 1)
        conv.conv2d_backward_data(dy, w, x.shape, st, pd, dl, 1)
        conv.conv2d_backward_weight(dy, x, w.shape, st, pd, dl, 1)
        conv.conv2d_backward_bias(dy)

    return best_time(fwd, repeat), best_time(fwd_bwd, repeat)


def torch_times(x, w, b, s, p, repeat):
    import torch
    import torch.nn.functional as F

    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(w).requires_grad_(True)
    tb = torch.from_numpy(b).requires_grad_(True)

    def fwd():
        with torch.no_grad():
            F.conv2d(tx, tw, tb, s, p)

    def fwd_bwd():
        y = F.conv2d(tx, tw, tb, s, p)
        y.backward(torch.ones_like(y))

    return best_time(fwd, repeat), best_time(fwd_bwd, repeat)


def make_inputs(N, C, H, W, K, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C, k, k), dtype=np.float32) * 0.1
    b = rng.standard_normal(K, dtype=np.float32)
    return x, w, b


def run_torch_subprocess(args):
    """{shape index: (fwd, fwd_bwd)} from a child process, or None without torch."""
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return None
    except ImportError:
        return None
    cmd = [sys.executable, __file__, "--torch-only", "--repeat", str(args.repeat),
           "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=_START_ENV)
    return {int(k): v for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items()}


def torch_only(args):
    import torch

    torch.set_num_threads(args.threads)
    times = {}
    for i, (N, C, H, W, K, k, s, p) in enumerate(SHAPES):
        times[i] = torch_times(*make_inputs(N, C, H, W, K, k), s, p, args.repeat)
    print(json.dumps(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_only:
        return torch_only(args)
    ref = run_torch_subprocess(args)
    print(f"{'shape':36s} {'algo':>6s} {'fwd ms':>8s} {'GF/s':>5s} {'f+b ms':>8s} {'GF/s':>5s}"
          + ("  torch: fwd ms  f+b ms  speed-up fwd  f+b" if ref else ""))
    for i, (N, C, H, W, K, k, s, p) in enumerate(SHAPES):
        x, w, b = make_inputs(N, C, H, W, K, k)
        OH = (H + 2 * p - k) // s + 1
        OW = (W + 2 * p - k) // s + 1
        flops = 2.0 * N * K * OH * OW * C * k * k
        tf, tfb = ours(x, w, b, s, p, args.repeat)
        from kernels.cpu import conv

        algo = conv._choose_algo("forward", x.shape, w.shape, (s, s), (p, p), (1, 1), 1)
        name = f"N{N} C{C} {H}x{W} K{K} {k}x{k} s{s} p{p}"
        line = (f"{name:36s} {algo:>6s} {tf * 1e3:8.2f} {flops / tf / 1e9:5.0f} "
                f"{tfb * 1e3:8.2f} {3 * flops / tfb / 1e9:5.0f}")
        if ref:
            pf, pfb = ref[i]
            line += f"  {pf * 1e3:13.2f} {pfb * 1e3:7.2f}  {pf / tf:12.2f} {pfb / tfb:4.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
