"""Image transforms (MXNet's `gluon.data.vision.transforms`), written with NumPy.

Each transform is a callable object: `t(x)` takes an NDArray (the result is an NDArray on the same
context) or a NumPy array (the result is a NumPy array). Layouts follow MXNet:

* image-space transforms (Resize, crops, flips, color jitter) take HWC images or NHWC batches,
  uint8 or float; sizes given as tuples are `(width, height)`;
* ToTensor turns HWC [0, 255] into CHW float32 [0, 1] (NHWC -> NCHW);
* Normalize and RandomRotation take CHW images or NCHW batches of floats (after ToTensor).

Random transforms draw from the data generator (`gluon.data.sampler.data_rng`), which follows
`mx.random.seed` and differs in every DataLoader worker; batches get one draw per image.
"""
import numpy as np

from ....base import DTYPES, MXNetError, fmt_shape
from ....ndarray import NDArray
from ..sampler import data_rng

__all__ = ['Compose', 'Cast', 'ToTensor', 'Normalize', 'Resize', 'CenterCrop', 'RandomResizedCrop',
           'RandomCrop', 'CropResize', 'RandomFlipLeftRight', 'RandomFlipTopBottom',
           'RandomRotation', 'RandomBrightness', 'RandomContrast', 'RandomSaturation', 'RandomHue',
           'RandomColorJitter', 'RandomLighting']


# ---------------------------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------------------------
def _unwrap(x):
    if isinstance(x, NDArray):
        return x.asnumpy(), x.context
    return np.asarray(x), None


def _rewrap(arr, ctx):
    if ctx is None:
        return arr
    arr = np.ascontiguousarray(arr)
    if ctx.device_type == 'cpu':
        return NDArray(arr, ctx)
    from ....ndarray import array
    return array(arr, ctx=ctx, dtype=arr.dtype)


def _fmt(v):
    if isinstance(v, float):
        return f'{v:g}'
    if isinstance(v, (tuple, list)):
        inner = ', '.join(_fmt(e) for e in v)
        return f'({inner},)' if len(v) == 1 else f'({inner})'
    return repr(v)


class Transform:
    """Base class: subclasses implement `_apply(numpy_array) -> numpy_array`."""

    def __call__(self, x):
        arr, ctx = _unwrap(x)
        return _rewrap(self._apply(arr), ctx)

    forward = __call__

    def hybridize(self, *args, **kwargs):
        """No-op (MXNet transforms are HybridBlocks; these run in NumPy)."""

    def _args(self):
        return {}

    def __repr__(self):
        args = ', '.join(f'{k}={_fmt(v)}' for k, v in self._args().items())
        return f'{type(self).__name__}({args})'

    def _check_ndim(self, a, ndims, layout):
        if a.ndim not in ndims:
            raise MXNetError(f'{type(self).__name__}: expected an image of layout {layout}, got an '
                             f'array of shape {fmt_shape(a.shape)}')


def _per_image(fn, a):
    """Apply `fn` to a 3-D image, or to every image of a 4-D batch (stacking the results)."""
    if a.ndim == 4:
        return np.stack([fn(img) for img in a]) if len(a) else a
    return fn(a)


def _as_float(a):
    return a if a.dtype.kind == 'f' and a.dtype.itemsize >= 4 else a.astype(np.float32)


def _restore(out, dtype):
    """Cast a float result back to the input's dtype (rounding and saturating integers)."""
    dtype = np.dtype(dtype)
    if dtype.kind in 'iub':
        info = np.iinfo(dtype) if dtype.kind != 'b' else None
        out = np.rint(out)
        if info is not None:
            out = np.clip(out, info.min, info.max)
    return out.astype(dtype, copy=False)


def _wh(size, who):
    """MXNet size argument -> (width, height)."""
    if isinstance(size, (int, np.integer)):
        w = h = int(size)
    else:
        try:
            w, h = (int(s) for s in size)
        except (TypeError, ValueError):
            raise MXNetError(f'{who}: size must be an int or a (width, height) pair, got {size!r}') from None
    if w < 1 or h < 1:
        raise MXNetError(f'{who}: size must be positive, got {size!r}')
    return w, h


