"""Name -> class registries for mx.init, mx.metric and mx.optimizer: MXNet's `register`, `alias` and
name lookups (case-insensitive), written once."""
import warnings

from .base import MXNetError


class Registry:
    """Subclasses of a base class by lower-cased name; `kind` names them in messages ('optimizer').
    `base` returns the base class: a module makes its registry before defining that class."""

    def __init__(self, kind, base):
        self.kind, self._base = kind, base
        self._classes = {}

    def register(self, klass, name=None):
        """Register `klass` under `name` (default: its class name); usable as a decorator.
        Re-registering a name with another class replaces it, with a warning (as MXNet)."""
        base = self._base()
        if not (isinstance(klass, type) and issubclass(klass, base)):
            raise MXNetError(f'{self.kind}.register: expected a {base.__name__} subclass, got {klass!r}')
        key = (name or klass.__name__).lower()
        old = self._classes.get(key)
        if old is not None and old is not klass:
            warnings.warn(f'{self.kind} {key!r} was registered by {old.__module__}.{old.__name__}; '
                          f'replacing it with {klass.__module__}.{klass.__name__}', stacklevel=3)
        self._classes[key] = klass
        return klass

    def alias(self, *names):
        """A decorator registering a class under extra names (e.g. 'acc' for Accuracy)."""
        def reg(klass):
            for n in names:
                self.register(klass, n)
            return klass
        return reg

    def get(self, name):
        """The class registered under `name` (any case); an MXNetError listing the known names."""
        klass = self._classes.get(str(name).lower())
        if klass is None:
            raise MXNetError(f'unknown {self.kind} {name!r}; registered {self.kind}s: {self.names()}')
        return klass

    def find(self, name):
        """The class registered under `name`, or None."""
        return self._classes.get(str(name).lower())

    def names(self):
        return sorted(self._classes)
