"""Regression tests for behaviour that differed silently from MXNet 1.9 (issue 19): each test
states what MXNet does and checks the engine does the same."""
import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.base import MXNetError


# ---- array creation and conversion ---------------------------------------------------------
@pytest.mark.parametrize('make, value', [
    (lambda out: nd.zeros((2, 3), out=out), 0.0),
    (lambda out: nd.ones((2, 3), out=out), 1.0),
    (lambda out: nd.full((2, 3), 7, out=out), 7.0),
])
def test_creation_functions_write_into_out_and_return_it(make, value):
    out = nd.array(np.full((2, 3), -1.0))
    res = make(out)
    assert res is out
    np.testing.assert_array_equal(out.asnumpy(), np.full((2, 3), value, np.float32))


def test_creation_out_with_another_shape_or_dtype_is_a_clear_error():
    with pytest.raises(MXNetError, match=r'ones: shape \(3, 2\) does not match out of shape \(2, 3\)'):
        nd.ones((3, 2), out=nd.zeros((2, 3)))
    with pytest.raises(MXNetError, match='zeros: dtype int32 does not match out of dtype float32'):
        nd.zeros((2, 3), dtype='int32', out=nd.zeros((2, 3)))


def test_asscalar_returns_a_numpy_scalar_of_the_arrays_dtype():
    for dtype in ('float32', 'float64', 'int32', 'int64'):
        v = nd.array([3], dtype=dtype).asscalar()
        assert type(v) is np.dtype(dtype).type and v == 3
    assert type(nd.array([2.5]).item()) is float      # item() stays NumPy's Python scalar
    with pytest.raises(ValueError, match=r'asscalar: array has shape \(2,\)'):
        nd.array([1, 2]).asscalar()


def test_truth_value_of_empty_single_and_ambiguous_arrays():
    assert bool(nd.zeros((0,))) is False and bool(nd.zeros((2, 0))) is False
    assert bool(nd.array([0.0])) is False and bool(nd.array([[2.0]])) is True
    with pytest.raises(ValueError, match=r'truth value of an NDArray of shape \(2,\) is ambiguous'):
        bool(nd.array([1, 1]))
    with pytest.raises(MXNetError):        # also an MXNetError
        bool(nd.array([1, 1]))
