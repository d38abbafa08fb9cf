"""Small helpers of gluon.utils."""
import warnings

import numpy as np

from ..base import MXNetError, MXNetValueError
from ..ndarray import NDArray


def split_data(data, num_slice, batch_axis=0, even_split=True):
    """Split a batch into `num_slice` parts along `batch_axis`. With even_split=False the sizes
    differ by at most one, the larger parts first (as MXNet and np.array_split: 10 into 3 is
    4, 3, 3)."""
    size = data.shape[batch_axis]
    if even_split and size % num_slice:
        raise MXNetValueError(
            f'split_data: data of shape {tuple(data.shape)} cannot be split evenly into {num_slice} '
            f'slices along axis {batch_axis}; use a batch size that is a multiple of {num_slice} '
            'or even_split=False')
    each, extra = divmod(size, num_slice)
    bounds = np.cumsum([0] + [each + 1] * extra + [each] * (num_slice - extra)).tolist()
    if getattr(data, 'stype', 'default') == 'csr':    # CSR parts stay CSR (rows only, as MXNet)
        if batch_axis != 0:
            raise MXNetError(f'split_data: a CSR array splits along axis 0 only, got batch_axis={batch_axis}')
        return [data[bounds[i]:bounds[i + 1]] for i in range(num_slice)]
    from ..ops import slice_axis
    return [slice_axis(data, batch_axis, bounds[i], bounds[i + 1]) for i in range(num_slice)]


def split_and_load(data, ctx_list, batch_axis=0, even_split=True):
    """Split a batch and move each part to one of the contexts (a list of Contexts, or one)."""
    from ..context import Context
    if isinstance(ctx_list, Context):
        ctx_list = [ctx_list]
    ctx_list = list(ctx_list)
    if not ctx_list or not all(isinstance(c, Context) for c in ctx_list):
        raise MXNetError(f'split_and_load: ctx_list must be a non-empty list of Contexts, got {ctx_list!r}')
    if not isinstance(data, NDArray):
        from ..ndarray import array
        data = array(np.asarray(data))
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    parts = split_data(data, len(ctx_list), batch_axis, even_split)
    return [p.as_in_context(c) for p, c in zip(parts, ctx_list)]


def clip_global_norm(arrays, max_norm, check_isfinite=True):
    """Scale arrays in place so their joint L2 norm is at most max_norm. Returns the norm: a
    float, or (as MXNet, no blocking read) a (1,) NDArray with check_isfinite=False; with
    check_isfinite a NaN/inf norm is a UserWarning (the arrays are then left unscaled)."""
    if not arrays:
        raise MXNetError('clip_global_norm: expected a non-empty list of arrays')
    total = float(np.sqrt(sum(float((np.asarray(a).astype(np.float64) ** 2).sum()) for a in arrays)))
    if check_isfinite and not np.isfinite(total):
        warnings.warn(UserWarning('nan or inf is detected. Clipping results will be undefined.'),
                      stacklevel=2)
    if not check_isfinite:
        from ..ndarray import array
        norm = array([total], ctx=arrays[0].context, dtype=arrays[0].dtype)
    if total > max_norm:
        scale = max_norm / (total + 1e-8)
        for a in arrays:
            a *= scale
    return total if check_isfinite else norm


# ---- downloads (MXNet's gluon.utils.download / check_sha1) -------------------------------------

def check_sha1(filename, sha1_hash):
    """Whether the SHA-1 of the file's content is ``sha1_hash`` (hex digits)."""
    import hashlib
    sha1 = hashlib.sha1()
    with open(filename, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha1.update(chunk)
    return sha1.hexdigest() == str(sha1_hash).lower()


def download(url, path=None, overwrite=False, sha1_hash=None, retries=5, verify_ssl=True):
    """Fetch ``url`` (http(s)://, ftp:// or file://) to ``path`` (a file, a directory, or by
    default the URL's file name in the current directory) and return the file's path. An
    existing file is kept unless ``overwrite`` or its SHA-1 differs from ``sha1_hash``. The file
    is written under a temporary name and renamed, so a failed download leaves nothing behind;
    a failure (e.g. no network) is an MXNetError naming the URL."""
    import os
    import ssl
    import tempfile
    import urllib.error
    import urllib.parse
    import urllib.request
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if path is None:
        fname = name
    elif os.path.isdir(os.path.expanduser(path)):
        fname = os.path.join(os.path.expanduser(path), name)
    else:
        fname = os.path.expanduser(path)
    if not fname:
        raise MXNetError(f'download: cannot tell a file name from {url!r}; pass path=')
    if int(retries) < 1:
        raise MXNetError(f'download: retries must be >= 1, got {retries}')
    if not overwrite and os.path.exists(fname) and (sha1_hash is None or check_sha1(fname, sha1_hash)):
        return fname
    folder = os.path.dirname(os.path.abspath(fname))
    os.makedirs(folder, exist_ok=True)
    context = None if verify_ssl else ssl._create_unverified_context()
    why = None
    for _ in range(int(retries)):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(fname) + '.')
        try:
            with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=60, context=context) as r:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            if sha1_hash is not None and not check_sha1(tmp, sha1_hash):
                raise MXNetError(f'download: the file from {url} does not have the expected SHA-1 '
                                 f'{sha1_hash}; it may be corrupt or the URL may have changed')
            os.replace(tmp, fname)
            return fname
        except MXNetError:
            os.unlink(tmp)
            raise
        except (urllib.error.URLError, OSError, ValueError) as e:
            os.unlink(tmp)
            why = e
            if isinstance(e, ValueError) or (isinstance(e, urllib.error.URLError) and
                                             urllib.parse.urlparse(url).scheme == 'file'):
                break   # a malformed URL or a missing local file: retrying cannot help
    raise MXNetError(f'download: cannot fetch {url} ({type(why).__name__}: {why}); without network '
                     'access, download the file elsewhere and pass its local path (or a file:// URL)')
