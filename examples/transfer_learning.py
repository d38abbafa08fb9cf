"""Transfer learning with ResNet-18: a frozen pretrained feature extractor with a new head, then
fine-tuning end to end with a 10x smaller learning rate (the seed notebook's recipe).

Nothing can be downloaded here, so the "pretrained" weights come from this engine's own earlier
run: step 1 trains `gluon.model_zoo.vision.resnet18_v1` on MNIST digits and saves it with
`save_parameters` as `<root>/resnet18_v1.params`; step 2 loads it back the model-zoo way,
`resnet18_v1(pretrained=True, root=root, classes=10)`, and transfers its features to Medical MNIST
(six kinds of medical images: CT, MRI, X-ray, hands, ...), a different data set:

1. pretrain resnet18_v1 on MNIST (grayscale repeated to 3 channels, padded to 32x32);
2. frozen features: keep the trunk (`features`, without its global pooling), freeze it with
   `features.collect_params().setattr('grad_req', 'null')`, and train a new head
   GlobalAvgPool2D | Flatten | BatchNorm | Dropout | Dense(256) | ReLU | BatchNorm | Dropout | Dense(6)
   (AdamW with a one-cycle learning rate, peak 0.01);
3. fine-tuning: unfreeze everything and train end to end with a 10x smaller rate (peak 0.001);
4. baseline: the same head trained the same way on frozen, randomly initialized (never trained)
   ResNet-18 features, to show what the pretrained features are worth; then that network is
   fine-tuned the same way too, so fine-tuning from pretrained and from random weights compare.

Medical MNIST images (64x64) are averaged down to 32x32 so both data sets share the input size.
Defaults use subsets (12,000 MNIST digits; 4,800 Medical MNIST training images and the whole
2,400-image validation set) so the whole program runs in about 5 minutes on 2 cores; raise
--pretrain-limit / --limit for more.

    python examples/transfer_learning.py                      # hybridized (default)
    python examples/transfer_learning.py --eager --pretrain-epochs 1 --epochs 1
    python examples/transfer_learning.py --plot transfer.png  # loss/accuracy of the three stages

Reads ../shared/data/mnist and ../shared/data/medical_mnist_64.npz (or --data-root DIR holding them).
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon  # noqa: E402
from engine.gluon import nn  # noqa: E402
from engine.gluon.model_zoo import vision  # noqa: E402

MEDICAL = 'medical_mnist_64.npz'
SIZE = 32
DEFAULT_ROOT = os.path.join(tempfile.gettempdir(), 'engine_transfer_learning')
# He-style initialization for the ReLU networks (used for pretraining and for the random baseline)
INIT = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)


# ---- data --------------------------------------------------------------------------------------

def _standardize(x, ref):
    return ((x - ref.mean()) / ref.std()).astype(np.float32)


def to_rgb(x):
    """(N, 1, H, W) grayscale -> (N, 3, H, W): the ResNet stem expects three channels."""
    return np.repeat(x, 3, axis=1)


def load_mnist32(root, train_limit, test_limit):
    """MNIST padded to 32x32, 3 channels, standardized: (x_train, y_train), (x_test, y_test)."""
    (xtr, ytr), (xte, yte) = (common.load_mnist(root, train=True, limit=train_limit),
                              common.load_mnist(root, train=False, limit=test_limit))
    pad = ((0, 0), (0, 0), (2, 2), (2, 2))
    xtr, xte = np.pad(xtr, pad), np.pad(xte, pad)
    return (to_rgb(_standardize(xtr, xtr)), ytr), (to_rgb(_standardize(xte, xtr)), yte)


def load_medical32(data_root, train_limit, test_limit):
    """Medical MNIST averaged down to 32x32, 3 channels, standardized; plus the class names."""
    path = common.require(os.path.join(str(data_root), MEDICAL), f'the Medical MNIST file {MEDICAL}')
    with np.load(path) as d:
        classes = [str(c) for c in d['classes']]
        xtr, ytr = d['x_train'][:train_limit], d['y_train'][:train_limit]
        xte, yte = d['x_test'][:test_limit], d['y_test'][:test_limit]

    def shrink(x):
        x = x.astype(np.float32) / 255.0
        n, h, w = x.shape
        return x.reshape(n, 1, SIZE, h // SIZE, SIZE, w // SIZE).mean(axis=(3, 5))
    xtr, xte = shrink(xtr), shrink(xte)
    return ((to_rgb(_standardize(xtr, xtr)), ytr.astype(np.int32)),
            (to_rgb(_standardize(xte, xtr)), yte.astype(np.int32)), classes)


# ---- model -------------------------------------------------------------------------------------

class TransferNet(gluon.HybridBlock):
    """`features` (a pretrained trunk) | `output`: the seed's new classification head."""

    def __init__(self, features, classes, hidden=256, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = features
            self.output = nn.HybridSequential(prefix='head_')
            with self.output.name_scope():
                self.output.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.BatchNorm(), nn.Dropout(dropout),
                                nn.Dense(hidden), nn.Activation('relu'), nn.BatchNorm(),
                                nn.Dropout(dropout), nn.Dense(classes))
        self.output.initialize(mx.init.Xavier())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def trunk(backbone):
    """The zoo model's feature extractor without its final global average pooling (the new
    head pools itself, as in the seed): `features[:-1]`, sharing the parameters."""
    return backbone.features[:-1]


