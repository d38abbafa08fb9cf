"""DataLoader: mini-batches from a Dataset, optionally built by worker processes (MXNet's
`gluon.data.DataLoader`).

Worker processes (num_workers > 0, thread_pool=False) are forked at the start of each pass over
the loader. The main process hands batch `i` (a list of sample indices) to worker `i % num_workers`
through that worker's own pipe, keeping `prefetch` (default 2 * num_workers) batches in flight.
A worker builds the whole batch with `batchify_fn`, writes every array of it into one POSIX
shared-memory segment (named by the main process, so the main process can always clean it up)
and sends back only metadata (segment name, shapes, dtypes, offsets). The main process maps the
segment, unlinks its name at once and wraps the arrays without copying; the mapping is released
when the last array of the batch is garbage collected. Batches come back in order; a worker's
exception, death, or a batch slower than `timeout` seconds raises MXNetError in the main process.
"""
import collections
import concurrent.futures
import mmap
import multiprocessing as mp
import os
import secrets
import signal
import sys
import time
import traceback
import weakref
from multiprocessing import connection as mp_connection

import numpy as np

from ...base import DTYPES, MXNetError
from ...context import cpu
from ...ndarray import NDArray
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _set_data_rng, _worker_seed

try:
    from multiprocessing import resource_tracker as _resource_tracker
    from multiprocessing import shared_memory as _shared_memory
except ImportError:  # pragma: no cover - platforms without shared memory
    _shared_memory = _resource_tracker = None

__all__ = ['DataLoader', 'default_batchify_fn', 'default_mp_batchify_fn']


class _DataLoaderArgError(MXNetError, ValueError):
    """Bad DataLoader arguments (also a ValueError, which is what MXNet raised)."""


# ---------------------------------------------------------------------------------------------
# batchify
# ---------------------------------------------------------------------------------------------
def _engine_dtype(arr):
    """`arr` with a dtype the engine supports (int16 -> int32, uint32 -> int64, ...)."""
    dt = arr.dtype
    if dt.name in DTYPES:
        return arr
    if dt.kind in 'iu':
        target = np.int32 if dt.itemsize < 4 else np.int64
        return arr.astype(target)
    if dt.kind == 'f':
        return arr.astype(np.float64 if dt.itemsize > 8 else np.float32)
    raise MXNetError(f'default_batchify_fn: cannot batch samples of dtype {dt} (e.g. strings or '
                     'Python objects) into an NDArray; pass your own batchify_fn to DataLoader')


def _stack(arrays):
    try:
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({tuple(a.shape) for a in arrays})
        raise MXNetError(f'default_batchify_fn: samples of a batch must have the same shape to be '
                         f'stacked, got shapes {shapes[:4]}; resize them (e.g. with '
                         f'vision.transforms.Resize) or pass your own batchify_fn') from None


def _wrap(arr, ctx=None):
    arr = np.ascontiguousarray(_engine_dtype(arr))
    ctx = ctx or cpu()
    if ctx.device_type != 'cpu':
        from ...ndarray import array
        return array(arr, ctx=ctx, dtype=arr.dtype)
    return NDArray(arr, ctx)


def default_batchify_fn(data):
    """Collate a list of samples into a batch.

    NDArrays and NumPy arrays are stacked along a new first axis; numbers become a 1-D NDArray
    whose dtype is NumPy's (Python ints -> int64, floats -> float64, NumPy scalars keep theirs);
    tuple samples are batched field by field and give a list of batches.
    """
    if not len(data):
        raise MXNetError('default_batchify_fn: empty batch')
    first = data[0]
    if isinstance(first, NDArray):
        return _wrap(_stack([np.asarray(d) for d in data]),
                     first.context)
    if isinstance(first, tuple):
        return [default_batchify_fn(list(field)) for field in zip(*data)]
    if isinstance(first, np.ndarray):
        return _wrap(_stack([np.asarray(d) for d in data]))
    try:
        arr = np.asarray(data)
    except ValueError:
        raise MXNetError('default_batchify_fn: cannot batch samples of type '
                         f'{type(first).__name__} with differing sizes; pass your own batchify_fn') from None
    return _wrap(arr)


# Worker processes return batches through shared memory whatever the batchify_fn, so MXNet's
# separate multiprocessing variant is the same function here.
default_mp_batchify_fn = default_batchify_fn


# ---------------------------------------------------------------------------------------------
# batches <-> shared memory
# ---------------------------------------------------------------------------------------------
_ALIGN = 64


