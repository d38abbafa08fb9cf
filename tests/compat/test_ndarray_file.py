"""MXNet's binary NDArray file format: files written by MXNet 1.9.1 (tests/fixtures/mxnet, made by
generate_arrays.py) load with the same names, dtypes and values; what the engine writes is byte for
byte what MXNet writes; bad files are clear errors naming the file and the byte offset."""
import os
import struct

import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.base import MXNetError
from engine.ndarray_file import LIST_MAGIC, V1_MAGIC, V2_MAGIC, V3_MAGIC

FIX = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'mxnet')


def fixture(name):
    return os.path.join(FIX, name)


def expected(group):
    with np.load(fixture('arrays_expected.npz'), allow_pickle=False) as z:
        return {k.split('/', 1)[1]: z[k] for k in z.files if k.startswith(group + '/')}


def assert_same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# ---- files written by MXNet ----------------------------------------------------------------------
@pytest.mark.parametrize('name, group', [('arrays_dict.params', 'dict'),
                                         ('arrays_npshape.nd', 'npshape')])
def test_mxnet_dicts_load_with_names_dtypes_and_values(name, group):
    want = expected(group)
    got = nd.load(fixture(name))
    assert list(got) == list(want)
    for k, v in want.items():
        assert_same(got[k].asnumpy(), v)


def test_mxnet_file_holds_every_dtype_and_0d_and_empty_arrays():
    dtypes = {v.dtype.name for v in expected('dict').values()}
    assert dtypes == {'float16', 'float32', 'float64', 'uint8', 'int8', 'int32', 'int64', 'bool'}
    shapes = [v.shape for v in expected('npshape').values()]
    assert () in shapes and (0,) in shapes and (2, 0, 3) in shapes


def test_mxnet_list_loads_as_a_list():
    want = expected('list')
    got = nd.load(fixture('arrays_list.nd'))
    assert isinstance(got, list) and len(got) == len(want)
    for i, g in enumerate(got):
        assert_same(g.asnumpy(), want[str(i)])


@pytest.mark.parametrize('name, stype', [('arrays_row_sparse.nd', 'row_sparse'),
                                         ('arrays_csr.nd', 'csr')])
def test_sparse_arrays_load_with_their_storage_type(name, stype):
    # MXNet 1.9.1 saved a (4, 3) array with row 1 = 1.5 and [3, 2] = -2 (generate_arrays.py)
    got = nd.load(fixture(name))
    v = got['w'] if isinstance(got, dict) else got[0]
    want = np.zeros((4, 3), np.float32)
    want[1], want[3, 2] = 1.5, -2.0
    assert v.stype == stype and v.dtype == np.float32
    np.testing.assert_array_equal(v.asnumpy(), want)


def test_load_on_a_context():
    got = nd.load(fixture('arrays_dict.params'), ctx=mx.cpu(0))
    assert all(v.context == mx.cpu(0) for v in got.values())


# ---- files written here are the bytes MXNet writes -------------------------------------------
@pytest.mark.parametrize('name, group', [('arrays_dict.params', 'dict'),
                                         ('arrays_npshape.nd', 'npshape')])
def test_saving_mxnets_arrays_gives_mxnets_bytes(tmp_path, name, group):
    out = tmp_path / name
    nd.save(str(out), {k: nd.array(v, dtype=v.dtype) for k, v in expected(group).items()})
    assert out.read_bytes() == open(fixture(name), 'rb').read()


def test_saving_a_list_gives_mxnets_bytes(tmp_path):
    want = expected('list')
    out = tmp_path / 'list.nd'
    nd.save(str(out), [nd.array(want[str(i)], dtype=want[str(i)].dtype) for i in range(len(want))])
    assert out.read_bytes() == open(fixture('arrays_list.nd'), 'rb').read()


@pytest.mark.parametrize('dtype', ['float16', 'float32', 'float64', 'uint8', 'int8', 'int32',
                                   'int64', 'bool'])
@pytest.mark.parametrize('shape', [(), (0,), (3,), (2, 0), (2, 3, 1)])
def test_round_trip_is_bit_exact(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 50).astype(dtype)
    f = str(tmp_path / 'a.nd')
    nd.save(f, {'a': nd.array(a, dtype=dtype)})
    assert_same(nd.load(f)['a'].asnumpy(), a)


def test_a_single_array_saves_as_a_list(tmp_path):
    f = str(tmp_path / 'one.nd')
    nd.save(f, nd.ones((2,)))
    got = nd.load(f)
    assert isinstance(got, list) and got[0].shape == (2,)


def test_unnamed_empty_list_round_trips(tmp_path):
    f = str(tmp_path / 'none.nd')
    nd.save(f, [])
    assert nd.load(f) == []


def test_npz_files_of_earlier_versions_still_load(tmp_path):
    named, listed = tmp_path / 'named.params', tmp_path / 'listed.npz'
    with open(named, 'wb') as f:      # (np.savez would append .npz to the name)
        np.savez(f, **{'0.weight': np.ones((2, 2), np.float32)})
    np.savez(str(listed), __list_000000=np.arange(3), __list_000001=np.zeros(1, np.float16))
    assert_same(nd.load(str(named))['0.weight'].asnumpy(), np.ones((2, 2), np.float32))
    got = nd.load(str(listed))
    assert_same(got[0].asnumpy(), np.arange(3))
    assert_same(got[1].asnumpy(), np.zeros(1, np.float16))


