"""DLPack and the NumPy protocol: zero-copy in both directions, checked by shared memory."""
import numpy as np
import pytest

import engine as mx
from engine import nd


def test_numpy_reads_an_ndarray_without_a_copy():
    x = nd.arange(6).reshape((2, 3))
    a = np.from_dlpack(x)
    assert np.shares_memory(a, x._data) and a.shape == (2, 3) and a.dtype == np.float32
    b = np.asarray(x)
    assert np.shares_memory(b, x._data)
    assert not np.shares_memory(x.asnumpy(), x._data)        # asnumpy is a copy, as in MXNet


def test_from_dlpack_wraps_numpy_memory():
    a = np.arange(5, dtype=np.float64)
    x = nd.from_dlpack(a)
    assert x.context == mx.cpu() and x.dtype == np.float64
    a[0] = 42.0
    assert x.asnumpy()[0] == 42.0
    y = nd.from_dlpack(x)
    y[1] = 7.0
    assert a[1] == 7.0
    z = nd.from_dlpack(x.to_dlpack_for_read())       # a bare capsule: NumPy maps it read-only
    assert np.shares_memory(z._data, a)
    with pytest.raises(mx.MXNetError, match='read-only'):
        z[0] = 1.0


def test_a_capsule_is_consumed_once():
    cap = nd.to_dlpack_for_read(nd.ones(3))
    w = mx.dlpack._Capsule(cap, (1, 0))
    w.__dlpack__()
    with pytest.raises(mx.MXNetError, match='already consumed'):
        w.__dlpack__()


def test_ops_and_autograd_on_wrapped_memory():
    a = np.linspace(-1, 1, 6).astype(np.float32)
    x = nd.from_dlpack(a)
    x.attach_grad()
    with mx.autograd.record():
        y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * a, rtol=1e-6)


def test_bad_input_is_a_clear_error():
    with pytest.raises(mx.MXNetError, match='__dlpack__'):
        nd.from_dlpack([1, 2, 3])


@pytest.mark.torch
def test_round_trips_with_torch_share_memory():
    torch = pytest.importorskip('torch')
    t = torch.arange(6, dtype=torch.float32)
    x = nd.from_dlpack(t)
    t[0] = 9.0
    assert x.asnumpy()[0] == 9.0
    x2 = nd.from_dlpack(torch.utils.dlpack.to_dlpack(t))
    assert np.shares_memory(x2._data, x._data)
    back = torch.from_dlpack(x)
    back[1] = -3.0
    assert x.asnumpy()[1] == -3.0 and t[1].item() == -3.0
    cap = torch.utils.dlpack.from_dlpack(nd.to_dlpack_for_read(x))
    assert cap.data_ptr() == t.data_ptr()
