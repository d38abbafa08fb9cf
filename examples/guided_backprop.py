"""Guided backpropagation: which pixels make a trained CNN see its class?

The gradient of a class score with respect to the input image, computed with every ReLU's backward
pass replaced by the "guided" rule (Springenberg et al.): a gradient passes a ReLU only where the
ReLU's output was positive (the ordinary ReLU rule) AND the incoming gradient is positive, so only
evidence that increases the score flows back. The rule is a custom `mx.autograd.Function`
(`GuidedReLU`) with a hand-written backward.

A small CNN is trained briefly (hybridized by default: the compiled graph uses ordinary ReLUs), then
switched to eager mode with GuidedReLU for the saliency maps: input, plain gradient, guided
backprop, and an overlay, for a few test images, saved to --out.

    python examples/guided_backprop.py                         # MNIST if present, else sklearn digits
    python examples/guided_backprop.py --digits --out gb.png   # force the sklearn digits
    python examples/guided_backprop.py --eager --plot curves.png
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import autograd, gluon, nd  # noqa: E402
from engine.gluon import nn  # noqa: E402


class GuidedReLU(mx.autograd.Function):
    """relu(x) forward; backward passes dy only where relu(x) > 0 and dy > 0."""

    def forward(self, x):
        y = nd.relu(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        y, = self.saved_tensors
        return nd.relu(dy) * (y > 0)


class SmallCNN(gluon.HybridBlock):
    """conv(16) relu pool conv(32) relu pool dense(64) relu dense(classes). With `guided = True`
    (eager mode only: a custom Function has no graph form) every ReLU is a GuidedReLU."""

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.guided = False
        with self.name_scope():
            self.conv1 = nn.Conv2D(16, 3, padding=1)
            self.conv2 = nn.Conv2D(32, 3, padding=1)
            self.pool = nn.MaxPool2D(2)
            self.flat = nn.Flatten()
            self.fc = nn.Dense(64)
            self.out = nn.Dense(classes)

    def _relu(self, F, x):
        return GuidedReLU()(x) if self.guided else F.relu(x)

    def hybrid_forward(self, F, x):
        x = self.pool(self._relu(F, self.conv1(x)))
        x = self.pool(self._relu(F, self.conv2(x)))
        x = self._relu(F, self.fc(self.flat(x)))
        return self.out(x)


def load_data(data_root=common.DATA_DIR / 'mnist', digits=False, limit=None):
    """(x_train, y_train), (x_test, y_test), name: MNIST when its files are there, else sklearn's
    8x8 digits (always available)."""
    if not digits and common.mnist_available(data_root):
        return (common.load_mnist(data_root, True, limit), common.load_mnist(data_root, False, 2000),
                'MNIST')
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    train = (x[n_test:], y[n_test:]) if limit is None else (x[n_test:][:limit], y[n_test:][:limit])
    return train, (x[:n_test], y[:n_test]), 'sklearn digits'


def input_gradient(net, image, target=None, guided=True):
    """d score[target] / d image for one (1, H, W) image, with guided ReLUs or plain ones.
    Returns (gradient (H, W), target, softmax probability of the target).

    Runs eagerly: the caller turns hybridization off first (see saliency_maps). A custom
    autograd.Function has no graph form, so a hybridized net would not use GuidedReLU's backward."""
    net.guided = guided
    try:
        x = nd.array(image[None])
        x.attach_grad()
        with autograd.record(train_mode=False):
            out = net(x)
            if target is None:
                target = int(out.asnumpy().argmax())
            score = nd.pick(out, nd.array([target]), axis=1)
        score.backward()
        prob = float(nd.softmax(out, axis=1).asnumpy()[0, target])
        return x.grad.asnumpy()[0, 0], target, prob
    finally:
        net.guided = False


def saliency_maps(net, images, hybridized):
    """[(plain gradient, guided backprop, predicted class, its probability)] for each image; the
    net runs eagerly meanwhile and is hybridized again afterwards when `hybridized`."""
    net.hybridize(False)
    try:
        maps = []
        for img in images:
            plain, target, prob = input_gradient(net, img, guided=False)
            guided, _, _ = input_gradient(net, img, target, guided=True)
            maps.append((plain, guided, target, prob))
        return maps
    finally:
        net.hybridize(hybridized)