def test_save_refuses_what_the_format_cannot_hold(tmp_path):
    f = str(tmp_path / 'x.nd')
    with pytest.raises(MXNetError, match='array 0 has dtype complex64'):
        nd.save(f, [np.zeros(2, np.complex64)])
    with pytest.raises(MXNetError, match='keys must be strings'):
        nd.save(f, {1: nd.ones(1)})
    with pytest.raises(MXNetError, match="entry 'a' is a str"):
        nd.save(f, {'a': 'text'})
    assert os.listdir(tmp_path) == []


# ---- older layouts (MXNet 0.x wrote these; 1.9 still reads them) ----------------------------------
def _file(entries, names=()):
    out = struct.pack('<QQQ', LIST_MAGIC, 0, len(entries)) + b''.join(entries)
    out += struct.pack('<Q', len(names))
    return out + b''.join(struct.pack('<Q', len(n)) + n.encode() for n in names)


def test_v1_and_pre_v1_layouts_load(tmp_path):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    v1 = struct.pack('<Ii2q', V1_MAGIC, 2, 2, 3) + struct.pack('<iii', 1, 0, 0) + data.tobytes()
    v0 = struct.pack('<I2I', 2, 2, 3) + struct.pack('<iii', 1, 0, 0) + data.tobytes()
    f = tmp_path / 'old.nd'
    f.write_bytes(_file([v1, v0], ['v1', 'v0']))
    got = nd.load(str(f))
    assert_same(got['v1'].asnumpy(), data)
    assert_same(got['v0'].asnumpy(), data)


# ---- bad files -----------------------------------------------------------------------------------
def _v2(shape, flag=0, data=b'', magic=V2_MAGIC):
    return struct.pack(f'<Iii{len(shape)}q', magic, 0, len(shape), *shape) + \
        struct.pack('<iii', 1, 0, flag) + data


BAD = {
    'huge array count': (struct.pack('<QQQ', LIST_MAGIC, 0, 2 ** 60),
                         r'claims 1152921504606846976 arrays'),
    'huge dimension': (_file([_v2((2 ** 40, 2 ** 20))]), r'byte offset 64: expected array 0: data '
                                                         r'of shape \(1099511627776, 1048576\)'),
    'negative dimension': (_file([_v2((-3,))]), r'negative dimension'),
    'ndim out of range': (_file([struct.pack('<Iii', V2_MAGIC, 0, 1000)]), r'ndim 1000'),
    'array magic': (_file([struct.pack('<I', 0xDEADBEEF)]), r'byte offset 24: array 0: magic '
                                                           r'0xdeadbeef'),
    'bfloat16': (_file([_v2((1,), flag=12, data=b'\0\0')]), r'dtype flag 12 \(bfloat16\)'),
    'device type': (_file([struct.pack('<Iiiq', V2_MAGIC, 0, 1, 1) + struct.pack('<iii', 9, 0, 0)
                           + b'\0' * 4]), r'device type 9'),
    'names count': (_file([_v2((1,), data=b'\0' * 4)], ['a', 'b']), r'2 names for 1 arrays'),
    'duplicate names': (_file([_v2((1,), data=b'\0' * 4)] * 2, ['a', 'a']), r"'a' appears twice"),
    'not utf-8 name': (_file([_v2((1,), data=b'\0' * 4)])[:-8] + struct.pack('<QQ', 1, 1) + b'\xff',
                       r'name 0 is not UTF-8'),
    'trailing bytes': (_file([_v2((1,), data=b'\0' * 4)]) + b'xyz', r'3 unexpected bytes'),
    'empty handle': (_file([struct.pack('<Iii', V2_MAGIC, 0, 0)]), r'empty NDArray handle'),
    'v3 unknown shape': (_file([struct.pack('<Iii', V3_MAGIC, 0, -1)]), r'empty NDArray handle'),
}


@pytest.mark.parametrize('what', list(BAD))
def test_corrupt_files_name_the_file_offset_and_expectation(tmp_path, what):
    data, msg = BAD[what]
    f = tmp_path / 'bad.nd'
    f.write_bytes(data)
    with pytest.raises(MXNetError, match=r'bad\.nd.*' + msg):
        nd.load(str(f))


def test_every_truncation_of_a_real_file_is_a_clear_error(tmp_path):
    data = open(fixture('arrays_npshape.nd'), 'rb').read()
    f = tmp_path / 'cut.nd'
    for n in range(8, len(data)):
        f.write_bytes(data[:n])
        with pytest.raises(MXNetError, match=r'cut\.nd.*byte offset \d+: .* bytes are left'):
            nd.load(str(f))


@pytest.mark.parametrize('what', ['npy', 'text', 'empty', 'missing', 'directory', 'bad zip'])
def test_files_of_other_kinds_are_clear_errors(tmp_path, what):
    f = tmp_path / 'x.params'
    if what == 'npy':
        np.save(str(tmp_path / 'x.npy'), np.ones(3))
        f = tmp_path / 'x.npy'
        msg = r'single NumPy \.npy array'
    elif what == 'text':
        f.write_text('hello world\n')
        msg = r"neither an MXNet NDArray file .* first bytes are b'hello wo'"
    elif what == 'empty':
        f.write_bytes(b'')
        msg = r"neither an MXNet NDArray file .* b''"
    elif what == 'missing':
        msg = 'no such file'
    elif what == 'directory':
        f.mkdir()
        msg = 'cannot read'
    else:
        f.write_bytes(b'PK\x03\x04garbage')
        msg = r'not a valid \.npz archive'
    with pytest.raises(MXNetError, match=msg) as err:
        nd.load(str(f))
    assert str(f) in str(err.value)
