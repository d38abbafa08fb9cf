"""Train a small CNN eagerly and hybridized, and compare accuracy and speed.

Default data: scikit-learn's bundled 8x8 digits (1,797 images, no download). With --mnist DIR
(a folder holding the four MNIST .gz files) it trains on 28x28 MNIST instead.

    python examples/train_digits.py            # digits, eager then hybridized
    python examples/train_digits.py --mnist ../shared/data/mnist --epochs 2
"""
import argparse
import time

import engine as mx  # first: the engine's OpenBLAS setting is read when numpy loads
import numpy as np
from tqdm import tqdm

from engine import autograd, gluon, nd
from engine.gluon import nn


def load_digits(seed=0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]          # (N, 1, 8, 8) in [0, 1]
    y = d.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def load_mnist(root):
    def arrays(train):
        ds = gluon.data.vision.MNIST(root=root, train=train)
        x = np.stack([ds[i][0].asnumpy() for i in range(len(ds))]).astype(np.float32) / 255.0
        return x.transpose(0, 3, 1, 2), np.array([ds[i][1] for i in range(len(ds))], dtype=np.int32)
    return arrays(True), arrays(False)


def make_net(size):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(16, 3, padding=1, activation='relu'), nn.MaxPool2D(2),
            nn.Conv2D(32, 3, padding=1, activation='relu'), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dense(64, activation='relu'), nn.Dense(10))
    return net


def evaluate(net, x, y, batch_size=500):
    correct = 0
    for i in range(0, len(x), batch_size):
        out = net(nd.array(x[i:i + batch_size]))
        correct += int((out.asnumpy().argmax(axis=1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def train(train_data, test_data, hybridize, epochs, batch_size, lr, seed=0):
    mx.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = train_data, test_data
    net = make_net(x_train.shape[-1])
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize()
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(x_train, y_train), batch_size=batch_size,
                                   shuffle=True, last_batch='discard')
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    mode = 'hybridized' if hybridize else 'eager'
    seen, elapsed, history = 0, 0.0, []
    for epoch in range(epochs):
        total = 0.0
        for x, y in tqdm(loader, desc=f'{mode} epoch {epoch + 1}/{epochs}', leave=False):
            t0 = time.perf_counter()
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(x.shape[0])
            total += float(loss.mean().asscalar())
            elapsed += time.perf_counter() - t0
            seen += x.shape[0]
        history.append(total / len(loader))
    acc = evaluate(net, x_test, y_test)
    return {'mode': mode, 'accuracy': acc, 'samples_per_s': seen / elapsed, 'loss': history}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--mnist', help='folder with the MNIST .gz files (default: sklearn digits)')
    p.add_argument('--epochs', type=int, default=15)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--eager', action='store_true', help='run only the eager mode')
    p.add_argument('--plot', help='save the training-loss curves to this PNG file')
    args = p.parse_args()
    data = load_mnist(args.mnist) if args.mnist else load_digits()
    name = 'MNIST' if args.mnist else 'sklearn digits'
    print(f'{name}: {len(data[0][0])} training and {len(data[1][0])} test images of size {data[0][0].shape[1:]}')
    modes = [False] if args.eager else [False, True]
    results = [train(*data, hybridize=h, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
               for h in modes]
    print(f"{'mode':<12}{'test accuracy':>15}{'train samples/s':>18}")
    for r in results:
        print(f"{r['mode']:<12}{100 * r['accuracy']:>14.2f}%{r['samples_per_s']:>18.0f}")
    if len(results) == 2:
        print(f"hybridized / eager speed: {results[1]['samples_per_s'] / results[0]['samples_per_s']:.2f}x")
    if args.plot:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        for r in results:
            plt.plot(range(1, len(r['loss']) + 1), r['loss'], label=r['mode'])
        plt.xlabel('epoch')
        plt.ylabel('training loss')
        plt.legend()
        plt.savefig(args.plot, dpi=100)
        print(f'saved {args.plot}')


if __name__ == '__main__':
    main()
