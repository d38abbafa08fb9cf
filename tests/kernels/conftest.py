"""Shared helpers for the kernel tests."""
import numpy as np
import pytest


def _numerical_grad(f, x, h=1e-6):
    """Central-difference gradient of the scalar function f at float64 array x."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


@pytest.fixture
def numgrad():
    return _numerical_grad
