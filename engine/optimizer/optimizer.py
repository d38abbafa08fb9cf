"""Optimizers with MXNet 1.x's API and update formulas (``mx.optimizer``).

An optimizer updates a weight in place from its gradient: ``opt.update(index, weight, grad,
state)`` where ``state`` came from ``opt.create_state(index, weight)``. Every optimizer's
per-parameter step is one fused kernel (Numba, ``kernels/cpu/optim.py``; for weights on a GPU
its CUDA twin of the same name in ``kernels/cuda/optim.py``) that rescales, clips, applies weight
decay, updates the states and writes the weight in a single pass over the buffers.

Bookkeeping follows MXNet: ``num_update`` is the largest per-index update count, counted before
the learning rate is read (so the first step sees ``num_update == 1``); ``lr_mult``/``wd_mult``
scale the rate and decay per parameter (from ``param_dict`` objects' ``lr_mult``/``wd_mult``,
else the dicts set by ``set_lr_mult``/``set_wd_mult``, keyed by index or by name through
``param_idx2name``).

``get_updater(opt)`` returns an :class:`Updater` (callable ``(index, grad, weight)``) that keeps
the states; its ``get_states``/``set_states`` serialize them to bytes without pickle: an ``.npz``
archive whose ``__header__`` entry is JSON describing the structure.
"""
import difflib
import inspect
import io
import json
import math
import warnings
import weakref

import numpy as np

from kernels.cpu import optim as _k

from .. import lr_scheduler as _lr_scheduler
from ..base import MXNetError, MXNetUserWarning, array_module, fmt_shape
from ..context import cpu
from ..ndarray import NDArray
from ..registry import Registry

__all__ = ['Optimizer', 'SGD', 'NAG', 'Adam', 'AdamW', 'RMSProp', 'AdaGrad', 'Updater',
           'get_updater', 'create', 'register']

_REGISTRY = Registry('optimizer', lambda: Optimizer)
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


register = _REGISTRY.register   # mx.optimizer.register (a decorator; MXNet has no optimizer aliases)


def create(name, **kwargs):
    """An optimizer from its registered name (case-insensitive), its class, or an instance."""
    if isinstance(name, Optimizer):
        if kwargs:
            raise MXNetError('optimizer.create: keyword arguments cannot be applied to an optimizer '
                             'instance; pass a name or set them on the instance')
        return name
    if isinstance(name, type) and issubclass(name, Optimizer):
        return name(**kwargs)
    if not isinstance(name, str):
        raise MXNetError(f'optimizer.create: expected a name, an Optimizer class or instance, got '
                         f'{type(name).__name__}')
    return _REGISTRY.get(name)(**kwargs)


def accepted_arguments(klass):
    """The keyword arguments `klass(...)` takes: its __init__'s and, where that passes **kwargs
    on, its bases' down to Optimizer's."""
    names = set()
    for c in klass.__mro__:
        init = c.__dict__.get('__init__')
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]   # less self
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if c is Optimizer or not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def unknown_arguments_error(klass, unknown, who=None):
    """The MXNetError for arguments `klass` does not take: each with its nearest known name."""
    known = sorted(accepted_arguments(klass))
    hints = [f'{k!r} -> did you mean {close[0]!r}?' for k in sorted(unknown)
             if (close := difflib.get_close_matches(k, known, n=1))]
    where = f'{who}: unexpected argument(s) {sorted(unknown)} for {klass.__name__}' if who else \
        f'{klass.__name__}: unexpected argument(s) {sorted(unknown)}'
    return MXNetError(where + (f" ({'; '.join(hints)})" if hints else '') + f'; it takes {known}')


