"""The parts of MXNet's `mx.nd.contrib` the engine has: elementwise float tests returning 1/0 in
the input's dtype (compositions of ops, so they also work on traced symbols)."""
from ..ops import abs as _abs

_INF = float('inf')


def isnan(data):
    """1 where data is NaN, else 0 (NaN is the only value unequal to itself)."""
    return data != data


def isinf(data):
    """1 where data is +inf or -inf, else 0."""
    return _abs(data) == _INF


def isfinite(data):
    """1 where data is neither NaN nor infinite, else 0."""
    return (data == data) * (_abs(data) != _INF)
