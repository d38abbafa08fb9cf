"""MXNet's `mx.name`: the managers of automatic node names. Inside `with NameManager():`
automatic names count from 0 again ('abs0'), and the counts outside resume after it; `Prefix`
also puts a prefix before every name made inside (automatic and given)."""
from . import symbol as _symbol


class NameManager:
    """Fresh counters for automatic names while entered."""

    def get(self, name, hint):
        """The name of a new node: `name` when given, else the next automatic one for `hint`."""
        return name if name else _symbol.auto_name(hint)

    def __enter__(self):
        _symbol._prefix_stack()
        self._saved, _symbol._names.counters = _symbol._names.counters, {}
        return self

    def __exit__(self, *exc):
        _symbol._names.counters = self._saved


class Prefix(NameManager):
    """Fresh counters, and every name made inside starts with `prefix`."""

    def __init__(self, prefix):
        self.prefix = prefix
        self._scope = _symbol.Prefix(prefix)

    def __enter__(self):
        super().__enter__()
        self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        self._scope.__exit__(*exc)
        super().__exit__(*exc)
