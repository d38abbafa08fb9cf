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
