"""MXNet 1.9 array functions: topk/sort/argsort, fill_element_0index, broadcast_like's axes,
nd.load_frombuffer, nd._internal's crop assignment; each checked against NumPy."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError


# ---- topk / sort / argsort -------------------------------------------------------------------
@pytest.mark.parametrize('dtype', ['float32', 'float64', 'int32', 'int64'])
def test_topk_values_indices_and_mask_match_numpy(dtype):
    rng = np.random.default_rng(0)
    a = rng.permutation(4 * 5 * 6).reshape(4, 5, 6).astype(dtype)
    x = nd.array(a, dtype=dtype)
    order = np.argsort(a, axis=1)
    ind = nd.topk(x, axis=1, k=2).asnumpy()
    assert ind.dtype == np.float32
    np.testing.assert_array_equal(ind, order[:, ::-1][:, :2])
    val = nd.topk(x, axis=1, k=3, ret_typ='value', is_ascend=True).asnumpy()
    assert val.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(val, np.sort(a, axis=1)[:, :3])
    v, i = nd.topk(x, axis=-1, k=2, ret_typ='both', dtype='int32')
    assert i.dtype == np.int32
    np.testing.assert_array_equal(i.asnumpy(), np.argsort(a, axis=2)[..., ::-1][..., :2])
    np.testing.assert_array_equal(v.asnumpy(), np.sort(a, axis=2)[..., ::-1][..., :2])
    mask = nd.topk(x, axis=None, k=7, ret_typ='mask').asnumpy()
    want = np.zeros(a.size, dtype)
    want[np.argsort(a, axis=None)[::-1][:7]] = 1
    np.testing.assert_array_equal(mask, want.reshape(a.shape))
    np.testing.assert_array_equal(nd.sort(x, axis=None, is_ascend=False).asnumpy(), np.sort(a, axis=None)[::-1])
    np.testing.assert_array_equal(x.argsort(axis=0, dtype='float16').asnumpy(), np.argsort(a, axis=0))


def test_topk_ties_keep_position_order_with_and_without_partition():
    a = np.arange(100) % 7          # k small: the partition path; k large: the full sort
    for k in (3, 60):
        got = nd.topk(nd.array(a), k=k).asnumpy()
        want = np.argsort(-a, kind='stable')[:k]
        np.testing.assert_array_equal(got, want)
        got = nd.topk(nd.array(a), k=k, is_ascend=True).asnumpy()
        np.testing.assert_array_equal(got, np.argsort(a, kind='stable')[:k])


def test_topk_value_gradient_reaches_the_picked_elements_eager_and_hybridized():
    class Net(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.topk(x, k=2, ret_typ='value', axis=1)

    a = np.array([[3.0, 1.0, 2.0], [1.0, 5.0, 4.0]], np.float32)
    for hybrid in (False, True):
        net = Net()
        if hybrid:
            net.hybridize()
        x = nd.array(a)
        x.attach_grad()
        with autograd.record():
            y = net(x)
        y.backward(nd.array([[1.0, 10.0], [1.0, 10.0]]))
        np.testing.assert_array_equal(x.grad.asnumpy(), [[1, 0, 10], [0, 1, 10]])


def test_topk_bad_arguments_are_mxnet_errors():
    x = nd.ones((2, 3))
    with pytest.raises(MXNetError, match='k=4'):
        nd.topk(x, k=4)
    with pytest.raises(MXNetError, match='ret_typ'):
        nd.topk(x, ret_typ='values')
    with pytest.raises(MXNetError, match='axis'):
        nd.topk(x, axis=2)
    with pytest.raises(MXNetError, match='outside'):
        nd.take_along_axis(x, nd.array([[0], [3]]), axis=1)


# ---- fill_element_0index -----------------------------------------------------------------------
def test_fill_element_0index_writes_one_element_per_row_and_passes_gradients():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    lhs, mhs, rhs = nd.array(a), nd.array([7.0, 8.0, 9.0]), nd.array([0, 3, 1])
    want = a.copy()
    want[[0, 1, 2], [0, 3, 1]] = [7, 8, 9]
    np.testing.assert_array_equal(nd.fill_element_0index(lhs, mhs, rhs).asnumpy(), want)
    lhs.attach_grad()
    mhs.attach_grad()
    with autograd.record():
        y = nd.fill_element_0index(lhs, mhs, rhs)
    y.backward()
    np.testing.assert_array_equal(lhs.grad.asnumpy(), [[0, 1, 1, 1], [1, 1, 1, 0], [1, 0, 1, 1]])
    np.testing.assert_array_equal(mhs.grad.asnumpy(), [1, 1, 1])
    with pytest.raises(MXNetError, match='fill_element_0index'):
        nd.fill_element_0index(lhs, nd.ones((2,)), rhs)


# ---- broadcast_like with axes ------------------------------------------------------------------
@pytest.mark.parametrize('ls, rs, la, ra, want', [
    ((1, 2, 1, 3), (5, 6, 7, 8), (0, 2), (1, 3), (6, 2, 8, 3)),
    ((1,), (5,), (0,), (-1,), (5,)),
    ((2, 1), (1, 7, 9, 1, 1), (1,), (-3,), (2, 9)),
])
def test_broadcast_like_axes_take_the_sizes_of_rhs_axes(ls, rs, la, ra, want):
    lhs = nd.array(np.random.rand(*ls))
    out = nd.broadcast_like(lhs, nd.ones(rs), lhs_axes=la, rhs_axes=ra)
    assert out.shape == want
    np.testing.assert_array_equal(out.asnumpy(), np.broadcast_to(lhs.asnumpy(), want))


def test_broadcast_like_bad_axes_are_mxnet_errors():
    lhs, rhs = nd.ones((1, 2)), nd.ones((5, 6))
    for la, ra in (((), ()), ((0,), ()), ((1,), (0,)), ((2,), (0,))):
        with pytest.raises(MXNetError, match='broadcast_like'):
            nd.broadcast_like(lhs, rhs, lhs_axes=la, rhs_axes=ra)


# ---- load_frombuffer ---------------------------------------------------------------------------
def test_load_frombuffer_reads_lists_dicts_and_refuses_truncated_bytes(tmp_path):
    arrays = [nd.array(np.random.rand(2, 3)), nd.arange(4)]
    for data in (arrays, {'a': arrays[0], 'b': arrays[1]}, arrays[0]):
        f = tmp_path / 'x.params'
        nd.save(str(f), data)
        buf = f.read_bytes()
        got = nd.load_frombuffer(buf)
        want = data if not isinstance(data, nd.NDArray) else [data]
        assert type(got) is type(want) and len(got) == len(want)
        for k in (want if isinstance(want, dict) else range(len(want))):
            np.testing.assert_array_equal(got[k].asnumpy(), want[k].asnumpy())
        with pytest.raises(MXNetError, match='truncated|valid'):
            nd.load_frombuffer(buf[:-10])
    with pytest.raises(MXNetError, match='bytes'):
        nd.load_frombuffer('not bytes')


# ---- nd._internal crop assignment --------------------------------------------------------------
def test_crop_assign_and_crop_assign_scalar_write_the_region():
    x = nd.ones((2, 3, 4))
    res = nd._internal._crop_assign(x, nd.zeros((2, 1, 3)), begin=(0, 0, 0), end=(2, 1, 3), out=x)
    want = np.ones((2, 3, 4), np.float32)
    want[:, :1, :3] = 0
    assert res is x
    np.testing.assert_array_equal(x.asnumpy(), want)
    y = nd._internal._crop_assign_scalar(nd.ones((2, 3, 4)), scalar=5, begin=(1, 1), end=(2, 3))
    want = np.ones((2, 3, 4), np.float32)
    want[1:2, 1:3] = 5
    np.testing.assert_array_equal(y.asnumpy(), want)
    with pytest.raises(MXNetError, match='shape'):
        nd._internal._crop_assign(x, nd.zeros((2, 2, 3)), begin=(0, 0, 0), end=(2, 1, 3))


def test_parameter_with_an_unknown_storage_type_is_an_assertion_error():
    for kw in ({'stype': 'invalid'}, {'grad_stype': 'invalid'}):
        with pytest.raises(AssertionError):
            mx.gluon.Parameter('w', shape=(2,), **kw)
        with pytest.raises(MXNetError):
            mx.gluon.Parameter('w', shape=(2,), **kw)


# ---- mx.sym ops without inputs, nd.CachedOp -----------------------------------------------------
def test_symbol_op_without_inputs_gets_a_data_variable_and_cached_op_runs_it():
    sym = mx.sym.Convolution(kernel=(3, 3), num_filter=10) + 2
    args = sym.list_arguments()          # 'convolutionN_*': N counts the convolutions made so far
    prefix = args[0][:-len('data')]
    assert prefix.startswith('convolution') and args == [prefix + n for n in ('data', 'weight', 'bias')]
    op = nd.CachedOp(sym)
    data, weight, bias = nd.ones((3, 4, 10, 10)), nd.ones((10, 4, 3, 3)), nd.ones((10,))
    o1 = op(data, weight, bias)
    np.testing.assert_allclose(o1.asnumpy(), np.full((3, 10, 8, 8), 4 * 9 + 1 + 2))
    out = nd.zeros(o1.shape)
    assert op(data, weight, nd.full((10,), 2.0), out=out) is out
    np.testing.assert_allclose(out.asnumpy(), o1.asnumpy() + 1)
    weight.attach_grad()
    with autograd.record():
        o = op(data, weight, bias) * 2
    o.backward()
    np.testing.assert_allclose(weight.grad.asnumpy(), np.full((10, 4, 3, 3), 2 * 3 * 64))
    with pytest.raises(MXNetError, match='CachedOp'):
        op(data, weight)


# ---- CSR row slicing, split_and_load of CSR batches ---------------------------------------------
def test_csr_rows_slice_to_csr_and_split_and_load_keeps_csr_on_each_context():
    dense = np.array([[0, 1, 0], [2, 0, 0], [0, 0, 3], [4, 0, 5]], np.float32)
    a = nd.array(dense).tostype('csr')
    for key, want in ((slice(1, 3), dense[1:3]), (-1, dense[3:]), (slice(-2, None), dense[-2:])):
        part = a[key]
        assert isinstance(part, nd.sparse.CSRNDArray)
        np.testing.assert_array_equal(part.asnumpy(), want)
    with pytest.raises(MXNetError, match='continuous'):
        a[0:4:2]
    with pytest.raises(MXNetError, match='out of range'):
        a[4]
    parts = mx.gluon.utils.split_and_load(a, [mx.cpu(0), mx.cpu(1)])
    assert [type(p).__name__ for p in parts] == ['CSRNDArray'] * 2
    assert [p.context for p in parts] == [mx.cpu(0), mx.cpu(1)]
    np.testing.assert_array_equal(parts[1].asnumpy(), dense[2:])
    assert a.copyto(mx.cpu(2)).context == mx.cpu(2)


def test_basic_indexing_slice_is_contiguous_agrees_with_numpy():
    from itertools import product
    shape = (4, 3, 5)
    x = np.arange(np.prod(shape)).reshape(shape)
    keys = [slice(None), slice(1, 3), slice(None, None, 2), slice(0, 1), slice(None, None, -1), 2,
            slice(3, None, -2), slice(5, 9)]
    for key in product(keys, repeat=3):
        assert nd.NDArray._basic_indexing_slice_is_contiguous(key, shape) == x[key].flags.c_contiguous, key
    with pytest.raises(MXNetError):
        nd.NDArray._basic_indexing_slice_is_contiguous((0, 0, 0, 0), shape)


def test_setitem_takes_sequences_and_refuses_recorded_writes_with_mxnets_words():
    x = nd.zeros((2, 3), dtype='int32')
    x[1, 2] = [7]
    x[0] = (1, 2, 3)
    np.testing.assert_array_equal(x.asnumpy(), [[1, 2, 3], [0, 0, 7]])
    from engine.ndarray import py_slice
    assert py_slice is slice
    y = nd.ones((2, 3))
    y.attach_grad()
    with autograd.record():
        z = y * 2
        with pytest.raises(MXNetError, match=r'^Inplace operations \(\+=, -=, x\[:\]=, etc\) are not supported'):
            z[0] = 1


def test_pickled_ndarrays_round_trip_through_mxnets_raw_bytes_state():
    import copy
    import pickle
    for a in (nd.array([[1.0, 2.0], [3.0, 4.0]], ctx=mx.cpu(1)), nd.arange(5, dtype='int64'), nd.array(3.0).reshape(())):
        b = pickle.loads(pickle.dumps(a))
        assert b.shape == a.shape and b.dtype == a.dtype and b.context == a.context
        np.testing.assert_array_equal(b.asnumpy(), a.asnumpy())
        np.testing.assert_array_equal(copy.deepcopy(a).asnumpy(), a.asnumpy())
    state = nd.ones((2,)).__getstate__()
    assert set(state) == {'handle', 'context'} and isinstance(state['handle'], bytearray)
    # MXNet's state of a GPU array (uint32 magic, stype, ndim, dims, gpu(0), float32, data) reads
    # on the CPU when no GPU is there
    x = nd.zeros((3,))
    x.__setstate__({'handle': bytearray(b'\xc9\xfa\x93\xf9' + b'\x00' * 4 + b'\x01\x00\x00\x00' + b'\x01' + b'\x00' * 7
                                        + b'\x02\x00\x00\x00' + b'\x00' * 8 + b'\x00\x00\x80\x3f')})
    np.testing.assert_array_equal(x.asnumpy(), [1.0])
    with pytest.raises(MXNetError, match='truncated'):
        x.__setstate__({'handle': state['handle'][:-2]})
    with pytest.raises(MXNetError, match='handle'):
        x.__setstate__({'data': 1})
