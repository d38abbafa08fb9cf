"""The collective watchdog without an MPI launch (a stand-in communicator records the abort): a
collective that waits past ENGINE_DIST_TIMEOUT aborts, a stream of short ones never does, however
many of them a look of the watchdog catches in progress."""
import threading
import time

from engine.distributed import _mpi


class _Comm:
    def __init__(self):
        self.aborted = threading.Event()

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Abort(self, code):
        self.code = code
        self.aborted.set()


def _watchdog(monkeypatch, timeout):
    """A watchdog on a stand-in communicator, installed as the one `_mpi.collective` reports to."""
    monkeypatch.setenv('ENGINE_DIST_TIMEOUT', str(timeout))
    comm = _Comm()
    w = _mpi._Watchdog(comm)
    monkeypatch.setitem(_mpi._state, 'watch', w)
    return w, comm


def test_a_collective_waiting_past_the_timeout_aborts_with_what_it_waited_in(monkeypatch, capsys):
    w, comm = _watchdog(monkeypatch, 0.4)
    t0 = time.monotonic()
    with _mpi.collective('%s of %d array(s), %d bytes', 'gradient allreduce', 3, 1024):
        assert comm.aborted.wait(5.0)
    assert w.busy is None
    # timed from the first look that saw it: at most one look period (0.1 s) late, never early
    assert 0.4 <= time.monotonic() - t0 < 2.0 and comm.code == 3
    err = capsys.readouterr().err
    assert 'waited more than 0.4 s (ENGINE_DIST_TIMEOUT) in gradient allreduce of 3 array(s), 1024 bytes' in err


def test_back_to_back_short_collectives_never_abort(monkeypatch):
    w, comm = _watchdog(monkeypatch, 0.3)
    end = time.monotonic() + 1.5             # five timeouts long, always inside some collective
    calls = 0
    while time.monotonic() < end:
        with _mpi.collective('allreduce'):
            time.sleep(0.001)
        calls += 1
    assert not comm.aborted.is_set()
    assert calls > 100
