"""Kernel benchmarks: median time, GFLOP/s (or GB/s), and ratios to a plain NumPy reference,
to PyTorch CPU (when installed) and, for im2col, C++ vs Numba; all measured in one run with the
same thread count.

    python benchmarks/kernels.py                    # table + results/kernels.json
    python benchmarks/kernels.py --repeat 5 --only conv
    python benchmarks/kernels.py --ctx gpu          # kernels/cuda vs PyTorch CUDA (needs a GPU)

On the GPU the same shapes run through the CUDA twins (kernels/cuda, same functions and
arguments), timed with device synchronization; the NumPy and im2col-Numba columns are CPU-only,
and memory-bound kernels are also given as a fraction of the measured device copy bandwidth.

Shapes are float32. "fwd+bwd" is forward plus every backward kernel of the op. "% peak" is the
fraction of the measured sgemm rate (GFLOP/s rows) or of the measured copy bandwidth (GB/s rows).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# running this file puts its folder first on sys.path, where it would shadow the `kernels` package
sys.path = [p for p in sys.path if os.path.abspath(p or '.') != HERE]

# PyTorch is timed in its own process with the environment this script was started with: importing
# the engine sets thread-pool variables (OpenBLAS, libgomp) that PyTorch's libraries would read too.
START_ENV = dict(os.environ)
TORCH_PEER = '--torch-peer' in sys.argv
if not TORCH_PEER:
    import engine  # noqa: F401,E402  (before numpy: engine sets OpenBLAS's thread timeout, read when numpy loads)
import numpy as np  # noqa: E402

if not TORCH_PEER:
    from kernels.cpu import conv as kconv  # noqa: E402
    from kernels.cpu import im2col as kim2col  # noqa: E402
    from kernels.cpu import pool as kpool  # noqa: E402
    from kernels.cpu import softmax as ksoftmax  # noqa: E402


class Device:
    """Where kernels run: the array module, its kernel modules, and how to wait for them."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.torch_device = 'cuda' if ctx == 'gpu' else 'cpu'
        self.xp, self.sync = np, (lambda: None)
        if TORCH_PEER:
            return
        if ctx == 'gpu':
            import cupy
            from kernels.cuda import conv, pool, softmax
            self.xp, self.conv, self.pool, self.softmax = cupy, conv, pool, softmax
            self.sync = cupy.cuda.get_current_stream().synchronize
        else:
            self.conv, self.pool, self.softmax = kconv, kpool, ksoftmax

    def put(self, a):
        return self.xp.asarray(a)

    def torch_sync(self, torch):
        if self.torch_device == 'cuda':
            torch.cuda.synchronize()


DEV = Device('cpu')
CONV_SHAPES = [  # N, C, H, W, K, kernel, stride, pad
    (64, 1, 28, 28, 32, 3, 1, 1),
    (64, 32, 14, 14, 32, 5, 1, 0),
    (16, 64, 56, 56, 64, 3, 1, 1),
    (16, 3, 224, 224, 64, 7, 2, 3),
]


def timeit(fn, repeat, sync=None):
    sync = sync or DEV.sync
    fn()
    sync()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def sgemm_gflops(repeat):
    n = 8192 if DEV.ctx == 'gpu' else 2048
    a = DEV.put(np.random.rand(n, n).astype(np.float32))
    t = timeit(lambda: a @ a, repeat)
    return 2 * n ** 3 / t / 1e9


def copy_gbps(repeat):
    """Device-to-device copy bandwidth (bytes read + written), the ceiling of memory-bound kernels."""
    a = DEV.xp.empty(1 << 28, np.uint8)
    b = DEV.xp.empty_like(a)
    return 2 * a.nbytes / timeit(lambda: b.__setitem__(Ellipsis, a), repeat) / 1e9


def _ttime(torch, fn, repeat):
    return timeit(fn, repeat, sync=lambda: DEV.torch_sync(torch))


def _t(torch, a, grad=False):
    return torch.from_numpy(np.array(a)).to(DEV.torch_device).requires_grad_(grad)


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _conv_data(n, c, h, w, k, ks):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, c, h, w), dtype=np.float32), rng.standard_normal((k, c, ks, ks), dtype=np.float32)


