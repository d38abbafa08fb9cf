"""kernels/composed/shapes.py: the one copy of each size rule both devices and the ops use."""
import numpy as np
import pytest

from kernels.composed.shapes import (conv_out_size, conv_transpose_out_size, pool_output_size,
                                     split_axis)


@pytest.mark.parametrize("shape,axis,expected", [
    ((2, 3, 4, 5), 1, (2, 3, 20)), ((2, 3, 4, 5), -1, (24, 5, 1)), ((2, 3, 4, 5), 0, (1, 2, 60)),
    ((7,), 0, (1, 7, 1)), ((2, 0, 3), 1, (2, 0, 3)),
])
def test_split_axis(shape, axis, expected):
    assert split_axis(shape, axis) == expected
    assert split_axis(np.empty(shape).shape, axis) == expected


def test_split_axis_names_the_kernel_on_a_bad_axis():
    with pytest.raises(ValueError, match=r"layer_norm: axis 3 is out of range for shape \(2, 3, 4\)"):
        split_axis((2, 3, 4), 3, "layer_norm")
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        split_axis((2, 3, 4), -4)


@pytest.mark.parametrize("n,k,s,p,d", [(7, 3, 1, 1, 1), (9, 3, 2, 1, 2), (28, 5, 1, 0, 1),
                                       (5, 1, 3, 0, 1), (224, 7, 2, 3, 1)])
def test_transposed_conv_size_inverts_the_conv_size(n, k, s, p, d):
    """A transposed conv maps the conv's output size back to an input size that conv maps to it
    again (the input up to stride - 1 positions, which output_padding restores)."""
    o = conv_out_size(n, k, s, p, d)
    back = conv_transpose_out_size(o, k, s, p, d, 0)
    assert conv_out_size(back, k, s, p, d) == o
    assert 0 <= n - back < s


def test_pool_size_floor_and_ceil():
    assert pool_output_size(28, 2, 2, 0) == 14
    assert pool_output_size(7, 3, 2, 0) == 3
    assert pool_output_size(7, 2, 2, 0, ceil_mode=True) == 4