def _flatten(obj, leaves):
    """A picklable description of `obj` with every array replaced by an index into `leaves`."""
    if isinstance(obj, NDArray):
        leaves.append(np.asarray(obj))   # copied into shared memory: no copy here
        return ('nd', len(leaves) - 1)
    if isinstance(obj, np.ndarray) and obj.dtype.kind not in 'OV':
        leaves.append(obj)
        return ('np', len(leaves) - 1)
    if type(obj) is list:
        return ('list', [_flatten(o, leaves) for o in obj])
    if type(obj) is tuple:
        return ('tuple', [_flatten(o, leaves) for o in obj])
    if type(obj) is dict:
        return ('dict', [(k, _flatten(v, leaves)) for k, v in obj.items()])
    return ('obj', obj)


def _unflatten(spec, arrays):
    kind, body = spec
    if kind == 'nd':
        return NDArray(arrays[body], cpu())
    if kind == 'np':
        return arrays[body]
    if kind == 'list':
        return [_unflatten(s, arrays) for s in body]
    if kind == 'tuple':
        return tuple(_unflatten(s, arrays) for s in body)
    if kind == 'dict':
        return {k: _unflatten(s, arrays) for k, s in body}
    return body


def _layout(leaves):
    metas, off = [], 0
    for a in leaves:
        off = (off + _ALIGN - 1) // _ALIGN * _ALIGN
        metas.append((a.shape, a.dtype.str, off))
        off += a.nbytes
    return metas, max(off, 1)


def _write_shm(name, leaves):
    """Create segment `name` holding `leaves`; returns their metadata (shape, dtype, offset)."""
    metas, total = _layout(leaves)
    shm = _shared_memory.SharedMemory(name=name, create=True, size=total)
    try:
        fd = getattr(shm, '_fd', -1)
        if fd >= 0 and hasattr(os, 'posix_fallocate'):
            # Reserve the pages now: a full /dev/shm then fails here with ENOSPC (and the batch
            # goes through the pipe instead) rather than killing the worker with SIGBUS later.
            os.posix_fallocate(fd, 0, total)
        buf = shm.buf
        for a, (shape, _, off) in zip(leaves, metas):
            np.ndarray(shape, dtype=a.dtype, buffer=buf, offset=off)[...] = a
        buf = None
        shm.close()
    except BaseException:
        shm.close()
        shm.unlink()
        raise
    return metas


def _map_shm(name):
    """Map segment `name` into this process and unlink its name. Returns a buffer that stays valid
    as long as arrays made from it are alive (the segment's memory is freed with the last one)."""
    shm = _shared_memory.SharedMemory(name=name)
    try:
        mm, view = getattr(shm, '_mmap', None), getattr(shm, '_buf', None)
        if isinstance(mm, mmap.mmap) and isinstance(view, memoryview):
            # Hand the mapping over to the arrays: SharedMemory.close() would unmap it.
            view.release()
            shm._buf = shm._mmap = None
            buf = mm
        else:  # pragma: no cover - other SharedMemory implementations: copy out
            buf = bytearray(shm.buf)
        shm.close()
    finally:
        shm.unlink()
    return buf


def _unlink_quietly(name):
    """Remove segment `name` if it exists (cleanup of batches never received)."""
    try:
        shm = _shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        # e.g. an empty segment left by a worker killed between creating and sizing it
        path = os.path.join('/dev/shm', name)
        if os.path.exists(path):
            _resource_tracker.register('/' + name, 'shared_memory')
            try:
                os.unlink(path)
            except OSError:
                pass
            _resource_tracker.unregister('/' + name, 'shared_memory')
        return
    shm.close()
    try:
        shm.unlink()
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------------------------
_THREAD_VARS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'BLIS_NUM_THREADS',
                'VECLIB_MAXIMUM_THREADS', 'NUMEXPR_NUM_THREADS', 'NUMBA_NUM_THREADS')
_thread_limiter = None


def _limit_threads():
    """One compute thread per worker: workers run side by side, so more would oversubscribe."""
    global _thread_limiter
    for var in _THREAD_VARS:
        os.environ[var] = '1'
    try:
        from threadpoolctl import threadpool_limits
        _thread_limiter = threadpool_limits(limits=1)
    except Exception:
        pass
    numba = sys.modules.get('numba')
    if numba is not None:
        try:
            from numba.np.ufunc import parallel
            if getattr(parallel, '_is_initialized', False):
                numba.set_num_threads(1)
        except Exception:
            pass


