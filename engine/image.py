"""`mx.image`: decoding (Pillow), resizing and cropping of HWC images, as in MXNet 1.x.
Interpolation codes are OpenCV's, as MXNet's: 0 nearest, 1 bilinear, 2 bicubic, 3 area,
4 Lanczos, 9 auto (bicubic to enlarge, area to shrink, else bilinear), 10 random."""
import io
import os
import random as _pyrandom

import numpy as np

from .base import MXNetError
from .context import cpu
from .gluon.data.vision.datasets import _pil
from .gluon.data.vision.transforms import _fixed_crop, _resize, _scale_down
from .ndarray import NDArray, array


def _decode(fileobj, flag, to_rgb, what):
    Image = _pil()
    try:
        with Image.open(fileobj) as im:
            arr = np.asarray(im.convert('RGB' if flag else 'L'), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise MXNetError(f'{what}: cannot decode the image: {e}') from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif not to_rgb:
        arr = arr[:, :, ::-1]               # OpenCV's channel order
    return NDArray(np.ascontiguousarray(arr), cpu())


def imread(filename, flag=1, to_rgb=True):
    """Read an image file into an (H, W, 3) uint8 NDArray (RGB, or BGR with to_rgb=False);
    flag=0 reads grayscale, (H, W, 1)."""
    if not os.path.isfile(filename):
        raise MXNetError(f'imread: no such file {filename!r}')
    return _decode(filename, flag, to_rgb, f'imread({filename!r})')


def imdecode(buf, flag=1, to_rgb=True):
    """Decode an encoded image (bytes, or a uint8 NDArray/NumPy buffer) like `imread`."""
    if isinstance(buf, NDArray):
        buf = buf.asnumpy()
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise MXNetError(f'imdecode: expected a uint8 buffer, got {buf.dtype}')
        buf = buf.tobytes()
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise MXNetError(f'imdecode: expected bytes or a uint8 array, got {type(buf).__name__}')
    return _decode(io.BytesIO(bytes(buf)), flag, to_rgb, 'imdecode')


def _hwc(src, who):
    if not isinstance(src, NDArray):
        raise MXNetError(f'{who}: expected an NDArray image, got {type(src).__name__}')
    if src.ndim != 3:
        raise MXNetError(f'{who}: expected an (H, W, C) image, got shape {src.shape}')
    return src.asnumpy()


def _interp(interp, sizes):
    """Resolve the auto (9) and random (10) codes to 0-4."""
    if interp == 9:
        oh, ow, nh, nw = sizes
        return 2 if nh > oh and nw > ow else 3 if nh < oh and nw < ow else 1
    if interp == 10:
        return _pyrandom.randint(0, 4)
    if interp not in (0, 1, 2, 3, 4):
        raise MXNetError(f'image: unknown interpolation {interp!r}; expected 0-4, 9 or 10')
    return interp


def _out(a, like):
    return array(a, ctx=like.context, dtype=a.dtype)


def imresize(src, w, h, interp=1):
    """Resize an HWC image to width w and height h."""
    a = _hwc(src, 'imresize')
    if w < 1 or h < 1:
        raise MXNetError(f'imresize: size must be positive, got w={w}, h={h}')
    return _out(_resize(a, w, h, _interp(interp, (a.shape[0], a.shape[1], h, w))), src)


def resize_short(src, size, interp=2):
    """Resize so that the shorter side is `size`, keeping the aspect ratio."""
    a = _hwc(src, 'resize_short')
    h, w = a.shape[:2]
    nh, nw = (size * h // w, size) if h > w else (size, size * w // h)
    return _out(_resize(a, nw, nh, _interp(interp, (h, w, nh, nw))), src)


def scale_down(src_size, size):
    """Shrink a crop size (w, h) to fit an image of src_size (w, h), keeping its aspect ratio."""
    return _scale_down(src_size[0], src_size[1], size[0], size[1])


def fixed_crop(src, x0, y0, w, h, size=None, interp=2):
    """Crop the (w, h) region at (x0, y0), resized to size (w, h) if given."""
    a = _hwc(src, 'fixed_crop')
    H, W = a.shape[:2]
    if x0 < 0 or y0 < 0 or w < 1 or h < 1 or x0 + w > W or y0 + h > H:
        raise MXNetError(f'fixed_crop: region x0={x0}, y0={y0}, w={w}, h={h} is outside the '
                         f'{W}x{H} image')
    code = 1 if size is None else _interp(interp, (h, w, size[1], size[0]))
    return _out(_fixed_crop(a, x0, y0, w, h, size, code), src)


def center_crop(src, size, interp=2):
    """Crop the centre to size (w, h) (scaled up if the image is smaller); returns
    (image, (x0, y0, w, h)) with the region taken from the source."""
    H, W = _hwc(src, 'center_crop').shape[:2]
    w, h = scale_down((W, H), size)
    x0, y0 = (W - w) // 2, (H - h) // 2
    return fixed_crop(src, x0, y0, w, h, size, interp), (x0, y0, w, h)


def random_crop(src, size, interp=2):
    """Crop a random region of size (w, h) (scaled up if the image is smaller); returns
    (image, (x0, y0, w, h))."""
    H, W = _hwc(src, 'random_crop').shape[:2]
    w, h = scale_down((W, H), size)
    x0, y0 = _pyrandom.randint(0, W - w), _pyrandom.randint(0, H - h)
    return fixed_crop(src, x0, y0, w, h, size, interp), (x0, y0, w, h)


def color_normalize(src, mean, std=None):
    """(src - mean) / std, broadcasting over the channel axis. Returns a new array (MXNet
    updates an NDArray src in place as well)."""
    out = src - mean
    return out if std is None else out / std