class Optimizer:
    """Base class: learning-rate schedule, per-parameter multipliers and update counting.

    Subclasses implement ``create_state(index, weight)`` and ``_update_one(index, weight, grad,
    state)``; ``update`` counts the step first (as MXNet does), then calls ``_update_one``.
    """
    default_lr = 0.01  # the rate used when neither learning_rate nor lr_scheduler is given

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None,
                 learning_rate=None, lr_scheduler=None, sym=None, begin_num_update=0,
                 multi_precision=False, param_dict=None, aggregate_num=None, **kwargs):
        if kwargs:
            raise unknown_arguments_error(type(self), kwargs)
        if sym is not None:   # MXNet reads __lr_mult__/__wd_mult__ from it; not implemented here
            raise MXNetError(f'{type(self).__name__}: sym is not supported; set per-parameter multipliers '
                             'with set_lr_mult/set_wd_mult (mx.mod.Module reads them from the symbol)')
        if param_idx2name is None:
            param_idx2name = {}
        if not isinstance(param_idx2name, dict):
            raise MXNetError(f'{type(self).__name__}: param_idx2name must be a dict of parameter '
                             f'indices to names, got {type(param_idx2name).__name__}')
        if clip_gradient is not None and not _is_number(clip_gradient):
            raise MXNetError(f'{type(self).__name__}: clip_gradient must be a number or None, '
                             f'got {clip_gradient!r}')
        self.rescale_grad = _number(rescale_grad, 'rescale_grad', self)
        self.wd = _number(wd, 'wd', self)
        self.clip_gradient = clip_gradient
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise MXNetError(f'{type(self).__name__}: lr_scheduler must be callable '
                             '(num_update -> lr), e.g. an mx.lr_scheduler.FactorScheduler')
        if learning_rate is not None:
            learning_rate = _number(learning_rate, 'learning_rate', self)
        if lr_scheduler is None and learning_rate is None:
            learning_rate = self.default_lr
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None and hasattr(lr_scheduler, 'base_lr'):
            if lr_scheduler.base_lr != learning_rate:
                warnings.warn('learning rate from lr_scheduler has been overwritten by '
                              'learning_rate in optimizer', stacklevel=2)
                _override_base_lr(lr_scheduler, learning_rate)
        self.begin_num_update = int(begin_num_update)
        self.num_update = int(begin_num_update)
        self._device_id = 0
        self._all_index_update_counts = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.multi_precision = multi_precision  # float16 weights keep float32 master copies
        self.aggregate_num = 0
        self.idx2name = dict(param_idx2name)
        self.param_dict = param_dict if param_dict else {}
        self.lr_mult = {}
        self.wd_mult = {}
        self.set_lr_mult({})
        self.set_wd_mult({})

    # ---- registry (MXNet's static spellings) --------------------------------------------------
    register = staticmethod(register)
    create_optimizer = staticmethod(create)

    def __repr__(self):
        hyper = ', '.join(f'{k}={v!r}' for k, v in self._hyperparams().items())
        return f'{type(self).__name__}({hyper})'

    def _hyperparams(self):
        keys = ['lr', 'wd', 'rescale_grad', 'clip_gradient'] + list(getattr(self, '_extra_hyper', ()))
        return {k: getattr(self, k) for k in keys}

    # ---- learning rate ----------------------------------------------------------------------
    @property
    def learning_rate(self):
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def set_learning_rate(self, lr):
        if self.lr_scheduler is not None:
            raise MXNetUserWarning('set_learning_rate: this optimizer has an lr_scheduler, which decides the '
                             'learning rate; change the scheduler (or build the optimizer without one)')
        self.lr = _number(lr, 'learning_rate', self)

    def set_lr_mult(self, args_lr_mult):
        """Per-parameter learning-rate multipliers, keyed by index or parameter name."""
        self.lr_mult = {}
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """Per-parameter weight-decay multipliers. As in MXNet, named parameters that are not
        weights or gammas (biases, betas, running statistics) get no decay unless set here."""
        self.wd_mult = {}
        for n in self.idx2name.values():
            if not (str(n).endswith('weight') or str(n).endswith('gamma')):
                self.wd_mult[n] = 0.0
        self.wd_mult.update(args_wd_mult)

    def _set_current_context(self, device_id):
        """Keep separate update counts per device (one Updater per device shares the optimizer)."""
        self._device_id = device_id
        self._index_update_count = self._all_index_update_counts.setdefault(device_id, {})

    def _update_count(self, index):
        for idx in index if isinstance(index, (list, tuple)) else [index]:
            count = self._index_update_count.get(idx, self.begin_num_update) + 1
            self._index_update_count[idx] = count
            self.num_update = max(count, self.num_update)

    def _get_lrs(self, indices):
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        return [lr * self._mult(index, self.lr_mult, 'lr_mult') for index in indices]

    def _get_wds(self, indices):
        return [self.wd * self._mult(index, self.wd_mult, 'wd_mult') for index in indices]

    def _get_lr(self, index):
        return self._get_lrs([index])[0]

    def _get_wd(self, index):
        return self._get_wds([index])[0]

    def _mult(self, index, table, attr):
        if index in self.param_dict:
            return getattr(self.param_dict[index], attr)
        if index in table:
            return table[index]
        if index in self.idx2name:
            return table.get(self.idx2name[index], 1.0)
        return 1.0

    def _scheduled_momentum(self, default):
        """The momentum (SGD/NAG) or beta1 (Adam) for this step: the scheduler's when it cycles
        momentum (OneCycleScheduler, like PyTorch's OneCycleLR), else the fixed value."""
        sched = self.lr_scheduler
        if sched is not None and getattr(sched, 'cycle_momentum', False) and hasattr(sched, 'momentum'):
            m = sched.momentum(self.num_update)
            if m is not None:
                return float(m)
        return default

    def _clip(self):
        return float(self.clip_gradient) if self.clip_gradient else -1.0

    # ---- states and updates -------------------------------------------------------------------
    def create_state(self, index, weight):
        return None

    # MXNet's layout of a multi-precision state: (master, inner state) for most optimizers,
    # (inner state, master) for SGD, NAG and LARS (their fused mp_* ops take it that way)
    _master_last = False

    def create_state_multi_precision(self, index, weight):
        """With multi_precision, a float16 weight gets a float32 master copy: the state is
        (master, the optimizer's state for the master), or (state, master) for the optimizers
        whose ``_master_last`` is set (SGD, NAG, LARS), as in MXNet."""
        if self._master_weights(weight):
            master = weight.astype('float32')
            inner = self.create_state(index, master)
            return (inner, master) if self._master_last else (master, inner)
        return self.create_state(index, weight)

    def update(self, index, weight, grad, state):
        """Update ``weight`` (an NDArray, or a list of them with lists of indices, grads and
        states) in place from ``grad``."""
        if isinstance(index, (list, tuple)):
            for i, w, g, s in zip(index, weight, grad, state):
                self.update(i, w, g, s)
            return
        self._update_count(index)
        if _sparse_in(weight, grad, state):
            _sparse_update(self, index, weight, grad, state)
        else:
            self._update_one(index, weight, grad, state)

    def _lazy_sparse(self, index, weight):
        """Whether a row_sparse gradient updates only its rows of ``weight`` (and of the states):
        MXNet's lazy update. Otherwise the gradient is densified (the standard update)."""
        return False

    def update_multi_precision(self, index, weight, grad, state):
        """Update the float32 master copy from the gradient (widened) and round the float16
        weight from it, so that small steps are not lost to float16 rounding."""
        if isinstance(index, (list, tuple)):
            for i, w, g, s in zip(index, weight, grad, state):
                self.update_multi_precision(i, w, g, s)
            return
        if not self._master_weights(weight):
            self.update(index, weight, grad, state)
            return
        inner, master = state if self._master_last else state[::-1]
        self.update(index, master, grad.astype('float32'), inner)
        if weight.stype != 'default':       # a sparse float16 weight: its master has its storage
            weight._assign(master.astype(weight.dtype).tostype(weight.stype))
        else:
            weight._data[...] = master.tostype('default')._data.astype(weight._data.dtype)

    def _master_weights(self, weight):
        return self.multi_precision and getattr(weight, 'dtype', None) == np.float16

    def _update_one(self, index, weight, grad, state):
        raise NotImplementedError(f'{type(self).__name__} does not implement _update_one')

    def _fused(self, kernel, index, weight, grad, states, *scalars):
        """Run a fused kernel on the raw buffers of weight, grad and states (dense: ``update``
        resolves sparse storage first)."""
        w, g = _raw(weight, 'weight', self, index), _raw(grad, 'grad', self, index)
        if g.shape != w.shape:
            raise MXNetError(f'{type(self).__name__}.update: gradient shape {fmt_shape(g.shape)} does '
                             f'not match weight shape {fmt_shape(w.shape)} ({_describe(self, index)})')
        bufs = [w, g]
        for s in states:
            b = _raw(s, 'state', self, index)
            if b.shape != w.shape:
                raise MXNetError(f'{type(self).__name__}.update: state shape {fmt_shape(b.shape)} does '
                                 f'not match weight shape {fmt_shape(w.shape)} ({_describe(self, index)})')
            bufs.append(b)
        _run_kernel(kernel, bufs, [float(x) for x in scalars])

    # ---- several parameters at once: Trainer.step's multi-tensor update ---------------------------
    # kernels/cpu/optim.py's *_multi kernel by number of buffers a parameter (weight, grad, states)
    _multi_kernels = {}

    def update_many(self, indices, weights, grads, states, tables=None):
        """``update_multi_precision`` for each parameter. Where every weight, gradient and state
        is a dense float32/float64 host array of one dtype (and the class's update is not
        overridden by a subclass), one multi-tensor kernel call updates them all, with the same
        arithmetic per parameter; as MXNet's aggregated updates, every count is advanced before
        the rates are read. `tables` (a dict the caller keeps between steps) caches the kernel's
        address table."""
        table = self._multi_table(indices, weights, grads, states, tables)
        if table is None:
            for i, w, g, s in zip(indices, weights, grads, states):
                self.update_multi_precision(i, w, g, s)
            return
        self._update_count(indices)
        self._update_multi(indices, table)

    def _update_multi(self, indices, table):
        raise NotImplementedError(f'{type(self).__name__} has no multi-tensor update')

    def _multi_table(self, indices, weights, grads, states, tables):
        """The current _MultiTable of these parameters, or None where the kernel cannot run."""
        if not indices or not _multi_capable(type(self)):
            return None
        rows = []
        for w, g, s in zip(weights, grads, states):
            row = _dense_buffers((w, g) + (s if isinstance(s, tuple) else () if s is None else (s,)))
            if row is None:
                return None
            rows.append(row)
        cols = len(rows[0])
        if cols not in self._multi_kernels or any(len(r) != cols for r in rows):
            return None
        key = (self._device_id, tuple(indices), cols)
        table = tables.get(key) if tables is not None else None
        if table is None:
            table = _MultiTable(len(rows), cols)
            if tables is not None:
                tables[key] = table
        return table if table.refresh(rows) else None

    def _run_multi(self, table, per_param, *scalars):
        """The multi-tensor kernel for `table`'s buffer count on the table, then per-parameter
        float64 arrays (`per_param`, e.g. rates and decays), then the shared scalars."""
        kernel = getattr(_k, self._multi_kernels[table.cols])
        kernel(table.table, table.sizes, table.like, *[np.asarray(a, dtype=np.float64) for a in per_param],
               *[float(x) for x in scalars])