def _seed_worker(seed, worker_id):
    """Distinct, reproducible random streams per worker (engine, NumPy, Python, data)."""
    import random as py_random
    seq = np.random.SeedSequence([seed, worker_id])
    s = seq.generate_state(4, dtype=np.uint32)
    try:
        from ... import random as engine_random
        engine_random.seed((int(s[0]) << 32) | int(s[1]))
    except Exception:
        pass
    np.random.seed(int(s[2]))
    py_random.seed(int(s[3]))
    _set_data_rng(np.random.default_rng(seq.spawn(1)[0]))


def _worker_loop(worker_id, dataset, batchify_fn, task_conn, result_conn, seed, parent_pid,
                 inherited):
    for c in inherited:  # the main process's ends of every pipe, inherited through fork
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    _limit_threads()
    _seed_worker(seed, worker_id)
    while True:
        try:
            if not task_conn.poll(1.0):
                if os.getppid() != parent_pid:
                    break
                continue
            task = task_conn.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        idx, indices, name = task
        try:
            batch = batchify_fn([dataset[i] for i in indices])
            leaves = []
            spec = _flatten(batch, leaves)
            msg = None
            if leaves and _shared_memory is not None:
                try:
                    msg = ('shm', idx, name, _write_shm(name, leaves), spec)
                except OSError:
                    msg = None  # no room in shared memory: send this batch through the pipe
            if msg is None:
                msg = ('pickled', idx, spec, leaves)
            result_conn.send(msg)
        except (BrokenPipeError, ConnectionResetError):
            break
        except Exception as e:
            text = ''.join(traceback.format_exception(type(e), e, e.__traceback__))
            try:
                result_conn.send(('err', idx, text))
            except OSError:
                break
    task_conn.close()
    result_conn.close()


def _mp_context():
    methods = mp.get_all_start_methods()
    return mp.get_context('fork' if 'fork' in methods else None)


def _shutdown(state):
    """Stop the workers of one pass and remove the segments of batches never received."""
    if os.getpid() != state['pid']:  # a forked child must not touch its parent's workers
        return
    procs = state['procs']
    for conn in state['task_conns']:
        try:
            conn.send(None)
        except OSError:
            pass
    deadline = time.monotonic() + 0.2
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join()
    for conn in state['task_conns'] + state['result_conns']:
        conn.close()
    for name in list(state['pending']):
        _unlink_quietly(name)
    state['pending'].clear()


def _exit_description(code):
    if code is None:
        return 'no exit code'
    if code < 0:
        try:
            return f'signal {signal.Signals(-code).name}'
        except ValueError:
            return f'signal {-code}'
    return f'exit code {code}'