# ---------------------------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------------------------
def _taps(n_in, n_out, interp):
    """Source indices and weights, (n_out, K) each, that resample an axis of n_in to n_out.
    interp: OpenCV's codes, as MXNet uses them: 0 nearest, 1 bilinear, 2 bicubic, 3 area,
    4 Lanczos-4, with OpenCV's pixel-centre conventions."""
    scale = n_in / n_out
    d = np.arange(n_out, dtype=np.float64)
    if interp == 0:
        idx = np.minimum(np.floor(d * scale).astype(np.int64), n_in - 1)
        return idx[:, None], np.ones((n_out, 1), np.float32)
    if interp == 3:
        return _area_taps(n_in, n_out, scale, d)
    src = (d + 0.5) * scale - 0.5
    i = np.floor(src)
    f = src - i
    i = i.astype(np.int64)
    if interp == 1:
        low, high = i < 0, i >= n_in - 1
        f[low | high] = 0.0
        i = np.clip(i, 0, n_in - 1)
        idx = np.stack([i, np.minimum(i + 1, n_in - 1)], 1)
        w = np.stack([1 - f, f], 1)
    elif interp == 2:
        a = -0.75
        f1, f2 = f + 1, 1 - f
        w0 = ((a * f1 - 5 * a) * f1 + 8 * a) * f1 - 4 * a
        w1 = ((a + 2) * f - (a + 3)) * f * f + 1
        w2 = ((a + 2) * f2 - (a + 3)) * f2 * f2 + 1
        w = np.stack([w0, w1, w2, 1 - w0 - w1 - w2], 1)
        idx = np.clip(i[:, None] + np.arange(-1, 3), 0, n_in - 1)
    elif interp == 4:
        offs = np.arange(-3, 5)
        x = f[:, None] - offs
        w = np.sinc(x) * np.sinc(x / 4)
        w /= w.sum(1, keepdims=True)
        idx = np.clip(i[:, None] + offs, 0, n_in - 1)
    else:
        raise MXNetError(f'interpolation must be 0 (nearest), 1 (bilinear), 2 (bicubic), 3 (area) '
                         f'or 4 (Lanczos), got {interp!r}')
    return idx, w.astype(np.float32)


def _area_taps(n_in, n_out, scale, d):
    """Area resampling: when shrinking, each output averages the input span it covers; when
    enlarging, OpenCV's rule is a linear blend that only starts past the covered pixel's edge."""
    if scale > 1:
        k = int(np.ceil(scale)) + 1
        lo = d * scale
        hi = lo + scale
        j = np.floor(lo).astype(np.int64)[:, None] + np.arange(k)
        overlap = np.clip(np.minimum(j + 1, hi[:, None]) - np.maximum(j, lo[:, None]), 0, None)
        return np.clip(j, 0, n_in - 1), (overlap / scale).astype(np.float32)
    i = np.floor(d * scale).astype(np.int64)
    f = (d + 1) - (i + 1) / scale
    f = np.where(f <= 0, 0.0, f - np.floor(f))
    f[i >= n_in - 1] = 0.0
    i = np.minimum(i, n_in - 1)
    idx = np.stack([i, np.minimum(i + 1, n_in - 1)], 1)
    return idx, np.stack([1 - f, f], 1).astype(np.float32)


