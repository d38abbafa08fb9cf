"""The MPI world of this process (mpi4py), and the fault handling around it.

Faults must stop every rank within a bounded time:
* a rank with an uncaught exception prints it and calls MPI_Abort, so the launcher ends the
  others (which are typically blocked in a collective);
* a rank killed outright is noticed by mpiexec, which ends the others;
* a rank that hangs (or skips a collective) leaves the others waiting in a collective: a watchdog
  thread aborts the job once a collective has waited ENGINE_DIST_TIMEOUT seconds (default 600).
"""
import os
import sys
import threading
import time
import traceback

from ..base import MXNetError

_state = {'comm': None, 'local': None, 'watch': None}


def mpi():
    """The mpi4py.MPI module (importing it initializes MPI), or a clear error without mpi4py."""
    if _state.get('MPI') is not None:
        return _state['MPI']
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MXNetError('engine.distributed needs mpi4py and an MPI library: pip install "engine[dist]" '
                         f'(mpi4py with the mpich wheel), then launch with mpiexec -n N ({e})') from None
    _state['MPI'] = MPI
    return MPI


def init():
    """Join the MPI world (idempotent): the process's rank comes from the launcher."""
    if _state['comm'] is not None:
        return
    MPI = mpi()
    comm = MPI.COMM_WORLD
    _state['local'] = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    _state['comm'] = comm
    if comm.Get_size() > 1:
        _install_excepthook(comm)
        _state['watch'] = _Watchdog(comm)


def is_initialized():
    return _state['comm'] is not None


def comm():
    if _state['comm'] is None:
        raise MXNetError('engine.distributed: call engine.distributed.init() first')
    return _state['comm']


def local_comm():
    comm()
    return _state['local']


def timeout_s():
    raw = os.environ.get('ENGINE_DIST_TIMEOUT', '600')
    try:
        t = float(raw)
    except ValueError:
        raise MXNetError(f'ENGINE_DIST_TIMEOUT must be a number of seconds, got {raw!r}') from None
    if t <= 0:
        raise MXNetError(f'ENGINE_DIST_TIMEOUT must be positive, got {raw!r}')
    return t


class collective:
    """`with collective('allreduce of %d arrays', 3):` around a blocking MPI call, so the
    watchdog can abort the job when it waits too long (the text is formatted only then)."""

    def __init__(self, what, *args):
        self.what = (what,) + args

    def __enter__(self):
        w = _state['watch']
        if w is not None:
            w.busy = self.what

    def __exit__(self, *exc):
        w = _state['watch']
        if w is not None:
            w.busy = None


class _Watchdog:
    """Aborts the job when one collective has been waited in for longer than the timeout. The
    per-call side is one attribute store on entry and one on exit, no clock reading (an allreduce
    of a small message costs a few microseconds): `busy` is a new tuple per call, (format, *args),
    and this thread times a call from the first look that saw its tuple, so it may see a wait up
    to one look period late, never early. (The thread holds the tuple it saw, so a later call's
    tuple cannot reuse its identity.)"""

    def __init__(self, comm):
        self._comm = comm
        self._timeout = timeout_s()
        self.busy = None     # (format, *args) of the collective in progress, None between them
        threading.Thread(target=self._run, name='engine.distributed watchdog', daemon=True).start()

    def _run(self):
        period = min(1.0, self._timeout / 4)
        seen, since = None, 0.0
        while True:
            time.sleep(period)
            what, now = self.busy, time.monotonic()
            if what is None or what is not seen:
                seen, since = what, now
                continue
            if now - since > self._timeout:
                rank, size = self._comm.Get_rank(), self._comm.Get_size()
                _report(f'engine.distributed: rank {rank}/{size} waited more than {self._timeout:g} s '
                        f'(ENGINE_DIST_TIMEOUT) in {what[0] % what[1:]}: another rank has stopped, hangs, '
                        'or took a different path; aborting all ranks')
                self._comm.Abort(3)


def _install_excepthook(comm):
    previous = sys.excepthook

    def hook(kind, value, tb):
        rank, size = comm.Get_rank(), comm.Get_size()
        text = ''.join(traceback.format_exception(kind, value, tb))
        _report(f'{text}engine.distributed: rank {rank}/{size} stopped with {kind.__name__}: {value}; '
                'aborting all ranks')
        if kind is KeyboardInterrupt:
            previous(kind, value, tb)
        comm.Abort(1)

    sys.excepthook = hook


def _report(msg):
    try:
        sys.stderr.write(msg.rstrip('\n') + '\n')
        sys.stderr.flush()
    except Exception:   # a closed stderr must not keep the abort from happening
        pass
    # the launcher forwards output through its proxies, which the abort kills: give them a moment
    # (on a loaded machine the message was lost when MPI_Abort followed at once)
    time.sleep(0.5)
