"""`engine.symbol` (`mx.sym`): MXNet's symbolic API. A Symbol is a lazily built graph of named
variables and op nodes with MXNet's op and attribute names; it is traced into the engine's graph
IR to infer shapes and compiled by the graph compiler to run (see symbol.py, executor.py)."""
from .executor import Executor  # noqa: F401
from .functions import make_function
from .json_graph import load, load_json  # noqa: F401
from .optable import OPS as _OPS
from .symbol import Group, Prefix, Symbol, Variable, var  # noqa: F401


def _install():
    g = globals()
    for _name in _OPS:
        if _name not in g:
            g[_name] = make_function(_name)
    for _name in ('zeros', 'ones', 'full', 'arange'):     # MXNet's names for _zeros, ...
        g[_name] = make_function('_' + _name)


_install()