def _conv_name(n, c, h, w, k, ks, s, p):
    return f'conv2d N{n} C{c} {h}x{w} K{k} {ks}x{ks}/s{s}p{p}'


def conv_rows(repeat, tt):
    rows = []
    for n, c, h, w, k, ks, s, p in CONV_SHAPES:
        x_h, w_h = _conv_data(n, c, h, w, k, ks)
        x, wt, b = DEV.put(x_h), DEV.put(w_h), DEV.put(np.zeros(k, np.float32))
        args = ((s, s), (p, p), (1, 1), 1)
        K = DEV.conv
        y = K.conv2d_forward(x, wt, b, *args)
        dy = DEV.xp.ones_like(y)
        flops = 2 * y.size * c * ks * ks

        def fwd():
            K.conv2d_forward(x, wt, b, *args)

        def fwdbwd():
            K.conv2d_forward(x, wt, b, *args)
            K.conv2d_backward_data(dy, wt, x.shape, *args)
            K.conv2d_backward_weight(dy, x, wt.shape, *args)
            K.conv2d_backward_bias(dy)
        name = _conv_name(n, c, h, w, k, ks, s, p)
        t_np = _numpy_conv_time(x_h, w_h, s, p, repeat) if DEV.ctx == 'cpu' else None
        rows.append(_row(name, 'fwd', flops, timeit(fwd, repeat), t_np, tt.get(f'{name}|fwd')))
        rows.append(_row(name, 'fwd+bwd', 3 * flops, timeit(fwdbwd, repeat), None, tt.get(f'{name}|fwd+bwd')))
    return rows


def _numpy_conv_time(x, w, s, p, repeat):
    """A plain NumPy reference: sliding windows + one einsum (no im2col extension, no Numba)."""
    def run():
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]
        return np.einsum('nchwij,kcij->nkhw', win, w, optimize=True)
    return timeit(run, max(1, repeat // 3))


def _torch_conv(torch, x, w, b, s, p, repeat, backward):
    tx, tw, tb = (_t(torch, a, backward) for a in (x, w, b))

    def run():
        y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
        if backward:
            y.backward(torch.ones_like(y))
    return _ttime(torch, run, repeat)


def _row(name, mode, flops, t, t_numpy, t_torch, unit='GFLOP/s'):
    return {'kernel': name, 'mode': mode, 'time_ms': 1e3 * t, 'rate': flops / t / 1e9, 'unit': unit,
            'vs_numpy': (t_numpy / t) if t_numpy else None, 'vs_torch': (t_torch / t) if t_torch else None}


POOL_NAME = 'max_pool2d 2x2/2 (64,32,28,28)'


def _pool_data():
    return np.random.default_rng(0).standard_normal((64, 32, 28, 28), dtype=np.float32)


def _torch_pool(torch, x_h, repeat, backward):
    tx = _t(torch, x_h, backward)

    def run():
        out = torch.nn.functional.max_pool2d(tx, 2)
        if backward:
            out.backward(torch.ones_like(out))
    return _ttime(torch, run, repeat)


def pool_rows(repeat, tt):
    x_h = _pool_data()
    x, P = DEV.put(x_h), DEV.pool
    y, idx = P.max_pool2d_forward(x, (2, 2), (2, 2))
    dy = DEV.xp.ones_like(y)
    nbytes = x.nbytes + y.nbytes

    def numpy_ref():
        return x_h.reshape(64, 32, 14, 2, 14, 2).max(axis=(3, 5))

    fwd = timeit(lambda: P.max_pool2d_forward(x, (2, 2), (2, 2)), repeat)
    both = timeit(lambda: (P.max_pool2d_forward(x, (2, 2), (2, 2)),
                           P.max_pool2d_backward(dy, idx, x.shape)), repeat)
    name = POOL_NAME
    t_np = timeit(numpy_ref, repeat) if DEV.ctx == 'cpu' else None
    return [_row(name, 'fwd', nbytes, fwd, t_np, tt.get(f'{name}|fwd'), 'GB/s'),
            _row(name, 'fwd+bwd', 2 * nbytes, both, None, tt.get(f'{name}|fwd+bwd'), 'GB/s')]


CE_SHAPES = ((256, 10), (256, 1000))


def _ce_data(n, k):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, k), dtype=np.float32), rng.integers(0, k, n).astype(np.float32)