_MULTI_METHODS = ('update', 'update_multi_precision', '_update_one')
_multi_capable_cache = {}


def _multi_capable(cls):
    """Whether `cls` updates through the multi-tensor kernels of the class that defines them: a
    subclass that overrides how one parameter is updated must see every update go through its
    own code."""
    ok = _multi_capable_cache.get(cls)
    if ok is None:
        owner = next((c for c in cls.__mro__ if '_update_multi' in c.__dict__), Optimizer)
        ok = owner is not Optimizer and all(getattr(cls, m) is getattr(owner, m) for m in _MULTI_METHODS)
        _multi_capable_cache[cls] = ok
    return ok


def _dense_buffers(arrays):
    """The host buffers of dense NDArrays, or None when one is anything else (sparse, on a GPU, a
    plain array, a float16 weight's master-copy state)."""
    out = []
    for a in arrays:
        if type(a) is not NDArray or type(a._data) is not np.ndarray:
            return None
        out.append(a._data)
    return out


_LIKE = {dt: np.empty(1, dt) for dt in _KERNEL_DTYPES}   # tells a multi kernel its dtype


class _MultiTable:
    """A multi-tensor kernel's address table for one list of parameters, kept between steps. It
    reads again only the addresses of arrays that changed (a hybridized step reuses its gradient
    buffers, an eager backward makes new ones each step): it keeps weak references to the arrays
    it lists, so an entry is reused only for the very array it was read from (alive, so its
    address is still its own), and holds no memory."""

    def __init__(self, rows, cols):
        self.cols = cols
        self.arrays = [[None] * cols for _ in range(rows)]
        self.table = np.zeros((rows, cols), np.int64)
        self.sizes = np.zeros(rows, np.int64)
        self.like = None

    def refresh(self, rows):
        """Point the table at `rows` (per parameter: weight, grad, states); False when they
        cannot go through a kernel (another dtype than float32/float64, mixed dtypes, not
        C-contiguous, a shape unlike the weight's: the per-parameter path reports or handles it)."""
        like = _LIKE.get(rows[0][0].dtype)
        if like is None:
            return False
        if like is not self.like:    # a new dtype: no cached array may stay
            self.arrays = [[None] * self.cols for _ in self.arrays]
            self.like = like
        for k, row in enumerate(rows):
            cached, shape = self.arrays[k], row[0].shape
            for j, a in enumerate(row):
                if cached[j] is not None and cached[j]() is a:
                    continue
                if a.dtype != like.dtype or a.shape != shape or not a.flags.c_contiguous:
                    return False
                self.table[k, j] = _k.address(a)
                cached[j] = weakref.ref(a)
            self.sizes[k] = row[0].size
        return True