class _MultiWorkerIter:
    """One pass over a DataLoader with worker processes."""

    def __init__(self, loader):
        self._loader_desc = f'DataLoader(num_workers={loader._num_workers})'
        self._batchify_fn = loader._batchify_fn
        self._timeout = loader._timeout
        self._batch_iter = iter(loader._batch_sampler)
        self._n = loader._num_workers
        self._sent = self._rcvd = 0
        self._exhausted = False
        self._indices = {}
        ctx = _mp_context()
        if _resource_tracker is not None and os.name == 'posix':
            # Workers must share the main process's tracker; one started inside a worker would
            # unlink the worker's segments (with a warning) as soon as that worker exits.
            _resource_tracker.ensure_running()
        seed = _worker_seed()
        self._token = f'mxdl{os.getpid()}_{secrets.token_hex(4)}'
        fork = ctx.get_start_method() == 'fork'
        self._procs, self._task_conns, self._result_conns = [], [], []
        self._state = {'pid': os.getpid(), 'procs': self._procs, 'task_conns': self._task_conns,
                       'result_conns': self._result_conns, 'pending': set()}
        self._finalizer = weakref.finalize(self, _shutdown, self._state)
        for wid in range(self._n):
            task_r, task_w = ctx.Pipe(duplex=False)
            res_r, res_w = ctx.Pipe(duplex=False)
            self._task_conns.append(task_w)
            self._result_conns.append(res_r)
            inherited = list(self._task_conns + self._result_conns) if fork else []
            p = ctx.Process(target=_worker_loop, name=f'DataLoaderWorker-{wid}', daemon=True,
                            args=(wid, loader._dataset, loader._batchify_fn, task_r, res_w, seed,
                                  os.getpid(), inherited))
            p.start()
            task_r.close()
            res_w.close()
            self._procs.append(p)
        for _ in range(max(1, loader._prefetch)):
            self._push()

    def __iter__(self):
        return self

    def _push(self):
        if self._exhausted:
            return
        try:
            indices = next(self._batch_iter)
        except StopIteration:
            self._exhausted = True
            return
        idx = self._sent
        name = f'{self._token}_{idx}'
        self._state['pending'].add(name)
        self._indices[idx] = indices
        self._sent += 1
        try:
            self._task_conns[idx % self._n].send((idx, list(indices), name))
        except OSError:
            pass  # the worker is gone; receiving this batch reports it

    def _fail(self, msg):
        self._finalizer()
        raise MXNetError(msg)

    def _recv(self, idx):
        w = idx % self._n
        conn, proc = self._result_conns[w], self._procs[w]
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        what = f'batch {idx} (samples {_short(self._indices[idx])})'
        who = f'worker {w} (pid {proc.pid})'
        while True:
            try:
                if conn.poll():
                    return conn.recv()
            except (EOFError, OSError):
                break
            if not proc.is_alive():
                try:
                    if conn.poll():
                        return conn.recv()
                except (EOFError, OSError):
                    pass
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._fail(f'{self._loader_desc}: timed out after timeout={self._timeout} s waiting '
                           f'for {what} from {who}. Loading is too slow or stuck; raise '
                           'DataLoader(timeout=...) or debug with num_workers=0.')
            mp_connection.wait([conn, proc.sentinel], remaining)
        proc.join(0.5)
        self._fail(f'{self._loader_desc}: {who} exited unexpectedly with '
                   f'{_exit_description(proc.exitcode)} while loading {what}. If the OS killed it '
                   '(SIGKILL), it may have run out of memory; run with num_workers=0 to see errors '
                   'in the main process.')

    def __next__(self):
        if self._rcvd >= self._sent:
            self._finalizer()
            raise StopIteration
        idx = self._rcvd
        try:
            msg = self._recv(idx)
            if msg[1] != idx:  # pragma: no cover - protocol invariant
                self._fail(f'{self._loader_desc}: internal error: expected batch {idx}, got {msg[1]}')
            kind = msg[0]
            if kind == 'err':
                self._fail(f'{self._loader_desc}: worker {idx % self._n} raised an exception while '
                           f'loading batch {idx} (samples {_short(self._indices[idx])}):\n{msg[2]}')
            if kind == 'shm':
                _, _, name, metas, spec = msg
                buf = _map_shm(name)
                self._state['pending'].discard(name)
                arrays = [np.ndarray(shape, dtype=np.dtype(dt), buffer=buf, offset=off)
                          for shape, dt, off in metas]
            else:
                _, _, spec, arrays = msg
                self._state['pending'].discard(f'{self._token}_{idx}')
            batch = _unflatten(spec, arrays)
        except BaseException:
            self.close()
            raise
        del self._indices[idx]
        self._rcvd += 1
        self._push()
        return batch

    def close(self):
        """Stop the workers now (also happens at the end of the pass and on garbage collection)."""
        self._finalizer()
        self._exhausted = True
        self._sent = self._rcvd


def _short(indices, n=8):
    indices = list(indices)
    return str(indices) if len(indices) <= n else str(indices[:n])[:-1] + ', ...]'


class _ThreadIter:
    """One pass over a DataLoader with a pool of worker threads (thread_pool=True)."""

    def __init__(self, loader):
        self._loader = loader
        self._batch_iter = iter(loader._batch_sampler)
        self._pool = concurrent.futures.ThreadPoolExecutor(loader._num_workers,
                                                           thread_name_prefix='DataLoader')
        self._futures = collections.deque()
        self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        for _ in range(max(1, loader._prefetch)):
            self._push()

    def __iter__(self):
        return self

    def _push(self):
        try:
            indices = next(self._batch_iter)
        except StopIteration:
            return
        ds, fn = self._loader._dataset, self._loader._batchify_fn
        self._futures.append((list(indices), self._pool.submit(lambda: fn([ds[i] for i in indices]))))

    def __next__(self):
        if not self._futures:
            self._finalizer()
            raise StopIteration
        indices, fut = self._futures.popleft()
        timeout = self._loader._timeout
        try:
            batch = fut.result(timeout)
        except concurrent.futures.TimeoutError:
            self._finalizer()
            raise MXNetError(f'DataLoader(thread_pool=True): timed out after timeout={timeout} s '
                             f'waiting for the batch of samples {_short(indices)}') from None
        except Exception as e:
            self._finalizer()
            raise MXNetError(f'DataLoader(thread_pool=True): loading the batch of samples '
                             f'{_short(indices)} failed: {type(e).__name__}: {e}') from e
        self._push()
        return batch

    def close(self):
        self._futures.clear()
        self._finalizer()


