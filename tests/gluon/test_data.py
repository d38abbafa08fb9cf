"""gluon.data: datasets, samplers, DataLoader (in-process, worker processes, threads), the MNIST
reader, ImageFolderDataset and vision transforms."""
import gc
import gzip
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.base import MXNetError
from engine.gluon import data as gdata
from engine.gluon.data.vision import transforms as T

REPO = Path(__file__).resolve().parents[2]
MNIST_DIR = REPO.parent / 'shared' / 'data' / 'mnist'


def _shm_entries(pid=None):
    # DataLoader segments are named mxdl<pid of the loading process>_...
    prefix = f'mxdl{os.getpid() if pid is None else pid}_'
    try:
        return {n for n in os.listdir('/dev/shm') if n.startswith(prefix)}
    except FileNotFoundError:
        return set()


@pytest.fixture
def no_shm_leak():
    before = _shm_entries()
    yield
    gc.collect()
    assert _shm_entries() - before == set()


def _as_np(x):
    return x.asnumpy() if isinstance(x, nd.NDArray) else np.asarray(x)


def _batches(loader):
    return [[_as_np(f) for f in (b if isinstance(b, (list, tuple)) else [b])] for b in loader]


# ---- datasets ------------------------------------------------------------------------------
def test_array_dataset_samples_and_errors():
    X = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = nd.array(np.arange(6), dtype='int32')
    ds = gdata.ArrayDataset(nd.array(X), y, list('abcdef'))
    assert len(ds) == 6
    x3, y3, c3 = ds[3]
    assert isinstance(x3, nd.NDArray) and x3.shape == (2, 2)
    np.testing.assert_array_equal(x3.asnumpy(), X[3])
    assert isinstance(y3, np.integer) and y3 == 3  # 1-D NDArrays become NumPy, as in MXNet
    assert c3 == 'd'
    single = gdata.ArrayDataset(X)
    np.testing.assert_array_equal(single[5], X[5])
    with pytest.raises(MXNetError, match='same length'):
        gdata.ArrayDataset(X, np.arange(5))
    with pytest.raises(MXNetError):
        gdata.ArrayDataset()
    assert [s[2] for s in ds] == list('abcdef')  # iteration protocol stops at IndexError


def test_transform_and_transform_first():
    ds = gdata.ArrayDataset(np.arange(5), np.arange(5) * 10)
    lazy = ds.transform_first(lambda x: x + 100)
    assert lazy[2] == (102, 20)
    eager = ds.transform(lambda x, y: (x * 2, y + 1), lazy=False)
    assert isinstance(eager, gdata.SimpleDataset) and eager[4] == (8, 41)
    single = gdata.SimpleDataset([1, 2, 3]).transform_first(lambda x: -x)
    assert [single[i] for i in range(3)] == [-1, -2, -3]
    assert len(ds.filter(lambda s: s[0] % 2 == 0)) == 3
    assert [s[0] for s in ds.take(2)] == [0, 1]
    shards = [[int(s[0]) for s in ds.shard(2, i)] for i in range(2)]
    assert shards == [[0, 1, 2], [3, 4]]


# ---- samplers ------------------------------------------------------------------------------
def test_sequential_and_random_sampler():
    assert list(gdata.SequentialSampler(5)) == [0, 1, 2, 3, 4]
    assert list(gdata.SequentialSampler(3, start=2)) == [2, 3, 4]
    r = gdata.RandomSampler(50)
    a, b = list(r), list(r)
    assert sorted(a) == list(range(50)) and sorted(b) == list(range(50)) and a != b
    mx.random.seed(7)
    first = list(gdata.RandomSampler(20))
    mx.random.seed(7)
    assert list(gdata.RandomSampler(20)) == first


