"""Numba's on-disk cache must never stop the kernels from working.

* Where: a `cache=True` kernel needs a writable cache folder when it is decorated, i.e. at import.
  Numba raises ("no locator available") when neither the source's `__pycache__` (the install
  folder) nor its user-wide folder (`~/.cache/numba`) is writable; then a private folder in the
  temp directory is used, or, when nothing is writable, kernels compile without a disk cache.
* Corrupt entries: a truncated or garbage index/data file made every later call of that kernel
  raise (a pickle error) until someone deleted the file by hand. Such an entry is now a cache
  miss: it is removed, the kernel compiles again and a fresh entry is written (one warning)."""
import os
import tempfile
import warnings

_warned = set()


def warn_once(key, msg):
    """One warning per `key` and process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def writable(path):
    """Whether files can be created in `path` (made if missing), tested as Numba tests it."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def ensure_cache_location():
    import numba
    from numba.core.dispatcher import Dispatcher
    from numba.misc.appdirs import AppDirs
    if numba.config.CACHE_DIR:            # NUMBA_CACHE_DIR: the user chose
        return
    in_tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cpu', '__pycache__')
    if writable(in_tree) or writable(AppDirs(appname='numba', appauthor=False).user_cache_dir):
        return
    private = os.path.join(tempfile.gettempdir(), f'engine-numba-cache-{os.getuid()}')
    if writable(private):
        numba.config.CACHE_DIR = private
        return
    warn_once('nowhere', 'no writable folder for Numba\'s cache (install folder, ~/.cache, temp): '
               'kernels are compiled in every new process')
    Dispatcher.enable_caching = lambda self: None      # keeps the in-memory NullCache


def heal_corrupt_entries():
    from numba.core.caching import Cache
    load, save = Cache._load_overload, Cache._save_overload

    def _load_overload(self, sig, target_context):
        try:
            return load(self, sig, target_context)
        except Exception as e:           # unreadable index or data: treat as a miss
            index = self._cache_file._index_path
            warn_once(index, f'discarding a corrupt Numba cache entry {index} ({type(e).__name__}: {e}); '
                       'the kernel is compiled again')
            try:
                os.remove(index)         # its data files are unreachable without it
            except OSError:
                pass
            return None

    def _save_overload(self, sig, data):
        try:
            save(self, sig, data)
        except Exception as e:           # e.g. a folder made read-only since: the kernel still runs
            warn_once(('save', self._cache_path), f'cannot write Numba\'s cache in {self._cache_path} '
                       f'({type(e).__name__}: {e})')

    Cache._load_overload, Cache._save_overload = _load_overload, _save_overload