# ---------------------------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------------------------
class DataLoader:
    """Loads mini-batches from a dataset.

    Parameters (as in MXNet Gluon 1.x)
    ----------
    dataset : Dataset (anything with `__getitem__` and `__len__`)
    batch_size : int; required unless batch_sampler is given
    shuffle : bool; a new random order every pass (not with sampler or batch_sampler)
    sampler : Sampler of sample indices (not with shuffle)
    last_batch : 'keep' (default), 'discard' or 'rollover'; what to do with a last incomplete batch
    batch_sampler : Sampler of lists of indices; excludes batch_size, shuffle, sampler, last_batch
    batchify_fn : callable(list of samples) -> batch; default `default_batchify_fn`
    num_workers : int; 0 loads in this process, > 0 in that many worker processes
    pin_memory, pin_device_id : accepted for compatibility (no pinned memory on the CPU)
    prefetch : batches in flight with workers; default 2 * num_workers
    thread_pool : use worker threads instead of processes
    timeout : seconds to wait for one batch from a worker before raising MXNetError
    auto_reload : start the next pass's loading (workers and prefetch) ahead of time: at
        construction and as soon as a pass ends, so the following `iter()` finds batches ready
    """

    def __init__(self, dataset, batch_size=None, shuffle=False, sampler=None, last_batch=None,
                 batch_sampler=None, batchify_fn=None, num_workers=0, pin_memory=False,
                 pin_device_id=0, prefetch=None, thread_pool=False, timeout=120,
                 auto_reload=False):
        self._dataset = dataset
        self._pin_memory = pin_memory
        self._pin_device_id = pin_device_id
        self._thread_pool = bool(thread_pool)
        if timeout is not None:
            try:
                timeout = float(timeout)
            except (TypeError, ValueError):
                timeout = -1
            if not timeout > 0:
                raise _DataLoaderArgError(f'DataLoader: timeout must be a positive number of '
                                          f'seconds or None, got {timeout!r}')
        self._timeout = timeout

        if batch_sampler is None:
            if batch_size is None:
                raise _DataLoaderArgError('DataLoader: batch_size must be specified unless '
                                          'batch_sampler is specified')
            if sampler is None:
                try:
                    n = len(dataset)
                except TypeError:
                    raise _DataLoaderArgError(f'DataLoader: the dataset ({type(dataset).__name__}) '
                                              'has no __len__; give it one or pass a sampler') from None
                sampler = RandomSampler(n) if shuffle else SequentialSampler(n)
            elif shuffle:
                raise _DataLoaderArgError('DataLoader: shuffle must not be specified if sampler is '
                                          'specified (the sampler decides the order)')
            try:
                batch_sampler = BatchSampler(sampler, batch_size, last_batch if last_batch else 'keep')
            except MXNetError as e:
                raise _DataLoaderArgError(f'DataLoader: {e}') from None
        elif batch_size is not None or shuffle or sampler is not None or last_batch is not None:
            raise _DataLoaderArgError('DataLoader: batch_size, shuffle, sampler and last_batch must '
                                      'not be specified if batch_sampler is specified')
        self._batch_sampler = batch_sampler

        try:
            num_workers = int(num_workers)
        except (TypeError, ValueError):
            num_workers = -1
        if num_workers < 0:
            raise _DataLoaderArgError(f'DataLoader: num_workers must be a non-negative integer, '
                                      f'got {num_workers!r}')
        self._num_workers = num_workers
        if prefetch is not None and int(prefetch) < 0:
            raise _DataLoaderArgError(f'DataLoader: prefetch must be >= 0, got {prefetch!r}')
        self._prefetch = int(prefetch) if prefetch is not None else 2 * num_workers
        self._batchify_fn = default_batchify_fn if batchify_fn is None else batchify_fn
        self._auto_reload = bool(auto_reload)
        self._ready = self._new_pass() if self._auto_reload else None

    def __iter__(self):
        if not self._auto_reload:
            return self._new_pass()
        return self._reloading_iter()

    def _reloading_iter(self):
        # The prepared pass is handed out once; when it ends, the next one starts loading.
        it, self._ready = self._ready, None
        if it is None:
            it = self._new_pass()
        yield from it
        if self._ready is None:
            self._ready = self._new_pass()

    def _new_pass(self):
        if self._num_workers == 0:
            return self._same_process_iter()
        if self._thread_pool:
            return _ThreadIter(self)
        return _MultiWorkerIter(self)

    def _same_process_iter(self):
        for indices in self._batch_sampler:
            yield self._batchify_fn([self._dataset[i] for i in indices])

    def __len__(self):
        return len(self._batch_sampler)

    def __repr__(self):
        return (f'DataLoader(batches={len(self)}, num_workers={self._num_workers}, '
                f'thread_pool={self._thread_pool}, prefetch={self._prefetch}, timeout={self._timeout})')
