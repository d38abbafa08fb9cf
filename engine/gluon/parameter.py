"""Parameters: named arrays a block learns, with deferred shape inference and gradients."""
import re
import threading
import warnings
from collections import OrderedDict

import numpy as np

from .. import initializer as _init
from ..base import MXNetAssertionError, MXNetError, MXNetValueError, as_dtype, fmt_shape
from ..context import Context, current_context
from ..graph import trace as _trace
from ..ndarray import NDArray


# Taken by a deferred initialization (and a block's shape inference before it), so two threads
# making a fresh block's first call initialize each parameter once; initialized parameters are
# read without it.
DEFERRED_INIT_LOCK = threading.RLock()


class DeferredInitializationError(MXNetError):
    """A parameter was used before its shape could be inferred from an input."""


class Parameter:
    """A learnable array. Unknown dimensions are 0 until the first forward infers them."""

    def __init__(self, name, grad_req='write', shape=None, dtype='float32', lr_mult=1.0,
                 wd_mult=1.0, init=None, allow_deferred_init=False, differentiable=True,
                 stype='default', grad_stype='default'):
        for what, v in (('stype', stype), ('grad_stype', grad_stype)):
            if v not in ('default', 'row_sparse', 'csr'):   # an AssertionError too, as in MXNet
                raise MXNetAssertionError(f"parameter {name}: {what}={v!r} is not a storage type; "
                                          "use 'default', 'row_sparse' or 'csr'")
        if stype != 'default':
            raise MXNetError(f"parameter {name}: stype={stype!r} is not supported; weights are dense "
                             "('default'); gradients may be row_sparse (grad_stype='row_sparse')")
        if grad_stype not in ('default', 'row_sparse'):
            raise MXNetError(f"parameter {name}: grad_stype={grad_stype!r} is not supported; use "
                             "'default' or 'row_sparse'")
        self._grad_stype = grad_stype
        self.name = name
        self._shape = None if shape is None else ((int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape))
        self._dtype = as_dtype(dtype)
        self.lr_mult, self.wd_mult = lr_mult, wd_mult
        self.init = init
        self.allow_deferred_init = allow_deferred_init
        # a non-differentiable parameter (BatchNorm's running statistics) stays 'null' whatever
        # grad_req is set later, e.g. by collect_params().setattr('grad_req', 'add')
        self._differentiable = differentiable
        self._grad_req = grad_req if differentiable else 'null'
        self._data = None        # {Context: NDArray}
        self._deferred = None    # (init, ctxs, default_init) waiting for a shape

    def __repr__(self):
        return f'Parameter {self.name} (shape={self.shape}, dtype={np.dtype(self.dtype).name})'

    # ---- shape ---------------------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @shape.setter
    def shape(self, new):
        new = tuple(int(s) for s in new)
        if self._shape is not None:
            ok = len(new) == len(self._shape) and all(o in (0, n) for o, n in zip(self._shape, new))
            if not ok:   # an AssertionError too, as in MXNet
                raise MXNetAssertionError(f'parameter {self.name}: inferred shape {fmt_shape(new)} is incompatible '
                                 f'with the declared shape {fmt_shape(self._shape)}')
        self._shape = new

    def _shape_known(self):
        return self._shape is not None and all(s > 0 for s in self._shape)

    # ---- grad_req ---------------------------------------------------------------------------
    @property
    def grad_req(self):
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req):
        if req not in ('write', 'add', 'null'):   # an AssertionError too, as in MXNet
            raise MXNetAssertionError(f"parameter {self.name}: grad_req must be 'write', 'add' or 'null', "
                                      f"got {req!r}")
        req = req if self._differentiable else 'null'
        if req == self._grad_req:
            return          # the gradient buffers (and what they hold) stay
        self._grad_req = req
        if self._data is not None:
            for d in self._data.values():
                self._attach(d)

    def _attach(self, arr):
        if self._grad_req == 'null':
            arr._entry = None
        else:
            arr.attach_grad(self._grad_req, stype=self._grad_stype)

    # ---- initialization ---------------------------------------------------------------------
    def initialize(self, init=None, ctx=None, default_init=None, force_reinit=False):
        if self._data is not None and not force_reinit:
            warnings.warn(f"Parameter '{self.name}' is already initialized, ignoring. Set "
                          'force_reinit=True to re-initialize.', UserWarning, stacklevel=2)
            return
        ctxs = _ctx_list(ctx)
        default_init = default_init or _init.Uniform()
        if not self._shape_known():
            if not self.allow_deferred_init:   # a ValueError too, as in MXNet
                raise MXNetValueError(f'parameter {self.name}: cannot initialize with unknown shape '
                                      f'{self._shape}; give the layer its input size')
            self._deferred = (init, ctxs, default_init)
            return
        self._init_impl(init, ctxs, default_init)

    def _init_impl(self, init, ctxs, default_init):
        data = NDArray(np.zeros(self._shape, dtype=self.dtype), Context('cpu'))
        _fill(self.name, init if init is not None else self.init, default_init, data)
        arrays = OrderedDict()
        for c in ctxs:
            arr = data.copyto(c) if c != data.context else data.copy()
            self._attach(arr)
            arrays[c] = arr
        self._data = arrays    # published complete: another thread never sees a partial dict
        self._deferred = None

    def _finish_deferred_init(self, shape=None):
        """Complete a deferred initialization once the layer knows the input-dependent shape."""
        with DEFERRED_INIT_LOCK:
            if shape is not None:
                self.shape = shape
            if self._data is None and self._deferred is not None and self._shape_known():
                self._init_impl(*self._deferred)

    # ---- access -------------------------------------------------------------------------------
    def _check(self, ctx):
        """The copy on `ctx` (None: the current context, or the only copy)."""
        self._require_init()
        ctx = ctx or current_context()
        if ctx not in self._data:
            if len(self._data) == 1 and ctx == current_context():
                return next(iter(self._data.values()))
            raise MXNetError(f'parameter {self.name} lives on {list(self._data)}, not on {ctx}')
        return self._data[ctx]

    def _require_init(self):
        if self._data is None:
            if self._deferred is not None:
                raise DeferredInitializationError(
                    f'parameter {self.name} has not been initialized yet: its shape {self._shape} is '
                    'inferred on the first forward pass; run the block on an input first')
            raise MXNetError(f'parameter {self.name} has not been initialized; call '
                             'collect_params().initialize() (or block.initialize()) first')

    def data(self, ctx=None):
        """The parameter's array; while a block is being traced, its symbol in the graph."""
        tracer = _trace.current()
        if tracer is not None:
            return tracer.param_symbol(self, ctx)
        return self._check(ctx)

    def _value_to_save(self):
        """The array to write to a parameter file: the mean of the device copies, as MXNet's
        `_reduce` (they differ only when updated separately), on the CPU."""
        if self._data is None:
            raise MXNetError(f'cannot save parameter {self.name}: it has not been initialized'
                             + (' (its shape is inferred on the first forward pass; run the block once)'
                                if self._deferred is not None else ' (call initialize() first)'))
        copies = [a.asnumpy() for a in self._data.values()]
        if len(copies) == 1:
            return NDArray(copies[0], Context('cpu'))
        return NDArray((sum(copies[1:], copies[0]) / len(copies)).astype(self.dtype), Context('cpu'))

    def list_data(self):
        """Every copy, in context order (whatever the current context is)."""
        self._require_init()
        return list(self._data.values())

    def grad(self, ctx=None):
        d = self._check(ctx)
        if self._grad_req == 'null':
            raise MXNetError(f"parameter {self.name} has grad_req='null'; it has no gradient")
        return d.grad

    def list_grad(self):
        return [self.grad(c) for c in self.list_ctx()]

    def list_ctx(self):
        if self._data is None:
            return list(self._deferred[1]) if self._deferred else []
        return list(self._data)

    @property
    def _grad(self):
        """MXNet's: the gradient arrays per context, None when there are none (grad_req='null'
        or not initialized yet)."""
        if self._data is None or self._grad_req == 'null':
            return None
        return [d.grad for d in self._data.values()]

    def var(self):
        """The parameter as an mx.sym variable (its name, shape, dtype, multipliers, init)."""
        from ..symbol import var
        return var(self.name, shape=self._shape, dtype=np.dtype(self.dtype).name,
                   lr_mult=self.lr_mult, wd_mult=self.wd_mult, init=self.init)

    def set_data(self, data):
        src = data.asnumpy() if isinstance(data, NDArray) else np.asarray(data)
        if self._data is None:
            self.shape = src.shape
            if self._deferred is None:
                raise MXNetError(f'parameter {self.name}: set_data before initialize()')
            self._finish_deferred_init()
        if src.shape != self._shape:
            raise MXNetError(f'parameter {self.name}: set_data with shape {fmt_shape(src.shape)}, '
                             f'expected {fmt_shape(self._shape)}')
        for arr in self._data.values():
            arr[:] = NDArray(src.astype(self.dtype))

    def zero_grad(self):
        if self._data is None or self._grad_req == 'null':
            return
        for arr in self._data.values():
            if arr.grad.stype != 'default':   # a row_sparse gradient: no rows
                from ..ndarray_sparse import zeros as sparse_zeros
                arr.grad._assign(sparse_zeros(arr.grad.stype, arr.shape, arr.context, arr.grad.dtype))
            else:
                arr.grad._data[...] = 0

    def reset_ctx(self, ctx):
        """Move the parameter to other contexts (MXNet's: the mean of the current copies, with
        fresh zero gradients)."""
        ctxs = _ctx_list(ctx)
        if self._data is None:
            if self._deferred is None:
                raise MXNetValueError(f'parameter {self.name}: cannot reset its context before it is '
                                      'initialized; call initialize(ctx=...) instead')
            self._deferred = (self._deferred[0], ctxs, self._deferred[2])
            return
        src = self._value_to_save()
        data = OrderedDict()
        for c in ctxs:
            arr = src.copyto(c)
            self._attach(arr)
            data[c] = arr
        self._data = data

    @property
    def dtype(self):
        return self._dtype

    @dtype.setter
    def dtype(self, dtype):
        self.cast(dtype)          # as MXNet: setting the dtype casts the data

    def cast(self, dtype):
        """Cast the data and the gradients (their values kept, as MXNet's) to `dtype`."""
        self._dtype = as_dtype(dtype)
        if self._data is None:
            return
        data = OrderedDict()
        for c, arr in self._data.items():
            new = NDArray(arr._data.astype(self._dtype), c)
            self._attach(new)
            if self._grad_req != 'null' and new.grad.stype == 'default' and arr._entry is not None:
                new.grad._data[...] = arr.grad._data
            data[c] = new
        self._data = data


