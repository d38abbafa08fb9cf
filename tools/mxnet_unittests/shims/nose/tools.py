"""nose.tools' raises / assert_raises / make_decorator, written for the harness."""
import functools

import pytest


def make_decorator(func):
    def decorate(newfunc):
        return functools.wraps(func)(newfunc)
    return decorate


def raises(*exceptions):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            with pytest.raises(exceptions):
                fn(*a, **k)
        return wrapper
    return deco


def assert_raises(exc, fn=None, *args, **kwargs):
    if fn is None:
        return pytest.raises(exc)
    with pytest.raises(exc):
        fn(*args, **kwargs)