def freeze(block):
    """Freeze a block's parameters the Gluon way (grad_req 'null': no gradient, no update);
    returns their previous grad_req values for `unfreeze`. Running BatchNorm statistics are not
    trained parameters: in training mode they keep adapting to the new data, as in PyTorch."""
    params = block.collect_params()
    before = {name: p.grad_req for name, p in params.items()}
    params.setattr('grad_req', 'null')
    return before


def unfreeze(block, before):
    for name, p in block.collect_params().items():
        p.grad_req = before.get(name, 'write')


def trainable(block):
    """The parameters of `block` that receive gradients."""
    return {name: p for name, p in block.collect_params().items() if p.grad_req != 'null'}


# ---- training ----------------------------------------------------------------------------------

def train(net, params, data, valid, epochs, lr, batch_size, desc, optimizer='adamw', progress=True,
          verbose=True):
    """Train `params` of `net` with a one-cycle learning rate peaking at `lr`; evaluate on
    `valid` after every epoch. Returns a common.History."""
    x, y = data
    batches = common.loader(x, y, batch_size)
    schedule = mx.lr_scheduler.OneCycleScheduler(max_update=max(1, epochs * len(batches)), max_lr=lr)
    trainer = gluon.Trainer(params, optimizer, {'learning_rate': lr, 'lr_scheduler': schedule})
    return common.fit(net, trainer, batches, epochs, loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      evaluate=lambda n: {'val_acc': common.accuracy(n, *valid, batch_size=500)},
                      desc=desc, progress=progress, verbose=verbose)


def pretrain(x_train, y_train, x_test, y_test, root, epochs=1, lr=2e-3, batch_size=64, eager=False,
             progress=True, verbose=True):
    """Train resnet18_v1 (10 classes) on MNIST and save it as `<root>/resnet18_v1.params`.
    Returns (test accuracy, path, history)."""
    net = vision.resnet18_v1(classes=10)
    net.initialize(INIT)
    if not eager:
        net.hybridize()
    hist = train(net, net.collect_params(), (x_train, y_train), (x_test, y_test), epochs, lr,
                 batch_size, f'pretrain resnet18_v1 on MNIST ({common.mode_name(eager)})',
                 optimizer='adam', progress=progress, verbose=verbose)
    os.makedirs(os.path.expanduser(root), exist_ok=True)
    path = os.path.join(os.path.expanduser(root), 'resnet18_v1.params')
    net.save_parameters(path)
    if verbose:
        print(f'saved the pretrained weights to {path}')
    return hist.last()['val_acc'], path, hist


def transfer(backbone, data, valid, classes, epochs, lr, batch_size, finetune_epochs, eager, label,
             progress=True, verbose=True):
    """Frozen-features stage (and, when finetune_epochs > 0, the fine-tuning stage) on `backbone`.
    Returns {'frozen_acc', 'finetune_acc' (or None), 'histories': [...], 'seconds'}."""
    net = TransferNet(trunk(backbone), classes)
    if not eager:
        net.hybridize()
    before = freeze(net.features)
    t0 = time.perf_counter()
    h1 = train(net, trainable(net), data, valid, epochs, lr, batch_size,
               f'{label}: frozen features + new head', progress=progress, verbose=verbose)
    out = {'frozen_acc': h1.last()['val_acc'], 'finetune_acc': None, 'histories': [h1], 'net': net}
    if finetune_epochs:
        unfreeze(net.features, before)
        h2 = train(net, trainable(net), data, valid, finetune_epochs, lr / 10, batch_size,
                   f'{label}: fine-tuning end to end (lr / 10)', progress=progress, verbose=verbose)
        out['finetune_acc'] = h2.last()['val_acc']
        out['histories'].append(h2)
    out['seconds'] = time.perf_counter() - t0
    return out


