"""The reliability suite: bad inputs must give a clear MXNetError, never a crash or a silent
wrong result. Cases that could crash run in a subprocess (see isolation.py)."""
import textwrap

import pytest

from isolation import run_isolated


@pytest.fixture
def isolated():
    """`isolated(code, expect)`: the code must end with an MXNetError whose message holds every
    string of `expect` (not a crash, not a silent result)."""
    def check(code, *expect):
        wrapped = ('try:\n' + textwrap.indent(textwrap.dedent(code), '    ') +
                   '\nexcept mx.MXNetError as e:\n    print("MXNetError:", e)\n    raise SystemExit(3)\n'
                   'print("NO ERROR")\n')
        rc, out = run_isolated(wrapped)
        assert rc == 3, f'expected an MXNetError, got return code {rc}:\n{out[-2000:]}'
        for s in expect:
            assert s in out, f'{s!r} not in the error:\n{out[-2000:]}'
        return out
    return check
