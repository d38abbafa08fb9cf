"""Vision datasets read from local files (MXNet's `gluon.data.vision.datasets`).

These machines have no network, so nothing is downloaded: put the standard files in `root`.
"""
import gzip
import os
import warnings

import numpy as np

from ....base import MXNetError
from ....context import cpu
from ....ndarray import NDArray
from ..dataset import Dataset, RecordFileDataset

__all__ = ['MNIST', 'FashionMNIST', 'ImageFolderDataset']


def _mxnet_home():
    return os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet'))


class _DownloadedDataset(Dataset):
    """Base of datasets held in memory: `_data` (NDArray, N x H x W x C uint8) and `_label`
    (NumPy int32). `transform(data, label)` is applied on access, as in MXNet."""

    def __init__(self, root, transform):
        self._root = os.path.expanduser(root)
        self._transform = transform
        self._data = None
        self._label = None
        self._get_data()

    def __getitem__(self, idx):
        data = NDArray(self._data._data[idx], self._data.context)
        label = self._label[idx]
        if self._transform is not None:
            return self._transform(data, label)
        return data, label

    def __len__(self):
        return len(self._label)

    def _get_data(self):
        raise NotImplementedError


_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049


def _open_idx(path):
    return gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb')


def _read_idx(path, magic, side=28):
    """Read one IDX file (gzipped or not), checking its header. Returns a uint8 array:
    (N, side, side) for images (magic 2051), (N,) for labels (magic 2049)."""
    what = 'images' if magic == _IMAGE_MAGIC else 'labels'
    try:
        with _open_idx(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise MXNetError(f'{path}: cannot read this IDX {what} file: {e}') from None
    head = 16 if magic == _IMAGE_MAGIC else 8
    if len(raw) < head:
        raise MXNetError(f'{path}: not an IDX {what} file: only {len(raw)} bytes, the header needs {head}')
    fields = np.frombuffer(raw, dtype='>u4', count=head // 4)
    if int(fields[0]) != magic:
        raise MXNetError(f'{path}: bad IDX header: magic number {int(fields[0])}, expected {magic} '
                         f'({what}); is this the right file?')
    n = int(fields[1])
    shape = (n,)
    if magic == _IMAGE_MAGIC:
        rows, cols = int(fields[2]), int(fields[3])
        if (rows, cols) != (side, side):
            raise MXNetError(f'{path}: bad IDX header: images are {rows}x{cols}, expected {side}x{side}')
        shape = (n, rows, cols)
    expected = int(np.prod(shape))
    if len(raw) - head != expected:
        raise MXNetError(f'{path}: the header announces {n} {what} ({expected} bytes of data) but the '
                         f'file holds {len(raw) - head} bytes; the file is truncated or corrupt')
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


class MNIST(_DownloadedDataset):
    """The MNIST handwritten digits: samples are `(image, label)` with `image` a (28, 28, 1)
    uint8 NDArray and `label` a NumPy int32.

    root must hold the four standard files (gzipped, as distributed, or uncompressed):
    train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
    t10k-labels-idx1-ubyte.gz. They are validated by their IDX headers.
    transform: optional `fn(data, label) -> sample`.
    """
    _train_files = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte')
    _test_files = ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
    _name = 'MNIST'

    def __init__(self, root=os.path.join(_mxnet_home(), 'datasets', 'mnist'), train=True,
                 transform=None):
        self._train = train
        super().__init__(root, transform)

    def _locate(self, base):
        for name in (base + '.gz', base):
            path = os.path.join(self._root, name)
            if os.path.isfile(path):
                return path
        return None

    def _get_data(self):
        files = self._train_files if self._train else self._test_files
        paths = [self._locate(b) for b in files]
        if None in paths:
            missing = [b + '.gz' for b, p in zip(files, paths) if p is None]
            split = 'training' if self._train else 'test'
            raise MXNetError(
                f'{self._name} ({split} split): missing file(s) {", ".join(missing)} in folder '
                f'{self._root}. This engine does not download datasets; copy the standard '
                f'{self._name} files ({", ".join(b + ".gz" for b in files)}) into that folder, '
                f'or pass root= the folder that holds them.')
        images = _read_idx(paths[0], _IMAGE_MAGIC)
        labels = _read_idx(paths[1], _LABEL_MAGIC)
        if len(images) != len(labels):
            raise MXNetError(f'{self._name}: {paths[0]} holds {len(images)} images but {paths[1]} '
                             f'holds {len(labels)} labels; the files do not belong together')
        self._data = NDArray(images.reshape(images.shape + (1,)).copy(), cpu())  # writable, owned
        self._label = labels.astype(np.int32)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando's clothing images): same files, format and samples as MNIST."""
    _name = 'FashionMNIST'

    def __init__(self, root=os.path.join(_mxnet_home(), 'datasets', 'fashion-mnist'), train=True,
                 transform=None):
        super().__init__(root, train, transform)


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise MXNetError('ImageFolderDataset needs Pillow to decode images: pip install pillow') from None
    return Image


def imread(filename, flag=1):
    """Decode an image file into an HWC uint8 NDArray: flag=1 -> RGB (H, W, 3), flag=0 ->
    grayscale (H, W, 1)."""
    Image = _pil()
    try:
        with Image.open(filename) as im:
            im = im.convert('RGB' if flag else 'L')
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise MXNetError(f'cannot decode image {filename}: {e}') from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return NDArray(np.ascontiguousarray(arr), cpu())


class ImageFolderDataset(Dataset):
    """Images in one sub-folder per class::

        root/car/0001.jpg
        root/car/xxxa.png
        root/bus/123.jpg

    Samples are `(image, label)`: an HWC uint8 NDArray (RGB with flag=1, one channel with
    flag=0) and the class index (an int; classes are the sorted sub-folder names).

    Attributes: `synsets` (class names by index), `items` (list of `(filename, label)`).
    transform: optional `fn(data, label) -> sample`. Needs Pillow.
    """

    def __init__(self, root, flag=1, transform=None):
        self._root = os.path.expanduser(root)
        self._flag = flag
        self._transform = transform
        self._exts = ['.jpg', '.jpeg', '.png']
        self._list_images(self._root)

    def _list_images(self, root):
        if not os.path.isdir(root):
            raise MXNetError(f'ImageFolderDataset: {root} is not a folder; expected one sub-folder '
                             'of images per class')
        self.synsets = []
        self.items = []
        for folder in sorted(os.listdir(root)):
            path = os.path.join(root, folder)
            if not os.path.isdir(path):
                warnings.warn(f'ImageFolderDataset: ignoring {path}, which is not a folder', stacklevel=3)
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for filename in sorted(os.listdir(path)):
                fpath = os.path.join(path, filename)
                ext = os.path.splitext(filename)[1].lower()
                if ext not in self._exts:
                    warnings.warn(f'ImageFolderDataset: ignoring {fpath}, whose extension is not one '
                                  f'of {self._exts}', stacklevel=3)
                    continue
                self.items.append((fpath, label))

    def __getitem__(self, idx):
        img = imread(self.items[idx][0], self._flag)
        label = self.items[idx][1]
        if self._transform is not None:
            return self._transform(img, label)
        return img, label

    def __len__(self):
        return len(self.items)


class ImageRecordDataset(RecordFileDataset):
    """Images stored in a RecordIO file as image records (`mx.recordio.pack_img` / `pack`), with
    its `.idx` index beside it. Samples are `(image, label)`: an HWC uint8 NDArray (RGB with
    flag=1, one channel with flag=0) and the record header's label (a float, or a float32 array
    for multi-label records). transform: optional `fn(data, label) -> sample`."""

    def __init__(self, filename, flag=1, transform=None):
        super().__init__(filename)
        self._flag = flag
        self._transform = transform

    def __getitem__(self, idx):
        from .... import image, recordio
        header, payload = recordio.unpack(super().__getitem__(idx))
        img = image.imdecode(payload, self._flag)
        if self._transform is not None:
            return self._transform(img, header.label)
        return img, header.label