def run(data_root=common.DATA_DIR, root=DEFAULT_ROOT, pretrain_epochs=1, epochs=3, finetune_epochs=None,
        batch_size=64, lr=0.01, pretrain_lr=2e-3, pretrain_limit=12000, limit=4800, test_limit=2400,
        eager=False, seed=0, reuse=False, baseline=True, progress=True, verbose=True):
    """The whole program; returns a dict with 'pretrain_acc', 'frozen_acc', 'finetune_acc',
    'random_frozen_acc', the stages' histories and timings."""
    common.seed_all(seed)
    t_start = time.perf_counter()
    finetune_epochs = epochs if finetune_epochs is None else finetune_epochs
    mnist_root = os.path.join(str(data_root), 'mnist')
    med_train, med_test, classes = load_medical32(data_root, limit, test_limit)
    path = os.path.join(os.path.expanduser(root), 'resnet18_v1.params')
    res = {'pretrain_acc': None, 'pretrain_history': None}
    if reuse and os.path.isfile(path):
        if verbose:
            print(f'reusing the pretrained weights in {path}')
    else:
        mtr, mte = load_mnist32(mnist_root, pretrain_limit, 2000)
        if verbose:
            print(f'step 1: pretraining resnet18_v1 on {len(mtr[0])} MNIST digits (3x{SIZE}x{SIZE}), '
                  f'{pretrain_epochs} epoch(s)')
        t0 = time.perf_counter()
        res['pretrain_acc'], path, res['pretrain_history'] = pretrain(
            *mtr, *mte, root, pretrain_epochs, pretrain_lr, batch_size, eager, progress, verbose)
        res['pretrain_seconds'] = time.perf_counter() - t0
    if verbose:
        print(f'step 2: transfer to Medical MNIST ({len(med_train[0])} training, {len(med_test[0])} '
              f'validation images, classes {", ".join(classes)}), {common.mode_name(eager)}')
    # the model-zoo way of getting pretrained weights: <root>/resnet18_v1.params
    pretrained = vision.resnet18_v1(pretrained=True, root=root, classes=10)
    common.seed_all(seed + 1)
    tr = transfer(pretrained, med_train, med_test, len(classes), epochs, lr, batch_size,
                  finetune_epochs, eager, 'pretrained', progress, verbose)
    res.update(frozen_acc=tr['frozen_acc'], finetune_acc=tr['finetune_acc'], histories=tr['histories'],
               transfer_seconds=tr['seconds'], net=tr['net'], classes=classes)
    res['random_frozen_acc'] = res['random_finetune_acc'] = None
    if baseline:
        if verbose:
            print('step 3: baseline, the same head on frozen RANDOM (untrained) ResNet-18 features')
        common.seed_all(seed + 2)
        random_net = vision.resnet18_v1(classes=10)
        random_net.initialize(INIT)
        rnd = transfer(random_net, med_train, med_test, len(classes), epochs, lr, batch_size,
                       finetune_epochs, eager, 'random features', progress, verbose)
        res['random_frozen_acc'] = rnd['frozen_acc']
        res['random_finetune_acc'] = rnd['finetune_acc']
        res['random_histories'] = rnd['histories']
        res['random_seconds'] = rnd['seconds']
    res['seconds'] = time.perf_counter() - t_start
    return res


def report(res):
    def pct(v):
        return '   n/a' if v is None else f'{100 * v:6.2f}%'
    print('Medical MNIST validation accuracy (ResNet-18 features + new head):')
    if res['pretrain_acc'] is not None:
        print(f'  (MNIST test accuracy of the pretrained resnet18_v1: {pct(res["pretrain_acc"])})')
    print(f'  {"":<28}{"frozen features":>17}{"fine-tuned":>12}')
    print(f'  {"pretrained on MNIST":<28}{pct(res["frozen_acc"]):>17}{pct(res["finetune_acc"]):>12}')
    if res['random_frozen_acc'] is not None:
        print(f'  {"random initialization":<28}{pct(res["random_frozen_acc"]):>17}'
              f'{pct(res["random_finetune_acc"]):>12}')
    if res['random_frozen_acc'] is not None and res['finetune_acc'] is not None:
        print(f'  fine-tuned pretrained vs random frozen features: '
              f'{100 * (res["finetune_acc"] - res["random_frozen_acc"]):+.2f} points')
    print(f'total time {res["seconds"]:.1f} s')


