"""mx.nd functions' out= argument (the result written into an existing array, views included)
and binary functions of two Python scalars (a Python scalar, as MXNet's)."""
import numpy as np
import pytest

import engine as mx
from engine.base import MXNetError


def test_out_writes_the_result_into_the_array_and_returns_it():
    x = mx.nd.array([[1., -2, 3], [4, 5, -6]])
    y = mx.nd.zeros((2, 3))
    assert mx.nd.square(x, out=y) is y
    np.testing.assert_array_equal(y.asnumpy(), x.asnumpy() ** 2)
    mx.nd.clip(x[1], -1, 1, out=x[1])            # a view: the row of x changes
    np.testing.assert_array_equal(x.asnumpy(), [[1, -2, 3], [1, 1, -1]])
    z = mx.nd.zeros((2, 3), dtype='float64')
    mx.nd.add(x, x, out=z)                       # cast to out's dtype
    assert z.dtype == np.float64 and z.asnumpy()[0, 2] == 6


def test_out_of_another_shape_or_a_non_array_is_an_error():
    x = mx.nd.ones((2, 3))
    with pytest.raises(MXNetError, match=r'out has shape \(3,\)'):
        mx.nd.relu(x, out=mx.nd.zeros((3,)))
    with pytest.raises(MXNetError, match='out must be an NDArray'):
        mx.nd.relu(x, out=np.zeros((2, 3)))


def test_out_under_record_of_a_recorded_result_is_refused():
    x = mx.nd.ones((2, 2))
    x.attach_grad()
    y = mx.nd.zeros((2, 2))
    with mx.autograd.record():
        with pytest.raises(MXNetError, match='drop the gradient'):
            mx.nd.square(x, out=y)


def test_binary_functions_of_two_scalars_give_python_scalars():
    assert mx.nd.power(0.9, 2) == pytest.approx(0.81)
    assert mx.nd.maximum(2, 3) == 3 and mx.nd.minimum(2, 3) == 2
    assert mx.nd.equal(1, 1) == 1 and mx.nd.greater(1, 2) == 0
    with pytest.raises(MXNetError, match='power'):
        mx.nd.power('a', 2)
