"""mx.recordio (RecordIO files, image records) and the gluon.data datasets reading them."""
import io
import os
import pickle
import struct

import numpy as np
import pytest

import engine as mx
from engine import gluon
from engine.base import MXNetError

FIX = os.path.join(os.path.dirname(__file__), 'fixtures', 'mxnet', 'recordio_mixed')
M = struct.pack('<I', 0xced7230a)
PAYLOADS = [b'', b'abc', M, b'x' * 4 + M + b'yyyy' + M + M + b'z', b'ab' + M + b'cd', M * 3 + b'q',
            bytes(range(256)) * 3]


def _write_like_fixture(pre):
    w = mx.recordio.MXIndexedRecordIO(pre + '.idx', pre + '.rec', 'w')
    for i, p in enumerate(PAYLOADS):
        w.write_idx(i, p)
    w.write_idx(len(PAYLOADS), mx.recordio.pack(mx.recordio.IRHeader(0, [1.5, 2.5, 3.0], 7, 9), b'PAY'))
    w.write_idx(len(PAYLOADS) + 1, mx.recordio.pack(mx.recordio.IRHeader(0, 4.0, 8, 1), b'PAY2'))
    w.close()


def test_reads_mxnet_file_and_writes_it_byte_for_byte(tmp_path):
    r = mx.recordio.MXIndexedRecordIO(FIX + '.idx', FIX + '.rec', 'r')
    assert r.keys == list(range(len(PAYLOADS) + 2))
    for i, p in enumerate(PAYLOADS):
        assert r.read_idx(i) == p
    h, s = mx.recordio.unpack(r.read_idx(len(PAYLOADS)))
    assert (h.flag, h.id, h.id2, s) == (3, 7, 9, b'PAY')
    np.testing.assert_array_equal(h.label, np.array([1.5, 2.5, 3.0], np.float32))
    h, s = mx.recordio.unpack(r.read_idx(len(PAYLOADS) + 1))
    assert h == mx.recordio.IRHeader(0, 4.0, 8, 1) and s == b'PAY2'
    r.close()
    seq = mx.recordio.MXRecordIO(FIX + '.rec', 'r')
    got = []
    while (rec := seq.read()) is not None:
        got.append(rec)
    assert got[:len(PAYLOADS)] == PAYLOADS and len(got) == len(PAYLOADS) + 2
    pre = str(tmp_path / 'mine')
    _write_like_fixture(pre)
    for ext in ('.rec', '.idx'):
        with open(pre + ext, 'rb') as a, open(FIX + ext, 'rb') as b:
            assert a.read() == b.read()


def test_bad_files_are_clear_errors(tmp_path):
    bad = tmp_path / 'bad.rec'
    bad.write_bytes(b'\x01\x02\x03\x04\x05\x06\x07\x08')
    with pytest.raises(MXNetError, match='bad magic'):
        mx.recordio.MXRecordIO(str(bad), 'r').read()
    trunc = tmp_path / 'trunc.rec'
    trunc.write_bytes(M + struct.pack('<I', 100) + b'abc')
    with pytest.raises(MXNetError, match='truncated'):
        mx.recordio.MXRecordIO(str(trunc), 'r').read()
    open_part = tmp_path / 'part.rec'
    open_part.write_bytes(M + struct.pack('<I', (1 << 29) | 4) + b'abcd')
    with pytest.raises(MXNetError, match='ends inside a multi-part'):
        mx.recordio.MXRecordIO(str(open_part), 'r').read()
    with pytest.raises(MXNetError, match='cannot open'):
        mx.recordio.MXRecordIO(str(tmp_path / 'missing.rec'), 'r')
    with pytest.raises(MXNetError, match="flag must be"):
        mx.recordio.MXRecordIO(str(bad), 'a')
    (tmp_path / 'x.idx').write_text('0\tnotanumber\n')
    with pytest.raises(MXNetError, match='line 1'):
        mx.recordio.MXIndexedRecordIO(str(tmp_path / 'x.idx'), str(bad), 'r')
    with pytest.raises(MXNetError, match='announces 5 labels'):
        mx.recordio.unpack(struct.pack('IfQQ', 5, 0.0, 0, 0) + b'ab')
    r = mx.recordio.MXIndexedRecordIO(FIX + '.idx', FIX + '.rec', 'r')
    with pytest.raises(MXNetError, match='no record with key 99'):
        r.read_idx(99)


def test_pack_img_round_trip_in_bgr_order():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)
    s = mx.recordio.pack_img(mx.recordio.IRHeader(0, 2.0, 3, 0), img, quality=3, img_fmt='.png')
    h, back = mx.recordio.unpack_img(s)
    assert h.label == 2.0 and h.id == 3
    np.testing.assert_array_equal(back, img)              # png: lossless, channels kept in order
    _, gray = mx.recordio.unpack_img(s, iscolor=0)
    assert gray.shape == (6, 5)
    # the payload decoded by mx.image is RGB: the reverse of the BGR array given to pack_img
    rgb = mx.image.imdecode(mx.recordio.unpack(s)[1]).asnumpy()
    np.testing.assert_array_equal(rgb, img[:, :, ::-1])
    with pytest.raises(MXNetError, match='img_fmt'):
        mx.recordio.pack_img(mx.recordio.IRHeader(0, 0, 0, 0), img, img_fmt='.gif')


def _image_rec(tmp_path, n=5):
    from PIL import Image
    pre = str(tmp_path / 'imgs')
    w = mx.recordio.MXIndexedRecordIO(pre + '.idx', pre + '.rec', 'w')
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.full((4, 6, 3), 40 * i, np.uint8)).save(buf, 'PNG')
        w.write_idx(i, mx.recordio.pack((0, float(i), i, 0), buf.getvalue()))
    w.close()
    return pre + '.rec'


@pytest.mark.parametrize('workers', [0, 2])
def test_image_record_dataset_with_data_loader(tmp_path, workers):
    rec = _image_rec(tmp_path)
    ds = gluon.data.vision.ImageRecordDataset(rec)
    assert len(ds) == 5
    img, label = ds[2]
    assert img.shape == (4, 6, 3) and label == 2.0
    np.testing.assert_array_equal(img.asnumpy(), 80)
    assert ds[1][0].dtype == np.uint8
    loader = gluon.data.DataLoader(ds.transform(lambda x, y: (x, y)), batch_size=1, num_workers=workers)
    for i, (x, y) in enumerate(loader):
        assert x.shape == (1, 4, 6, 3) and y.asscalar() == i
    assert gluon.data.vision.ImageRecordDataset(rec, flag=0)[0][0].shape == (4, 6, 1)
    raw = gluon.data.RecordFileDataset(rec)
    assert mx.recordio.unpack(raw[4])[0].id == 4


def test_reader_pickles_and_reopens(tmp_path):
    rec = _image_rec(tmp_path, 3)
    ds = gluon.data.vision.ImageRecordDataset(rec)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone[2][1] == 2.0 and ds[0][1] == 0.0