def _resample_axis(a, n_out, axis, interp):
    n_in = a.shape[axis]
    if n_in == n_out:
        return a
    idx, w = _taps(n_in, n_out, interp)
    if idx.shape[1] == 1 and interp == 0:
        return np.take(a, idx[:, 0], axis=axis)
    shape = [1] * a.ndim
    shape[axis] = n_out
    out = np.take(a, idx[:, 0], axis=axis) * w[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        out += np.take(a, idx[:, k], axis=axis) * w[:, k].reshape(shape)
    return out


def _resize(a, w, h, interp=1):
    """Resize an HWC image or NHWC batch to height h, width w."""
    H, W = a.shape[-3], a.shape[-2]
    if (H, W) == (h, w):
        return a.copy()
    if H == 0 or W == 0:
        raise MXNetError(f'Resize: cannot resize an empty image of shape {fmt_shape(a.shape)}')
    src = a if interp == 0 else _as_float(a)
    out = _resample_axis(_resample_axis(src, h, -3, interp), w, -2, interp)
    return out.astype(a.dtype, copy=False) if interp == 0 else _restore(out, a.dtype)


def _scale_down(src_w, src_h, w, h):
    """Shrink the crop (w, h) to fit in (src_w, src_h), keeping its aspect ratio."""
    if src_h < h:
        w, h = w * src_h / h, src_h
    if src_w < w:
        w, h = src_w, h * src_w / w
    return int(w), int(h)


def _fixed_crop(a, x0, y0, w, h, size=None, interp=1):
    out = a[..., y0:y0 + h, x0:x0 + w, :]
    if size is not None and (w, h) != tuple(size):
        return _resize(out, size[0], size[1], interp)
    return out.copy()


def _center_crop(a, size, interp):
    H, W = a.shape[-3], a.shape[-2]
    w, h = _scale_down(W, H, *size)
    x0, y0 = int((W - w) / 2), int((H - h) / 2)
    return _fixed_crop(a, x0, y0, w, h, size, interp)


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------
class Compose(Transform):
    """Apply transforms one after another."""

    def __init__(self, transforms):
        self._transforms = list(transforms)

    def __call__(self, x):
        for t in self._transforms:
            x = t(x)
        return x

    forward = __call__

    def __len__(self):
        return len(self._transforms)

    def __getitem__(self, i):
        return self._transforms[i]

    def __repr__(self):
        inner = ''.join(f'\n  ({i}): {t!r}' for i, t in enumerate(self._transforms))
        return f'Compose({inner}\n)'


class Cast(Transform):
    """Cast to `dtype` (default float32)."""

    def __init__(self, dtype='float32'):
        if isinstance(dtype, str) and dtype not in DTYPES:
            raise MXNetError(f'Cast: unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}')
        self._dtype = np.dtype(DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype)

    def _apply(self, a):
        return a.astype(self._dtype)

    def _args(self):
        return {'dtype': self._dtype.name}


class ToTensor(Transform):
    """HWC image (or NHWC batch) with values in [0, 255] -> CHW (NCHW) float32 in [0, 1]."""

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        t = a.transpose(2, 0, 1) if a.ndim == 3 else a.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(np.divide(t, 255.0, dtype=np.float32))


class Normalize(Transform):
    """(x - mean) / std per channel of a CHW image or NCHW batch (mean, std: numbers or one value
    per channel)."""

    def __init__(self, mean=0.0, std=1.0):
        self._mean, self._std = mean, std
        m = np.asarray(mean, dtype=np.float64).reshape(-1)
        s = np.asarray(std, dtype=np.float64).reshape(-1)
        if np.any(s == 0):
            raise MXNetError(f'Normalize: std must not contain zeros, got {std!r}')
        self._m, self._s = m, s

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(C, H, W) or (N, C, H, W)')
        c = a.shape[-3]
        stats = []
        for name, v in (('mean', self._m), ('std', self._s)):
            if v.size not in (1, c):
                raise MXNetError(f'Normalize: {name} has {v.size} values but the image has {c} '
                                 f'channels (shape {fmt_shape(a.shape)}, layout CHW/NCHW)')
            stats.append(v.reshape(-1, 1, 1))
        x = _as_float(a)
        return ((x - stats[0].astype(x.dtype)) / stats[1].astype(x.dtype)).astype(x.dtype, copy=False)

    def _args(self):
        return {'mean': self._mean, 'std': self._std}


class Resize(Transform):
    """Resize an HWC image or NHWC batch.

    size: int (a square, or with keep_ratio=True the length of the shorter side) or (width, height).
    interpolation: OpenCV's codes: 0 nearest, 1 bilinear (default), 2 bicubic, 3 area, 4 Lanczos.
    """

    def __init__(self, size, keep_ratio=False, interpolation=1):
        self._size = size
        self._keep = keep_ratio
        self._interp = interpolation
        _wh(size, 'Resize')
        _taps(2, 1, interpolation)  # validates interpolation

    def _target(self, H, W):
        if isinstance(self._size, (int, np.integer)):
            s = int(self._size)
            if not self._keep:
                return s, s
            if H > W:
                return s, int(H * s / W)
            return int(W * s / H), s
        return _wh(self._size, 'Resize')

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        w, h = self._target(a.shape[-3], a.shape[-2])
        return _resize(a, w, h, self._interp)

    def _args(self):
        return {'size': self._size, 'keep_ratio': self._keep, 'interpolation': self._interp}


class CenterCrop(Transform):
    """Crop the centre of an HWC image (NHWC batch) to size (int or (width, height)); an image
    smaller than that is cropped to its aspect ratio and resized up."""

    def __init__(self, size, interpolation=1):
        self._size = _wh(size, 'CenterCrop')
        self._interp = interpolation

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        return _center_crop(a, self._size, self._interp)

    def _args(self):
        return {'size': self._size, 'interpolation': self._interp}


class CropResize(Transform):
    """Crop the region at (x, y) of width x height, then optionally resize it to size."""

    def __init__(self, x, y, width, height, size=None, interpolation=None):
        self._box = (int(x), int(y), int(width), int(height))
        self._size = None if size is None else _wh(size, 'CropResize')
        self._interp = 1 if interpolation is None else interpolation

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        x, y, w, h = self._box
        H, W = a.shape[-3], a.shape[-2]
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > W or y + h > H:
            raise MXNetError(f'CropResize: region x={x}, y={y}, width={w}, height={h} does not fit '
                             f'in an image of {W}x{H} (shape {fmt_shape(a.shape)})')
        return _fixed_crop(a, x, y, w, h, self._size, self._interp)

    def _args(self):
        x, y, w, h = self._box
        return {'x': x, 'y': y, 'width': w, 'height': h, 'size': self._size,
                'interpolation': self._interp}


class RandomResizedCrop(Transform):
    """Crop a random region (area fraction in `scale`, aspect ratio in `ratio`) of an HWC image
    and resize it to size (int or (width, height)); after 10 failed tries, a centre crop."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation=1):
        self._size = _wh(size, 'RandomResizedCrop')
        if isinstance(scale, (int, float)):
            scale = (scale, 1.0)
        self._scale = tuple(scale)
        self._ratio = tuple(ratio)
        self._interp = interpolation
        if not (0 < self._scale[0] <= self._scale[1]) or not (0 < self._ratio[0] <= self._ratio[1]):
            raise MXNetError(f'RandomResizedCrop: scale and ratio must be increasing positive '
                             f'(min, max) pairs, got scale={scale}, ratio={ratio}')

    def _one(self, img):
        H, W = img.shape[0], img.shape[1]
        rng = data_rng()
        area = H * W
        log_ratio = (np.log(self._ratio[0]), np.log(self._ratio[1]))
        for _ in range(10):
            target = rng.uniform(*self._scale) * area
            r = np.exp(rng.uniform(*log_ratio))
            w = int(round(np.sqrt(target * r)))
            h = int(round(np.sqrt(target / r)))
            if 0 < w <= W and 0 < h <= H:
                x0 = int(rng.integers(0, W - w + 1))
                y0 = int(rng.integers(0, H - h + 1))
                return _fixed_crop(img, x0, y0, w, h, self._size, self._interp)
        return _center_crop(img, self._size, self._interp)

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        return _per_image(self._one, a)

    def _args(self):
        return {'size': self._size, 'scale': self._scale, 'ratio': self._ratio,
                'interpolation': self._interp}


class RandomCrop(Transform):
    """Pad (optional, constant `pad_value`) then crop a random region of size (int or
    (width, height)) from an HWC image; an image still smaller than that is resized up."""

    def __init__(self, size, pad=None, pad_value=0, interpolation=1):
        self._size = _wh(size, 'RandomCrop')
        self._pad = pad
        self._pad_value = pad_value
        self._interp = interpolation

    def _pad_width(self):
        p = self._pad
        if isinstance(p, (int, np.integer)):
            return ((p, p), (p, p))
        p = tuple(p)
        if len(p) == 2 and all(isinstance(e, (int, np.integer)) for e in p):
            return ((p[0], p[0]), (p[1], p[1]))
        if len(p) == 4:  # (top, bottom, left, right)
            return ((p[0], p[1]), (p[2], p[3]))
        return tuple(tuple(e) for e in p)

    def _one(self, img):
        if self._pad:
            (t, b), (l, r) = self._pad_width()
            img = np.pad(img, ((t, b), (l, r), (0, 0)), constant_values=self._pad_value)
        H, W = img.shape[0], img.shape[1]
        w, h = _scale_down(W, H, *self._size)
        rng = data_rng()
        x0 = int(rng.integers(0, W - w + 1))
        y0 = int(rng.integers(0, H - h + 1))
        return _fixed_crop(img, x0, y0, w, h, self._size, self._interp)

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        return _per_image(self._one, a)

    def _args(self):
        return {'size': self._size, 'pad': self._pad, 'pad_value': self._pad_value,
                'interpolation': self._interp}


class _RandomFlip(Transform):
    _axis = None

    def __init__(self, p=0.5):
        self._p = float(p)

    def _one(self, img):
        if data_rng().random() < self._p:
            return np.flip(img, self._axis).copy()
        return img

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        return _per_image(self._one, a)

    def _args(self):
        return {'p': self._p}


class RandomFlipLeftRight(_RandomFlip):
    """Mirror an HWC image (each image of an NHWC batch) left-right with probability p."""
    _axis = 1


class RandomFlipTopBottom(_RandomFlip):
    """Flip an HWC image (each image of an NHWC batch) upside down with probability p."""
    _axis = 0


def _rotate(img, degrees, zoom_in=False, zoom_out=False, order=1):
    """Rotate the last two axes (H, W) of `img` counter-clockwise by `degrees` about the centre,
    filling with zeros. order: 1 bilinear, 0 nearest."""
    H, W = img.shape[-2], img.shape[-1]
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    c = 0.0 if abs(c) < 1e-12 else c
    s = 0.0 if abs(s) < 1e-12 else s
    z = 1.0
    if zoom_in or zoom_out:
        hw, hh = W / 2.0, H / 2.0
        corners = np.array([[hw, hh], [hw, -hh], [-hw, hh], [-hw, -hh]])
        if zoom_in:   # output corners must land inside the input
            sx = np.abs(c * corners[:, 0] - s * corners[:, 1]).max()
            sy = np.abs(s * corners[:, 0] + c * corners[:, 1]).max()
            z = min(hw / sx, hh / sy)
        else:         # input corners must land inside the output
            ox = np.abs(c * corners[:, 0] + s * corners[:, 1]).max()
            oy = np.abs(-s * corners[:, 0] + c * corners[:, 1]).max()
            z = max(ox / hw, oy / hh)
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    dy, dx = np.meshgrid(np.arange(H) - cy, np.arange(W) - cx, indexing='ij')
    dy, dx = dy * z, dx * z
    ys = cy + c * dy + s * dx
    xs = cx + c * dx - s * dy
    lead = img.shape[:-2]
    flat = img.reshape((-1, H * W))
    out = np.zeros((flat.shape[0], H * W), dtype=np.float32 if img.dtype.itemsize < 8 else img.dtype)
    if order == 0:
        yi, xi = np.floor(ys + 0.5).astype(np.int64), np.floor(xs + 0.5).astype(np.int64)
        ok = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W)
        out[:, ok.ravel()] = flat[:, (yi * W + xi)[ok]]
        return out.reshape(lead + (H, W))
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = (ys - y0).ravel(), (xs - x0).ravel()
    y0, x0 = y0.astype(np.int64).ravel(), x0.astype(np.int64).ravel()
    for oy, ox, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                        (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + oy, x0 + ox
        ok = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W) & (wgt > 0)
        out[:, ok] += flat[:, yy[ok] * W + xx[ok]] * wgt[ok].astype(out.dtype)
    return out.reshape(lead + (H, W))


class RandomRotation(Transform):
    """Rotate a CHW image (each image of an NCHW batch) of floats by a random angle, in degrees,
    drawn uniformly from angle_limits=(min, max); positive angles turn counter-clockwise. Areas
    outside the source are filled with zeros.

    zoom_in: enlarge so that no fill shows; zoom_out: shrink so the whole image stays visible.
    rotate_with_proba: probability of rotating an image at all.
    interpolation: 'bilinear' (default) or 'nearest'.
    """

    def __init__(self, angle_limits, zoom_in=False, zoom_out=False, rotate_with_proba=1.0,
                 interpolation='bilinear'):
        try:
            lo, hi = (float(v) for v in angle_limits)
        except (TypeError, ValueError):
            raise MXNetError(f'RandomRotation: angle_limits must be a (min, max) pair of degrees, '
                             f'got {angle_limits!r}') from None
        if lo > hi:
            raise MXNetError(f'RandomRotation: angle_limits min {lo} > max {hi}')
        if zoom_in and zoom_out:
            raise MXNetError('RandomRotation: zoom_in and zoom_out cannot both be set')
        if not 0.0 <= rotate_with_proba <= 1.0:
            raise MXNetError(f'RandomRotation: rotate_with_proba must be in [0, 1], got {rotate_with_proba}')
        if interpolation not in ('bilinear', 'nearest'):
            raise MXNetError(f"RandomRotation: interpolation must be 'bilinear' or 'nearest', "
                             f"got {interpolation!r}")
        self._limits = (lo, hi)
        self._zoom_in, self._zoom_out = bool(zoom_in), bool(zoom_out)
        self._proba = float(rotate_with_proba)
        self._order = 1 if interpolation == 'bilinear' else 0

    def _one(self, img):
        rng = data_rng()
        if self._proba < 1.0 and rng.random() >= self._proba:
            return img
        angle = rng.uniform(*self._limits)
        return _rotate(img, angle, self._zoom_in, self._zoom_out, self._order).astype(img.dtype)

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(C, H, W) or (N, C, H, W)')
        if a.dtype.kind != 'f':
            raise MXNetError(f'RandomRotation: expects a float (C, H, W) image or (N, C, H, W) batch '
                             f'as produced by ToTensor, got {a.dtype} of shape {fmt_shape(a.shape)}')
        return _per_image(self._one, a)

    def _args(self):
        return {'angle_limits': self._limits, 'zoom_in': self._zoom_in, 'zoom_out': self._zoom_out,
                'rotate_with_proba': self._proba}


# ---- color -----------------------------------------------------------------------------------
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _need_rgb(who, a):
    if a.shape[-1] != 3:
        raise MXNetError(f'{who}: expected an RGB image of layout (H, W, 3) or (N, H, W, 3), got '
                         f'shape {fmt_shape(a.shape)}')


class _ColorTransform(Transform):
    _rgb = True

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')
        if self._rgb:
            _need_rgb(type(self).__name__, a)
        return _per_image(lambda img: _restore(self._one(_as_float(img)), img.dtype), a)


class RandomBrightness(_ColorTransform):
    """Multiply by 1 + u, u uniform in [-brightness, brightness]."""
    _rgb = False

    def __init__(self, brightness):
        self._b = float(brightness)

    def _one(self, x):
        return x * (1.0 + data_rng().uniform(-self._b, self._b))

    def _args(self):
        return {'brightness': self._b}


class RandomContrast(_ColorTransform):
    """Blend with the mean gray level by a factor 1 + u, u uniform in [-contrast, contrast]."""

    def __init__(self, contrast):
        self._c = float(contrast)

    def _one(self, x):
        alpha = 1.0 + data_rng().uniform(-self._c, self._c)
        gray = float((x @ _GRAY.astype(x.dtype)).mean())
        return x * alpha + gray * (1.0 - alpha)

    def _args(self):
        return {'contrast': self._c}


class RandomSaturation(_ColorTransform):
    """Blend with each pixel's gray level by a factor 1 + u, u uniform in [-saturation, saturation]."""

    def __init__(self, saturation):
        self._s = float(saturation)

    def _one(self, x):
        alpha = 1.0 + data_rng().uniform(-self._s, self._s)
        gray = (x @ _GRAY.astype(x.dtype))[..., None]
        return x * alpha + gray * (1.0 - alpha)

    def _args(self):
        return {'saturation': self._s}


_TYIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
_ITYIQ = np.linalg.inv(_TYIQ)  # exact inverse, so that a zero hue shift is the identity


class RandomHue(_ColorTransform):
    """Rotate the hue (in YIQ space) by u * 180 degrees, u uniform in [-hue, hue]."""

    def __init__(self, hue):
        self._h = float(hue)

    def _one(self, x):
        alpha = data_rng().uniform(-self._h, self._h)
        u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = (_ITYIQ @ rot @ _TYIQ).T.astype(x.dtype)
        return x @ t

    def _args(self):
        return {'hue': self._h}


class RandomColorJitter(Transform):
    """Brightness, contrast, saturation and hue jitter, in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self._args_ = {'brightness': brightness, 'contrast': contrast, 'saturation': saturation,
                       'hue': hue}
        self._ts = [cls(v) for cls, v in ((RandomBrightness, brightness), (RandomContrast, contrast),
                                          (RandomSaturation, saturation), (RandomHue, hue)) if v]

    def _apply(self, a):
        self._check_ndim(a, (3, 4), '(H, W, C) or (N, H, W, C)')

        def one(img):
            for i in data_rng().permutation(len(self._ts)):
                img = self._ts[i]._apply(img)
            return img
        return _per_image(one, a)

    def _args(self):
        return self._args_


_EIGVAL = np.array([55.46, 4.794, 1.148])
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                    [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]])


class RandomLighting(_ColorTransform):
    """AlexNet-style PCA lighting noise with standard deviation alpha (for [0, 255] RGB)."""

    def __init__(self, alpha):
        self._alpha = float(alpha)

    def _one(self, x):
        a = data_rng().normal(0.0, self._alpha, size=3)
        return x + (_EIGVEC @ (a * _EIGVAL)).astype(x.dtype)

    def _args(self):
        return {'alpha': self._alpha}
