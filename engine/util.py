"""MXNet's `mx.util` switches, as far as the engine has them: the engine has one array type
(`mx.nd` semantics), not MXNet 2's NumPy-compatible `mx.np` arrays."""
import functools
import os

from .base import MXNetError


def is_np_array():
    """False: arrays always have `mx.nd` semantics here."""
    return False


def is_np_shape():
    """False: the engine uses `mx.nd` shape semantics (no unknown-size dimensions)."""
    return False


def use_np(func):
    """MXNet's switch to NumPy semantics; the engine has none, so calling a function (or
    instantiating a class) decorated with it is a clear error instead of a silent difference."""
    def refuse(*args, **kwargs):
        raise MXNetError(f'{func.__name__} is decorated with use_np (MXNet NumPy-array semantics, '
                         '`mx.np`), which the engine does not have')
    if isinstance(func, type):
        return type(func.__name__, (func,), {'__init__': refuse})
    return functools.wraps(func)(refuse)


def getenv(name):
    return os.environ.get(name)


def setenv(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)