def test_batch_sampler_last_batch_modes():
    seq = gdata.SequentialSampler(10)
    keep = gdata.BatchSampler(seq, 3, 'keep')
    assert list(keep) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]] and len(keep) == 4
    discard = gdata.BatchSampler(seq, 3, 'discard')
    assert list(discard) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and len(discard) == 3
    roll = gdata.BatchSampler(seq, 3, 'rollover')
    assert len(roll) == 3
    assert list(roll) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(roll) == 3  # (1 left over + 10) // 3
    assert list(roll) == [[9, 0, 1], [2, 3, 4], [5, 6, 7]]
    assert list(roll)[0] == [8, 9, 0]
    with pytest.raises(MXNetError, match='last_batch'):
        gdata.BatchSampler(seq, 3, 'drop')
    with pytest.raises(MXNetError, match='batch_size'):
        gdata.BatchSampler(seq, 0)
    assert list(gdata.IntervalSampler(7, 3)) == [0, 3, 6, 1, 4, 2, 5]
    assert list(gdata.IntervalSampler(7, 3, rollover=False)) == [0, 3, 6]


# ---- DataLoader: arguments, batchify ---------------------------------------------------------
def test_dataloader_argument_validation():
    ds = gdata.ArrayDataset(np.arange(10))
    with pytest.raises(MXNetError, match='batch_size must be specified'):
        gdata.DataLoader(ds)
    with pytest.raises(MXNetError, match='shuffle must not be specified'):
        gdata.DataLoader(ds, batch_size=2, shuffle=True, sampler=gdata.SequentialSampler(10))
    bs = gdata.BatchSampler(gdata.SequentialSampler(10), 4)
    for kw in ({'batch_size': 2}, {'shuffle': True}, {'last_batch': 'keep'},
               {'sampler': gdata.SequentialSampler(10)}):
        with pytest.raises(MXNetError, match='must not be specified if batch_sampler'):
            gdata.DataLoader(ds, batch_sampler=bs, **kw)
    with pytest.raises(MXNetError, match='last_batch'):
        gdata.DataLoader(ds, batch_size=2, last_batch='nope')
    with pytest.raises(MXNetError, match='num_workers'):
        gdata.DataLoader(ds, batch_size=2, num_workers=-1)
    with pytest.raises(ValueError):  # MXNet raised ValueError; ours is both
        gdata.DataLoader(ds)
    loader = gdata.DataLoader(ds, batch_sampler=bs)
    assert len(loader) == 3
    assert [b.asnumpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_default_batchify_dtypes():
    f = gdata.default_batchify_fn
    imgs = [np.full((2, 2, 1), i, np.uint8) for i in range(3)]
    b = f(imgs)
    assert b.dtype == np.uint8 and b.shape == (3, 2, 2, 1)
    assert f([1, 2, 3]).dtype == np.int64
    assert f([1.5, 2.0]).dtype == np.float64
    assert f([np.float32(1), np.float32(2)]).dtype == np.float32
    assert f([np.int32(1), np.int32(2)]).dtype == np.int32
    x, y = f([(nd.array(np.ones((2, 3))), 4), (nd.array(np.zeros((2, 3))), 5)])
    assert x.dtype == np.float32 and x.shape == (2, 2, 3) and y.asnumpy().tolist() == [4, 5]
    with pytest.raises(MXNetError, match='same shape'):
        f([np.zeros(3), np.zeros(4)])


# ---- DataLoader: workers ---------------------------------------------------------------------
def _toy(n=23):
    X = np.random.default_rng(0).integers(0, 255, size=(n, 4, 4, 3), dtype=np.uint8)
    return gdata.ArrayDataset(X, np.arange(n, dtype=np.int32), np.linspace(0, 1, n).astype(np.float32))


@pytest.mark.parametrize('last_batch', ['keep', 'discard'])
def test_workers_match_single_process(no_shm_leak, last_batch):
    ds = _toy()
    ref = _batches(gdata.DataLoader(ds, batch_size=5, last_batch=last_batch))
    loader = gdata.DataLoader(ds, batch_size=5, last_batch=last_batch, num_workers=2)
    assert len(loader) == len(ref) == (5 if last_batch == 'keep' else 4)
    for _ in range(2):  # iterating twice works
        got = _batches(loader)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            for gf, rf in zip(g, r):
                assert gf.dtype == rf.dtype and gf.shape == rf.shape
                np.testing.assert_array_equal(gf, rf)
    threads = _batches(gdata.DataLoader(ds, batch_size=5, last_batch=last_batch, num_workers=2,
                                        thread_pool=True))
    for g, r in zip(threads, ref):
        for gf, rf in zip(g, r):
            np.testing.assert_array_equal(gf, rf)


def test_worker_batches_are_ndarrays_and_writable(no_shm_leak):
    loader = gdata.DataLoader(_toy(8), batch_size=4, num_workers=2)
    batches = list(loader)
    x, y, z = batches[0]
    assert isinstance(x, nd.NDArray) and x.dtype == np.uint8 and x.shape == (4, 4, 4, 3)
    assert y.dtype == np.int32 and z.dtype == np.float32
    x[0] = 0  # backed by private (already unlinked) shared memory
    assert x.asnumpy()[0].sum() == 0
    del batches, x, y, z


@pytest.mark.parametrize('num_workers', [0, 2])
def test_shuffle_covers_every_sample_once(no_shm_leak, num_workers):
    ds = gdata.ArrayDataset(np.arange(37))
    loader = gdata.DataLoader(ds, batch_size=6, shuffle=True, num_workers=num_workers)
    orders = []
    for _ in range(2):
        seen = np.concatenate([b.asnumpy() for b in loader])
        assert sorted(seen.tolist()) == list(range(37))
        orders.append(seen.tolist())
    assert orders[0] != orders[1]


def test_shuffle_order_depends_on_seed_not_on_workers(no_shm_leak):
    ds = gdata.ArrayDataset(np.arange(30))

    def epochs(num_workers):
        mx.random.seed(11)
        loader = gdata.DataLoader(ds, batch_size=4, shuffle=True, num_workers=num_workers)
        return [np.concatenate([b.asnumpy() for b in loader]).tolist() for _ in range(2)]
    assert epochs(0) == epochs(2)


def test_shuffle_and_worker_randomness_follow_seed(no_shm_leak):
    class Noisy(gdata.Dataset):
        def __getitem__(self, i):
            return np.float64(gdata.sampler.data_rng().random())

        def __len__(self):
            return 16

    def run():
        mx.random.seed(3)
        return np.concatenate([b.asnumpy() for b in
                               gdata.DataLoader(Noisy(), batch_size=4, shuffle=True, num_workers=2)])
    a, b = run(), run()
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 16  # the two workers draw different numbers


class _Failing(gdata.Dataset):
    def __init__(self, mode, bad=7, sleep=30):
        self.mode, self.bad, self.sleep = mode, bad, sleep

    def __getitem__(self, i):
        if i == self.bad:
            if self.mode == 'raise':
                raise ValueError(f'cannot decode sample {i}: boom')
            if self.mode == 'kill':
                os.kill(os.getpid(), signal.SIGKILL)
            if self.mode == 'sleep':
                time.sleep(self.sleep)
        return np.full((3,), i, np.float32)

    def __len__(self):
        return 16


def test_worker_exception_becomes_clear_error(no_shm_leak):
    loader = gdata.DataLoader(_Failing('raise'), batch_size=2, num_workers=2)
    t0 = time.monotonic()
    with pytest.raises(MXNetError) as info:
        for _ in loader:
            pass
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert 'cannot decode sample 7: boom' in msg and 'ValueError' in msg and 'batch 3' in msg
    assert len(list(gdata.DataLoader(_Failing('none'), batch_size=4, num_workers=2))) == 4
    with pytest.raises(MXNetError, match='cannot decode sample 7: boom'):
        list(gdata.DataLoader(_Failing('raise'), batch_size=2, num_workers=2, thread_pool=True))


def test_killed_worker_becomes_clear_error(no_shm_leak):
    loader = gdata.DataLoader(_Failing('kill'), batch_size=2, num_workers=2)
    t0 = time.monotonic()
    with pytest.raises(MXNetError, match='exited unexpectedly.*SIGKILL'):
        for _ in loader:
            pass
    assert time.monotonic() - t0 < 10


def test_worker_timeout(no_shm_leak):
    loader = gdata.DataLoader(_Failing('sleep', bad=0), batch_size=2, num_workers=2, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(MXNetError, match=r'timed out after timeout=0.5 s'):
        next(iter(loader))
    assert time.monotonic() - t0 < 5
    with pytest.raises(MXNetError, match='timed out'):
        next(iter(gdata.DataLoader(_Failing('sleep', bad=0, sleep=1.5), batch_size=2, num_workers=1,
                                   thread_pool=True, timeout=0.3)))


def test_abandoned_iteration_cleans_up(no_shm_leak):
    loader = gdata.DataLoader(_toy(40), batch_size=2, num_workers=2, prefetch=6)
    it = iter(loader)
    first = next(it)
    procs = list(it._procs)
    del it
    gc.collect()
    assert all(not p.is_alive() for p in procs)
    for _ in loader:  # a new pass still works
        break
    del first


def test_no_resource_tracker_warnings_in_a_fresh_process():
    code = (
        'import numpy as np\n'
        'from engine.gluon import data as gdata\n'
        'ds = gdata.ArrayDataset(np.zeros((30, 8, 8), np.float32), np.arange(30))\n'
        'loader = gdata.DataLoader(ds, batch_size=4, num_workers=2)\n'
        'keep = [b for b in loader]\n'
        'for b in loader:\n'
        '    break\n'
        'print("ok", len(keep))\n'
    )
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert 'ok 8' in out
    assert 'leaked' not in err and 'resource_tracker' not in err, err
    assert _shm_entries(proc.pid) == set()


def test_seed_snippet_runs(no_shm_leak):
    rng = np.random.default_rng(1)

    def load_image(index):
        return (rng.random((3, 8, 8), dtype=np.float32), int(index % 3), np.float32(index) / 10)

    class MyDataset(gdata.Dataset):
        def __getitem__(self, index):
            im, y0, y1 = load_image(index)
            return im, y0, y1

        def __len__(self):
            return 10

    seen = []

    def update(model, X, Y0, Y1):
        assert X.shape[1:] == (3, 8, 8) and X.shape[0] == Y0.shape[0] == Y1.shape[0]
        seen.extend(np.rint(Y1.asnumpy() * 10).astype(int).tolist())

    model = None
    data = gdata.DataLoader(MyDataset(), batch_size=4, shuffle=True, num_workers=4)
    for X, Y0, Y1 in data:
        update(model, X, Y0, Y1)
    assert sorted(seen) == list(range(10))


# ---- vision datasets ------------------------------------------------------------------------
def _write_idx(folder, prefix, images, labels, magic_img=2051, magic_lbl=2049):
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    with gzip.open(folder / f'{prefix}-images-idx3-ubyte.gz', 'wb') as f:
        f.write(struct.pack('>IIII', magic_img, n, h, w) + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f'{prefix}-labels-idx1-ubyte.gz', 'wb') as f:
        f.write(struct.pack('>II', magic_lbl, len(labels)) + labels.astype(np.uint8).tobytes())


def test_mnist_reader_on_small_files(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12).astype(np.uint8)
    _write_idx(tmp_path, 'train', imgs, labels)
    _write_idx(tmp_path, 't10k', imgs[:5], labels[:5])
    ds = gdata.vision.MNIST(root=str(tmp_path), train=True)
    assert len(ds) == 12
    x, y = ds[4]
    assert isinstance(x, nd.NDArray) and x.shape == (28, 28, 1) and x.dtype == np.uint8
    assert isinstance(y, np.int32) and y == labels[4]
    np.testing.assert_array_equal(x.asnumpy()[:, :, 0], imgs[4])
    assert len(gdata.vision.FashionMNIST(root=str(tmp_path), train=False)) == 5
    tds = gdata.vision.MNIST(root=str(tmp_path), transform=lambda d, l: (d.astype('float32'), l + 1))
    assert tds[0][0].dtype == np.float32 and tds[0][1] == labels[0] + 1
    loader = gdata.DataLoader(ds.transform_first(T.ToTensor()), batch_size=5)
    xb, yb = next(iter(loader))
    assert xb.shape == (5, 1, 28, 28) and xb.dtype == np.float32 and yb.dtype == np.int32


def test_mnist_reader_errors(tmp_path):
    with pytest.raises(MXNetError, match='t10k-images-idx3-ubyte.gz') as info:
        gdata.vision.MNIST(root=str(tmp_path / 'nothing'), train=False)
    assert str(tmp_path / 'nothing') in str(info.value)
    imgs = np.zeros((3, 28, 28), np.uint8)
    _write_idx(tmp_path / 'magic', 'train', imgs, np.zeros(3), magic_img=2049)
    with pytest.raises(MXNetError, match='magic number 2049, expected 2051'):
        gdata.vision.MNIST(root=str(tmp_path / 'magic'))
    _write_idx(tmp_path / 'size', 'train', np.zeros((3, 28, 27), np.uint8), np.zeros(3))
    with pytest.raises(MXNetError, match='28x27'):
        gdata.vision.MNIST(root=str(tmp_path / 'size'))
    _write_idx(tmp_path / 'count', 'train', imgs, np.zeros(4))
    with pytest.raises(MXNetError, match='3 images but .* 4 labels'):
        gdata.vision.MNIST(root=str(tmp_path / 'count'))
    folder = tmp_path / 'trunc'
    _write_idx(folder, 'train', imgs, np.zeros(3))
    with gzip.open(folder / 'train-images-idx3-ubyte.gz', 'wb') as f:
        f.write(struct.pack('>IIII', 2051, 3, 28, 28) + bytes(100))
    with pytest.raises(MXNetError, match='truncated'):
        gdata.vision.MNIST(root=str(folder))


@pytest.mark.skipif(not (MNIST_DIR / 't10k-images-idx3-ubyte.gz').exists(),
                    reason='real MNIST files not present')
def test_real_mnist():
    test = gdata.vision.MNIST(root=str(MNIST_DIR), train=False)
    assert len(test) == 10000
    x, y = test[0]
    assert x.shape == (28, 28, 1) and x.dtype == np.uint8 and 0 <= y <= 9
    assert sorted(np.unique(test._label).tolist()) == list(range(10))
    if (MNIST_DIR / 'train-images-idx3-ubyte.gz').exists():
        assert len(gdata.vision.MNIST(root=str(MNIST_DIR), train=True)) == 60000


def test_image_folder_dataset(tmp_path):
    Image = pytest.importorskip('PIL.Image')
    rng = np.random.default_rng(0)
    arrays = {}
    for cls in ('cat', 'bus'):
        (tmp_path / cls).mkdir()
        for i in range(2):
            a = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
            Image.fromarray(a).save(tmp_path / cls / f'{i}.png')
            arrays[(cls, i)] = a
    (tmp_path / 'cat' / 'notes.txt').write_text('not an image')
    with pytest.warns(UserWarning, match='notes.txt'):
        ds = gdata.vision.ImageFolderDataset(str(tmp_path))
    assert ds.synsets == ['bus', 'cat'] and len(ds) == 4 and len(ds.items) == 4
    img, label = ds[2]
    assert label == 1 and img.shape == (5, 7, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img.asnumpy(), arrays[('cat', 0)])
    with pytest.warns(UserWarning):
        gray, _ = gdata.vision.ImageFolderDataset(str(tmp_path), flag=0)[0]
    assert gray.shape == (5, 7, 1)


# ---- transforms -----------------------------------------------------------------------------
def _img(h=6, w=5, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


def test_to_tensor_and_normalize():
    a = _img()
    t = T.ToTensor()(nd.array(a, dtype='uint8'))
    assert isinstance(t, nd.NDArray) and t.dtype == np.float32 and t.shape == (3, 6, 5)
    np.testing.assert_array_equal(t.asnumpy(), a.transpose(2, 0, 1).astype(np.float32) / 255)
    batch = np.stack([a, _img(seed=1)])
    np.testing.assert_array_equal(T.ToTensor()(batch), batch.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    chw = a.transpose(2, 0, 1).astype(np.float32) / 255
    ref = (chw - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(T.Normalize(mean, std)(chw), ref, rtol=1e-6)
    np.testing.assert_allclose(T.Normalize(0.5, 0.5)(nd.array(chw)).asnumpy(), (chw - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(MXNetError, match='2 values but the image has 3 channels'):
        T.Normalize((0.1, 0.2), (1, 1))(chw)
    pipeline = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    np.testing.assert_allclose(pipeline(a), ref, rtol=1e-6)
    assert 'Normalize(mean=(0.1, 0.2, 0.3)' in repr(pipeline)


def test_flips():
    a = _img()
    lr, tb = T.RandomFlipLeftRight(p=1.0), T.RandomFlipTopBottom(p=1.0)
    np.testing.assert_array_equal(lr(a), a[:, ::-1])
    np.testing.assert_array_equal(tb(nd.array(a, dtype='uint8')).asnumpy(), a[::-1])
    np.testing.assert_array_equal(T.RandomFlipLeftRight(p=0.0)(a), a)
    mx.random.seed(0)
    flips = [np.array_equal(T.RandomFlipLeftRight()(a), a[:, ::-1]) for _ in range(200)]
    assert 60 < sum(flips) < 140


def test_resize_and_crops():
    a = _img(8, 6)
    np.testing.assert_array_equal(T.Resize((6, 8))(a), a)  # (width, height): same size
    f = a.astype(np.float32)
    np.testing.assert_allclose(T.Resize((6, 8))(f), f)
    assert T.Resize((3, 4))(a).shape == (4, 3, 3)
    assert T.Resize(10, keep_ratio=True)(a).shape == (13, 10, 3)
    # bilinear 2x downscale with OpenCV's pixel centres averages 2x2 blocks
    blocks = f.reshape(4, 2, 3, 2, 3).mean((1, 3))
    np.testing.assert_allclose(T.Resize((3, 4))(f), blocks, rtol=1e-5)
    np.testing.assert_allclose(T.Resize((3, 4), interpolation=3)(f), blocks, rtol=1e-5)
    np.testing.assert_array_equal(T.Resize((3, 4), interpolation=0)(a), a[::2, ::2])
    const = np.full((5, 5, 3), 7.0, np.float32)
    for interp in range(5):
        np.testing.assert_allclose(T.Resize((9, 3), interpolation=interp)(const), 7.0, rtol=1e-5)
    assert T.Resize((4, 4))(np.stack([a, a])).shape == (2, 4, 4, 3)
    c = T.CenterCrop(4)(a)
    assert c.shape == (4, 4, 3)
    np.testing.assert_array_equal(c, a[2:6, 1:5])
    assert T.CenterCrop((3, 5))(a).shape == (5, 3, 3)
    assert T.CenterCrop(10)(a).shape == (10, 10, 3)  # smaller images are scaled up
    np.testing.assert_array_equal(T.CropResize(1, 2, 3, 4)(a), a[2:6, 1:4])
    assert T.RandomResizedCrop(5)(a).shape == (5, 5, 3)
    assert T.RandomResizedCrop((4, 3))(nd.array(a, dtype='uint8')).shape == (3, 4, 3)
    pad = T.RandomCrop(6, pad=2)(a)
    assert pad.shape == (6, 6, 3) and pad.dtype == np.uint8
    assert 'Resize(size=(3, 4), keep_ratio=False, interpolation=1)' == repr(T.Resize((3, 4)))


@pytest.mark.torch
def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    a = np.random.default_rng(0).random((9, 13, 3), dtype=np.float32)
    t = torch.from_numpy(a.transpose(2, 0, 1)[None].copy())
    for w, h in [(20, 17), (5, 4)]:
        for interp, mode in [(0, 'nearest'), (1, 'bilinear'), (2, 'bicubic')]:
            kw = {} if mode == 'nearest' else {'align_corners': False}
            ref = F.interpolate(t, size=(h, w), mode=mode, **kw)[0].numpy().transpose(1, 2, 0)
            np.testing.assert_allclose(T.Resize((w, h), interpolation=interp)(a), ref, atol=1e-5)
    ref = F.interpolate(t, size=(3, 13), mode='area')[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(T.Resize((13, 3), interpolation=3)(a), ref, atol=1e-5)


def test_rotation():
    chw = np.random.default_rng(0).random((2, 7, 7), dtype=np.float32)
    np.testing.assert_allclose(T.RandomRotation((0, 0))(chw), chw, atol=1e-6)
    np.testing.assert_allclose(T.RandomRotation((90, 90))(chw), np.rot90(chw, 1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(T.RandomRotation((-90, -90), interpolation='nearest')(chw),
                               np.rot90(chw, -1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(T.RandomRotation((180, 180))(nd.array(chw)).asnumpy(),
                               chw[:, ::-1, ::-1], atol=1e-5)
    batch = np.stack([chw, chw])
    assert T.RandomRotation((-30, 30))(batch).shape == batch.shape
    r45 = T.RandomRotation((45, 45))(np.ones((1, 9, 9), np.float32))
    assert r45[0, 0, 0] == 0 and abs(r45[0, 4, 4] - 1) < 1e-6  # corners filled with zeros
    zin = T.RandomRotation((45, 45), zoom_in=True)(np.ones((1, 9, 9), np.float32))
    assert zin.min() > 0.99
    np.testing.assert_allclose(T.RandomRotation((30, 30), rotate_with_proba=0.0)(chw), chw)
    with pytest.raises(MXNetError, match='float'):
        T.RandomRotation((0, 10))(_img())


def test_color_and_cast():
    a = _img()
    out = T.RandomBrightness(0.5)(a)
    assert out.dtype == np.uint8 and out.shape == a.shape
    f = a.astype(np.float32)
    ratio = T.RandomBrightness(0.3)(f)[f > 0] / f[f > 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and 0.7 <= ratio[0] <= 1.3
    for t in (T.RandomContrast(0.3), T.RandomSaturation(0.3), T.RandomHue(0.1), T.RandomLighting(0.1),
              T.RandomColorJitter(0.2, 0.2, 0.2, 0.05)):
        out = t(a)
        assert out.shape == a.shape and out.dtype == np.uint8
    np.testing.assert_allclose(T.RandomHue(0.0)(f), f, atol=1e-2)
    gray = np.repeat(f[:, :, :1], 3, axis=2)
    np.testing.assert_allclose(T.RandomSaturation(0.5)(gray), gray, rtol=1e-4, atol=1e-3)
    c = T.Cast('float16')(nd.array(a, dtype='uint8'))
    assert c.dtype == np.float16
    assert repr(T.Cast()) == "Cast(dtype='float32')"


def test_transforms_in_workers(no_shm_leak):
    ds = gdata.ArrayDataset(np.stack([_img(8, 8, seed=i) for i in range(12)]), np.arange(12))
    aug = T.Compose([T.RandomFlipLeftRight(), T.ToTensor(), T.Normalize(0.5, 0.25)])
    loader = gdata.DataLoader(ds.transform_first(aug), batch_size=4, num_workers=2)
    for x, y in loader:
        assert x.shape == (4, 3, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64


class _ParallelKernelDataset(gdata.Dataset):
    """Each sample runs kernels big enough for Numba's parallel loops and the OpenMP extension."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        from kernels.cpu import conv, softmax
        a = softmax.softmax(np.full((256, 512), float(i), np.float32), -1)
        y = conv.conv2d_forward(np.ones((4, 16, 24, 24), np.float32), np.ones((16, 16, 3, 3), np.float32),
                                None, (1, 1), (1, 1), (1, 1), 1)
        return np.float32(a.sum() + y.mean())


def test_forked_workers_run_parallel_kernels_after_the_parent_did():
    """Workers are forked at every pass, after the main process has run parallel kernels: the
    threading layers in use must survive fork() (Numba's OpenMP layer terminates such a child)."""
    _ParallelKernelDataset()[0]          # the parent's thread pools are started
    loader = gdata.DataLoader(_ParallelKernelDataset(), batch_size=4, num_workers=2)
    for _ in range(2):
        batches = [b.asnumpy() for b in loader]
        assert [b.shape for b in batches] == [(4,), (4,)]
        np.testing.assert_allclose(np.concatenate(batches), [_ParallelKernelDataset()[i] for i in range(8)],
                                   rtol=1e-5)
