"""examples/unet_membrane.py: joint augmentation, the Dice loss, the threshold baseline, a short
training run on tiny crops, and (slow) the full run's bar."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
needs_data = pytest.mark.skipif(not (DATA / 'membrane_512.npz').exists(),
                                reason=f'membrane_512.npz not in {DATA}')


def test_joint_transform_moves_image_and_mask_together():
    import unet_membrane as um
    rng = np.random.default_rng(0)
    size, crop = 96, 48
    # the mask is a thresholded copy of the image: after one joint transform they must still agree
    image = np.zeros((size, size), np.float32)
    image[20:60, 30:50] = 1.0
    image[70:80, 10:90] = 1.0
    mask = (image > 0.5).astype(np.float32)
    for _ in range(10):
        matrix, offset = um.random_affine(rng, crop, size, max_angle=15, max_scale=0.1)
        img, msk = um.joint_transform(image, mask, matrix, offset, crop)
        assert img.shape == msk.shape == (crop, crop)
        assert set(np.unique(msk)) <= {0.0, 1.0}                  # nearest neighbour: stays binary
        sure = (img > 0.9) | (img < 0.1)                          # away from interpolated edges
        np.testing.assert_array_equal(msk[sure], (img[sure] > 0.5).astype(np.float32))


def test_identity_transform_is_a_plain_crop():
    import unet_membrane as um
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    img, msk = um.joint_transform(image, image, np.eye(2), np.array([5.0, 7.0]), 16)
    np.testing.assert_array_equal(img, image[5:21, 7:23])
    np.testing.assert_array_equal(msk, image[5:21, 7:23])


@pytest.mark.parametrize('hybridize', [False, True])
def test_dice_loss_values_and_gradient(hybridize):
    import unet_membrane as um
    from engine import autograd, nd
    rng = np.random.default_rng(1)
    p = rng.uniform(size=(3, 1, 8, 8)).astype(np.float32)
    t = (rng.uniform(size=(3, 1, 8, 8)) > 0.5).astype(np.float32)
    loss = um.DiceLoss()
    if hybridize:
        loss.hybridize()
    pred = nd.array(p)
    pred.attach_grad()
    with autograd.record():
        out = loss(pred, nd.array(t))
    out.backward()
    inter, total = (p * t).sum(axis=(1, 2, 3)), p.sum(axis=(1, 2, 3)) + t.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(out.asnumpy(), 1 - (2 * inter + 1) / (total + 1), rtol=1e-5)
    grad = -(2 * t * (total + 1)[:, None, None, None] - (2 * inter + 1)[:, None, None, None]) \
        / ((total + 1) ** 2)[:, None, None, None]
    np.testing.assert_allclose(pred.grad.asnumpy(), grad, rtol=1e-4, atol=1e-6)
    # a perfect prediction has (almost) zero loss
    assert loss(nd.array(t), nd.array(t)).asnumpy().max() < 1e-6


def test_membrane_loss_eager_equals_hybridized():
    import unet_membrane as um
    from engine import nd
    rng = np.random.default_rng(2)
    p = nd.array(rng.uniform(0.05, 0.95, size=(2, 1, 16, 16)).astype(np.float32))
    t = nd.array((rng.uniform(size=(2, 1, 16, 16)) > 0.3).astype(np.float32))
    eager = [v.asnumpy() for v in um.MembraneLoss()(p, t)]
    hyb = um.MembraneLoss()
    hyb.hybridize()
    for a, b in zip(eager, [v.asnumpy() for v in hyb(p, t)]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eager[0], 0.3 * eager[1] + 0.7 * eager[2], rtol=1e-5)


def test_metrics_and_threshold_baseline():
    import unet_membrane as um
    mask = np.array([[0, 1, 1, 0]], np.float32)          # membrane at both ends
    assert um.membrane_dice(np.array([[0.1, 0.9, 0.8, 0.2]]), mask) == 1.0
    assert um.membrane_dice(np.array([[0.9, 0.9, 0.8, 0.9]]), mask) == 0.0
    assert um.membrane_dice(np.array([[0.1, 0.1, 0.8, 0.9]]), mask) == pytest.approx(0.5)
    raw = np.array([[10, 200, 220, 30]], np.uint8)
    d, t = um.threshold_baseline(raw, mask)
    assert d == 1.0 and 30 <= t < 200
    # brute force over every level agrees with the histogram version
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, size=(2, 20, 20)).astype(np.uint8)
    mask = (raw + rng.normal(0, 40, raw.shape) > 100).astype(np.float32)
    best = max(um.dice(mask == 0, raw <= level) for level in range(256))
    assert um.threshold_baseline(raw, mask)[0] == pytest.approx(best)


def test_missing_data_exits_with_message(tmp_path):
    import unet_membrane as um
    with pytest.raises(SystemExit) as e:
        um.main(['--data-root', str(tmp_path)])
    assert 'membrane_512.npz' in str(e.value)


@needs_data
def test_short_run_on_tiny_crops(tmp_path):
    """A few steps of a tiny U-Net on 32x32 crops: the loss falls and the outputs are sane."""
    import unet_membrane as um
    (xt, yt), (xv, yv), raw = um.load(DATA)
    assert xt.shape == (25, 512, 512) and xv.shape == (5, 512, 512)
    assert set(np.unique(yt)) == {0.0, 1.0}
    # validate on two 64x64 corners to keep it fast
    small = ((xt, yt), (xv[:2, :64, :64], yv[:2, :64, :64]), raw[:2, :64, :64])
    res = um.run(depth=2, base_filters=4, dropout=0.0, crop=32, batch_size=4, crops_per_epoch=40,
                 epochs=3, lr=0.05, progress=False, verbose=False, data=small)
    loss = res['history'].step_loss
    assert np.all(np.isfinite(loss))
    assert np.mean(loss[-5:]) < np.mean(loss[:5])
    prob = res['prediction']
    assert prob.shape == (2, 64, 64) and np.all((prob >= 0) & (prob <= 1))
    assert 0.0 <= res['val_dice'] <= 1.0 and 0.0 < res['baseline_dice'] < 1.0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    um.plot(res, tmp_path / 'u.png')
    assert (tmp_path / 'u.png').stat().st_size > 0


@needs_data
def test_eager_and_hybridized_agree_on_a_full_image():
    import unet_membrane as um
    import engine as mx
    (_, _), (xv, _), _ = um.load(DATA)
    mx.random.seed(0)
    net = um.make_net(depth=3, base_filters=4, dropout=0.5)
    img = xv[:1, :128, :128]
    eager = um.predict(net, img)
    net.hybridize()
    np.testing.assert_allclose(um.predict(net, img), eager, rtol=1e-4, atol=1e-5)
    tiled = um.predict(net, img, tile=64)      # tiles see less context: same shape, not same values
    assert tiled.shape == img.shape and np.all((tiled >= 0) & (tiled <= 1))


@pytest.mark.slow
@needs_data
def test_full_run_reaches_bar():
    import unet_membrane as um
    res = um.main([])
    assert res['val_dice'] >= 0.75
    assert res['val_dice'] >= res['baseline_dice'] + 0.1