def _is_sparse(x):
    return isinstance(x, NDArray) and x.stype != 'default'


def _sparse_in(weight, grad, state):
    if _is_sparse(weight) or _is_sparse(grad):
        return True
    if isinstance(state, (tuple, list)):
        return any(_sparse_in(None, None, s) for s in state)
    return _is_sparse(state)


def _map_state(state, fn):
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(s, fn) for s in state)
    return fn(state) if isinstance(state, NDArray) else state


def _pairs(a, b):
    """The (original, proxy) NDArray pairs of two states of one structure."""
    if isinstance(a, (tuple, list)):
        for x, y in zip(a, b):
            yield from _pairs(x, y)
    elif isinstance(a, NDArray):
        yield a, b


def _sparse_update(opt, index, weight, grad, state):
    """An update where the weight, gradient or a state has sparse storage (MXNet's storage
    dispatch): sparse weights and states are updated through dense copies written back in their
    storage type. A row_sparse gradient gives MXNet's lazy update where the optimizer does one
    (``_lazy_sparse``): the update runs on the gradient's rows only, so those rows (weight decay,
    momentum and moments included) change exactly as in the dense update and every other row and
    its states are untouched. Otherwise the gradient is densified (the standard update)."""
    if not isinstance(weight, NDArray) or not isinstance(grad, NDArray):
        raise MXNetError(f'{type(opt).__name__}.update: weight and grad must be NDArrays, got '
                         f'{type(weight).__name__} and {type(grad).__name__} ({_describe(opt, index)})')
    if tuple(grad.shape) != tuple(weight.shape):
        raise MXNetError(f'{type(opt).__name__}.update: a {grad.stype} gradient of shape '
                         f'{fmt_shape(grad.shape)} for a {weight.stype} weight of shape '
                         f'{fmt_shape(weight.shape)} ({_describe(opt, index)}); they must have one shape')
    dense = lambda a: a.tostype('default') if a.stype != 'default' else a   # noqa: E731
    w = dense(weight)
    st = _map_state(state, dense)
    if grad.stype == 'row_sparse' and opt._lazy_sparse(index, weight):
        rows = grad._aux[0]
        if rows.size:
            ctx = w.context
            take = lambda a: NDArray(a._data[rows], ctx)   # noqa: E731  (copies of the rows)
            w_rows, st_rows = take(w), _map_state(st, take)
            opt._update_one(index, w_rows, NDArray(grad._values, ctx), st_rows)
            w._data[rows] = w_rows._data
            for full, part in _pairs(st, st_rows):
                full._data[rows] = part._data
    else:
        opt._update_one(index, w, dense(grad), st)
    for orig, proxy in [(weight, w)] + list(_pairs(state, st)):
        if orig is not proxy:
            orig._assign(proxy.tostype(orig.stype))


def _run_kernel(kernel, bufs, scalars):
    """Call ``kernel(*flat_buffers, *scalars)``. Buffers are bufs[0] = weight, bufs[1] = grad,
    then states. The update runs where the weight lives: on the host the Numba kernel, on a GPU
    its CUDA twin (same name and arguments in kernels/cuda/optim.py), one launch per parameter."""
    xp = array_module(bufs[0])
    if xp is np:
        _run_flat(kernel, bufs, scalars, np)
        return
    with xp.cuda.Device(bufs[0].device.id):
        _run_flat(_cuda_twin(kernel), bufs, scalars, xp)


def _run_flat(kernel, bufs, scalars, xp):
    """Contiguous float32/float64 buffers of the weight's device are passed as flat views (the
    kernel writes them in place); anything else (strided, another dtype, another device) goes
    through a contiguous copy there that is written back afterwards (the gradient is only read)."""
    dt = bufs[0].dtype if bufs[0].dtype in _KERNEL_DTYPES else np.dtype(np.float32)
    flats, write_back = [], []
    for k, b in enumerate(bufs):
        if _is_local(b, xp) and b.dtype == dt and b.flags.c_contiguous:
            flats.append(b.reshape(-1))
        else:
            f = xp.ascontiguousarray(_to_module(b, xp), dtype=dt).reshape(-1)
            flats.append(f)
            if k != 1:
                write_back.append((b, f))
    kernel(*flats, *scalars)
    for b, f in write_back:
        b[...] = _to_module(f, array_module(b)).reshape(b.shape).astype(b.dtype, copy=False)


def _cuda_twin(kernel):
    """The function of kernels/cuda/optim.py named like the CPU kernel (imported on the first GPU
    update, so CPU-only machines never import CuPy)."""
    from kernels.cuda import optim as cuda_optim
    return getattr(cuda_optim, kernel.__name__)


def _is_local(b, xp):
    """Whether `b` is an array of module `xp` on the current device (always, for NumPy)."""
    return isinstance(b, xp.ndarray) and (xp is np or b.device.id == xp.cuda.Device().id)


def _to_module(b, xp):
    """`b` as an `xp` array on the current device, copied there when it lives elsewhere."""
    if _is_local(b, xp):
        return b
    if xp is np:
        return b.get()
    return b.copy() if isinstance(b, xp.ndarray) else xp.asarray(b)   # copy(): onto this device