class Constant(Parameter):
    """A parameter that is not learned (grad_req='null') holding a fixed value."""

    def __init__(self, name, value):
        value = value.asnumpy() if isinstance(value, NDArray) else np.asarray(value, dtype=np.float32)
        super().__init__(name, grad_req='null', shape=value.shape, dtype=value.dtype,
                         init=_init.Constant(value))

    def __repr__(self):
        return f'Constant {self.name} (shape={self.shape}, dtype={np.dtype(self.dtype).name})'


# the attributes ParameterDict.get compares with an existing parameter's, as MXNet 1.x does (the
# others it is given only matter when it creates one: a layer sharing another's weight may ask
# for deferred initialization of a weight whose shape is already known)
_CHECKED_ATTRS = ('shape', 'dtype', 'grad_req', 'init', 'lr_mult', 'wd_mult')


def _agree(param, attr, wanted):
    """Check (or complete) one attribute of an existing parameter asked for again."""
    have = getattr(param, attr)
    if have is None:
        if wanted is not None:
            setattr(param, attr, wanted)
        return
    if wanted is None:
        return
    if attr == 'shape':
        wanted = (int(wanted),) if np.isscalar(wanted) else tuple(int(d) for d in wanted)
        if len(have) == len(wanted) and all(a == b or 0 in (a, b) for a, b in zip(have, wanted)):
            param._shape = tuple(max(a, b) for a, b in zip(have, wanted))   # 0 is unknown
            return
    elif attr == 'dtype':
        if np.dtype(as_dtype(wanted)) == np.dtype(have):
            return
    elif _equal(have, wanted):
        return
    raise MXNetAssertionError(f'parameter {param.name} exists with {attr}={have!r}; cannot retrieve it '
                              f'with {attr}={wanted!r} (an attribute that differs from the stored one)')


