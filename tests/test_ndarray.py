"""NDArray: creation, dtype defaults, random draws, conversion, repr, indexing, in-place ops."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.ndarray import NDArray
from engine.ops import METHODS


# ---- creation -----------------------------------------------------------------------------------

def test_array_dtype_defaults_follow_mxnet():
    assert nd.array([1, 2, 3]).dtype == np.float32                       # list of ints -> float32
    assert nd.array([[1.5, 2.0]]).dtype == np.float32
    assert nd.array(np.arange(3, dtype=np.float64)).dtype == np.float32   # NumPy source -> float32
    assert nd.array(np.arange(3, dtype=np.int64)).dtype == np.float32
    assert nd.array([1, 2], dtype='int32').dtype == np.int32
    assert nd.array([1, 2], dtype=np.float64).dtype == np.float64
    src = nd.array([1, 2], dtype='int64')
    assert nd.array(src).dtype == np.int64                                # NDArray source keeps it
    assert nd.array(src, dtype='float16').dtype == np.float16
    assert nd.array(3.5).shape == () and nd.array(3.5).dtype == np.float32


def test_array_copies_its_source():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = nd.array(a)
    a[0, 0] = 100
    assert x.asnumpy()[0, 0] == 0
    y = nd.array(x)
    x[0, 1] = 50
    assert y.asnumpy()[0, 1] == 1
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.context == mx.cpu() and x.ctx == mx.cpu(0)


def test_array_bad_source_raises():
    with pytest.raises(MXNetError):
        nd.array([[1, 2], [3]])
    with pytest.raises(MXNetError):
        nd.zeros((2,), dtype='complex128')


@pytest.mark.parametrize('dtype', [None, 'float32', 'float64', 'int32', 'int64', 'uint8', 'float16'])
def test_fill_creators(dtype):
    want = np.dtype(dtype or 'float32').type
    for x, val in ((nd.zeros((2, 3), dtype=dtype), 0), (nd.ones((2, 3), dtype=dtype), 1),
                   (nd.full((2, 3), 7, dtype=dtype), 7)):
        assert x.shape == (2, 3) and x.dtype == want
        np.testing.assert_array_equal(x.asnumpy(), np.full((2, 3), val))
    assert nd.empty((4, 1), dtype=dtype).shape == (4, 1) and nd.empty(3, dtype=dtype).dtype == want
    assert nd.zeros(5).shape == (5,) and nd.ones(()).shape == ()
    assert nd.zeros((2, 3), ctx=mx.cpu()).context == mx.cpu()
    like = nd.array([[1, 2, 3]], dtype=dtype)
    assert nd.zeros_like(like).dtype == want and nd.ones_like(like).shape == (1, 3)
    np.testing.assert_array_equal(nd.zeros_like(like).asnumpy(), [[0, 0, 0]])
    np.testing.assert_array_equal(nd.ones_like(like).asnumpy(), [[1, 1, 1]])


def test_arange():
    np.testing.assert_array_equal(nd.arange(5).asnumpy(), np.arange(5))
    assert nd.arange(5).dtype == np.float32
    np.testing.assert_allclose(nd.arange(1, 3, 0.5).asnumpy(), [1, 1.5, 2, 2.5])
    np.testing.assert_array_equal(nd.arange(2, 10, 3).asnumpy(), [2, 5, 8])
    np.testing.assert_array_equal(nd.arange(3, repeat=2).asnumpy(), [0, 0, 1, 1, 2, 2])   # MXNet's repeat
    assert nd.arange(4, dtype='int32').dtype == np.int32
    assert nd.arange(0).shape == (0,)


def test_contexts():
    assert mx.cpu() == mx.cpu(0) == mx.Context('cpu', 0) == mx.Context(mx.cpu())
    assert mx.cpu(1) != mx.cpu(0) and mx.Context('cpu_pinned', 0) == mx.cpu(0)
    assert repr(mx.cpu()) == 'cpu(0)' and len({mx.cpu(), mx.cpu(0)}) == 1
    with pytest.raises(MXNetError):
        mx.Context('tpu', 0)
    if mx.num_gpus() == 0:
        with pytest.raises(MXNetError) as e:
            mx.gpu(0)
        assert 'gpu(0)' in str(e.value)


def test_default_context_scope():
    with mx.Context('cpu', 0):
        assert nd.zeros(2).context == mx.cpu(0)
    assert mx.current_context() == mx.cpu()


# ---- random -------------------------------------------------------------------------------------

def test_random_is_reproducible_with_seed():
    mx.random.seed(42)
    a = nd.random.normal(0, 1, shape=(3, 4))
    b = nd.random.uniform(-1, 1, shape=(5,))
    c = nd.random.randint(0, 10, shape=(6,))
    mx.random.seed(42)
    np.testing.assert_array_equal(a.asnumpy(), nd.random.normal(0, 1, shape=(3, 4)).asnumpy())
    np.testing.assert_array_equal(b.asnumpy(), nd.random.uniform(-1, 1, shape=(5,)).asnumpy())
    np.testing.assert_array_equal(c.asnumpy(), nd.random.randint(0, 10, shape=(6,)).asnumpy())
    mx.random.seed(43)
    assert not np.array_equal(a.asnumpy(), nd.random.normal(0, 1, shape=(3, 4)).asnumpy())


def test_random_seed_for_one_context():
    mx.random.seed(7, ctx=mx.cpu())
    a = nd.random.uniform(shape=(4,))
    mx.random.seed(7, ctx=mx.cpu())
    np.testing.assert_array_equal(a.asnumpy(), nd.random.uniform(shape=(4,)).asnumpy())
    mx.random.seed(7)
    b = nd.random.uniform(shape=(4,), ctx=mx.cpu())
    mx.random.seed(7)
    np.testing.assert_array_equal(b.asnumpy(), nd.random.uniform(shape=(4,)).asnumpy())


def test_random_draws_dtypes_shapes_ranges():
    mx.random.seed(0)
    n = nd.random.normal(2.0, 0.5, shape=(2000,))
    assert n.dtype == np.float32 and n.shape == (2000,)
    assert abs(n.asnumpy().mean() - 2.0) < 0.1 and abs(n.asnumpy().std() - 0.5) < 0.05
    v = nd.random.uniform(1, 3, shape=(2, 500), dtype='float64')
    assert v.dtype == np.float64 and v.shape == (2, 500)
    assert v.asnumpy().min() >= 1 and v.asnumpy().max() < 3
    r = nd.random.randint(-2, 3, shape=(1000,))
    assert r.dtype == np.int32 and set(np.unique(r.asnumpy())) == {-2, -1, 0, 1, 2}
    assert nd.random.normal(shape=3).shape == (3,)
    assert nd.random_normal(shape=(2, 2)).shape == (2, 2) and nd.random_uniform(shape=4).shape == (4,)
    assert nd.random.uniform().shape == (1,)


def test_random_shuffle_permutes_rows():
    mx.random.seed(1)
    x = nd.array(np.arange(20).reshape(10, 2))
    y = nd.random.shuffle(x)
    assert y.shape == x.shape
    assert sorted(map(tuple, y.asnumpy())) == sorted(map(tuple, x.asnumpy()))
    np.testing.assert_array_equal(x.asnumpy(), np.arange(20).reshape(10, 2))   # source untouched


# ---- conversion ---------------------------------------------------------------------------------

def test_astype_and_copies():
    x = nd.array([1.7, -2.2, 3.0])
    y = x.astype('int32')
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y.asnumpy(), [1, -2, 3])
    assert x.astype(np.float64).dtype == np.float64
    assert x.astype('float32', copy=False) is x
    z = x.astype('float32')
    assert z is not x
    z[0] = 9
    assert x.asnumpy()[0] == np.float32(1.7)
    c = x.copy()
    c[1] = 5
    assert x.asnumpy()[1] == np.float32(-2.2)
    t = nd.zeros(3)
    assert x.copyto(t) is t
    np.testing.assert_array_equal(t.asnumpy(), x.asnumpy())
    t2 = x.copyto(mx.cpu())
    assert t2 is not x and t2.context == mx.cpu()
    np.testing.assert_array_equal(t2.asnumpy(), x.asnumpy())
    assert x.as_in_context(mx.cpu()) is x
    with pytest.raises(MXNetError):
        x.copyto(nd.zeros(4))
    with pytest.raises(MXNetError):
        x.copyto(np.zeros(3))


def test_asnumpy_asscalar():
    x = nd.array([[1, 2], [3, 4]])
    a = x.asnumpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 2)
    assert np.asarray(x).shape == (2, 2) and np.asarray(x, dtype=np.int64).dtype == np.int64
    s = nd.array([2.5]).asscalar()
    assert s == 2.5 and type(s) is np.float32      # a NumPy scalar of the array's dtype, as MXNet
    assert nd.array(7, dtype='int32').asscalar() == 7 and type(nd.array(7, dtype='int32').asscalar()) is np.int32
    assert nd.array([[3.0]]).asscalar() == 3.0
    for bad in (x, nd.zeros(0), nd.zeros(2)):
        with pytest.raises(MXNetError) as e:
            bad.asscalar()
        assert isinstance(e.value, ValueError) and 'asscalar' in str(e.value)   # MXNet: ValueError


def test_repr():
    x = nd.zeros((2, 3))
    r = repr(x)
    assert r.splitlines()[-1] == '<NDArray 2x3 @cpu(0)>'
    assert '[[0. 0. 0.]' in r
    assert repr(nd.array([1, 2, 3])).splitlines()[-1] == '<NDArray 3 @cpu(0)>'
    assert repr(nd.ones((2, 1, 4))).splitlines()[-1] == '<NDArray 2x1x4 @cpu(0)>'
    assert '<NDArray' in str(x)


def test_len_iter_bool():
    x = nd.array(np.arange(6).reshape(3, 2))
    assert len(x) == 3
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, NDArray) and r.shape == (2,) for r in rows)
    np.testing.assert_array_equal(rows[2].asnumpy(), [4, 5])
    with pytest.raises(MXNetError):
        len(nd.array(1.0))
    assert bool(nd.array([1.0])) and not bool(nd.array([0.0])) and bool(nd.array(2.0))
    with pytest.raises(MXNetError):
        bool(nd.zeros((2,)))
    if nd.array([3.0]) > 2:
        pass
    else:
        pytest.fail('size-1 comparison should be truthy')
    assert int(nd.array([3.9])) == 3 and float(nd.array([1.5])) == 1.5
    assert [10, 20, 30][nd.array(1, dtype='int32')] == 20   # __index__ on integer arrays
    with pytest.raises(MXNetError):
        [1, 2][nd.array(1.0)]


def test_hash_and_identity():
    x, y = nd.zeros(2), nd.zeros(2)
    assert len({x, y}) == 2
    assert isinstance(x == y, NDArray)


# ---- indexing -----------------------------------------------------------------------------------

def test_getitem_read():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = nd.array(a)
    for key in (0, -1, (1, 2), (1, 2, 3), slice(None, None, -1), (Ellipsis, 1), (None, 0), (0, slice(1, None)),
                ([1, 0, 1],), (slice(None), [2, 2]), (0, [0, 2], [3, 3]), np.array([1, 1]), (0, 1, slice(None, None, 2))):
        np.testing.assert_array_equal(x[key].asnumpy(), a[key])
    np.testing.assert_array_equal(x[nd.array([1, 0])].asnumpy(), a[[1, 0]])
    assert x[1, 2, 3].shape == () and x[1, 2, 3].asscalar() == 23


def test_getitem_result_is_a_new_array_for_advanced_indexing():
    x = nd.array([1.0, 2.0, 3.0])
    y = x[[0, 1]]
    y[0] = 10
    assert x.asnumpy()[0] == 1.0


@pytest.mark.parametrize('key,value', [
    ((0,), 5.0), ((slice(None), 1), 7), ((1, slice(0, 2)), np.array([8, 9])),
    ((slice(None), slice(None)), 0), ((Ellipsis, -1), [1, 2]), (([0, 1], [2, 0]), 4.0),
])
def test_setitem_with_scalars_and_numpy(key, value):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = nd.array(a)
    x[key if len(key) > 1 else key[0]] = value
    a[key if len(key) > 1 else key[0]] = value
    np.testing.assert_array_equal(x.asnumpy(), a)


def test_setitem_with_ndarrays():
    x = nd.zeros((3, 4))
    x[1] = nd.array([1, 2, 3, 4])
    x[:, 0] = nd.array([9, 8, 7])
    x[2, 1:3] = nd.ones((2,)) * 5
    x[nd.array([0, 2]), 3] = 6            # float32 NDArray index, as MXNet users write it
    x[nd.array([0], dtype='int32')] += 0  # read-modify-write through an index
    np.testing.assert_array_equal(x.asnumpy(), [[9, 0, 0, 6], [8, 2, 3, 4], [7, 5, 5, 6]])
    x[:] = nd.full((3, 4), 2.0)
    assert (x.asnumpy() == 2).all()
    x[()] = 1
    assert (x.asnumpy() == 1).all()
    with pytest.raises(MXNetError):
        x[0] = nd.ones((5,))
    with pytest.raises(MXNetError):
        x[7] = 1
    y = nd.zeros(3, dtype='int32')
    y[1] = 2.7
    assert y.dtype == np.int32 and y.asnumpy()[1] == 2


def test_setitem_on_recorded_array_raises():
    x = nd.ones(3)
    x.attach_grad()
    with autograd.record():
        y = x * 2
        with pytest.raises(MXNetError):
            y[0] = 5
        buf = nd.zeros((2, 3))
        with pytest.raises(MXNetError):      # would silently drop the gradient of y
            buf[0] = y
        buf[1] = nd.ones(3)                  # constants are fine
        z = x * 3
    z.backward()
    buf[0] = y                               # outside record: a plain copy
    np.testing.assert_array_equal(buf.asnumpy(), [[2, 2, 2], [1, 1, 1]])


# ---- in-place arithmetic ------------------------------------------------------------------------

def test_inplace_ops_mutate_the_buffer():
    x = nd.array([1.0, 2.0, 4.0])
    buf, view = x._data, x
    x += 1
    x -= nd.array([1.0, 1.0, 1.0])
    x *= 3
    x /= nd.array([1.0, 2.0, 4.0])
    assert x is view and x._data is buf
    np.testing.assert_allclose(x.asnumpy(), [3.0, 3.0, 3.0])
    x += nd.ones((1,))        # broadcasting on the right-hand side is fine
    np.testing.assert_allclose(x.asnumpy(), [4.0, 4.0, 4.0])
    i = nd.array([1, 2], dtype='int32')
    i *= 2
    assert i.dtype == np.int32 and list(i.asnumpy()) == [2, 4]
    with pytest.raises(MXNetError):
        x += nd.ones((2, 3))


def test_inplace_parameter_update_outside_record():
    w = nd.array([1.0, 2.0])
    w.attach_grad()
    with autograd.record():
        loss = (w * w).sum()
    loss.backward()
    g = w.grad
    w -= 0.1 * w.grad
    np.testing.assert_allclose(w.asnumpy(), [0.8, 1.6], rtol=1e-6)
    assert w.grad is g    # still a variable: the gradient buffer survives
    with autograd.record():
        loss = (w * w).sum()
    loss.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), [1.6, 3.2], rtol=1e-6)


def test_inplace_while_recording_rebinds():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 1
        y2 = y
        y *= 3               # recorded: a new array, the old one is untouched
    assert y is not y2
    np.testing.assert_allclose(y2.asnumpy(), [1.0, 2.0])
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [3.0, 3.0])


# ---- methods and namespace ------------------------------------------------------------------------

def test_every_method_is_also_an_nd_function():
    for name in METHODS:
        assert hasattr(NDArray, name), f'NDArray.{name} missing'
        assert hasattr(nd, name), f'nd.{name} missing'
    for name in ('reshape', 'transpose', 'astype', 'copy', 'copyto', 'as_in_context', 'asnumpy', 'asscalar',
                 'attach_grad', 'detach', 'backward', 'wait_to_read', 'T', 'grad', 'shape', 'dtype', 'size',
                 'ndim', 'context'):
        assert hasattr(NDArray, name), f'NDArray.{name} missing'
    for name in ('reshape', 'transpose', 'copy', 'array', 'zeros', 'ones', 'full', 'empty', 'arange',
                 'zeros_like', 'ones_like', 'concat', 'stack', 'where', 'dot', 'batch_dot', 'FullyConnected',
                 'cast', 'Cast', 'random', 'waitall', 'random_normal', 'random_uniform', 'broadcast_add',
                 'elemwise_add', 'SliceChannel', 'Flatten', 'softrelu', 'reverse', 'lesser', 'modulo'):
        assert hasattr(nd, name), f'nd.{name} missing'


def test_methods_take_mxnet_argument_forms():
    x = nd.array(np.arange(6).reshape(2, 3))
    assert x.reshape(3, 2).shape == (3, 2)
    assert x.reshape((3, 2)).shape == (3, 2)
    assert x.reshape(shape=(6,)).shape == (6,)
    assert x.reshape(-1).shape == (6,)
    assert x.transpose().shape == (3, 2) and x.transpose(1, 0).shape == (3, 2)
    assert x.sum(axis=1).shape == (2,) and x.mean(1, keepdims=True).shape == (2, 1)
    assert x.max().asscalar() == 5 and x.argmax(axis=1).dtype == np.float32
    assert x.expand_dims(1).shape == (2, 1, 3) and x.flatten().shape == (2, 3)
    assert x.split(3, axis=1)[0].shape == (2, 1)
    assert x.one_hot(6).shape == (2, 3, 6)
    assert x.slice_axis(axis=1, begin=0, end=2).shape == (2, 2)
    assert x.dot(x.T).shape == (2, 2)
    assert x.maximum(2).asnumpy().min() == 2 and x.minimum(2).asnumpy().max() == 2


def test_detach_shares_data_without_graph():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 2
    d = y.detach()
    assert d._entry is None
    np.testing.assert_array_equal(d.asnumpy(), y.asnumpy())


def test_attach_grad_creates_zero_grad_buffer():
    x = nd.array([[1.0, 2.0]], dtype='float64')
    assert x.grad is None
    x.attach_grad()
    assert x.grad.shape == (1, 2) and x.grad.dtype == np.float64 and (x.grad.asnumpy() == 0).all()
    with pytest.raises(MXNetError):
        x.attach_grad(grad_req='sometimes')


def test_wait_to_read_and_waitall_are_harmless():
    x = nd.ones(3) * 2
    x.wait_to_read()
    nd.waitall()
    assert x.asnumpy().tolist() == [2, 2, 2]


def test_as_in_context_to_another_cpu():
    x = nd.array([1.0, 2.0])
    y = x.as_in_context(mx.cpu(1))
    assert y.context == mx.cpu(1)
    np.testing.assert_array_equal(y.asnumpy(), [1.0, 2.0])


def test_as_in_context_is_differentiable():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = x.as_in_context(mx.cpu(1)) * 3
    y.backward()
    assert y.context == mx.cpu(1) and x.grad.context == mx.cpu(0)
    np.testing.assert_array_equal(x.grad.asnumpy(), [3.0, 3.0])
