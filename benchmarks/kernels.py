"""Kernel benchmarks: median time, GFLOP/s (or GB/s), and ratios to a plain NumPy reference,
to PyTorch CPU (when installed) and, for im2col, C++ vs Numba; all measured in one run with the
same thread count.

    python benchmarks/kernels.py                    # table + results/kernels.json
    python benchmarks/kernels.py --repeat 5 --only conv

Shapes are float32. "fwd+bwd" is forward plus every backward kernel of the op.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# running this file puts its folder first on sys.path, where it would shadow the `kernels` package
sys.path = [p for p in sys.path if os.path.abspath(p or '.') != HERE]

from kernels.cpu import conv as kconv  # noqa: E402
from kernels.cpu import im2col as kim2col  # noqa: E402
from kernels.cpu import pool as kpool  # noqa: E402
from kernels.cpu import softmax as ksoftmax  # noqa: E402
CONV_SHAPES = [  # N, C, H, W, K, kernel, stride, pad
    (64, 1, 28, 28, 32, 3, 1, 1),
    (64, 32, 14, 14, 32, 5, 1, 0),
    (16, 64, 56, 56, 64, 3, 1, 1),
    (16, 3, 224, 224, 64, 7, 2, 3),
]


def timeit(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def sgemm_gflops(repeat):
    a = np.random.rand(2048, 2048).astype(np.float32)
    t = timeit(lambda: a @ a, repeat)
    return 2 * 2048 ** 3 / t / 1e9


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def conv_rows(repeat, torch):
    rows = []
    for n, c, h, w, k, ks, s, p in CONV_SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        wt = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        b = np.zeros(k, np.float32)
        args = ((s, s), (p, p), (1, 1), 1)
        y = kconv.conv2d_forward(x, wt, b, *args)
        dy = np.ones_like(y)
        flops = 2 * y.size * c * ks * ks

        def fwd():
            kconv.conv2d_forward(x, wt, b, *args)

        def fwdbwd():
            kconv.conv2d_forward(x, wt, b, *args)
            kconv.conv2d_backward_data(dy, wt, x.shape, *args)
            kconv.conv2d_backward_weight(dy, x, wt.shape, *args)
            kconv.conv2d_backward_bias(dy)
        name = f'conv2d N{n} C{c} {h}x{w} K{k} {ks}x{ks}/s{s}p{p}'
        rows.append(_row(name, 'fwd', flops, timeit(fwd, repeat), _numpy_conv_time(x, wt, s, p, repeat),
                         _torch_conv(torch, x, wt, b, s, p, repeat, False)))
        rows.append(_row(name, 'fwd+bwd', 3 * flops, timeit(fwdbwd, repeat), None,
                         _torch_conv(torch, x, wt, b, s, p, repeat, True)))
    return rows


def _numpy_conv_time(x, w, s, p, repeat):
    """A plain NumPy reference: sliding windows + one einsum (no im2col extension, no Numba)."""
    def run():
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]
        return np.einsum('nchwij,kcij->nkhw', win, w, optimize=True)
    return timeit(run, max(1, repeat // 3))


def _torch_conv(torch, x, w, b, s, p, repeat, backward):
    if torch is None:
        return None
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_(backward) for a in (x, w, b))

    def run():
        y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
        if backward:
            y.backward(torch.ones_like(y))
    return timeit(run, repeat)


def _row(name, mode, flops, t, t_numpy, t_torch, unit='GFLOP/s'):
    return {'kernel': name, 'mode': mode, 'time_ms': 1e3 * t, 'rate': flops / t / 1e9, 'unit': unit,
            'vs_numpy': (t_numpy / t) if t_numpy else None, 'vs_torch': (t_torch / t) if t_torch else None}


def pool_rows(repeat, torch):
    x = np.random.default_rng(0).standard_normal((64, 32, 28, 28), dtype=np.float32)
    y, idx = kpool.max_pool2d_forward(x, (2, 2), (2, 2))
    dy = np.ones_like(y)
    nbytes = x.nbytes + y.nbytes

    def numpy_ref():
        return x.reshape(64, 32, 14, 2, 14, 2).max(axis=(3, 5))

    def tq(backward):
        if torch is None:
            return None
        tx = torch.from_numpy(x.copy()).requires_grad_(backward)

        def run():
            out = torch.nn.functional.max_pool2d(tx, 2)
            if backward:
                out.backward(torch.ones_like(out))
        return timeit(run, repeat)
    fwd = timeit(lambda: kpool.max_pool2d_forward(x, (2, 2), (2, 2)), repeat)
    both = timeit(lambda: (kpool.max_pool2d_forward(x, (2, 2), (2, 2)),
                           kpool.max_pool2d_backward(dy, idx, x.shape)), repeat)
    name = 'max_pool2d 2x2/2 (64,32,28,28)'
    return [_row(name, 'fwd', nbytes, fwd, timeit(numpy_ref, repeat), tq(False), 'GB/s'),
            _row(name, 'fwd+bwd', 2 * nbytes, both, None, tq(True), 'GB/s')]


def softmax_ce_rows(repeat, torch):
    rows = []
    for n, k in ((256, 10), (256, 1000)):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, k), dtype=np.float32)
        lab = rng.integers(0, k, n).astype(np.float32)
        nbytes = x.nbytes

        def numpy_ref():
            m = x.max(axis=1, keepdims=True)
            lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
            return lse - x[np.arange(n), lab.astype(int)]

        def fwdbwd():
            loss, prob = ksoftmax.softmax_cross_entropy_forward(x, lab, -1, True)
            ksoftmax.softmax_cross_entropy_backward(np.ones_like(loss), prob, lab, -1, True)

        def tq(backward):
            if torch is None:
                return None
            tx = torch.from_numpy(x.copy()).requires_grad_(backward)
            tl = torch.from_numpy(lab.astype(np.int64))

            def run():
                out = torch.nn.functional.cross_entropy(tx, tl, reduction='none')
                if backward:
                    out.backward(torch.ones_like(out))
            return timeit(run, repeat)
        name = f'softmax_ce ({n},{k})'
        fwd = timeit(lambda: ksoftmax.softmax_cross_entropy_forward(x, lab, -1, True), repeat)
        rows.append(_row(name, 'fwd', nbytes, fwd, timeit(numpy_ref, repeat), tq(False), 'GB/s'))
        rows.append(_row(name, 'fwd+bwd', 2 * nbytes, timeit(fwdbwd, repeat), None, tq(True), 'GB/s'))
    return rows


def dense_rows(repeat, torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 784), dtype=np.float32)
    w = rng.standard_normal((300, 784), dtype=np.float32)
    b = np.zeros(300, np.float32)
    flops = 2 * 100 * 784 * 300
    from engine.ops.linalg import _fc_kernel
    t = timeit(lambda: _fc_kernel(x, w, b), repeat)
    t_np = timeit(lambda: x @ w.T + b, repeat)
    tt = None
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        tt = timeit(lambda: torch.nn.functional.linear(tx, tw, tb), repeat)
    return [_row('dense 784->300 batch 100', 'fwd', flops, t, t_np, tt)]


def im2col_rows(repeat):
    x = np.random.default_rng(0).standard_normal((16, 64, 56, 56), dtype=np.float32)
    args = ((3, 3), (1, 1), (1, 1), (1, 1))
    cols = kim2col.im2col_numba(x, *args)
    t_numba = timeit(lambda: kim2col.im2col_numba(x, *args), repeat)
    rows = []
    if kim2col.HAVE_CPP_IM2COL:
        t_cpp = timeit(lambda: kim2col.im2col(x, *args), repeat)
        r = _row('im2col C++ (16,64,56,56) 3x3', 'fwd', cols.nbytes, t_cpp, None, None, 'GB/s')
        r['cpp_vs_numba'] = t_numba / t_cpp
        rows.append(r)
    rows.append(_row('im2col Numba (16,64,56,56) 3x3', 'fwd', cols.nbytes, t_numba, None, None, 'GB/s'))
    return rows


def blas_info():
    """Which BLAS build and kernel NumPy runs (OPENBLAS_CORETYPE changes it; see RESULTS.md)."""
    from threadpoolctl import threadpool_info
    return [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} x{d.get('num_threads')}"
            for d in threadpool_info() if d.get('user_api') == 'blas']


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--repeat', type=int, default=10)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--only', nargs='*', default=['conv', 'pool', 'softmax_ce', 'dense', 'im2col'])
    p.add_argument('--out', default=os.path.join(HERE, 'results', 'kernels.json'))
    args = p.parse_args()
    import engine
    engine.set_num_threads(args.threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    peak = sgemm_gflops(args.repeat)
    print(f'BLAS: {blas_info()}')
    print(f'measured sgemm (2048x2048 float32, {args.threads} threads): {peak:.0f} GFLOP/s')
    groups = {'conv': lambda: conv_rows(args.repeat, torch), 'pool': lambda: pool_rows(args.repeat, torch),
              'softmax_ce': lambda: softmax_ce_rows(args.repeat, torch),
              'dense': lambda: dense_rows(args.repeat, torch), 'im2col': lambda: im2col_rows(args.repeat)}
    rows = []
    print(f"{'kernel':<42}{'mode':<9}{'ms':>9}{'rate':>10} {'unit':<8}{'vs numpy':>9}{'vs torch':>9}{'% sgemm':>9}")
    for g in args.only:
        for r in groups[g]():
            if r['unit'] == 'GFLOP/s':
                r['frac_of_sgemm'] = r['rate'] / peak
            rows.append(r)
            fmt = lambda v: f'{v:8.2f}x' if v else f"{'-':>9}"  # noqa: E731
            frac = f"{100 * r['frac_of_sgemm']:8.0f}%" if 'frac_of_sgemm' in r else f"{'-':>9}"
            print(f"{r['kernel']:<42}{r['mode']:<9}{r['time_ms']:9.2f}{r['rate']:10.1f} {r['unit']:<8}"
                  f"{fmt(r['vs_numpy'])}{fmt(r['vs_torch'])}{frac}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump({'threads': args.threads, 'sgemm_gflops': peak, 'blas': blas_info(), 'peer': 'PyTorch CPU' if torch else None,
                   'rows': rows}, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
