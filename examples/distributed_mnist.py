"""Data-parallel training of a LeNet in several processes over MPI (Horovod's API for Gluon).

    mpiexec -n 2 python examples/distributed_mnist.py                 # MNIST if present, else digits
    mpiexec -n 2 python examples/distributed_mnist.py --data digits   # scikit-learn's 8x8 digits
    python examples/distributed_mnist.py                               # one process works too

Each rank reads its own part of the training set (SplitSampler), starts from rank 0's parameters
(broadcast_parameters) and averages gradients with the other ranks at every step
(DistributedTrainer), so N ranks with batch B each train like one process with batch N*B. Rank 0
alone prints and writes the checkpoint. Needs `pip install "engine[dist]"`; on a machine with
several GPUs each rank takes the GPU of its local rank and gradients go through NCCL.
"""
import sys
import time
from pathlib import Path

import engine as mx  # first: the engine's OpenBLAS setting is read when numpy loads
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import engine.distributed as hvd  # noqa: E402
from engine import autograd, gluon, nd  # noqa: E402
from engine.gluon import nn  # noqa: E402


def load(which, root):
    """(x_train, y_train), (x_test, y_test) as NumPy arrays of shape (N, 1, H, W)."""
    if which == 'mnist' or (which == 'auto' and common.mnist_available(root)):
        return common.load_mnist(root, train=True), common.load_mnist(root, train=False), 'MNIST'
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(x))      # the same split on every rank
    x, y = x[order], y[order]
    n_test = len(x) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test]), 'scikit-learn digits'


def lenet(image_size):
    flat = 16 * (image_size // 4) ** 2
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 5, padding=2, in_channels=1, activation='relu'), nn.MaxPool2D(2),
            nn.Conv2D(16, 5, padding=2, in_channels=6, activation='relu'), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dense(120, in_units=flat, activation='relu'),
            nn.Dense(84, in_units=120, activation='relu'), nn.Dense(10, in_units=84))
    return net


def accuracy(net, x, y, ctx, batch_size=1000):
    correct = 0
    for i in range(0, len(x), batch_size):
        out = net(nd.array(x[i:i + batch_size], ctx=ctx)).asnumpy()
        correct += int((out.argmax(axis=1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def main():
    p = common.parser(__doc__, epochs=None, batch_size=64, lr=0.05, data_root=common.DATA_DIR / 'mnist')
    p.add_argument('--data', choices=['auto', 'mnist', 'digits'], default='auto')
    p.add_argument('--checkpoint', default='distributed_lenet.params',
                   help='where rank 0 saves the trained parameters')
    args = p.parse_args()

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    ctx = mx.gpu(hvd.local_rank()) if mx.num_gpus() > hvd.local_rank() else mx.cpu()
    (x_train, y_train), (x_test, y_test), name = load(args.data, args.data_root)
    if args.epochs is None:
        args.epochs = 3 if name == 'MNIST' else 20     # digits: 1,437 images, a few steps per epoch
    if rank == 0:
        print(f'{name}: {len(x_train)} training images over {size} rank(s), batch {args.batch_size} '
              f'per rank ({args.batch_size * size} global), on {ctx}')

    common.seed_all(args.seed + rank)        # ranks start differently; the broadcast aligns them
    net = lenet(x_train.shape[-1])
    net.initialize(mx.init.Xavier(), ctx=ctx)
    if not args.eager:
        net.hybridize()
    hvd.broadcast_parameters(net.collect_params(), root_rank=0)
    trainer = hvd.DistributedTrainer(net.collect_params(), 'sgd',
                                     {'learning_rate': args.lr, 'momentum': 0.9})
    sampler = gluon.data.SplitSampler(len(x_train), num_parts=size, part_index=rank, shuffle=True)
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(x_train, y_train), batch_size=args.batch_size,
                                   sampler=sampler, last_batch='discard')
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    for epoch in range(args.epochs):
        t0, total, batches = time.perf_counter(), 0.0, 0
        for x, y in loader:
            x, y = x.as_in_context(ctx), y.as_in_context(ctx)
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(x.shape[0])
            total += float(loss.mean().asscalar())
            batches += 1
        mean_loss = hvd.allreduce(nd.array([total / max(batches, 1)])).asscalar()
        if rank == 0:
            seconds = time.perf_counter() - t0
            acc = accuracy(net, x_test, y_test, ctx)
            print(f'epoch {epoch + 1}/{args.epochs}: loss {mean_loss:.4f}, test accuracy {100 * acc:.2f}%, '
                  f'{batches * args.batch_size * size / seconds:.0f} samples/s')
    hvd.save_parameters(net, args.checkpoint)
    if rank == 0:
        print(f'saved {args.checkpoint}')


if __name__ == '__main__':
    main()