# ---- plots -------------------------------------------------------------------------------------

def plot(res, path):
    """Training loss per step and validation accuracy per epoch: frozen then fine-tuned stages of
    the pretrained model (separated by a dotted line), and the random-features baseline."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))

    def series(hists):
        loss = [v for h in hists for v in h.step_loss]
        acc = [v for h in hists for v in h.epochs['val_acc']]
        per_epoch = len(hists[0].step_loss) // max(1, len(hists[0].epochs['val_acc']))
        return loss, acc, per_epoch

    loss, acc, per = series(res['histories'])
    a.plot(loss, color='C0', alpha=0.4, label='pretrained: training loss')
    b.plot(per * np.arange(1, len(acc) + 1), 100 * np.asarray(acc), color='C0', marker='o',
           label='pretrained features')
    if res.get('random_histories'):
        rl, ra, rper = series(res['random_histories'])
        a.plot(rl, color='C3', alpha=0.4, label='random features: training loss')
        b.plot(rper * np.arange(1, len(ra) + 1), 100 * np.asarray(ra), color='C3', marker='s',
               label='random initialization')
    split = len(res['histories'][0].step_loss)
    for ax in (a, b):
        if len(res['histories']) > 1:
            ax.axvline(split, color='black', linestyle='dotted', label='start of fine-tuning')
        ax.set_xlabel('step')
        ax.grid(linestyle='dotted')
        ax.legend()
    a.set_ylabel('training loss')
    b.set_ylabel('validation accuracy (%)')
    fig.suptitle('ResNet-18 pretrained on MNIST, transferred to Medical MNIST')
    fig.tight_layout()
    common.save_figure(fig, path)


def main(argv=None):
    p = common.parser(__doc__, epochs=3, batch_size=64, lr=0.01, data_root=common.DATA_DIR)
    p.add_argument('--pretrain-epochs', type=int, default=1, help='MNIST pretraining epochs (default %(default)s)')
    p.add_argument('--finetune-epochs', type=int, help='fine-tuning epochs (default: --epochs)')
    p.add_argument('--pretrain-lr', type=float, default=2e-3, help='(default %(default)s)')
    p.add_argument('--pretrain-limit', type=int, default=12000, help='MNIST training images (default %(default)s)')
    p.add_argument('--limit', type=int, default=4800, help='Medical MNIST training images (default %(default)s)')
    p.add_argument('--test-limit', type=int, default=2400, help='Medical MNIST validation images (default %(default)s)')
    p.add_argument('--root', default=DEFAULT_ROOT, help='folder for resnet18_v1.params (default %(default)s)')
    p.add_argument('--reuse', action='store_true', help='skip pretraining when <root>/resnet18_v1.params exists')
    p.add_argument('--no-baseline', action='store_true', help='skip the random-features baseline')
    p.add_argument('--threads', type=int,
                   help='Numba/BLAS threads (default: the engine\'s). On a busy machine 1 can be much faster: '
                        'multi-threaded BLAS stalls when another process holds a core')
    args = p.parse_args(argv)
    if args.threads:
        mx.set_num_threads(args.threads)
    common.require(os.path.join(args.data_root, MEDICAL), f'the Medical MNIST file {MEDICAL}')
    if not (args.reuse and os.path.isfile(os.path.join(os.path.expanduser(args.root), 'resnet18_v1.params'))):
        common.require(os.path.join(args.data_root, 'mnist'), 'the MNIST folder')
    res = run(args.data_root, args.root, args.pretrain_epochs, args.epochs, args.finetune_epochs,
              args.batch_size, args.lr, args.pretrain_lr, args.pretrain_limit, args.limit, args.test_limit,
              args.eager, args.seed, args.reuse, not args.no_baseline)
    report(res)
    if args.plot:
        plot(res, args.plot)
    return res


if __name__ == '__main__':
    main()
