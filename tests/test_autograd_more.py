"""autograd.get_symbol: the recorded computation as an mx.sym Symbol."""
import numpy as np
import pytest

import engine as mx
from engine import autograd


def test_get_symbol_arguments_and_values():
    x = mx.nd.array([[1., 2., 3.], [4., 5., 6.]])
    x.attach_grad()
    z = mx.nd.array([[0.5, 1., 2.], [3., 4., 5.]])
    z.attach_grad()
    c = mx.nd.arange(6).reshape((2, 3))
    with autograd.record():
        y = x * x + 2 * z - 1 + c
        out = mx.nd.exp(y.sum(axis=1) / 10)
    sym = autograd.get_symbol(out)
    assert sorted(sym.list_arguments()) == ['null0', 'var0', 'var1']
    # which variable is which follows the recording; match them by evaluating both ways
    got = sym.eval(var0=x, var1=z, null0=c)[0].asnumpy()
    if not np.allclose(got, out.asnumpy(), rtol=1e-6):
        got = sym.eval(var0=z, var1=x, null0=c)[0].asnumpy()
    np.testing.assert_allclose(got, out.asnumpy(), rtol=1e-6)


def test_get_symbol_one_variable_used_twice():
    x = mx.nd.ones((1,))
    x.attach_grad()
    with autograd.record():
        y = x * x + 2 * x - 1
    sym = autograd.get_symbol(y)
    assert sym.list_arguments() == ['var0']
    np.testing.assert_allclose(sym.eval(var0=mx.nd.array([3.]))[0].asnumpy(), [14.])


def test_get_symbol_refuses_unrecorded_and_unmapped():
    with pytest.raises(mx.MXNetError, match='not computed under'):
        autograd.get_symbol(mx.nd.ones((2,)))
    x = mx.nd.ones((2, 3))
    x.attach_grad()
    w, b = mx.nd.ones((4, 3)), mx.nd.zeros((4,))
    with autograd.record():
        y = mx.nd.FullyConnected(x, w, b, num_hidden=4)
    with pytest.raises(mx.MXNetError, match='get_symbol'):
        autograd.get_symbol(y)
    with pytest.raises(mx.MXNetError, match='expected an NDArray'):
        autograd.get_symbol([y])


@pytest.mark.parametrize('sparse_grad', [False, True])
@pytest.mark.parametrize('idx_dtype', ['float16', 'float32', 'float64', 'int32'])
@pytest.mark.parametrize('w_dtype', ['float32', 'float64', 'float16'])
def test_embedding_weight_gradient_dtype_follows_the_weight_not_the_indices(sparse_grad, idx_dtype, w_dtype):
    net = mx.gluon.nn.Embedding(4, 3, sparse_grad=sparse_grad, dtype=w_dtype)
    net.initialize()
    idx = mx.nd.array([[0, 2], [2, 3.7]], dtype=idx_dtype)    # float indices truncate (3.7 -> 3)
    with autograd.record():
        out = net(idx)
    out.backward()
    g = net.weight.grad()
    assert g.dtype == np.dtype(w_dtype)
    want = np.zeros((4, 3))
    for r in [0, 2, 2, 3]:
        want[r] += 1
    np.testing.assert_array_equal(g.asnumpy(), want)
