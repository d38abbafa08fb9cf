"""U-Net segmentation of cell membranes in electron-microscopy images (ISBI 2012).

The seed's U-Net (`gluon.model_zoo.vision.get_model('unet', ...)`: levels of two 3x3 conv + ReLU
with dropout between them, max-pooling down, 2x2 stride-2 transposed convolutions up with
skip connections, a 1x1 conv and a sigmoid), trained like the seed notebook:

* loss = 0.3 * Dice + 0.7 * binary cross entropy, the Dice loss a custom `gluon.loss.Loss`
  written with ops (so it hybridizes);
* SGD with momentum 0.9 and a one-cycle learning rate (`mx.lr_scheduler.OneCycleScheduler`);
* random crops of the training images, augmented JOINTLY with their masks: one random affine
  transform (flips, a small rotation, a small rescale) is applied to both, with linear
  interpolation for the image and nearest-neighbour for the mask (mirrored at the borders).

Data: ../shared/data/membrane_512.npz (or --data-root DIR holding it): 30 images 512x512 with
masks (1 = cell interior, 0 = membrane). Images 0-24 train, 25-29 validate, the latter evaluated
on the whole 512x512 images. The network predicts the mask as stored (probability of cell
interior); the structure of interest is the membrane, so the Dice loss and the reported metric are
computed on the membrane class: `1 - mask` against `1 - (prediction > 0.5)`, pooled over the five
validation images. For scale, the best global intensity threshold (membrane = pixels at or below
the level, every level 0..255 tried on the validation images themselves) is printed beside it.

    python examples/unet_membrane.py                       # hybridized (default), ~5 min on 2 cores
    python examples/unet_membrane.py --eager --epochs 1    # the same model run eagerly
    python examples/unet_membrane.py --plot unet.png       # loss curves + a validation prediction
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon, nd  # noqa: E402

FILE = 'membrane_512.npz'
N_TRAIN = 25            # images 0-24 train, 25-29 validate
DICE_WEIGHT = 0.3       # loss = 0.3 * Dice + 0.7 * BCE, as in the seed


# ---- data --------------------------------------------------------------------------------------

def load(data_root=common.DATA_DIR):
    """(train_images, train_masks), (valid_images, valid_masks): images float32 (N, 512, 512)
    standardized with the training images' mean and standard deviation, masks float32 with
    1 = cell interior, 0 = membrane. Also returns the raw uint8 validation images (for the
    threshold baseline)."""
    path = common.require(os.path.join(str(data_root), FILE), f'the ISBI membrane file {FILE}')
    with np.load(path) as d:
        images, masks = d['images'], d['masks']
    raw = images.astype(np.float32) / 255.0
    mean, std = raw[:N_TRAIN].mean(), raw[:N_TRAIN].std()
    x = (raw - mean) / std
    y = masks.astype(np.float32)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:]), images[N_TRAIN:]


def random_affine(rng, crop, size, max_angle=15.0, max_scale=0.1, flips=True):
    """A random transform mapping output (crop x crop) coordinates to input coordinates:
    `input = matrix @ output + offset`. Random flips of each axis, a rotation by up to
    `max_angle` degrees and a zoom by a factor in [1 - max_scale, 1 + max_scale], around a
    random centre inside the `size` x `size` image."""
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle))
    zoom = rng.uniform(1.0 - max_scale, 1.0 + max_scale)
    flip = np.where(rng.random(2) < 0.5, -1.0, 1.0) if flips else np.ones(2)
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.diag(flip) / zoom
    half = crop / 2.0
    centre = rng.uniform(half, size - half, size=2)
    out_centre = np.full(2, (crop - 1) / 2.0)
    offset = centre - matrix @ out_centre
    return matrix, offset


def joint_transform(image, mask, matrix, offset, crop):
    """Apply ONE affine transform to an image (linear interpolation) and its mask (nearest
    neighbour, so it stays binary), mirroring at the borders; returns two crop x crop arrays."""
    kw = dict(matrix=matrix, offset=offset, output_shape=(crop, crop), mode='mirror')
    return (ndimage.affine_transform(image, order=1, **kw),
            ndimage.affine_transform(mask, order=0, **kw))


class MembraneCrops(gluon.data.Dataset):
    """`length` random training crops per pass: sample i comes from image i % N with a fresh
    random joint transform (or, with augment=False, a plain random crop). Samples are
    (1, crop, crop) image and mask arrays. Draws from one seeded generator, so use it with
    num_workers=0 (the default) for reproducible runs."""

    def __init__(self, images, masks, crop=128, length=200, augment=True, seed=0):
        if crop > images.shape[-1]:
            raise ValueError(f'MembraneCrops: crop {crop} is larger than the images {images.shape[-2:]}')
        self.images, self.masks, self.crop, self.length = images, masks, crop, length
        self.augment = augment
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        return self.length

    def __getitem__(self, idx):
        k = idx % len(self.images)
        img, msk = self.images[k], self.masks[k]
        if self.augment:
            matrix, offset = random_affine(self._rng, self.crop, img.shape[-1])
            img, msk = joint_transform(img, msk, matrix, offset, self.crop)
        else:
            r, c = self._rng.integers(0, img.shape[-1] - self.crop + 1, size=2)
            img, msk = img[r:r + self.crop, c:c + self.crop], msk[r:r + self.crop, c:c + self.crop]
        return img[None].astype(np.float32), msk[None].astype(np.float32)


# ---- model and loss ----------------------------------------------------------------------------

class DiceLoss(gluon.loss.Loss):
    """Soft Dice loss per sample: 1 - (2 sum(p*t) + smooth) / (sum(p) + sum(t) + smooth), the
    sums over every axis but the batch axis. Written with ops, so it runs eagerly and hybridized."""

    def __init__(self, smooth=1.0, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._smooth = smooth

    def hybrid_forward(self, F, pred, label):
        axes = tuple(i for i in range(1, pred.ndim))
        inter = F.sum(pred * label, axis=axes)
        total = F.sum(pred, axis=axes) + F.sum(label, axis=axes)
        loss = 1.0 - (2.0 * inter + self._smooth) / (total + self._smooth)
        return loss if self._weight is None else loss * self._weight


class MembraneLoss(gluon.HybridBlock):
    """0.3 * Dice(membrane) + 0.7 * BCE(mask), per sample. `pred` is the network's sigmoid
    output (probability of cell interior); the Dice term is computed on the membrane class
    (1 - pred against 1 - label), the class to be segmented. Returns (total, dice, bce)."""

    def __init__(self, dice_weight=DICE_WEIGHT, **kwargs):
        super().__init__(**kwargs)
        self._w = dice_weight
        with self.name_scope():
            self.dice = DiceLoss()
            self.bce = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True)

    def hybrid_forward(self, F, pred, label):
        dice = self.dice(1.0 - pred, 1.0 - label)
        bce = self.bce(pred, label)
        return self._w * dice + (1.0 - self._w) * bce, dice, bce


def make_net(depth=4, base_filters=16, dropout=0.1):
    """The seed's U-Net for one-channel images and one output (sigmoid) channel."""
    net = gluon.model_zoo.vision.get_model('unet', depth=depth, base_filters=base_filters,
                                           in_channels=1, classes=1, dropout=dropout)
    # He-style initialization (the layers are followed by ReLUs)
    net.initialize(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    return net


# ---- metrics -----------------------------------------------------------------------------------

def dice(a, b):
    """Dice coefficient 2|A and B| / (|A| + |B|) of two boolean arrays (pooled over all pixels)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(a, b).sum() / denom)


def membrane_dice(prob, mask):
    """Dice of the membrane class: 1 - mask against 1 - (prob > 0.5)."""
    return dice(np.asarray(mask) == 0, ~(np.asarray(prob) > 0.5))


def threshold_baseline(raw_images, masks):
    """The best global intensity threshold: membrane = pixels <= t (membranes are dark), every
    t in 0..255 tried; returns (best Dice, best t). Computed from histograms in one pass."""
    raw = np.asarray(raw_images, np.uint8)
    membrane = np.asarray(masks) == 0
    hist_all = np.bincount(raw.ravel(), minlength=256)
    hist_mem = np.bincount(raw[membrane].ravel(), minlength=256)
    tp = np.cumsum(hist_mem)                 # membrane pixels at or below t
    predicted = np.cumsum(hist_all)          # all pixels at or below t
    scores = 2.0 * tp / (predicted + membrane.sum())
    t = int(scores.argmax())
    return float(scores[t]), t


def predict(net, images, tile=None):
    """Probabilities (N, H, W) for whole images, one image per call (predict mode: dropout off).
    `tile` (a divisor of H and W) runs the image in non-overlapping tiles instead (less memory)."""
    out = np.empty(images.shape, np.float32)
    for i, img in enumerate(images):
        if tile is None:
            out[i] = net(nd.array(img[None, None])).asnumpy()[0, 0]
        else:
            for r in range(0, img.shape[0], tile):
                for c in range(0, img.shape[1], tile):
                    patch = img[None, None, r:r + tile, c:c + tile]
                    out[i, r:r + tile, c:c + tile] = net(nd.array(patch)).asnumpy()[0, 0]
    return out


def evaluate(net, loss_fn, images, masks, tile=None):
    """Validation figures on whole images: membrane Dice at 0.5, mean loss, and the predictions."""
    prob = predict(net, images, tile)
    total, d, b = loss_fn(nd.array(prob[:, None]), nd.array(masks[:, None]))
    return {'val_loss': float(total.mean().asscalar()), 'val_soft_dice_loss': float(d.mean().asscalar()),
            'val_dice': membrane_dice(prob, masks)}, prob


# ---- training ----------------------------------------------------------------------------------

# sized for 2 CPU cores: 1,500 SGD steps of 4 crops, ~0.16-0.25 s each hybridized (4.5 minutes in
# all, validation passes included); measured: membrane Dice 0.795 against 0.560 for the best threshold
DEFAULTS = dict(depth=4, base_filters=16, dropout=0.1, crop=128, batch_size=4, crops_per_epoch=400,
                epochs=15, lr=0.1)


def run(data_root=common.DATA_DIR, depth=4, base_filters=16, dropout=0.1, crop=128, batch_size=4,
        crops_per_epoch=400, epochs=15, lr=0.1, eager=False, seed=0, augment=True, tile=None,
        progress=True, verbose=True, data=None):
    """Train and evaluate; returns a dict with 'val_dice', 'baseline_dice', 'baseline_threshold',
    'history', 'seconds', 'net', 'prediction' (validation probabilities) and 'valid' (images, masks).
    `data` may be the result of `load()` (to reuse it across runs)."""
    common.seed_all(seed)
    (x_train, y_train), (x_valid, y_valid), raw_valid = data if data is not None else load(data_root)
    baseline, threshold = threshold_baseline(raw_valid, y_valid)
    net = make_net(depth, base_filters, dropout)
    loss_fn = MembraneLoss()
    if not eager:
        net.hybridize()
        loss_fn.hybridize()
    dataset = MembraneCrops(x_train, y_train, crop, crops_per_epoch, augment, seed)
    batches = gluon.data.DataLoader(dataset, batch_size=batch_size, last_batch='discard')
    steps = epochs * len(batches)
    schedule = mx.lr_scheduler.OneCycleScheduler(max_update=steps, max_lr=lr, cycle_momentum=False)
    trainer = gluon.Trainer(net.collect_params(), 'sgd',
                            {'learning_rate': lr, 'momentum': 0.9, 'lr_scheduler': schedule})
    if verbose:
        n_params = sum(p.data().size for p in net.collect_params().values())
        print(f'ISBI membranes: {len(x_train)} training images (random {crop}x{crop} crops, '
              f'{"joint flips/rotation/rescale" if augment else "no augmentation"}), '
              f'{len(x_valid)} validation images {x_valid.shape[1]}x{x_valid.shape[2]}; '
              f'U-Net depth {depth}, {base_filters} base filters, {n_params:,} parameters; '
              f'{epochs} epochs x {len(batches)} steps of {batch_size}; {common.mode_name(eager)}')
    state = {'prob': None}

    def forward(x, y):
        total, _, _ = loss_fn(net(x), y)
        return total, None

    def evaluate_epoch(n):
        figures, state['prob'] = evaluate(n, loss_fn, x_valid, y_valid, tile)
        return figures

    hist = common.fit(net, trainer, batches, epochs, forward=forward, evaluate=evaluate_epoch,
                      desc=f'U-Net ({common.mode_name(eager)})', track_accuracy=False,
                      progress=progress, verbose=verbose)
    val_dice = hist.last()['val_dice']
    if verbose:
        print(f'membrane Dice on the validation images: U-Net {val_dice:.4f}, best global '
              f'threshold {baseline:.4f} (pixels <= {threshold}); margin {val_dice - baseline:+.4f}')
    return {'val_dice': val_dice, 'baseline_dice': baseline, 'baseline_threshold': threshold,
            'history': hist, 'seconds': hist.seconds, 'net': net, 'prediction': state['prob'],
            'valid': (x_valid, y_valid)}


# ---- plots -------------------------------------------------------------------------------------

def plot(res, path):
    """Loss curves (training steps, validation per epoch) and one validation image with its
    true and predicted membranes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    hist = res['history']
    fig = plt.figure(figsize=(15, 8))
    ax = fig.add_subplot(2, 3, 1)
    steps = np.arange(1, len(hist.step_loss) + 1)
    ax.plot(steps, hist.step_loss, alpha=0.3, color='C0', label='training (step)')
    per_epoch = len(hist.step_loss) // max(1, len(hist.epochs['loss']))
    epochs_x = per_epoch * np.arange(1, len(hist.epochs['loss']) + 1)
    ax.plot(epochs_x, hist.epochs['loss'], color='C0', marker='o', label='training (epoch mean)')
    val = [(x, v) for x, v in zip(epochs_x, hist.epochs.get('val_loss', [])) if v is not None]
    if val:
        ax.plot(*zip(*val), color='C1', marker='o', label='validation')
    ax.set_xlabel('step')
    ax.set_ylabel('0.3 Dice + 0.7 BCE')
    ax.set_yscale('log')
    ax.grid(linestyle='dotted')
    ax.legend()
    ax = fig.add_subplot(2, 3, 4)
    dices = [(x, v) for x, v in zip(epochs_x, hist.epochs.get('val_dice', [])) if v is not None]
    if dices:
        ax.plot(*zip(*dices), color='C2', marker='o', label='U-Net')
    ax.axhline(res['baseline_dice'], color='gray', linestyle='dashed',
               label=f'best threshold ({res["baseline_threshold"]})')
    ax.set_xlabel('step')
    ax.set_ylabel('validation membrane Dice')
    ax.grid(linestyle='dotted')
    ax.legend()
    x_valid, y_valid = res['valid']
    prob = res['prediction']
    panels = [(x_valid[0], 'validation image 25', 'gray'), (y_valid[0], 'true mask (black = membrane)', 'gray'),
              (prob[0], 'predicted P(interior)', 'gray'),
              (_error_map(prob[0] > 0.5, y_valid[0] > 0.5), 'errors: red = missed membrane, blue = false membrane', None)]
    for k, (img, title, cmap) in zip((2, 3, 5, 6), panels):
        a = fig.add_subplot(2, 3, k)
        a.imshow(img, cmap=cmap)
        a.set_title(title, fontsize=9)
        a.axis('off')
    fig.suptitle(f'U-Net on ISBI membranes: validation membrane Dice {res["val_dice"]:.3f} '
                 f'(threshold baseline {res["baseline_dice"]:.3f})')
    fig.tight_layout()
    common.save_figure(fig, path)


def _error_map(pred_interior, true_interior):
    rgb = np.where(true_interior[..., None], 1.0, 0.0) * np.ones(3)        # white interior, black membrane
    missed = pred_interior & ~true_interior                                 # membrane predicted as interior
    false = ~pred_interior & true_interior
    rgb[missed] = (1.0, 0.0, 0.0)
    rgb[false] = (0.0, 0.3, 1.0)
    return rgb


def main(argv=None):
    p = common.parser(__doc__, epochs=DEFAULTS['epochs'], batch_size=DEFAULTS['batch_size'],
                      lr=DEFAULTS['lr'], data_root=common.DATA_DIR)
    p.add_argument('--depth', type=int, default=DEFAULTS['depth'], help='U-Net levels (default %(default)s)')
    p.add_argument('--base-filters', type=int, default=DEFAULTS['base_filters'],
                   help='channels of the first level, doubling per level (default %(default)s)')
    p.add_argument('--dropout', type=float, default=DEFAULTS['dropout'], help='(default %(default)s)')
    p.add_argument('--crop', type=int, default=DEFAULTS['crop'], help='training crop size (default %(default)s)')
    p.add_argument('--crops-per-epoch', type=int, default=DEFAULTS['crops_per_epoch'],
                   help='random crops per epoch (default %(default)s)')
    p.add_argument('--no-augment', action='store_true', help='plain random crops, no flips/rotation/rescale')
    p.add_argument('--tile', type=int, help='evaluate the 512x512 images in tiles of this size '
                                            '(default: whole images)')
    p.add_argument('--threads', type=int,
                   help='Numba/BLAS threads (default: the engine\'s). On a busy machine 1 can be much faster: '
                        'multi-threaded BLAS stalls when another process holds a core')
    args = p.parse_args(argv)
    if args.threads:
        mx.set_num_threads(args.threads)
    t0 = time.perf_counter()
    res = run(args.data_root, args.depth, args.base_filters, args.dropout, args.crop, args.batch_size,
              args.crops_per_epoch, args.epochs, args.lr, args.eager, args.seed, not args.no_augment,
              args.tile)
    print(f'final: validation membrane Dice {res["val_dice"]:.4f} vs best global threshold '
          f'{res["baseline_dice"]:.4f} (level {res["baseline_threshold"]}); '
          f'{common.mode_name(args.eager)}, {res["seconds"]:.1f} s of training, '
          f'{time.perf_counter() - t0:.1f} s in all')
    if args.plot:
        plot(res, args.plot)
    return res


if __name__ == '__main__':
    main()
