"""mx.image against MXNet 1.9.1's results (tests/fixtures/mxnet/image_ops.npz, written by
generate_image.py there). MXNet resizes with OpenCV's fixed-point arithmetic: values agree to 1."""
import io
import os

import numpy as np
import pytest

import engine as mx
from engine import nd

PIL = pytest.importorskip('PIL.Image')
REF = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'mxnet', 'image_ops.npz'))
IMG = REF['img']
SRC = nd.array(IMG, dtype='uint8')


def close(a, ref):
    assert a.shape == ref.shape and a.dtype == ref.dtype
    assert np.abs(a.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize('interp', range(5))
@pytest.mark.parametrize('w, h', [(8, 6), (24, 20), (11, 7)])
def test_imresize_matches_mxnet(interp, w, h):
    close(mx.image.imresize(SRC, w, h, interp=interp).asnumpy(), REF[f'imresize_{interp}_{w}_{h}'])


def test_resize_short_and_crops_match_mxnet():
    close(mx.image.resize_short(SRC, 6).asnumpy(), REF['resize_short_6'])
    close(mx.image.resize_short(SRC, 20).asnumpy(), REF['resize_short_20'])
    for w, h in [(8, 4), (30, 6)]:
        crop, rect = mx.image.center_crop(SRC, (w, h))
        close(crop.asnumpy(), REF[f'center_crop_{w}_{h}'])
        assert rect == tuple(REF[f'center_crop_{w}_{h}_rect'])
    close(mx.image.fixed_crop(SRC, 2, 3, 6, 5, size=(12, 10)).asnumpy(), REF['fixed_crop'])


def png_bytes(a):
    buf = io.BytesIO()
    PIL.fromarray(a).save(buf, format='PNG')
    return buf.getvalue()


def test_imdecode_and_imread(tmp_path):
    data = png_bytes(IMG)
    np.testing.assert_array_equal(mx.image.imdecode(data).asnumpy(), IMG)
    np.testing.assert_array_equal(mx.image.imdecode(data, to_rgb=False).asnumpy(), IMG[:, :, ::-1])
    np.testing.assert_array_equal(mx.image.imdecode(nd.array(np.frombuffer(data, np.uint8), dtype='uint8')).asnumpy(), IMG)
    gray = mx.image.imdecode(data, flag=0).asnumpy()
    luma = IMG.astype(float) @ [0.299, 0.587, 0.114]
    assert gray.shape == (12, 16, 1) and np.abs(gray[:, :, 0] - luma).max() <= 1
    path = tmp_path / 'x.png'
    path.write_bytes(data)
    img = mx.image.imread(str(path))
    assert img.dtype == np.uint8 and img.context == mx.cpu()
    np.testing.assert_array_equal(img.asnumpy(), IMG)


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(mx.MXNetError, match='no such file'):
        mx.image.imread(str(tmp_path / 'missing.png'))
    with pytest.raises(mx.MXNetError, match='cannot decode'):
        mx.image.imdecode(b'not an image')
    with pytest.raises(mx.MXNetError, match='interpolation'):
        mx.image.imresize(SRC, 4, 4, interp=7)
    with pytest.raises(mx.MXNetError, match=r'\(H, W, C\)'):
        mx.image.imresize(nd.zeros((4, 4)), 2, 2)
    with pytest.raises(mx.MXNetError, match='outside'):
        mx.image.fixed_crop(SRC, 10, 0, 10, 5)


def test_random_crop_region_is_inside_and_matches_fixed_crop():
    mx.random.seed(1)
    for _ in range(5):
        crop, (x0, y0, w, h) = mx.image.random_crop(SRC, (5, 4))
        assert 0 <= x0 <= 16 - w and 0 <= y0 <= 12 - h and crop.shape == (4, 5, 3)
        np.testing.assert_array_equal(crop.asnumpy(), IMG[y0:y0 + h, x0:x0 + w])


def test_seed_slide_29_color_normalize():
    image = nd.array(IMG, dtype='uint8').astype('float32')
    mean, std = nd.array([0.485, 0.456, 0.406]), nd.array([0.229, 0.224, 0.225])
    out = mx.image.color_normalize(image / 255.0, mean=mean, std=std)
    ref = (IMG / 255.0 - mean.asnumpy()) / std.asnumpy()
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mx.image.color_normalize(image, mean).asnumpy(), IMG - mean.asnumpy(), rtol=1e-6)
