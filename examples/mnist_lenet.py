"""The seed's LeNet-style CNN on MNIST, trained with AdamW and a one-cycle learning-rate schedule.

    Conv(1->32, 3x3, pad 1) SELU MaxPool(2) Conv(32->32, 5x5) SELU MaxPool(2)
    Flatten Dense(256) SELU Dropout(0.5) Dense(10)

As in the seed notebook: 55,000 training / 5,000 validation images (a seeded random split of the
MNIST training set), batch size 32, AdamW (lr 0.001, weight decay 0.01), a one-cycle schedule
with beta1 cycled between 0.95 and 0.85, 3 epochs; the test set is scored at the end.
One change: the cycle peaks at max_lr 0.003 instead of the seed's 0.01. At 0.01 the loss spikes
while the rate is high (the seed's notebook shows it too) and the test accuracy lands around
98.5-98.7%; at 0.003 training stays smooth and reaches ~98.9%. `--max-lr 0.01` runs the seed's
setting.

    python examples/mnist_lenet.py                   # hybridized (compiled)
    python examples/mnist_lenet.py --eager           # eager, for comparison
    python examples/mnist_lenet.py --amp             # mixed precision (float16, mx.amp)
    python examples/mnist_lenet.py --plot lenet.png  # also save training curves and the lr schedule
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon  # noqa: E402
from engine.gluon import nn  # noqa: E402


def make_net(use_zoo=True):
    """The seed LeNet: model_zoo.vision.get_model('lenet') when the engine ships it, else the same
    architecture defined here."""
    if use_zoo:
        try:
            from engine.gluon.model_zoo import vision
            return vision.get_model('lenet')
        except (ImportError, AttributeError, KeyError, mx.MXNetError):
            pass
    net = nn.HybridSequential()
    net.add(nn.Conv2D(32, 3, padding=1), nn.SELU(), nn.MaxPool2D(2, 2),
            nn.Conv2D(32, 5), nn.SELU(), nn.MaxPool2D(2, 2),
            nn.Flatten(), nn.Dense(256), nn.SELU(), nn.Dropout(0.5), nn.Dense(10))
    return net


def split(x, y, n_valid, seed):
    order = np.random.default_rng(seed).permutation(len(x))
    v, t = order[:n_valid], order[n_valid:]
    return (x[t], y[t]), (x[v], y[v])


def run(data_root=common.DATA_DIR / 'mnist', epochs=3, batch_size=32, lr=1e-3, max_lr=3e-3,
        eager=False, seed=0, limit=None, n_valid=5000, test_limit=None, progress=True, verbose=True,
        amp=False):
    """Train and evaluate; returns a dict with 'test_acc', 'val_acc', 'history', 'seconds', 'net',
    'lr' (the learning rate of every update). amp=True trains with mixed precision (mx.amp:
    float16 convolutions and dense layers, float32 master weights, dynamic loss scaling)."""
    common.seed_all(seed)
    if amp:
        mx.amp.init()
    x, y = common.load_mnist(data_root, train=True, limit=limit)
    (x_train, y_train), (x_valid, y_valid) = split(x, y, min(n_valid, len(x) // 10), seed)
    x_test, y_test = common.load_mnist(data_root, train=False, limit=test_limit)
    if verbose:
        print(f'MNIST: {len(x_train)} training, {len(x_valid)} validation, {len(x_test)} test images; '
              f'LeNet, {common.mode_name(eager)}')
    net = make_net()
    net.initialize(mx.init.Xavier())
    if not eager:
        net.hybridize()
    data = common.loader(x_train, y_train, batch_size)
    schedule = mx.lr_scheduler.OneCycleScheduler(max_update=epochs * len(data), max_lr=max_lr,
                                                 div_factor=max_lr / lr)
    trainer = gluon.Trainer(net.collect_params(), 'adamw', {'lr_scheduler': schedule, 'wd': 0.01})
    if amp:
        mx.amp.init_trainer(trainer)
    try:
        hist = common.fit(net, trainer, data, epochs, loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                          evaluate=lambda n: {'val_acc': common.accuracy(n, x_valid, y_valid)},
                          desc=f'lenet ({common.mode_name(eager)}{", amp" if amp else ""})',
                          progress=progress, verbose=verbose)
        test_acc = common.accuracy(net, x_test, y_test)
    finally:
        if amp:
            mx.amp.shutdown()
    lrs = [schedule(i + 1) for i in range(len(hist.step_loss))]
    return {'test_acc': test_acc, 'val_acc': hist.last()['val_acc'], 'history': hist,
            'seconds': hist.seconds, 'net': net, 'lr': lrs}


def plot(res, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    hist = res['history']
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={'height_ratios': [3, 1]})
    w = max(1, len(hist.step_loss) // 50)
    a.plot(hist.step_loss, alpha=0.2, color='C0', lw=0.5)
    sm = common._smooth(hist.step_loss, w)
    a.plot(np.arange(len(sm)) + len(hist.step_loss) - len(sm), sm, color='C0',
           label=f'training loss (mean of {w} steps)')
    a.set_ylim(0, 1.2 * max(sm.max(), 1e-3))
    steps_per_epoch = len(hist.step_loss) // len(hist.epochs['val_acc'])
    ax2 = a.twinx()
    ax2.plot(steps_per_epoch * np.arange(1, len(hist.epochs['val_acc']) + 1),
             100 * np.asarray(hist.epochs['val_acc']), 'o-', color='C1', label='validation accuracy')
    ax2.set_ylabel('validation accuracy (%)')
    a.set_ylabel('training loss')
    a.legend(loc='upper left')
    ax2.legend(loc='upper right')
    a.set_title(f'LeNet on MNIST: test accuracy {100 * res["test_acc"]:.2f}%')
    b.plot(res['lr'], color='black')
    b.set_ylabel('learning rate')
    b.set_xlabel('step')
    fig.tight_layout()
    common.save_figure(fig, path)


def main(argv=None):
    p = common.parser(__doc__, epochs=3, batch_size=32, lr=1e-3, data_root=common.DATA_DIR / 'mnist')
    p.add_argument('--max-lr', type=float, default=3e-3,
                   help="peak of the one cycle (default 0.003; the seed's is 0.01)")
    p.add_argument('--amp', action='store_true', help='mixed precision (float16 with mx.amp)')
    args = p.parse_args(argv)
    res = run(args.data_root, args.epochs, args.batch_size, args.lr, args.max_lr, args.eager, args.seed,
              amp=args.amp)
    print(f'validation accuracy: {100 * res["val_acc"]:.2f}%, test accuracy: {100 * res["test_acc"]:.2f}% '
          f'({common.mode_name(args.eager)}, {res["seconds"]:.1f} s of training)')
    if args.plot:
        plot(res, args.plot)
    return res


if __name__ == '__main__':
    main()
