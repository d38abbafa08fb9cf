"""Errors that name the layer: while blocks run, a per-thread stack holds the blocks being called;
when an MXNetError leaves the innermost one, its message gets the block's path in the model and
the user's source line, e.g. `features.3 (Conv2D): conv2d: ... (at train.py:42)`.

The stack costs one append/pop per block call; the path and line are built only on error."""
import os
import sys
import sysconfig
import threading
import traceback

from ..base import MXNetError

_local = threading.local()
_ENGINE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# frames in these directories are not the user's: the engine, its kernels, the Python library
_NOT_USER = tuple({_ENGINE + os.sep, os.path.join(os.path.dirname(_ENGINE), 'kernels') + os.sep,
                   *(os.path.abspath(sysconfig.get_paths()[k]) + os.sep
                     for k in ('stdlib', 'purelib', 'platlib'))})


def call_named(block, fn, args):
    """`fn(*args)` with `block` on the stack; an MXNetError leaving it names the layer once."""
    stack = getattr(_local, 'stack', None)
    if stack is None:
        stack = _local.stack = []
    stack.append(block)
    try:
        return fn(*args)
    except MXNetError as e:
        _name_layer(e, stack)
        raise
    finally:
        stack.pop()


def _name_layer(e, stack):
    if getattr(e, '_layer_named', False) or not e.args or not isinstance(e.args[0], str):
        return
    e._layer_named = True
    if ' (at ' in e.args[0]:   # already says where (the tracer's errors name block and line)
        return
    e.args = (f'{block_path(stack)}: {e.args[0]} (at {_user_line(e.__traceback__)})',) + e.args[1:]


def block_path(stack):
    """'features.3 (Conv2D)': child names from the outermost block to the innermost one."""
    names = []
    for parent, child in zip(stack, stack[1:]):
        key = next((k for k, c in parent._children.items() if c is child), None)
        names.append(key if key is not None else child.name)
    inner = stack[-1]
    where = '.'.join(names) if names else inner.name
    return f'{where} ({type(inner).__name__})' if where else type(inner).__name__


def _is_user(frame):
    name = frame.f_code.co_filename
    if name.startswith('<'):
        # exec'd source: the user's (<stdin>, a notebook cell) has a module name in its globals;
        # the engine's generated programs and fused kernels run in bare namespaces
        return '__name__' in frame.f_globals
    return not os.path.abspath(name).startswith(_NOT_USER)


def _user_line(tb):
    """file:line of the innermost user frame: inside the failing call (a user's forward), else
    the call site of the outermost block."""
    inner = [(f.f_code.co_filename, n) for f, n in traceback.walk_tb(tb) if _is_user(f)]
    if inner:
        return '%s:%d' % inner[-1]
    f = sys._getframe(2)
    while f is not None and not _is_user(f):
        f = f.f_back
    return f'{f.f_code.co_filename}:{f.f_lineno}' if f else '<unknown>'