def _raw(x, what, opt, index):
    if isinstance(x, NDArray):
        return x._data
    if isinstance(x, np.ndarray):
        return x
    raise MXNetError(f'{type(opt).__name__}.update: {what} must be an NDArray, got '
                     f'{type(x).__name__} ({_describe(opt, index)})')


def _describe(opt, index):
    name = opt.idx2name.get(index) if isinstance(index, (int, str)) else None
    return f'parameter {index!r}' + (f' ({name})' if name is not None else '')


def _zeros_like(weight):
    """A zero state buffer for ``weight``: same shape and device; float32 for weights in a dtype
    the kernels do not take (float16), else the weight's dtype."""
    if isinstance(weight, NDArray) and weight.stype != 'default':   # sparse: dense states
        dt = weight.dtype if np.dtype(weight.dtype) in _KERNEL_DTYPES else np.float32
        return NDArray(np.zeros(weight.shape, dtype=dt), weight.context)
    if isinstance(weight, NDArray):
        d = weight._data
        dt = d.dtype if d.dtype in _KERNEL_DTYPES else np.float32
        with weight.context.scope():   # on the weight's device
            return NDArray(weight.context.xp.zeros(d.shape, dtype=dt), weight.context)
    if isinstance(weight, np.ndarray):
        return np.zeros(weight.shape, weight.dtype if weight.dtype in _KERNEL_DTYPES else np.float32)
    raise MXNetError(f'create_state: weight must be an NDArray, got {type(weight).__name__}')


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _number(x, name, opt):
    if not _is_number(x):
        raise MXNetError(f'{type(opt).__name__}: {name} must be a number, got {x!r}')
    return float(x)


def _override_base_lr(sched, lr):
    """Make a scheduler start from ``lr`` (also its warmup target and, for the schedules that
    keep it, the original base rate, so the whole schedule follows the new rate)."""
    sched.base_lr = lr
    for attr in ('base_lr_orig', 'warmup_final_lr'):
        if hasattr(sched, attr):
            setattr(sched, attr, lr)


# ============================================================================ the optimizers

@register
class SGD(Optimizer):
    """SGD with optional momentum (MXNet's ``sgd_update`` / ``sgd_mom_update``):

    ``mom = momentum*mom - lr*(clip(rescale*grad) + wd*w); w += mom``
    (with momentum 0: ``w = w - lr*(clip(rescale*grad) + wd*w)``; the gradient is clipped before
    the decay term is added). With a row_sparse gradient and ``lazy_update`` (the default), only
    the gradient's rows (and their momentum) are updated, weight decay included (MXNet's lazy update).
    """
    _extra_hyper = ('momentum',)
    _master_last = True

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = _number(momentum, 'momentum', self)
        self.lazy_update = lazy_update

    def _lazy_sparse(self, index, weight):
        return bool(self.lazy_update)

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        if state is None:
            self._fused(_k.sgd_update, index, weight, grad, (), lr, wd, self.rescale_grad, self._clip())
        else:
            momentum = self._scheduled_momentum(self.momentum)
            self._fused(_k.sgd_mom_update, index, weight, grad, (state,), lr, momentum, wd,
                        self.rescale_grad, self._clip())

    _multi_kernels = {2: 'sgd_update_multi', 3: 'sgd_mom_update_multi'}

    def _update_multi(self, indices, table):
        rates = (self._get_lrs(indices), self._get_wds(indices))
        if table.cols == 2:
            self._run_multi(table, rates, self.rescale_grad, self._clip())
        else:
            self._run_multi(table, rates, self._scheduled_momentum(self.momentum), self.rescale_grad,
                            self._clip())


@register
class NAG(Optimizer):
    """Nesterov accelerated gradient (MXNet's ``nag_mom_update``):

    ``g = clip(rescale*grad) + wd*w; mom = momentum*mom + g; w -= lr*(g + momentum*mom)``.
    """
    _extra_hyper = ('momentum',)
    _master_last = True

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = _number(momentum, 'momentum', self)

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        if state is None:
            self._fused(_k.sgd_update, index, weight, grad, (), lr, wd, self.rescale_grad, self._clip())
        else:
            momentum = self._scheduled_momentum(self.momentum)
            self._fused(_k.nag_mom_update, index, weight, grad, (state,), lr, momentum, wd,
                        self.rescale_grad, self._clip())

    _multi_kernels = {2: 'sgd_update_multi', 3: 'nag_mom_update_multi'}
    _update_multi = SGD._update_multi


class _AdamBase(Optimizer):
    default_lr = 0.001
    _extra_hyper = ('beta1', 'beta2', 'epsilon')

    def __init__(self, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.beta1 = _number(beta1, 'beta1', self)
        self.beta2 = _number(beta2, 'beta2', self)
        self.epsilon = _number(epsilon, 'epsilon', self)
        self.lazy_update = lazy_update
        for name in ('beta1', 'beta2'):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise MXNetError(f'{type(self).__name__}: {name} must be in [0, 1), '
                                 f'got {getattr(self, name)}')

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))  # mean, variance

    def _bias_correction(self, index, beta1):
        t = self._index_update_count[index]
        return math.sqrt(1.0 - self.beta2 ** t) / (1.0 - beta1 ** t)


