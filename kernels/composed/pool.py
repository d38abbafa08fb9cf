"""Argument forms shared by both devices' pooling kernels (kernels/cpu/pool.py, kernels/cuda/pool.py)."""


def pair(v):
    """(h, w) from an int or a pair."""
    return (int(v), int(v)) if isinstance(v, (int, float)) or getattr(v, "ndim", 1) == 0 else (int(v[0]), int(v[1]))
