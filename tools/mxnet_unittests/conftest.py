"""Run MXNet 1.9.1's own unit tests, unmodified, against `engine`.

`import mxnet` / `import mxnet.X` resolve to proxies of `engine` / `engine.X` (MXNet's
`mxnet.ndarray` package is the engine's `engine.nd`). A proxy holds the engine module's names, so
`from mxnet.X import *` and attribute access reach the engine's own objects; a name (or module)
the engine lacks becomes a `Missing` placeholder that raises `NotImplementedError` naming it when
a test uses it, so one missing function fails the tests that use it instead of the whole file.
"""
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'shims'))

# mxnet module -> engine module, where the names differ
RENAMES = {
    'mxnet.ndarray': 'engine.nd',
    'mxnet.ndarray.ndarray': 'engine.ndarray',
    'mxnet.ndarray.random': 'engine.random',
    'mxnet.nd': 'engine.nd',
    'mxnet.name': 'engine.symbol.name',     # engine/__init__.py does not export it as mx.name
}
MISSING_LOG = os.environ.get('MXTESTS_MISSING_LOG')
# MXNet's test_utils has no __all__, so `from mxnet.test_utils import *` also hands out the
# standard modules it imports: test_module.py uses `sys` from there without importing it
EXTRA_NAMES = {'mxnet.test_utils': {'sys': sys}}


class Missing:
    """Stands for something `engine` does not have; raises when a test uses it."""

    def __init__(self, name):
        self._name = name

    def _fail(self, *a, **k):
        if MISSING_LOG:
            with open(MISSING_LOG, 'a') as f:
                f.write(self._name + '\n')
        raise NotImplementedError(f'{self._name} is not provided by engine')

    __call__ = _fail

    def __getattr__(self, attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        return Missing(f'{self._name}.{attr}')

    def __mro_entries__(self, bases):   # `class D(Missing)`: a class whose use fails
        missing = self

        class MissingBase:
            def __init__(self, *a, **k):
                missing._fail()
        return (MissingBase,)


def _target(name):
    if name in RENAMES:
        return RENAMES[name]
    parent, _, leaf = name.rpartition('.')
    if parent and parent in RENAMES:
        return RENAMES[parent] + '.' + leaf
    return 'engine' + name[len('mxnet'):]


def _engine_module(target):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and target.startswith(e.name):
            return None
        raise


def make_proxy(name):
    real = _engine_module(_target(name))
    proxy = types.ModuleType(name)
    if real is not None:
        proxy.__dict__.update({k: v for k, v in vars(real).items()
                               if not k.startswith('__') or k == '__all__'})
    for k, v in EXTRA_NAMES.get(name, {}).items():
        proxy.__dict__.setdefault(k, v)
    proxy.__path__ = []     # a package: `import mxnet.a.b` works below it

    def __getattr__(attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        sub = f'{name}.{attr}'
        if sub in sys.modules:
            return sys.modules[sub]
        if real is not None and hasattr(real, attr):
            value = getattr(real, attr)
            if isinstance(value, types.ModuleType):
                RENAMES.setdefault(sub, value.__name__)   # e.g. engine.nd.random is engine.random
                return importlib.import_module(sub)
            return value
        if _engine_module(_target(sub)) is not None:
            return importlib.import_module(sub)
        return Missing(sub)
    proxy.__getattr__ = __getattr__
    return proxy


def _mxnet_name(engine_name):
    for mx_name, eng in RENAMES.items():
        if eng == engine_name:
            return mx_name
    return 'mxnet' + engine_name[len('engine'):]


def _bind_modules(proxy):
    """Module-valued names of the proxy (after it is in sys.modules): engine modules become
    their mxnet proxies (so `mx` from `from mxnet.test_utils import *` is the `mxnet` proxy),
    other modules (numpy as np, ...) stay."""
    for k, v in list(vars(proxy).items()):
        if isinstance(v, types.ModuleType) and not k.startswith('__'):
            name = v.__name__
            if name == 'engine' or name.startswith('engine.'):
                if name == f'{_target(proxy.__name__)}.{k}':
                    proxy.__dict__.pop(k)     # a submodule: its proxy, through __getattr__
                else:
                    setattr(proxy, k, importlib.import_module(_mxnet_name(name)))


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'mxnet' or fullname.startswith('mxnet.'):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return make_proxy(spec.name)

    def exec_module(self, module):
        _bind_modules(module)


sys.meta_path.insert(0, _Finder())