@register
class Adam(_AdamBase):
    """Adam (Kingma & Ba) as MXNet computes it: the gradient with L2 decay, ``clip(rescale*grad +
    wd*w)``, feeds the moments; the bias correction is folded into the rate,
    ``lr_t = lr*sqrt(1-beta2^t)/(1-beta1^t)``, and ``w -= lr_t*m/(sqrt(v) + epsilon)``.
    (PyTorch adds epsilon to the bias-corrected sqrt(v); the two agree when epsilon is 0.)
    A row_sparse gradient with ``lazy_update`` (the default) updates only its rows and their moments.
    """

    def _lazy_sparse(self, index, weight):
        return bool(self.lazy_update)

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        beta1 = self._scheduled_momentum(self.beta1)
        lr *= self._bias_correction(index, beta1)
        mean, var = state
        self._fused(_k.adam_update, index, weight, grad, (mean, var), lr, beta1, self.beta2,
                    self.epsilon, wd, self.rescale_grad, self._clip())

    _multi_kernels = {4: 'adam_update_multi'}

    def _update_multi(self, indices, table):
        beta1 = self._scheduled_momentum(self.beta1)
        lrs = [lr * self._bias_correction(i, beta1) for i, lr in zip(indices, self._get_lrs(indices))]
        self._run_multi(table, (lrs, self._get_wds(indices)), beta1, self.beta2, self.epsilon,
                        self.rescale_grad, self._clip())


