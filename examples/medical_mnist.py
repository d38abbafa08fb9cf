"""Medical MNIST (MedNIST): six kinds of 64x64 grayscale medical images.

Two models, picked with --model:

* linear (the seed's): a plain linear softmax classifier, 64*64 pixels -> 6 scores, starting from
  zero weights and trained with plain SGD, batch size 64, 15 epochs;
* cnn: a small convolutional network (three conv+ReLU+max-pool stages, then two dense layers)
  trained with Adam.

    python examples/medical_mnist.py                  # linear model, hybridized
    python examples/medical_mnist.py --model cnn      # the CNN
    python examples/medical_mnist.py --model cnn --eager --plot cnn.png

Reads ../shared/data/medical_mnist_64.npz (or --data-root DIR holding that file): 9,600 training
and 2,400 validation images (the validation set is the first 20% of the shuffled data, as in the
seed).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon  # noqa: E402
from engine.gluon import nn  # noqa: E402

FILE = 'medical_mnist_64.npz'
DEFAULTS = {  # model -> (epochs, batch size, learning rate)
    'linear': (15, 64, 0.1),
    'cnn': (4, 64, 2e-3),
}


def load(data_root=common.DATA_DIR, limit=None):
    """(x_train, y_train), (x_valid, y_valid), class names; images (N, 1, 64, 64) in [0, 1]."""
    path = common.require(os.path.join(str(data_root), FILE), f'the Medical MNIST file {FILE}')
    with np.load(path) as d:
        def prep(x, y):
            x, y = x[:limit], y[:limit]
            return (x.astype(np.float32) / 255.0)[:, None], y.astype(np.int32)
        classes = [str(c) for c in d['classes']]
        return prep(d['x_train'], d['y_train']), prep(d['x_test'], d['y_test']), classes


def make_net(model):
    net = nn.HybridSequential()
    if model == 'linear':
        # the seed's model: scores = x W + b on the flattened image, from all-zero parameters
        net.add(nn.Dense(6, weight_initializer=mx.init.Zero()))
    elif model == 'cnn':
        net.add(nn.Conv2D(8, 3, padding=1, activation='relu'), nn.MaxPool2D(2),     # 32x32
                nn.Conv2D(16, 3, padding=1, activation='relu'), nn.MaxPool2D(2),    # 16x16
                nn.Conv2D(32, 3, padding=1, activation='relu'), nn.MaxPool2D(2),    # 8x8
                nn.Flatten(), nn.Dense(64, activation='relu'), nn.Dense(6))
    else:
        raise ValueError(f"unknown model {model!r}: use 'linear' or 'cnn'")
    return net


def run(model='linear', data_root=common.DATA_DIR, epochs=None, batch_size=None, lr=None, eager=False,
        seed=0, limit=None, progress=True, verbose=True):
    """Train and evaluate; returns a dict with 'val_acc', 'history', 'seconds', 'net', 'classes'."""
    d_epochs, d_bs, d_lr = DEFAULTS[model]
    epochs, batch_size, lr = epochs or d_epochs, batch_size or d_bs, lr or d_lr
    common.seed_all(seed)
    (x_train, y_train), (x_valid, y_valid), classes = load(data_root, limit)
    if verbose:
        print(f'Medical MNIST: {len(x_train)} training and {len(x_valid)} validation images '
              f'{x_train.shape[2:]}, classes {", ".join(classes)}; {model} model, {common.mode_name(eager)}')
    net = make_net(model)
    net.initialize(mx.init.Zero() if model == 'linear' else mx.init.Xavier())
    if not eager:
        net.hybridize()
    if model == 'linear':
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})
    else:
        trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    hist = common.fit(net, trainer, common.loader(x_train, y_train, batch_size), epochs,
                      loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      evaluate=lambda n: {'val_acc': common.accuracy(n, x_valid, y_valid, 600)},
                      desc=f'{model} ({common.mode_name(eager)})', progress=progress, verbose=verbose)
    return {'val_acc': hist.last()['val_acc'], 'history': hist, 'seconds': hist.seconds, 'net': net,
            'classes': classes}


def main(argv=None):
    p = common.parser(__doc__, epochs=None, batch_size=None, lr=None, data_root=common.DATA_DIR)
    p.add_argument('--model', choices=sorted(DEFAULTS), default='linear')
    args = p.parse_args(argv)
    res = run(args.model, args.data_root, args.epochs, args.batch_size, args.lr, args.eager, args.seed)
    print(f'validation accuracy ({args.model}): {100 * res["val_acc"]:.2f}% '
          f'({common.mode_name(args.eager)}, {res["seconds"]:.1f} s of training)')
    if args.plot:
        common.plot_history(res['history'], args.plot, f'Medical MNIST, {args.model} model')
    return res


if __name__ == '__main__':
    main()
