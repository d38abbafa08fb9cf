"""Where the time goes: per-op kernel timings for eager calls and compiled graphs.

    from engine import profiler
    profiler.set_state('run')
    ...                                   # train a few steps
    profiler.set_state('stop')
    print(profiler.dumps())               # a table, slowest first

Eager ops are recorded as ``eager:<op>``; the kernels of a hybridized block's programs as
``forward:<op>`` / ``backward:<op>`` (fused elementwise groups as ``fused[...]``). While profiling,
GPU work is synchronized after every kernel so its time is charged to the kernel that queued it
(this slows the run down; the figures are for finding hot spots, not for end-to-end speed).
"""
import time

from .base import MXNetError

_state = {'on': False}
_stats = {}     # name -> [calls, seconds]
clock = time.perf_counter


def set_state(state='stop'):
    """'run' starts recording, 'stop' stops (recorded figures are kept until `reset`)."""
    if state not in ('run', 'stop'):
        raise MXNetError(f"profiler.set_state: state must be 'run' or 'stop', got {state!r}")
    _state['on'] = state == 'run'


def is_running():
    return _state['on']


def record(name, seconds):
    entry = _stats.get(name)
    if entry is None:
        _stats[name] = [1, seconds]
    else:
        entry[0] += 1
        entry[1] += seconds


def reset():
    _stats.clear()


def get_stats():
    """{name: (calls, total seconds)}."""
    return {k: (c, s) for k, (c, s) in _stats.items()}


def dumps(reset=False, top=None):
    """The recorded timings as a table: total and mean time per op, slowest total first."""
    rows = sorted(_stats.items(), key=lambda kv: -kv[1][1])[:top]
    total = sum(s for _, (_, s) in _stats.items()) or 1.0
    width = max([len(k) for k, _ in rows] + [4])
    lines = [f"{'name':<{width}} {'calls':>7} {'total ms':>10} {'mean us':>10} {'share':>6}"]
    for name, (calls, secs) in rows:
        lines.append(f'{name:<{width}} {calls:7d} {1e3 * secs:10.2f} {1e6 * secs / calls:10.1f} '
                     f'{100 * secs / total:5.1f}%')
    if reset:
        _stats.clear()
    return '\n'.join(lines)


def sync_for(device_type):
    """What to call before reading the clock: GPU kernels run asynchronously."""
    if device_type == 'cpu':
        return None
    from .context import synchronize_all
    return synchronize_all
