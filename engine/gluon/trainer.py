"""Trainer: applies an optimizer to a set of parameters after backward().

With parameters on several contexts, gradients are summed across the copies through a KVStore
(`mx.kv`), and either the store runs the optimizer once and hands the new weight to every copy
(`update_on_kvstore=True`, the default with a store), or each context runs its own Updater on its
copy (one Updater per context: a shared one would advance momentum/moments once per copy).
"""
import weakref

from .. import kvstore as _kv
from .. import optimizer as opt
from ..base import MXNetAssertionError, MXNetError, MXNetValueError, fmt_shape
from .parameter import Parameter, ParameterDict

_KV_NAMES = ('local', 'device', 'local_allreduce_cpu', 'local_allreduce_device', 'horovod')


class Trainer:
    """`Trainer(params, 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})`; call `step(batch_size)`
    after `loss.backward()`. Gradients are rescaled by 1/batch_size; frozen parameters
    (grad_req='null') are skipped. `kvstore` ('device', 'local', 'horovod', a KVStore or None)
    sums gradients across contexts (and processes, for 'horovod': then `batch_size` is the
    global batch, the stores sum)."""

    def __init__(self, params, optimizer, optimizer_params=None, kvstore='device', compression_params=None,
                 update_on_kvstore=None):
        if isinstance(params, (dict, ParameterDict)):
            params = list(params.values())
        params = list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise MXNetError(f'Trainer: expected Parameters, got {type(p).__name__}')
        if len({id(p) for p in params}) != len(params):
            raise MXNetError('Trainer: the same Parameter is listed more than once')
        self._params = params
        for p in params:
            p._trainer_ref = weakref.ref(self)   # loading parameters resets this trainer's kvstore
        self._init_optimizer(optimizer, optimizer_params)
        if not (kvstore is None or isinstance(kvstore, _kv.KVStoreBase) or kvstore in _KV_NAMES):
            raise MXNetError(f'Trainer: kvstore must be one of {list(_KV_NAMES)}, a KVStore or None, '
                             f'got {kvstore!r}')
        if update_on_kvstore not in (None, True, False):
            raise MXNetError(f'Trainer: update_on_kvstore must be None, True or False, got {update_on_kvstore!r}')
        if compression_params is not None:
            raise MXNetError('Trainer: compression_params (gradient compression) is not supported: it '
                             'would change the gradients; leave it None')
        self._kv_config = (kvstore, update_on_kvstore)
        self._kvstore = None
        self._update_on_kvstore = None   # None without a store, as MXNet's
        self._kv_initialized = False
        self._distributed = None
        self._contexts = None    # set on first use, once the parameters know their devices
        self._updaters = []
        self._kv_updater = None   # the updater of a store that runs the optimizer
        self._kv_keys = set()
        self._amp_loss_scaler = None   # amp.init_trainer: dynamic loss scaling

    def _init_optimizer(self, optimizer, optimizer_params):
        optimizer_params = dict(optimizer_params or {})
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise MXNetError(f'Trainer: optimizer_params {sorted(optimizer_params)} cannot be applied '
                                 'to an Optimizer instance; set them when creating it')
            self._optimizer = optimizer
            self._scale = optimizer.rescale_grad
        else:
            if isinstance(optimizer, str):
                try:
                    klass = opt.optimizer._REGISTRY.get(optimizer)
                except MXNetError as e:
                    raise MXNetError(f'Trainer: {e}') from None
            elif isinstance(optimizer, type) and issubclass(optimizer, opt.Optimizer):
                klass = optimizer
            else:
                raise MXNetError(f'Trainer: optimizer must be a name, an Optimizer class or instance, got '
                                 f'{type(optimizer).__name__}')
            _check_optimizer_params(klass, optimizer_params)
            try:   # (step() sets rescale_grad; the Trainer's scale is the one given here)
                self._optimizer = klass(**optimizer_params)
                self._scale = float(optimizer_params.get('rescale_grad', 1.0))
            except MXNetError as e:   # a bad value: say who passed it
                raise MXNetError(f'Trainer: {e}') from None
        self._optimizer.param_dict = {i: p for i, p in enumerate(self._params)}

    @property
    def optimizer(self):
        return self._optimizer

    @property
    def learning_rate(self):
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr):
        self._optimizer.set_learning_rate(lr)

    # ---- KVStore setup --------------------------------------------------------------------------
    def _param_contexts(self):
        ctxs = None
        for p in self._params:
            c = p.list_ctx()
            if not c:
                continue
            if ctxs is None:
                ctxs = c
            elif c != ctxs:
                raise MXNetError(f'Trainer: all parameters must live on the same contexts; {p.name} is on '
                                 f'{c}, others on {ctxs}')
        if ctxs is None:
            raise MXNetError('Trainer: no parameter has been initialized; call initialize() first')
        return ctxs

    def _init_kvstore(self):
        """On first use: pick the store and whether it runs the optimizer (as MXNet does)."""
        ctxs = self._param_contexts()
        if self._contexts is not None:
            if ctxs != self._contexts:
                raise MXNetError(f'Trainer: the parameters moved from {self._contexts} to {ctxs} since '
                                 'training started; create a new Trainer (load_states carries the states)')
            return
        kv, uok = self._kv_config
        if isinstance(kv, str):
            kv = _kv.create(kv) if (len(ctxs) > 1 or uok or kv == 'horovod') else None
        if kv is None:
            if len(ctxs) > 1:
                raise MXNetError(f'Trainer: kvstore=None with parameters on {len(ctxs)} contexts: the '
                                 "gradients would not be summed and the copies would drift; use 'device'")
            if uok:
                raise MXNetError('Trainer: update_on_kvstore=True needs a kvstore')
        capable = kv is not None and kv.is_capable(_kv.KVStoreBase.OPTIMIZER)
        if uok and not capable:
            raise MXNetValueError(f'Trainer: the {kv.type!r} kvstore cannot run the optimizer; set '
                                  'update_on_kvstore=False')
        self._update_on_kvstore = None if kv is None else (capable if uok is None else uok)
        self._kvstore = kv
        self._kv_initialized = True
        self._distributed = None if kv is None else kv.num_workers > 1
        self._contexts = ctxs
        if len(self._updaters) != len(ctxs):
            self._updaters = [opt.get_updater(self._optimizer) for _ in ctxs]
        if self._update_on_kvstore:
            kv._set_updater(self._kv_updater or opt.get_updater(self._optimizer))
            self._kv_updater = kv._updater

    def _reset_kvstore(self):
        """Drop the kvstore after the parameters were loaded (MXNet's Trainer._reset_kvstore):
        the next step creates it again and initializes it from the loaded values. The optimizer
        states are kept (the store's updater is handed to the new store)."""
        if self._kvstore is not None and self._kvstore.num_workers > 1:
            raise MXNetError('Trainer: cannot reset a kvstore spanning several processes')
        if not self._update_on_kvstore:
            return
        self._kvstore = None
        self._kv_initialized = False
        self._update_on_kvstore = None
        self._contexts = None
        self._kv_keys = set()

    def _init_params(self):
        """Put each parameter that has data into the store (once), broadcasting the first copy
        (across processes too, for 'horovod') so that every copy starts equal."""
        if self._kvstore is None:
            return
        new = [(i, p.list_data()) for i, p in self._trainable() if i not in self._kv_keys]
        if new:
            self._kvstore._broadcast_params([(i, arrays[0], arrays) for i, arrays in new])
            self._kv_keys.update(i for i, _ in new)

    # ---- steps ------------------------------------------------------------------------------------
    def step(self, batch_size, ignore_stale_grad=False):
        """Rescale gradients by 1/batch_size, sum them across devices and update every
        trainable parameter."""
        self._prepare(batch_size)
        if self._update_on_kvstore:
            if self._amp_overflow():
                return
            self._kvstore._update_params([(i, p.list_grad(), p.list_data())
                                          for i, p in self._stepped(ignore_stale_grad)])
        else:
            self._allreduce_grads()
            # checked on the summed gradients, so that every rank skips the same steps (a rank
            # skipping alone would leave the others waiting in the next allreduce)
            if self._amp_overflow():
                return
            self._update(ignore_stale_grad)

    def allreduce_grads(self):
        """Sum gradients across devices (each device then holds the total)."""
        self._prepare(None)
        self._no_update_on_kvstore('allreduce_grads')
        self._allreduce_grads()

    def update(self, batch_size, ignore_stale_grad=False):
        """Update the parameters from their (already reduced) gradients."""
        self._prepare(batch_size)
        self._no_update_on_kvstore('update')
        if self._amp_overflow():
            return
        self._update(ignore_stale_grad)

    def _prepare(self, batch_size):
        self._init_kvstore()
        self._init_params()
        if batch_size is not None:
            loss_scale = 1.0 if self._amp_loss_scaler is None else self._amp_loss_scaler.step_scale()
            self._optimizer.rescale_grad = self._scale / batch_size / loss_scale

    def _amp_overflow(self):
        """With AMP loss scaling: True (skip this update) when a gradient overflowed."""
        return self._amp_loss_scaler is not None and self._amp_loss_scaler.skip_step(self._params)

    def _no_update_on_kvstore(self, what):
        if self._update_on_kvstore:
            raise MXNetAssertionError(f'Trainer.{what}: the kvstore runs the optimizer (update_on_kvstore=True); '
                             'create the Trainer with update_on_kvstore=False to call it separately')

    def _allreduce_grads(self):
        if self._kvstore is not None:
            self._kvstore._reduce_grads([(i, p.list_grad()) for i, p in self._trainable()])

    def _update(self, ignore_stale_grad):
        # per device, all parameters in one call: one multi-tensor kernel (Updater.update_many)
        stepped = self._stepped(ignore_stale_grad)
        indices = [i for i, _ in stepped]
        # _stepped checked that each has data and a gradient (list_data/list_grad would check
        # again, per context)
        data = [list(p._data.values()) for _, p in stepped]
        grads = [p._grad for _, p in stepped]
        for k, updater in enumerate(self._updaters):
            updater.update_many(indices, [g[k] for g in grads], [w[k] for w in data])

    def _stepped(self, ignore_stale_grad):
        out = []
        for i, p in enumerate(self._params):
            if p.grad_req == 'null':
                continue
            if p._data is None:
                if ignore_stale_grad:
                    continue
                raise MXNetError(f'Trainer: parameter {p.name} has not been initialized (was the model '
                                 'run on an input before step()?)')
            out.append((i, p))
        return out

    def _trainable(self):
        return [(i, p) for i, p in enumerate(self._params) if p.grad_req != 'null' and p._data is not None]

    # ---- states -------------------------------------------------------------------------------------
    def _state_updater(self):
        self._init_kvstore()
        return self._kvstore._updater if self._update_on_kvstore else self._updaters[0]

    def save_states(self, fname):
        """Write the optimizer's states and settings (learning rate, update counts, so that
        Adam's bias correction resumes where it stopped) to `fname` atomically (no pickle). In
        several processes only rank 0 writes."""
        from ..serialization import atomic_write
        updater = self._state_updater()
        meta = {'trainer_params': [_shape_list(p) for p in self._params]}
        try:
            states = updater.get_states(dump_optimizer=True, meta=meta)
        except MXNetError:   # an unregistered custom optimizer: its settings cannot be named
            states = updater.get_states(dump_optimizer=False, meta=meta)
        if self._kvstore is None or self._kvstore.rank == 0:
            atomic_write(fname, lambda f: f.write(states))
        if self._kvstore is not None and self._kvstore.num_workers > 1:
            self._kvstore._barrier()     # the other ranks may read the file next

    def load_states(self, fname):
        """Load states from `save_states`. They are checked against this trainer's parameters
        (count and shapes) first; on any error the trainer is left unchanged."""
        try:
            with open(fname, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise MXNetError(f'Trainer.load_states: cannot read {fname}: {e}') from None
        states, optimizer, meta = opt.read_states(data)
        self._check_states(fname, states, meta)
        self._init_kvstore()
        if optimizer is not None:   # the file held the optimizer too
            optimizer.param_dict = {i: p for i, p in enumerate(self._params)}
            self._optimizer = optimizer
        updaters = list(self._updaters)
        if self._update_on_kvstore:
            updaters.append(self._kvstore._updater)
        for u in updaters:
            u.optimizer = self._optimizer
            u.apply_states(states)

    def _check_states(self, fname, states, meta):
        n = len(self._params)
        saved = meta.get('trainer_params') if isinstance(meta, dict) else None
        if saved is not None and len(saved) != n:
            raise MXNetError(f'Trainer.load_states: {fname} holds states of {len(saved)} parameters, this '
                             f'trainer has {n}; the states belong to another model')
        for p, shape in zip(self._params, saved or []):
            if shape is not None and p._shape_known() and tuple(shape) != p.shape:
                raise MXNetError(f'Trainer.load_states: {fname} was saved for a parameter of shape '
                                 f'{fmt_shape(shape)} where this trainer has {p.name} of shape '
                                 f'{fmt_shape(p.shape)}; the states belong to another model')
        for key, state in states.items():
            if not isinstance(key, int) or not 0 <= key < n:
                raise MXNetError(f'Trainer.load_states: {fname} has a state for parameter index {key!r}, '
                                 f'this trainer has parameters 0..{n - 1}; the states belong to another model')
            p = self._params[key]
            for arr in _arrays(state):
                if p._shape_known() and tuple(arr.shape) != p.shape:
                    raise MXNetError(f'Trainer.load_states: {fname}: the state of parameter {p.name} (index '
                                     f'{key}) has shape {fmt_shape(arr.shape)}, the parameter '
                                     f'{fmt_shape(p.shape)}; the states belong to another model')


def _shape_list(p):
    return list(p.shape) if p.shape is not None else None


def _arrays(state):
    if state is None:
        return []
    if isinstance(state, (list, tuple)):
        return [a for s in state for a in _arrays(s)]
    return [state]


def _check_optimizer_params(klass, params):
    """Refuse every optimizer argument the class does not take (each with its nearest known
    name), and the one the Trainer sets itself."""
    if 'param_dict' in params:
        raise MXNetError('Trainer: optimizer_params cannot set param_dict; the Trainer gives the '
                         'optimizer its parameters')
    unknown = set(params) - opt.optimizer.accepted_arguments(klass)
    if unknown:
        raise opt.optimizer.unknown_arguments_error(klass, unknown, who='Trainer')