def _equal(a, b):
    try:
        return a is b or bool(a == b)
    except (TypeError, ValueError):   # values holding arrays (an init with an array): cannot tell
        return True


# name endings the initializers know how to fill (see engine/initializer.py)
_KNOWN_SUFFIXES = ('weight', 'bias', 'gamma', 'beta', 'running_mean', 'moving_mean', 'running_var',
                   'moving_var', 'moving_inv_var', 'moving_avg', 'min', 'max')


def _fill(name, own, default, data):
    """Initialize `data` as MXNet does: a parameter's own initializer (or the one passed to
    Parameter.initialize) fills it whatever its name; otherwise the model-wide default picks the
    rule by the name (weight: its own rule, bias/beta: 0, gamma: 1, ...), and a name it does not
    know gets the default's weight rule."""
    if own is not None:
        own = _init.create(own)
        if isinstance(own, _init.Initializer):
            own(_init.InitDesc(name, {'__init__': own}), data)
        else:                                   # Mixed / Load choose by name themselves
            own(name, data)
        return
    default = _init.create(default)
    if isinstance(default, _init.Initializer) and not name.endswith(_KNOWN_SUFFIXES) \
            and not name.startswith(('upsampling', 'stn_loc')):
        default(_init.InitDesc(name, {'__init__': default}), data)
    else:
        default(name, data)


