"""Helpers shared by the examples: command-line options, data paths, a training loop with a
progress bar, accuracy evaluation and training-curve plots.

Every example imports this module as `common` (the examples folder is put on `sys.path` by the
example itself, so `python examples/X.py` works from any directory).
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import engine as mx
from engine import autograd, gluon, nd

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / 'shared' / 'data'


# ---- command line ------------------------------------------------------------------------------

def parser(doc, epochs, batch_size, lr, data_root=None):
    """The options every example takes; examples add their own with `p.add_argument`."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--eager', action='store_true',
                   help='run the model eagerly (default: hybridized, i.e. traced and compiled)')
    def dflt(v):
        return '(default: depends on the model)' if v is None else f'(default {v})'
    p.add_argument('--epochs', type=int, default=epochs, help=f'training epochs {dflt(epochs)}')
    p.add_argument('--batch-size', type=int, default=batch_size, help=dflt(batch_size))
    p.add_argument('--lr', type=float, default=lr, help=f'learning rate {dflt(lr)}')
    p.add_argument('--plot', metavar='PNG', help='save the training curves to this PNG file')
    if data_root is not None:
        p.add_argument('--data-root', default=str(data_root),
                       help=f'where the data lives (default {data_root})')
    p.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    return p


def require(path, what):
    """Exit with a clear message (not a traceback) when a data file or folder is missing."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f'error: {what} not found at {path}.\n'
                         f'Put the data there (see {DATA_DIR / "README.md"}) or pass --data-root.')
    return path


def seed_all(seed):
    mx.random.seed(seed)
    np.random.seed(seed)


# ---- data --------------------------------------------------------------------------------------

MNIST_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')


def mnist_available(root=DATA_DIR / 'mnist'):
    return all((Path(root) / f).exists() for f in MNIST_FILES)


def load_mnist(root, train=True, limit=None):
    """MNIST through gluon.data.vision.MNIST as NumPy arrays: images (N, 1, 28, 28) float32 in
    [0, 1] and labels (N,) int32. `limit` keeps the first `limit` samples."""
    root = require(root, 'the MNIST folder')
    for f in MNIST_FILES:
        require(root / f, f'the MNIST file {f}')
    ds = gluon.data.vision.MNIST(root=str(root), train=train)
    n = len(ds) if limit is None else min(limit, len(ds))
    x = np.empty((n, 1, 28, 28), np.float32)
    y = np.empty(n, np.int32)
    for i in range(n):
        img, label = ds[i]
        x[i, 0] = img.asnumpy()[:, :, 0]
        y[i] = label
    x /= 255.0
    return x, y


def loader(x, y, batch_size, shuffle=True, last_batch='discard'):
    """A gluon DataLoader over NumPy arrays."""
    return gluon.data.DataLoader(gluon.data.ArrayDataset(x, y), batch_size=batch_size,
                                 shuffle=shuffle, last_batch=last_batch)


# ---- evaluation --------------------------------------------------------------------------------

def predict(net, x, batch_size=1000):
    """Outputs of `net` on NumPy inputs, in predict mode (dropout off), as one NumPy array."""
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(net(nd.array(x[i:i + batch_size], dtype=x.dtype)).asnumpy())
    return np.concatenate(outs)


def accuracy(net, x, y, batch_size=1000):
    """Fraction of `x` whose arg-max output equals the label."""
    return float((predict(net, x, batch_size).argmax(axis=1) == y).mean())


# ---- training ----------------------------------------------------------------------------------

class History:
    """What `fit` records: the loss of every step and per-epoch figures (a dict of lists)."""

    def __init__(self):
        self.step_loss, self.epochs, self.samples = [], {}, 0
        self.seconds = 0.0          # training time (wall clock), evaluation excluded
        self.eval_seconds = 0.0

    def add(self, figures):
        for k, v in figures.items():
            self.epochs.setdefault(k, []).append(v)

    def last(self):
        return {k: v[-1] for k, v in self.epochs.items()}


def fmt(figures):
    """'loss 0.1234, val_acc 98.12%' (names ending in 'acc' are shown as percentages)."""
    parts = []
    for k, v in figures.items():
        parts.append(f'{k} {100 * v:.2f}%' if k.endswith('acc') else f'{k} {v:.4g}')
    return ', '.join(parts)


def fit(net, trainer, data, epochs, loss_fn=None, forward=None, evaluate=None, desc='train',
        track_accuracy=True, progress=True, log_every=20, verbose=True, print_every=1):
    """Train for `epochs` passes over `data` (an iterable of (x, y) NDArray batches with a len).

    forward(x, y) -> (per-sample loss, outputs or None) defaults to `loss_fn(net(x), y)`.
    evaluate(net) -> dict of figures (e.g. {'val_acc': 0.98}) runs after every epoch.
    Shows a tqdm progress bar, prints a line every `print_every` epochs and the final figures;
    returns a History.
    """
    if forward is None:
        def forward(x, y):
            out = net(x)
            return loss_fn(out, y), out
    hist = History()
    steps_per_epoch = len(data)
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit='batch', disable=not progress,
               dynamic_ncols=True, leave=False)
    start = time.perf_counter()
    for epoch in range(epochs):
        total_loss, correct, seen, scored = 0.0, 0, 0, False
        for i, (x, y) in enumerate(data):
            with autograd.record():
                loss, out = forward(x, y)
            if getattr(trainer, '_amp_loss_scaler', None) is not None:   # mixed precision
                with mx.amp.scale_loss(loss, trainer) as scaled:
                    scaled.backward()
            else:
                loss.backward()
            trainer.step(x.shape[0])
            step_loss = float(loss.mean().asscalar())
            if not math.isfinite(step_loss):
                bar.close()
                raise FloatingPointError(f'{desc}: the loss became {step_loss} at epoch {epoch + 1}, '
                                         f'step {i + 1}; try a smaller learning rate')
            hist.step_loss.append(step_loss)
            total_loss += step_loss * x.shape[0]
            seen += x.shape[0]
            if track_accuracy and out is not None:
                correct += int((out.asnumpy().argmax(axis=1) == y.asnumpy()).sum())
                scored = True
            bar.update(1)
            if i % log_every == 0:
                post = {'loss': f'{total_loss / seen:.4f}'}
                if track_accuracy and out is not None:
                    post['acc'] = f'{100 * correct / seen:.2f}%'
                bar.set_postfix(post, refresh=False)
        figures = {'loss': total_loss / max(seen, 1)}
        if track_accuracy and scored:
            figures['train_acc'] = correct / seen
        hist.samples += seen
        if evaluate is not None:
            t0 = time.perf_counter()
            figures.update(evaluate(net))
            hist.eval_seconds += time.perf_counter() - t0
        hist.add(figures)
        if verbose and ((epoch + 1) % print_every == 0 or epoch + 1 == epochs):
            bar.write(f'{desc} epoch {epoch + 1}/{epochs}: {fmt(figures)}')
    hist.seconds = time.perf_counter() - start - hist.eval_seconds
    bar.close()
    if verbose:
        print(f'{desc}: {epochs} epochs in {hist.seconds:.1f} s of training '
              f'({hist.samples / hist.seconds:.0f} samples/s, first-call compilation included) '
              f'+ {hist.eval_seconds:.1f} s of evaluation; final {fmt(hist.last())}')
    return hist


def mode_name(eager):
    return 'eager' if eager else 'hybridized'


# ---- plots -------------------------------------------------------------------------------------

def _smooth(values, window):
    if len(values) < 2 * window or window <= 1:
        return np.asarray(values)
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode='valid')


def plot_history(hist, path, title=''):
    """Two panels: the (smoothed) loss of every step, and every per-epoch figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    window = max(1, len(hist.step_loss) // 100)
    a.plot(hist.step_loss, alpha=0.3, color='C0', label='step loss')
    sm = _smooth(hist.step_loss, window)
    a.plot(np.arange(len(sm)) + (len(hist.step_loss) - len(sm)), sm, color='C0', label=f'mean of {window}')
    a.set_xlabel('step')
    a.set_ylabel('training loss')
    a.set_yscale('log' if min(hist.step_loss) > 0 else 'linear')
    a.legend()
    a.grid(linestyle='dotted')
    epochs = np.arange(1, len(next(iter(hist.epochs.values()), [])) + 1)
    for k, v in hist.epochs.items():
        if k.endswith('acc'):
            b.plot(epochs, 100 * np.asarray(v), marker='o', label=k)
    b.set_xlabel('epoch')
    b.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    b.set_ylabel('accuracy (%)')
    if b.lines:
        b.legend()
    b.grid(linestyle='dotted')
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path):
    import matplotlib.pyplot as plt
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f'saved {path}')
    return path


def add_examples_to_path():
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