@register
class AdamW(_AdamBase):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    ``w -= lr*(sqrt(1-beta2^t)/(1-beta1^t) * m/(sqrt(v) + epsilon) + wd*w)``, the moments fed by
    ``clip(rescale*grad)`` alone. The default ``wd`` is 0.01, PyTorch's AdamW default.
    """

    def __init__(self, wd=0.01, **kwargs):
        super().__init__(wd=wd, **kwargs)

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        beta1 = self._scheduled_momentum(self.beta1)
        mean, var = state
        self._fused(_k.adamw_update, index, weight, grad, (mean, var), lr, beta1, self.beta2,
                    self.epsilon, wd, self.rescale_grad, self._clip(),
                    self._bias_correction(index, beta1))

    _multi_kernels = {4: 'adamw_update_multi'}

    def _update_multi(self, indices, table):
        beta1 = self._scheduled_momentum(self.beta1)
        corrs = [self._bias_correction(i, beta1) for i in indices]
        self._run_multi(table, (self._get_lrs(indices), self._get_wds(indices), corrs), beta1,
                        self.beta2, self.epsilon, self.rescale_grad, self._clip())


@register
class RMSProp(Optimizer):
    """RMSProp (MXNet's ``rmsprop_update``; ``centered=True``: ``rmspropalex_update``):

    ``g = clip(rescale*grad + wd*w); n = (1-gamma1)*g^2 + gamma1*n; w -= lr*g/sqrt(n + epsilon)``;
    centered keeps ``gavg = (1-gamma1)*g + gamma1*gavg`` and a momentum
    ``delta = gamma2*delta - lr*g/sqrt(n - gavg^2 + epsilon); w += delta``.
    ``clip_weights`` clips the new weight to [-clip_weights, clip_weights].
    """
    default_lr = 0.001
    _extra_hyper = ('gamma1', 'gamma2', 'epsilon', 'centered', 'clip_weights')

    def __init__(self, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False, clip_weights=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.gamma1 = _number(gamma1, 'gamma1', self)
        self.gamma2 = _number(gamma2, 'gamma2', self)
        self.epsilon = _number(epsilon, 'epsilon', self)
        self.centered = bool(centered)
        if clip_weights is not None and not _is_number(clip_weights):
            raise MXNetError(f'RMSProp: clip_weights must be a number or None, got {clip_weights!r}')
        self.clip_weights = clip_weights

    def create_state(self, index, weight):
        if self.centered:
            return (_zeros_like(weight), _zeros_like(weight), _zeros_like(weight))  # n, g, delta
        return (_zeros_like(weight),)

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        clip_w = float(self.clip_weights) if self.clip_weights else -1.0
        if self.centered:
            self._fused(_k.rmspropalex_update, index, weight, grad, tuple(state), lr, self.gamma1,
                        self.gamma2, self.epsilon, wd, self.rescale_grad, self._clip(), clip_w)
        else:
            self._fused(_k.rmsprop_update, index, weight, grad, tuple(state), lr, self.gamma1,
                        self.epsilon, wd, self.rescale_grad, self._clip(), clip_w)


@register
class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al.) as MXNet 1.x: ``g = clip(rescale*grad); h += g^2;
    w -= lr*(g/sqrt(h + eps) + wd*w)`` (the decay term is not accumulated in h).
    ``epsilon`` is accepted as another spelling of ``eps``.
    """
    _extra_hyper = ('float_stable_eps',)

    def __init__(self, eps=1e-7, epsilon=None, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = _number(eps if epsilon is None else epsilon, 'eps', self)

    def create_state(self, index, weight):
        return _zeros_like(weight)  # history of squared gradients

    def _lazy_sparse(self, index, weight):
        # MXNet's sparse adagrad_update: a row_sparse gradient updates its rows only (without
        # weight decay the same numbers as the dense update; with it, the standard update here)
        return self._get_wd(index) == 0.0

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        self._fused(_k.adagrad_update, index, weight, grad, (state,), lr, self.float_stable_eps, wd,
                    self.rescale_grad, self._clip())


# ============================================================================ Updater

_FORMAT = 'engine.optimizer.Updater'
_VERSION = 2   # 1: multi-precision states of SGD/NAG/LARS were (master, state); 2: MXNet's (state, master)


class Updater:
    """Applies an optimizer and keeps one state per parameter index (MXNet's Updater):
    ``updater(index, grad, weight)`` updates ``weight`` in place."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.states = {}
        self.states_synced = {}
        self.aggregate_updates = False
        self._state_ctx = {}   # index -> the context its state serves
        self._multi_tables = {}   # Optimizer.update_many's address tables, kept between steps

    def __call__(self, index, grad, weight):
        if isinstance(index, (list, tuple)):
            for i, g, w in zip(index, grad, weight):
                self(i, g, w)
            return
        if isinstance(index, bytes):
            index = index.decode()
        self.optimizer.update_multi_precision(index, weight, grad, self._state_for(index, weight))

    def update_many(self, indices, grads, weights):
        """``self(i, g, w)`` for each parameter, through one ``Optimizer.update_many`` call (one
        multi-tensor kernel where the optimizer has one). Weights on several devices, whose update
        counts are kept apart, go one by one."""
        indices = [i.decode() if isinstance(i, bytes) else i for i in indices]
        states = [self._state_for(i, w) for i, w in zip(indices, weights)]
        keys = {_count_key(w.context) for w in weights if isinstance(w, NDArray)}
        if len(keys) > 1:
            for i, g, w in zip(indices, grads, weights):
                self(i, g, w)
            return
        self.optimizer.update_many(indices, weights, grads, states, self._multi_tables)

    def _state_for(self, index, weight):
        """The state of parameter `index` (created, or moved to the weight's device, on first
        use); the optimizer counts updates for the weight's device from here on."""
        if isinstance(weight, NDArray):
            self.optimizer._set_current_context(_count_key(weight.context))
            self._check_context(index, weight.context)
        if index not in self.states:
            self.states[index] = self.optimizer.create_state_multi_precision(index, weight)
            self.states_synced[index] = True
        elif not self.states_synced.get(index, False):
            self.states[index] = self.sync_state_context(self.states[index], weight, index)
            self.states_synced[index] = True
        return self.states[index]

    def _check_context(self, index, ctx):
        """One state per parameter serves one device: sharing it between the copies on several
        devices would advance momentum/moments once per copy per step (silently wrong)."""
        seen = self._state_ctx.setdefault(index, ctx)
        if seen != ctx and self.states_synced.get(index, True):
            raise MXNetError(f'Updater: parameter {index!r} was updated on {seen} and now on {ctx}; an '
                             'Updater keeps one state per parameter for one device. Use one Updater per '
                             'context (gluon.Trainer does) or sum the gradients first (mx.kv)')
        self._state_ctx[index] = ctx

    def sync_state_context(self, state, weight, index=None):
        """Move a (loaded) state onto the weight's device, checking that its shape fits."""
        if state is None:
            return None
        if isinstance(state, (tuple, list)):
            return type(state)(self.sync_state_context(s, weight, index) for s in state)
        if isinstance(state, NDArray):
            if tuple(state.shape) != tuple(weight.shape):
                raise MXNetError(f'Updater: the loaded optimizer state for parameter {index!r} has shape '
                                 f'{fmt_shape(state.shape)} but the weight has shape '
                                 f'{fmt_shape(weight.shape)}; the states belong to another model')
            if isinstance(weight, NDArray):
                # a copy of its own: several Updaters (one per context) load the same states, and
                # as_in_context between CPU contexts would share one buffer among them
                return state.copyto(weight.context)
        return state

    def get_states(self, dump_optimizer=False, meta=None):
        """The states (and, with ``dump_optimizer``, the optimizer's settings and counters) as
        bytes: an ``.npz`` archive with a JSON ``__header__``; no pickle involved. ``meta``
        (JSON-able) travels in the header, e.g. the Trainer's parameter shapes."""
        arrays = {}
        entries = []
        for key, state in self.states.items():
            if not isinstance(key, (int, str)) or isinstance(key, bool):
                raise MXNetError(f'Updater.get_states: parameter index {key!r} is not an int or str')
            entries.append([key, _encode_state(state, arrays)])
        header = {'format': _FORMAT, 'version': _VERSION, 'states': entries,
                  'optimizer': _encode_optimizer(self.optimizer) if dump_optimizer else None,
                  'meta': meta}
        blob = np.frombuffer(json.dumps(header).encode('utf-8'), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, __header__=blob, **arrays)
        return buf.getvalue()

    def set_states(self, states):
        """Load states written by ``get_states`` (replacing the optimizer too when they hold one)."""
        self.apply_states(*read_states(states))

    def apply_states(self, new_states, optimizer=None, meta=None):
        """Install states parsed by ``read_states`` (states are moved to each weight's device
        on its next update)."""
        if optimizer is not None:
            optimizer.param_dict = getattr(self.optimizer, 'param_dict', {}) or {}
            self.optimizer = optimizer
        swap = getattr(self.optimizer, '_master_last', False)
        self.states = {k: _v1_layout(v, swap) for k, v in new_states.items()}
        self.states_synced = dict.fromkeys(new_states, False)
        self._state_ctx = {}


class _V1Pair(tuple):
    """A 2-tuple state read from a version-1 file, where a multi-precision state was always
    (master, state): ``apply_states`` puts it in the optimizer's layout."""


def _v1_layout(state, swap):
    if isinstance(state, _V1Pair):
        return tuple(state[::-1]) if swap else tuple(state)
    return state


def read_states(states):
    """Parse bytes from ``Updater.get_states`` without changing anything: (states by index, the
    optimizer they hold or None, the header's meta or None)."""
    header, arrays = _read_archive(states)
    try:
        new_states = {}
        for key, struct in header['states']:
            if not isinstance(key, (int, str)):
                raise ValueError(f'bad parameter index {key!r}')
            new_states[key] = _decode_state(struct, arrays)
            if header.get('version') == 1 and isinstance(new_states[key], tuple) and len(new_states[key]) == 2:
                new_states[key] = _V1Pair(new_states[key])
        optimizer = None
        if header.get('optimizer') is not None:
            optimizer = _decode_optimizer(header['optimizer'])
    except MXNetError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise MXNetError(f'Updater.set_states: the optimizer states are malformed ({e}); they were '
                         'not produced by Updater.get_states') from None
    return new_states, optimizer, header.get('meta')


def _count_key(ctx):
    """The key of a device's update counts: its id on the CPU (as MXNet), 'gpuN' on a GPU, so
    that cpu(0) and gpu(0) training one model together keep separate counts."""
    return ctx.device_id if ctx.device_type == 'cpu' else f'{ctx.device_type}{ctx.device_id}'


def get_updater(optimizer):
    """An Updater for ``optimizer`` (MXNet's ``mx.optimizer.get_updater``)."""
    return Updater(optimizer)


# ---- serialization helpers (JSON structure + raw arrays; never pickle) ------------------------

def _encode_state(state, arrays):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return {'tuple' if isinstance(state, tuple) else 'list': [_encode_state(s, arrays) for s in state]}
    if isinstance(state, NDArray):
        name = f'a{len(arrays)}'
        arrays[name] = state.asnumpy()
        return {'array': name}
    if isinstance(state, np.ndarray):
        name = f'a{len(arrays)}'
        arrays[name] = state
        return {'array': name, 'numpy': True}
    raise MXNetError(f'Updater.get_states: cannot serialize a state of type {type(state).__name__}')


def _decode_state(struct, arrays):
    if struct is None:
        return None
    if 'tuple' in struct:
        return tuple(_decode_state(s, arrays) for s in struct['tuple'])
    if 'list' in struct:
        return [_decode_state(s, arrays) for s in struct['list']]
    a = arrays[struct['array']]
    return a if struct.get('numpy') else NDArray(a, cpu())


class _NotEncodable(Exception):
    pass


def _encode_value(v):
    """Plain data to JSON-able form; tuples and dicts (any key type) are tagged so they round trip."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, list):
        return [_encode_value(x) for x in v]
    if isinstance(v, tuple):
        return {'__tuple__': [_encode_value(x) for x in v]}
    if isinstance(v, dict):
        return {'__dict__': [[_encode_value(k), _encode_value(x)] for k, x in v.items()]}
    raise _NotEncodable(type(v).__name__)


def _decode_value(v):
    if isinstance(v, list):
        return [_decode_value(x) for x in v]
    if isinstance(v, dict):
        if '__tuple__' in v:
            return tuple(_decode_value(x) for x in v['__tuple__'])
        if '__dict__' in v:
            return {_hashable(_decode_value(k)): _decode_value(x) for k, x in v['__dict__']}
        raise ValueError(f'unexpected object {sorted(v)}')
    return v


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def _encode_attrs(obj, skip=()):
    attrs = {}
    for k, v in vars(obj).items():
        if k in skip:
            continue
        try:
            attrs[k] = _encode_value(v)
        except _NotEncodable as e:
            warnings.warn(f'Updater.get_states: {type(obj).__name__}.{k} ({e}) is not saved',
                          stacklevel=3)
    return attrs


def _encode_optimizer(opt):
    name = type(opt).__name__.lower()
    if _REGISTRY.find(name) is not type(opt):
        raise MXNetError(f'Updater.get_states: optimizer class {type(opt).__name__} is not registered; '
                         'decorate it with @mx.optimizer.register to save it with dump_optimizer=True')
    sched = None
    if opt.lr_scheduler is not None:
        sched = {'class': type(opt.lr_scheduler).__name__, 'attrs': _encode_attrs(opt.lr_scheduler)}
    return {'class': name, 'attrs': _encode_attrs(opt, skip=('param_dict', 'lr_scheduler')),
            'lr_scheduler': sched}


def _decode_optimizer(desc):
    klass = _REGISTRY.find(desc['class'])
    if klass is None:
        raise MXNetError(f"Updater.set_states: the states hold an optimizer {desc['class']!r} that is "
                         f'not registered here; registered: {_REGISTRY.names()}')
    opt = klass.__new__(klass)
    opt.__dict__.update({k: _decode_value(v) for k, v in desc['attrs'].items()})
    opt.param_dict = {}
    opt.lr_scheduler = None
    if desc.get('lr_scheduler') is not None:
        sdesc = desc['lr_scheduler']
        sklass = getattr(_lr_scheduler, sdesc['class'], None)
        if not (isinstance(sklass, type) and issubclass(sklass, _lr_scheduler.LRScheduler)):
            raise MXNetError(f"Updater.set_states: cannot restore lr_scheduler {sdesc['class']!r}: only "
                             'the classes of engine.lr_scheduler can be loaded')
        sched = sklass.__new__(sklass)
        sched.__dict__.update({k: _decode_value(v) for k, v in sdesc['attrs'].items()})
        opt.lr_scheduler = sched
    # the per-device count tables were separate dicts after decoding: re-link the current one
    counts = opt.__dict__.get('_all_index_update_counts') or {0: {}}
    opt._all_index_update_counts = counts
    opt._index_update_count = counts.setdefault(opt.__dict__.get('_device_id', 0), {})
    return opt


def _read_archive(data):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MXNetError(f'Updater.set_states: expected bytes from get_states, got {type(data).__name__}')
    why = None
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
            if '__header__' not in z.files:
                why = 'it has no __header__ entry'
            else:
                header = json.loads(bytes(z['__header__']).decode('utf-8'))
                arrays = {k: z[k] for k in z.files if k != '__header__'}
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, OSError, JSON errors ...
        why = f'{type(e).__name__}: {e}'
    if why is None and (not isinstance(header, dict) or header.get('format') != _FORMAT):
        why = 'its header does not name the updater-states format'
    if why is None and header.get('version') not in (1, _VERSION):
        why = f"it has version {header.get('version')!r}, this engine reads versions 1 and {_VERSION}"
    if why is not None:
        raise MXNetError(f'Updater.set_states: cannot read the optimizer states ({len(data)} bytes): '
                         f'{why}. The data is truncated, corrupt, or not from Updater.get_states.')
    return header, arrays
