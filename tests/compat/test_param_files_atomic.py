"""Atomic saves: a save killed mid-write leaves the previous file intact and no temp file behind
(an unnamed O_TMPFILE file vanishes with the process; where a named temp is used instead, the next
save of the same target removes it)."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import engine
from engine import nd, serialization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(engine.__file__)))

# the child writes part of a file, says so, then waits to be killed
CHILD = '''
import sys, time
from engine import serialization
serialization._use_unnamed_temp = sys.argv[2] == 'unnamed'
def write(f):
    f.write(b'partial' * 1000)
    f.flush()
    print('writing', flush=True)
    time.sleep(60)
serialization.atomic_write(sys.argv[1], write)
'''


def kill_mid_save(target, mode):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    child = subprocess.Popen([sys.executable, '-c', CHILD, str(target), mode], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == 'writing\n'
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()


@pytest.mark.skipif(not hasattr(os, 'O_TMPFILE'), reason='O_TMPFILE is Linux-only')
def test_a_killed_save_through_an_unnamed_temp_leaves_nothing(tmp_path):
    target = tmp_path / 'net.params'
    nd.save(str(target), {'w': nd.ones((2,))})
    before = target.read_bytes()
    kill_mid_save(target, 'unnamed')
    assert os.listdir(tmp_path) == ['net.params']
    assert target.read_bytes() == before


def test_the_next_save_removes_a_killed_saves_named_temp(tmp_path):
    target = tmp_path / 'net.params'
    nd.save(str(target), {'w': nd.ones((2,))})
    kill_mid_save(target, 'named')
    left = [n for n in os.listdir(tmp_path) if n != 'net.params']
    assert len(left) == 1 and left[0].startswith('.net.params.') and left[0].endswith('.tmp')
    nd.save(str(target), {'w': nd.zeros((3,))})
    assert os.listdir(tmp_path) == ['net.params']
    np.testing.assert_array_equal(nd.load(str(target))['w'].asnumpy(), np.zeros(3, np.float32))


def test_temps_of_live_writers_and_other_targets_are_kept(tmp_path):
    live = tmp_path / f'.net.params.{os.getpid()}.0a1b2c3d.tmp'     # this process is alive
    other = tmp_path / '.other.params.999999999.0a1b2c3d.tmp'       # another target's
    live.write_bytes(b'x')
    other.write_bytes(b'x')
    serialization.atomic_write(str(tmp_path / 'net.params'), lambda f: f.write(b'data'))
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, 'net.params'])


def test_a_failing_write_leaves_no_temp_either_way(tmp_path, monkeypatch):
    def fail(f):
        f.write(b'half')
        raise RuntimeError('disk full')
    for unnamed in (True, False):
        monkeypatch.setattr(serialization, '_use_unnamed_temp', unnamed)
        with pytest.raises(RuntimeError):
            serialization.atomic_write(str(tmp_path / 'x.bin'), fail)
        assert os.listdir(tmp_path) == []