def _ctx_list(ctx):
    if ctx is None:
        return [current_context()]
    return [ctx] if isinstance(ctx, Context) else list(ctx)


class ParameterDict(OrderedDict):
    """Parameters by full name, with bulk initialize / zero_grad / save / load."""

    def __init__(self, prefix='', shared=None):
        super().__init__()
        self.prefix = prefix
        # MXNet's sharing: get() returns the parameter of `shared` with the same full name
        self._shared = shared

    def __repr__(self):
        # MXNet's layout: the prefix (if any), then one parameter per line
        body = '\n'.join(f'  {p}' for p in self.values())
        return f"{self.prefix + ' ' if self.prefix else ''}(\n{body}\n)"

    def get(self, name, **kwargs):
        """The parameter `prefix + name`: this dict's, else the shared dict's (then also held
        here), else a new Parameter(prefix + name, **kwargs). As MXNet, the attributes asked for
        must agree with an existing parameter's: a shape may complete its unknown (0) dimensions,
        an attribute it lacks (None) is set, any other difference is an error."""
        full = self.prefix + name
        if not self._take_shared(full):
            OrderedDict.__setitem__(self, full, Parameter(full, **kwargs))
            return self[full]
        param = self[full]
        for k, v in kwargs.items():
            if k in _CHECKED_ATTRS:
                _agree(param, k, v)
        return param

    def get_constant(self, name, value):
        full = self.prefix + name
        if not self._take_shared(full):
            OrderedDict.__setitem__(self, full, Constant(full, value))
        return self[full]

    def _take_shared(self, full):
        if full in self:
            return True
        if self._shared is not None and full in self._shared:
            OrderedDict.__setitem__(self, full, self._shared[full])
            return True
        return False

    def update(self, other):
        for k, v in other.items():
            if k in self and self[k] is not v:
                raise MXNetError(f'cannot update ParameterDict: a different parameter named {k} exists')
            OrderedDict.__setitem__(self, k, v)

    def select(self, pattern):
        """The parameters whose names match a regular expression."""
        out = ParameterDict(self.prefix)
        rx = re.compile(pattern)
        for k, v in self.items():
            if rx.match(k):
                OrderedDict.__setitem__(out, k, v)
        return out

    def initialize(self, init=None, ctx=None, verbose=False, force_reinit=False):
        init = init or _init.Uniform()
        for p in self.values():
            p.initialize(None, ctx, default_init=init, force_reinit=force_reinit)

    def zero_grad(self):
        for p in self.values():
            p.zero_grad()

    def reset_ctx(self, ctx):
        for p in self.values():
            p.reset_ctx(ctx)

    def setattr(self, name, value):
        """Set an attribute on every parameter, e.g. setattr('grad_req', 'null') to freeze."""
        for p in self.values():
            setattr(p, name, value)

    def list_ctx(self):
        return sorted({c for p in self.values() for c in p.list_ctx()}, key=str)

    def save(self, filename, strip_prefix=''):
        """Write every parameter, named without `strip_prefix`, in MXNet's nd.save format."""
        from ..serialization import save_arrays
        arrays = {}
        for p in self.values():
            if not p.name.startswith(strip_prefix):
                raise MXNetError(f'ParameterDict.save: strip_prefix is {strip_prefix!r} but parameter '
                                 f'{p.name} does not start with it (is it shared from another block?)')
            arrays[p.name[len(strip_prefix):]] = p._value_to_save()
        save_arrays(filename, arrays)

    def load(self, filename, ctx=None, allow_missing=False, ignore_extra=False, restore_prefix='',
             cast_dtype=False, dtype_source='current'):
        """Load a file's arrays into the parameters named `restore_prefix` + the saved name."""
        self.load_dict(load_param_file(filename), ctx, allow_missing, ignore_extra, restore_prefix,
                       filename, cast_dtype, dtype_source)

    def load_dict(self, param_dict, ctx=None, allow_missing=False, ignore_extra=False,
                  restore_prefix='', filename=None, cast_dtype=False, dtype_source='current'):
        """Load a dict name -> array (NDArray or NumPy; `arg:`/`aux:` prefixes dropped)."""
        where = filename or 'load_dict'
        wrong = [k for k in self if not k.startswith(restore_prefix)]
        if wrong:
            raise MXNetError(f'{where}: restore_prefix is {restore_prefix!r} but parameter '
                             f'{wrong[0]} does not start with it')
        loaded = {}
        for k, v in param_dict.items():
            k = k[4:] if k.startswith(('arg:', 'aux:')) else k
            loaded[restore_prefix + k] = v.asnumpy() if isinstance(v, NDArray) else np.asarray(v)
        _assign(self, loaded, where, allow_missing, ignore_extra, ctx, cast_dtype, dtype_source)