def _torch_ce(torch, x_h, lab_h, repeat, backward):
    tx = _t(torch, x_h, backward)
    tl = _t(torch, lab_h.astype(np.int64))

    def run():
        out = torch.nn.functional.cross_entropy(tx, tl, reduction='none')
        if backward:
            out.backward(torch.ones_like(out))
    return _ttime(torch, run, repeat)


def softmax_ce_rows(repeat, tt):
    rows = []
    for n, k in CE_SHAPES:
        x_h, lab_h = _ce_data(n, k)
        x, lab, S = DEV.put(x_h), DEV.put(lab_h), DEV.softmax
        nbytes = x.nbytes

        def numpy_ref():
            m = x_h.max(axis=1, keepdims=True)
            lse = np.log(np.exp(x_h - m).sum(axis=1)) + m[:, 0]
            return lse - x_h[np.arange(n), lab_h.astype(int)]

        def fwdbwd():
            loss, prob = S.softmax_cross_entropy_forward(x, lab, -1, True)
            S.softmax_cross_entropy_backward(DEV.xp.ones_like(loss), prob, lab, -1, True)

        name = f'softmax_ce ({n},{k})'
        fwd = timeit(lambda: S.softmax_cross_entropy_forward(x, lab, -1, True), repeat)
        t_np = timeit(numpy_ref, repeat) if DEV.ctx == 'cpu' else None
        rows.append(_row(name, 'fwd', nbytes, fwd, t_np, tt.get(f'{name}|fwd'), 'GB/s'))
        rows.append(_row(name, 'fwd+bwd', 2 * nbytes, timeit(fwdbwd, repeat), None, tt.get(f'{name}|fwd+bwd'),
                         'GB/s'))
    return rows


DENSE_NAME = 'dense 784->300 batch 100'


def _dense_data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((100, 784), dtype=np.float32), rng.standard_normal((300, 784), dtype=np.float32),
            np.zeros(300, np.float32))


def dense_rows(repeat, tt):
    x, w, b = _dense_data()
    flops = 2 * 100 * 784 * 300
    from engine.ops.linalg import _fc_kernel
    xd, wd, bd = DEV.put(x), DEV.put(w), DEV.put(b)
    t = timeit(lambda: _fc_kernel(xd, wd, bd), repeat)
    t_np = timeit(lambda: x @ w.T + b, repeat) if DEV.ctx == 'cpu' else None
    return [_row(DENSE_NAME, 'fwd', flops, t, t_np, tt.get(f'{DENSE_NAME}|fwd'))]


def torch_times(torch, repeat, only):
    """PyTorch's time for every row, keyed 'name|mode' (run in the peer process)."""
    tt = {}
    if 'conv' in only:
        for shape in CONV_SHAPES:
            n, c, h, w, k, ks, s, p = shape
            x, wt = _conv_data(n, c, h, w, k, ks)
            for mode, bwd in (('fwd', False), ('fwd+bwd', True)):
                tt[f'{_conv_name(*shape)}|{mode}'] = _torch_conv(torch, x, wt, np.zeros(k, np.float32), s, p,
                                                                 repeat, bwd)
    if 'pool' in only:
        for mode, bwd in (('fwd', False), ('fwd+bwd', True)):
            tt[f'{POOL_NAME}|{mode}'] = _torch_pool(torch, _pool_data(), repeat, bwd)
    if 'softmax_ce' in only:
        for n, k in CE_SHAPES:
            for mode, bwd in (('fwd', False), ('fwd+bwd', True)):
                tt[f'softmax_ce ({n},{k})|{mode}'] = _torch_ce(torch, *_ce_data(n, k), repeat, bwd)
    if 'dense' in only:
        tx, tw, tb = (_t(torch, a) for a in _dense_data())
        tt[f'{DENSE_NAME}|fwd'] = _ttime(torch, lambda: torch.nn.functional.linear(tx, tw, tb), repeat)
    return tt


