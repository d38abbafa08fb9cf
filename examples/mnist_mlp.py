"""A multilayer perceptron 784-300-10 (ReLU) on MNIST, trained with Adam on softmax cross entropy.

The seed workload (a TensorFlow 2 MLP reaching 98.0% test accuracy after 10 epochs) in Gluon:

    python examples/mnist_mlp.py                     # hybridized (compiled), 10 epochs
    python examples/mnist_mlp.py --eager --epochs 2  # eager, for comparison
    python examples/mnist_mlp.py --plot mlp.png      # also save the training curves

Reads the four MNIST .gz files from ../shared/data/mnist (or --data-root).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon  # noqa: E402
from engine.gluon import nn  # noqa: E402


def make_net(hidden=300):
    net = nn.HybridSequential()
    net.add(nn.Flatten(), nn.Dense(hidden, activation='relu'), nn.Dense(10))
    return net


def run(data_root=common.DATA_DIR / 'mnist', epochs=10, batch_size=100, lr=1e-3, eager=False,
        seed=0, limit=None, test_limit=None, progress=True, verbose=True):
    """Train and evaluate; returns a dict with 'test_acc', 'history', 'seconds' and 'net'."""
    common.seed_all(seed)
    x_train, y_train = common.load_mnist(data_root, train=True, limit=limit)
    x_test, y_test = common.load_mnist(data_root, train=False, limit=test_limit)
    if verbose:
        print(f'MNIST: {len(x_train)} training and {len(x_test)} test images; '
              f'MLP 784-300-10, {common.mode_name(eager)}')
    net = make_net()
    net.initialize(mx.init.Xavier())
    if not eager:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    hist = common.fit(net, trainer, common.loader(x_train, y_train, batch_size), epochs,
                      loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      evaluate=lambda n: {'test_acc': common.accuracy(n, x_test, y_test)},
                      desc=f'mlp ({common.mode_name(eager)})', progress=progress, verbose=verbose)
    return {'test_acc': hist.last()['test_acc'], 'history': hist, 'seconds': hist.seconds, 'net': net}


def main(argv=None):
    p = common.parser(__doc__, epochs=10, batch_size=100, lr=1e-3, data_root=common.DATA_DIR / 'mnist')
    args = p.parse_args(argv)
    res = run(args.data_root, args.epochs, args.batch_size, args.lr, args.eager, args.seed)
    print(f'test accuracy: {100 * res["test_acc"]:.2f}% ({common.mode_name(args.eager)}, '
          f'{res["seconds"]:.1f} s of training)')
    if args.plot:
        common.plot_history(res['history'], args.plot, 'MLP 784-300-10 on MNIST')
    return res


if __name__ == '__main__':
    main()