def standardize_and_clip(g, saturation=0.1, brightness=0.5):
    """The seed's display mapping: standardize, scale by `saturation`, shift, clip to [0, 1]."""
    g = (g - g.mean()) / max(g.std(), 1e-7)
    return np.clip(g * saturation + brightness, 0.0, 1.0)


def saliency_figure(images, maps, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(images)
    fig, ax = plt.subplots(n, 4, figsize=(7, 1.8 * n), squeeze=False)
    for i, (img, (plain, guided, target, prob)) in enumerate(zip(images, maps)):
        ax[i, 0].imshow(img[0], cmap='gray')
        ax[i, 0].set_title(f'class {target}, p = {prob:.3f}', fontsize=8)
        ax[i, 1].imshow(standardize_and_clip(plain), cmap='viridis')
        ax[i, 1].set_title('gradient', fontsize=8)
        ax[i, 2].imshow(standardize_and_clip(guided), cmap='viridis')
        ax[i, 2].set_title('guided backprop', fontsize=8)
        ax[i, 3].imshow(img[0], cmap='gray')
        ax[i, 3].imshow(standardize_and_clip(guided), cmap='viridis', alpha=0.6)
        ax[i, 3].set_title('overlay', fontsize=8)
        for a in ax[i]:
            a.axis('off')
    fig.tight_layout()
    return common.save_figure(fig, path)


def run(out='guided_backprop.png', data_root=common.DATA_DIR / 'mnist', digits=False, epochs=1,
        batch_size=64, lr=2e-3, eager=False, seed=0, limit=20000, n_images=6, progress=True,
        verbose=True):
    """Train briefly, compute saliency maps and save them to `out` (skipped when out is None).
    Returns a dict with 'test_acc', 'maps' [(plain, guided, target, prob)], 'images', 'path'."""
    common.seed_all(seed)
    (x_train, y_train), (x_test, y_test), name = load_data(data_root, digits, limit)
    if verbose:
        print(f'{name}: training a small CNN on {len(x_train)} images ({common.mode_name(eager)})')
    net = SmallCNN()
    net.initialize(mx.init.Xavier())
    if not eager:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    hist = common.fit(net, trainer, common.loader(x_train, y_train, batch_size), epochs,
                      loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      evaluate=lambda n: {'test_acc': common.accuracy(n, x_test, y_test, 500)},
                      desc=f'cnn ({common.mode_name(eager)})', progress=progress, verbose=verbose)
    # one test image of each of the first n_images classes
    picks = [int(np.flatnonzero(y_test == c)[0]) for c in range(min(n_images, 10))]
    images = [x_test[i] for i in picks]
    maps = saliency_maps(net, images, hybridized=not eager)
    path = saliency_figure(images, maps, out) if out else None
    return {'test_acc': hist.last()['test_acc'], 'maps': maps, 'images': images, 'path': path,
            'history': hist, 'seconds': hist.seconds, 'net': net, 'dataset': name}


def main(argv=None):
    p = common.parser(__doc__, epochs=1, batch_size=64, lr=2e-3, data_root=common.DATA_DIR / 'mnist')
    p.add_argument('--out', default='guided_backprop.png', help='the saliency-map PNG (default %(default)s)')
    p.add_argument('--digits', action='store_true', help='use the sklearn 8x8 digits even if MNIST is there')
    p.add_argument('--limit', type=int, default=20000, help='training images used (default %(default)s)')
    args = p.parse_args(argv)
    res = run(args.out, args.data_root, args.digits, args.epochs, args.batch_size, args.lr, args.eager,
              args.seed, args.limit)
    print(f'{res["dataset"]} test accuracy: {100 * res["test_acc"]:.2f}% '
          f'({common.mode_name(args.eager)}, {res["seconds"]:.1f} s of training)')
    print('saliency maps (input, gradient, guided backprop, overlay) saved to '
          f'{os.path.abspath(res["path"])}')
    if args.plot:
        common.plot_history(res['history'], args.plot, f'Small CNN on {res["dataset"]}')
    return res


if __name__ == '__main__':
    main()