def torch_peer(args):
    """torch_times in a fresh process (see START_ENV): {} without PyTorch (or CUDA for --ctx gpu)."""
    cmd = [sys.executable, os.path.abspath(__file__), '--torch-peer', '--ctx', args.ctx, '--repeat',
           str(args.repeat), '--threads', str(args.threads), '--only', *args.only]
    r = subprocess.run(cmd, env=START_ENV, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'PyTorch peer failed:\n{r.stderr[-2000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


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
    p.add_argument('--only', nargs='*', default=['im2col', 'conv', 'pool', 'softmax_ce', 'dense'])
    p.add_argument('--ctx', choices=['cpu', 'gpu'], default='cpu',
                   help='gpu: the kernels/cuda twins on GPU 0 against PyTorch CUDA')
    p.add_argument('--out', default=None, help='JSON path (default results/kernels[_gpu].json)')
    p.add_argument('--torch-peer', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    global DEV
    if args.torch_peer:
        DEV = Device(args.ctx)
        torch = _torch()
        ok = torch is not None and (args.ctx == 'cpu' or torch.cuda.is_available())
        if ok:
            torch.set_num_threads(args.threads)
        print(json.dumps(torch_times(torch, args.repeat, args.only) if ok else {}))
        return None
    args.out = args.out or os.path.join(HERE, 'results', f"kernels{'_gpu' if args.ctx == 'gpu' else ''}.json")
    import engine
    if args.ctx == 'gpu':
        if engine.num_gpus() == 0:
            return 'kernels.py --ctx gpu: no GPU visible (CuPy missing or no device)'
        DEV = Device('gpu')
        args.only = [g for g in args.only if g != 'im2col']   # the C++/Numba comparison is CPU-only
    engine.set_num_threads(args.threads)
    tt = torch_peer(args)
    peak = sgemm_gflops(args.repeat)
    bandwidth = copy_gbps(args.repeat)
    device = f'{os.cpu_count()} CPU cores, {args.threads} threads' if args.ctx == 'cpu' else \
        DEV.xp.cuda.runtime.getDeviceProperties(0)['name'].decode()
    print(f'device: {device}; BLAS: {blas_info()}')
    print(f'measured sgemm (float32): {peak:.0f} GFLOP/s; copy bandwidth: {bandwidth:.1f} GB/s')
    groups = {'conv': lambda: conv_rows(args.repeat, tt), 'pool': lambda: pool_rows(args.repeat, tt),
              'softmax_ce': lambda: softmax_ce_rows(args.repeat, tt),
              'dense': lambda: dense_rows(args.repeat, tt), 'im2col': lambda: im2col_rows(args.repeat)}
    rows = []
    print(f"{'kernel':<42}{'mode':<9}{'ms':>9}{'rate':>10} {'unit':<8}{'vs numpy':>9}{'vs torch':>9}{'% peak':>9}")
    for g in args.only:
        for r in groups[g]():
            if r['unit'] == 'GFLOP/s':
                r['frac_of_sgemm'] = r['rate'] / peak
            else:
                r['frac_of_copy'] = r['rate'] / bandwidth
            rows.append(r)
            fmt = lambda v: f'{v:8.2f}x' if v else f"{'-':>9}"  # noqa: E731
            frac = f"{100 * r.get('frac_of_sgemm', r.get('frac_of_copy', 0)):8.0f}%"
            print(f"{r['kernel']:<42}{r['mode']:<9}{r['time_ms']:9.2f}{r['rate']:10.1f} {r['unit']:<8}"
                  f"{fmt(r['vs_numpy'])}{fmt(r['vs_torch'])}{frac}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        peer = (f"PyTorch {'CUDA' if args.ctx == 'gpu' else 'CPU'}, in its own process with this script's "
                "starting environment") if tt else None
        json.dump({'ctx': args.ctx, 'device': device, 'threads': args.threads, 'sgemm_gflops': peak,
                   'copy_gbps': bandwidth, 'blas': blas_info(), 'peer': peer, 'rows': rows}, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