def load_param_file(filename):
    """The named arrays of a parameter file (NumPy arrays), validated: an nd.save file (Gluon
    .params; the `arg:`/`aux:` prefixes of Module checkpoints are dropped) or an .npz this library
    wrote. Anything else is a clear MXNetError naming the file (never unpickled)."""
    from ..serialization import read_arrays
    try:
        raw = read_arrays(filename)
    except MXNetError as e:
        msg = str(e)
        raise MXNetError(msg if str(filename) in msg else f'{filename}: {msg}') from None
    if isinstance(raw, list) and not raw:
        raw = {}        # nd.save of an empty dict stores no names: read back as an empty list
    if isinstance(raw, list):
        raise MXNetError(f'{filename}: expected named parameters, found an unnamed list of '
                         f'{len(raw)} arrays (written by nd.save of a list?)')
    out = {}
    for k, v in raw.items():
        if v.dtype.kind not in 'fiub':
            raise MXNetError(f'{filename}: entry {k!r} holds {v.dtype} data, not numbers; this is not '
                             'a parameter file')
        name = k[4:] if k.startswith(('arg:', 'aux:')) else k
        if name in out:
            raise MXNetError(f'{filename}: parameter {name} appears twice (as arg: and aux:)')
        out[name] = v
    return out


def _fits(declared, shape):
    """Whether `shape` completes `declared` (whose unknown dimensions are 0)."""
    return len(declared) == len(shape) and all(d in (0, n) for d, n in zip(declared, shape))


def _assign(params, loaded, filename, allow_missing=False, ignore_extra=False, ctx=None,
            cast_dtype=False, dtype_source='current'):
    """Check names, shapes and dtypes of every loaded array first, then assign (all or nothing).

    `params` maps names to Parameters; a parameter shared under several names is present when
    any of them is in the file (save_parameters(deduplicate=True) writes it once, as MXNet 1.6+).
    Dtypes must match unless `cast_dtype`: then the data takes the parameter's dtype
    (dtype_source='current') or the parameter takes the file's (dtype_source='saved')."""
    if dtype_source not in ('current', 'saved'):
        raise MXNetError(f"{filename}: dtype_source must be 'current' or 'saved', got {dtype_source!r}")
    names_of = {}
    for k, p in params.items():
        names_of.setdefault(id(p), []).append(k)
    missing = [k for k, p in params.items() if not any(n in loaded for n in names_of[id(p)])]
    extra = [k for k in loaded if k not in params]
    if missing and not allow_missing:
        raise MXNetError(f'{filename}: parameters missing from the file: {missing[:5]}'
                         f'{" ..." if len(missing) > 5 else ""} (pass allow_missing=True to skip them)')
    if extra and not ignore_extra:
        raise MXNetError(f'{filename}: the file has parameters the block does not: {extra[:5]}'
                         f'{" ..." if len(extra) > 5 else ""} (pass ignore_extra=True to skip them)')
    todo = [(k, p, loaded[k]) for k, p in params.items() if k in loaded]
    for k, p, a in todo:
        if p.shape is not None and not _fits(p.shape, tuple(a.shape)):
            raise MXNetError(f'{filename}: parameter {k} has shape {fmt_shape(a.shape)} in the '
                             f'file but {fmt_shape(p.shape)} in the block')
        if not cast_dtype and np.dtype(p.dtype) != a.dtype:
            raise MXNetError(f'{filename}: parameter {k} is {a.dtype.name} in the file but '
                             f'{np.dtype(p.dtype).name} in the block (pass cast_dtype=True to cast)')
    for k, p, a in todo:
        if cast_dtype and dtype_source == 'saved' and np.dtype(p.dtype) != a.dtype:
            p.cast(a.dtype)
        if p._data is None:
            if p._deferred is None:
                p.initialize(ctx=ctx)
                if p._data is None:
                    p._deferred = (None, _ctx_list(ctx), _init.Zero())
            p.shape = a.shape
            p._finish_deferred_init()
        p.set_data(a)
    # as MXNet: loading parameters resets the kvstore of the trainers that update them on it
    for t in {id(t): t for t in (_trainer_of(p) for _, p, _ in todo) if t is not None}.values():
        t._reset_kvstore()


def _trainer_of(p):
    ref = getattr(p, '_trainer_ref', None)
    return ref() if ref is not None else None
