"""`mx.mod`: MXNet's symbolic training API. A `Module` binds an `mx.sym` graph to one context
through the symbol executors (`symbol/executor.py`, compiled by the graph compiler), keeps its
parameters, and trains them with an `mx.optimizer` updater: `bind` -> `init_params` ->
`init_optimizer` -> (`forward`, `backward`, `update`)*, or all of it in `fit`.

Departures from MXNet: one context per module (no splitting of a batch over devices), no
kvstore (updates run locally), no bucketing/sequential modules."""
import logging
import time

import numpy as np

from . import metric as _metric
from .base import MXNetError
from .context import Context, cpu, current_context
from .initializer import InitDesc, Uniform
from .io import DataDesc
from .ndarray import NDArray, array
from .ops import concat
from .optimizer import optimizer as _opt

__all__ = ['BaseModule', 'BucketingModule', 'Module']


def _names(names, what):
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    names = list(names)
    for n in names:
        if not isinstance(n, str):
            raise MXNetError(f'Module: {what} must be strings, got {n!r}')
    return names


def _descs(shapes, what):
    """[DataDesc] from DataDescs or (name, shape) pairs."""
    if shapes is None:
        return []
    out = []
    for s in shapes:
        if isinstance(s, DataDesc):
            out.append(s)
        elif isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str):
            if not isinstance(s[1], (list, tuple)) or \
                    not all(isinstance(i, (int, np.integer)) for i in s[1]):
                # a TypeError, as MXNet's: a shape of the wrong type (an array, ...)
                raise TypeError(f"Module.bind: the shape of '{s[0]}' in {what} must be a tuple of "
                                f'ints, got {type(s[1]).__name__} {s[1]!r}')
            out.append(DataDesc(s[0], tuple(int(i) for i in s[1])))
        else:
            raise MXNetError(f'Module.bind: {what} must be DataDescs or (name, shape) pairs, got {s!r}')
    return out


class BaseModule:
    """The parts of MXNet's BaseModule that run a bound module over data iterators."""

    def __init__(self, logger=logging):
        self.logger = logger
        self.binded = False
        self.for_training = False
        self.inputs_need_grad = False
        self.params_initialized = False
        self.optimizer_initialized = False

    def forward_backward(self, data_batch):
        self.forward(data_batch, is_train=True)
        self.backward()

    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None,
              score_end_callback=None, reset=True, epoch=0, sparse_row_id_fn=None):
        """Run predictions over `eval_data` and return `eval_metric.get_name_value()`."""
        self._check_ready('score')
        if reset:
            eval_data.reset()
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        eval_metric.reset()
        actual = 0
        for nbatch, batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.forward(batch, is_train=False)
            self.update_metric(eval_metric, batch.label, pre_sliced=False)
            for cb in _as_list(batch_end_callback):
                cb(BatchEndParam(epoch, nbatch, eval_metric, locals()))
            actual += 1
        for cb in _as_list(score_end_callback):
            cb(BatchEndParam(epoch, actual, eval_metric, locals()))
        return eval_metric.get_name_value()

    def iter_predict(self, eval_data, num_batch=None, reset=True, sparse_row_id_fn=None):
        """Yield (outputs without padding, batch index, batch) per batch."""
        self._check_ready('iter_predict')
        if reset:
            eval_data.reset()
        for nbatch, batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.forward(batch, is_train=False)
            pad = batch.pad or 0
            outs = [o[0:o.shape[0] - pad].copy() for o in self.get_outputs()]
            yield outs, nbatch, batch

    def predict(self, eval_data, num_batch=None, merge_batches=True, reset=True,
                always_output_list=False, sparse_row_id_fn=None):
        """The outputs over `eval_data` (padding removed), concatenated over batches."""
        if isinstance(eval_data, (NDArray, np.ndarray)):
            from .io import NDArrayIter
            if isinstance(eval_data, np.ndarray):
                eval_data = array(eval_data)
            self._check_ready('predict')
            eval_data = NDArrayIter(eval_data, batch_size=self._data_shapes[0].shape[0])
        outputs = [o for o, _, _ in self.iter_predict(eval_data, num_batch, reset)]
        if not outputs:
            return []
        if not merge_batches:
            return outputs
        n = len(outputs[0])
        for o in outputs:
            if len(o) != n:
                raise MXNetError('Module.predict: batches have different numbers of outputs; use '
                                 'merge_batches=False')
        merged = [concat(*[o[i] for o in outputs], dim=0) for i in range(n)]
        if n == 1 and not always_output_list:
            return merged[0]
        return merged

    def fit(self, train_data, eval_data=None, eval_metric='acc', epoch_end_callback=None,
            batch_end_callback=None, kvstore='local', optimizer='sgd',
            optimizer_params=(('learning_rate', 0.01),), eval_end_callback=None,
            eval_batch_end_callback=None, initializer=Uniform(0.01), arg_params=None,
            aux_params=None, allow_missing=False, force_rebind=False, force_init=False,
            begin_epoch=0, num_epoch=None, validation_metric=None, monitor=None,
            sparse_row_id_fn=None):
        """Train over `train_data` for epochs begin_epoch .. num_epoch - 1."""
        if num_epoch is None:
            raise MXNetError('Module.fit: give num_epoch')
        if monitor is not None:
            raise MXNetError('Module.fit: monitor is not supported by the engine')
        self.bind(data_shapes=train_data.provide_data, label_shapes=train_data.provide_label,
                  for_training=True, force_rebind=force_rebind)
        self.init_params(initializer=initializer, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=allow_missing, force_init=force_init)
        self.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params)
        if validation_metric is None:
            validation_metric = eval_metric
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        for epoch in range(begin_epoch, num_epoch):
            tic = time.time()
            eval_metric.reset()
            nbatch = 0
            for batch in train_data:
                self.forward_backward(batch)
                self.update()
                self.update_metric(eval_metric, batch.label)
                for cb in _as_list(batch_end_callback):
                    cb(BatchEndParam(epoch, nbatch, eval_metric, locals()))
                nbatch += 1
            for name, val in eval_metric.get_name_value():
                self.logger.info('Epoch[%d] Train-%s=%f', epoch, name, val)
            self.logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - tic)
            arg, aux = self.get_params()
            for cb in _as_list(epoch_end_callback):
                cb(epoch, self.symbol, arg, aux)
            if eval_data is not None:
                res = self.score(eval_data, validation_metric, score_end_callback=eval_end_callback,
                                 batch_end_callback=eval_batch_end_callback, epoch=epoch)
                for name, val in res:
                    self.logger.info('Epoch[%d] Validation-%s=%f', epoch, name, val)
            train_data.reset()

    def _check_ready(self, what, params=True):
        if not self.binded:
            raise MXNetError(f'Module.{what}: call bind() first')
        if params and not self.params_initialized:
            raise MXNetError(f'Module.{what}: call init_params() (or set_params) first')


def _as_list(x):
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _one_context(contexts):
    """The context a list of them runs on. MXNet splits each batch over the list; the engine's
    CPU contexts are one device, so a list of them runs each batch whole there (the same results,
    except that batch statistics cover the whole batch, not each slice)."""
    if not contexts or not all(isinstance(c, Context) for c in contexts):
        raise MXNetError(f'Module: context must be an mx.Context or a list of them, got {contexts!r}')
    if len(contexts) > 1 and any(c.device_type != 'cpu' for c in contexts):
        raise MXNetError(f'Module: one context per module is supported by the engine for devices '
                         f'other than the CPU, got {contexts}')
    return contexts[0]


def BatchEndParam(epoch, nbatch, eval_metric, locals_):   # noqa: N802  (MXNet's name)
    from .model import BatchEndParam as P
    return P(epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals_)


class Module(BaseModule):
    """A symbol bound to one context, with its parameters and optimizer (MXNet's Module)."""

    def __init__(self, symbol, data_names=('data',), label_names=('softmax_label',), logger=logging,
                 context=None, work_load_list=None, fixed_param_names=None, state_names=None,
                 group2ctxs=None, compression_params=None):
        super().__init__(logger=logger)
        from .symbol import Symbol
        if not isinstance(symbol, Symbol):
            raise MXNetError(f'Module: symbol must be an mx.sym Symbol, got {type(symbol).__name__}')
        if context is None:
            context = current_context()
        self._contexts = list(context) if isinstance(context, (list, tuple)) else [context]
        context = _one_context(self._contexts)
        self._context = context
        self._symbol = symbol
        self._data_names = _names(data_names, 'data_names')
        self._state_names = _names(state_names, 'state_names')
        self._fixed_param_names = _names(fixed_param_names, 'fixed_param_names')
        args = symbol.list_arguments()
        for n in self._data_names + self._state_names:
            if n not in args:
                raise MXNetError(f"Module: data name '{n}' is not an argument of the symbol; its "
                                 f'arguments are {args}')
        # a label the symbol does not read is ignored (MXNet only warns)
        self._label_names = [n for n in _names(label_names, 'label_names') if n in args]
        inputs = set(self._data_names + self._label_names + self._state_names)
        self._param_names = [n for n in args if n not in inputs]
        for n in self._fixed_param_names:
            if n not in self._param_names:
                raise MXNetError(f"Module: fixed parameter '{n}' is not a parameter of the symbol")
        self._aux_names = symbol.list_auxiliary_states()
        self._output_names = symbol.list_outputs()
        self._arg_params = self._aux_params = None
        self._exec = None
        self._data_shapes = self._label_shapes = None
        self._optimizer = self._updater = None
        self._preload_opt_states = None

    # ---- names and shapes -------------------------------------------------------------------
    symbol = property(lambda self: self._symbol)
    data_names = property(lambda self: list(self._data_names))
    label_names = property(lambda self: list(self._label_names))
    output_names = property(lambda self: list(self._output_names))
    data_shapes = property(lambda self: self._need_bind('data_shapes') or list(self._data_shapes))
    label_shapes = property(lambda self: self._need_bind('label_shapes') or list(self._label_shapes))

    @property
    def output_shapes(self):
        self._need_bind('output_shapes')
        shapes = {d.name: d.shape for d in self._data_shapes + self._label_shapes}
        _, out_s, _ = self._symbol.infer_shape(**shapes)
        return list(zip(self._output_names, out_s))

    def _need_bind(self, what):
        if not self.binded:
            raise MXNetError(f'Module.{what}: call bind() first')

    # ---- bind -------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req='write'):
        """Allocate the executor's arrays for these input shapes."""
        if self.binded and not force_rebind:
            self.logger.warning('Already bound, ignoring bind()')
            return
        if shared_module is not None and (not isinstance(shared_module, Module) or
                                          not shared_module.binded):
            raise MXNetError('Module.bind: shared_module must be a bound Module')
        if grad_req not in ('write', 'add', 'null'):
            raise MXNetError(f"Module.bind: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        data = _descs(data_shapes, 'data_shapes')
        labels = _descs(label_shapes, 'label_shapes')
        if [d.name for d in data] != self._data_names:
            raise MXNetError(f'Module.bind: data_shapes name {[d.name for d in data]}, the module '
                             f'expects {self._data_names}')
        labels = [d for d in labels if d.name in self._label_names]
        self.for_training, self.inputs_need_grad = bool(for_training), bool(inputs_need_grad)
        self._data_shapes, self._label_shapes = data, labels
        self._exec = self._simple_bind(data, labels, grad_req)
        self.binded = True
        if shared_module is not None:
            self._share_arrays(shared_module)
        elif self.params_initialized:     # parameters set before binding (Module.load, set_params)
            self._exec.copy_params_from(self._arg_params, self._aux_params)

    def _share_arrays(self, other):
        """Use the other module's parameter, gradient and auxiliary arrays (MXNet's
        shared_module), so that modules of several input shapes train one set of parameters."""
        names = self._param_names + self._aux_names
        for mine, theirs in ((self._exec.arg_dict, other._exec.arg_dict),
                             (self._exec.grad_dict, other._exec.grad_dict),
                             (self._exec.aux_dict, other._exec.aux_dict)):
            for n in names:
                if n in mine and n in theirs:
                    if mine[n].shape != theirs[n].shape:
                        raise MXNetError(f"Module.bind: parameter '{n}' has shape {mine[n].shape} here "
                                         f'and {theirs[n].shape} in shared_module')
                    mine[n] = theirs[n]
        self.params_initialized = other.params_initialized
        if self.params_initialized:
            self._sync_params()

    def _simple_bind(self, data, labels, grad_req):
        shapes = {d.name: d.shape for d in data + labels}
        types = {d.name: d.dtype for d in data + labels}
        reqs = {}
        for n in self._symbol.list_arguments():
            if not self.for_training:
                reqs[n] = 'null'
            elif n in self._param_names:
                reqs[n] = 'null' if n in self._fixed_param_names else grad_req
            elif n in self._data_names:
                reqs[n] = grad_req if self.inputs_need_grad else 'null'
            else:
                reqs[n] = 'null'
        arg_s, _, aux_s = self._symbol.infer_shape(**shapes)
        if arg_s is None:
            arg_s, _, aux_s = self._symbol.infer_shape_partial(**shapes)
            unknown = [n for n, s in zip(self._symbol.list_arguments(), arg_s) if not s]
            raise MXNetError(f'Module.bind: cannot infer the shapes of {unknown} from {shapes}; '
                             'give them in data_shapes/label_shapes')
        # labels default to float32 (as MXNet's DataDesc), parameters follow the data
        type_dict = {k: np.dtype(v).type for k, v in types.items()}
        return self._symbol.simple_bind(self._context, grad_req=reqs, type_dict=type_dict, **shapes)

    def reshape(self, data_shapes, label_shapes=None):
        """Rebind for new input shapes, keeping the parameters."""
        self._need_bind('reshape')
        data = _descs(data_shapes, 'data_shapes')
        labels = [d for d in _descs(label_shapes, 'label_shapes') if d.name in self._label_names]
        shapes = {d.name: d.shape for d in data + labels}
        self._exec = self._exec.reshape(partial_shaping=True, allow_up_sizing=True, **shapes)
        self._data_shapes, self._label_shapes = data, labels or self._label_shapes

    # ---- parameters -------------------------------------------------------------------------
    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False):
        """Fill the parameters: from arg_params/aux_params where given, else by `initializer`
        (a variable's own `init` attribute first)."""
        if self.params_initialized and not force_init:
            self.logger.warning('Parameters already initialized and force_init=False. '
                                'init_params call ignored.')
            return
        self._need_bind('init_params')
        attrs = self._symbol.attr_dict()
        for given, names, dst in ((arg_params, self._param_names, self._exec.arg_dict),
                                  (aux_params, self._aux_names, self._exec.aux_dict)):
            if given is not None and not allow_extra:
                extra = [k for k in given if k not in names]
                if extra and given is arg_params:
                    extra = [k for k in extra if k not in self._data_names + self._label_names]
                if extra:
                    raise MXNetError(f'Module.init_params: {extra} are not parameters of the symbol '
                                     '(pass allow_extra=True to ignore them)')
            for name in names:
                arr = dst[name]
                if given is not None and name in given:
                    src = given[name]
                    if tuple(src.shape) != tuple(arr.shape):
                        raise MXNetError(f"Module.init_params: '{name}' has shape {tuple(src.shape)}, the "
                                         f'bound symbol needs {tuple(arr.shape)}')
                    arr[:] = src
                elif given is not None and not allow_missing:
                    raise MXNetError(f"Module.init_params: '{name}' is not in the given parameters "
                                     '(pass allow_missing=True to initialize it)')
                elif initializer is None:
                    raise MXNetError(f"Module.init_params: no value and no initializer for '{name}'")
                else:
                    initializer(InitDesc(name, attrs.get(name, {})), arr)
        self.params_initialized = True
        self._sync_params()

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        """Set the parameters from dicts of arrays (all of them, unless allow_missing)."""
        if not self.binded:     # kept until bind (as MXNet)
            self._arg_params = {k: v.copy() for k, v in arg_params.items()}
            self._aux_params = {k: v.copy() for k, v in (aux_params or {}).items()}
            self.params_initialized = True
            return
        self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=allow_missing, force_init=force_init, allow_extra=allow_extra)

    def _sync_params(self):
        ctx = cpu()
        self._arg_params = {k: self._exec.arg_dict[k].copyto(ctx) for k in self._param_names}
        self._aux_params = {k: self._exec.aux_dict[k].copyto(ctx) for k in self._aux_names}

    def get_params(self):
        """(arg_params, aux_params): copies of the current parameters on the CPU."""
        self._check_ready('get_params')
        if self._exec is not None:
            self._sync_params()
        return dict(self._arg_params), dict(self._aux_params)

    # ---- optimizer --------------------------------------------------------------------------
    def init_optimizer(self, kvstore='local', optimizer='sgd',
                       optimizer_params=(('learning_rate', 0.01),), force_init=False):
        """Create the optimizer (rescale_grad = 1 / batch size unless given) and its updater."""
        self._check_ready('init_optimizer')
        if not self.for_training:
            raise MXNetError('Module.init_optimizer: the module is bound with for_training=False')
        if self.optimizer_initialized and not force_init:
            self.logger.warning('optimizer already initialized, ignoring...')
            return
        if kvstore not in (None, 'local', 'device') and not hasattr(kvstore, 'type'):
            raise MXNetError(f'Module.init_optimizer: kvstore {kvstore!r} is not supported (updates '
                             'run locally)')
        batch_size = self._data_shapes[0].shape[0] if self._data_shapes[0].shape else 1
        idx2name = dict(enumerate(self._param_names))
        if isinstance(optimizer, str):
            params = dict(optimizer_params)
            params.setdefault('rescale_grad', 1.0 / batch_size)
            optimizer = _opt.create(optimizer, param_idx2name=idx2name, **params)
        elif isinstance(optimizer, _opt.Optimizer):
            if optimizer.rescale_grad != 1.0 / batch_size:
                self.logger.warning('Optimizer created manually outside Module but rescale_grad is not '
                                    'normalized to 1.0/batch_size (%s vs. %s). Is this intended?',
                                    optimizer.rescale_grad, 1.0 / batch_size)
            if not optimizer.idx2name:
                optimizer.idx2name = dict(idx2name)
        else:
            raise MXNetError(f'Module.init_optimizer: optimizer must be a name or an mx.optimizer.'
                             f'Optimizer, got {type(optimizer).__name__}')
        attrs = self._symbol.attr_dict()
        lr_mult = {n: float(attrs[n]['__lr_mult__']) for n in self._param_names
                   if '__lr_mult__' in attrs.get(n, {})}
        wd_mult = {n: float(attrs[n]['__wd_mult__']) for n in self._param_names
                   if '__wd_mult__' in attrs.get(n, {})}
        optimizer.set_lr_mult(lr_mult)
        optimizer.set_wd_mult(wd_mult)
        self._optimizer = optimizer
        self._updater = _opt.get_updater(optimizer)
        self._updater_index = {n: i for i, n in idx2name.items()}
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    def save_optimizer_states(self, fname):
        if not self.optimizer_initialized:
            raise MXNetError('Module.save_optimizer_states: call init_optimizer() first')
        from .serialization import atomic_write
        blob = self._updater.get_states(dump_optimizer=False)
        atomic_write(fname, lambda f: f.write(blob))

    def load_optimizer_states(self, fname):
        if not self.optimizer_initialized:
            raise MXNetError('Module.load_optimizer_states: call init_optimizer() first')
        with open(fname, 'rb') as f:
            self._updater.set_states(f.read())

    # ---- computation ------------------------------------------------------------------------
    def forward(self, data_batch, is_train=None):
        """Run the graph on a DataBatch (inputs of other shapes than bound rebind the module)."""
        self._check_ready('forward')
        if is_train is None:
            is_train = self.for_training
        if is_train and not self.for_training:
            raise MXNetError('Module.forward: is_train=True on a module bound with for_training=False')
        data = list(data_batch.data or [])
        if len(data) != len(self._data_names):
            raise MXNetError(f'Module.forward: the batch has {len(data)} data arrays, the module '
                             f'takes {self._data_names}')
        labels = list(data_batch.label or []) if self._label_shapes else []
        new = [DataDesc(n, tuple(a.shape), getattr(a, 'dtype', np.float32))
               for n, a in zip(self._data_names, data)]
        new_l = [DataDesc(d.name, tuple(a.shape)) for d, a in zip(self._label_shapes, labels)]
        if [d.shape for d in new] != [d.shape for d in self._data_shapes] or \
                (new_l and [d.shape for d in new_l] != [d.shape for d in self._label_shapes]):
            self.reshape(new, new_l or None)
        for name, a in list(zip(self._data_names, data)) + \
                list(zip([d.name for d in self._label_shapes], labels)):
            self._exec.arg_dict[name][:] = a
        self._exec.forward(is_train=is_train)

    def backward(self, out_grads=None):
        self._check_ready('backward')
        if not self.for_training:
            raise MXNetError('Module.backward: the module is bound with for_training=False')
        self._exec.backward(out_grads=out_grads)

    def update(self):
        """One optimizer step over the parameters with their current gradients."""
        self._check_ready('update')
        if not self.optimizer_initialized:
            raise MXNetError('Module.update: call init_optimizer() first')
        for name in self._param_names:
            grad = self._exec.grad_dict.get(name)
            if grad is None:
                continue
            # by name: modules that borrowed the optimizer keep one state per parameter
            i = self._updater_index.setdefault(name, len(self._updater_index))
            self._updater(i, grad, self._exec.arg_dict[name])

    def borrow_optimizer(self, shared_module):
        """Use another module's optimizer and updater (and so its states), as MXNet."""
        if not shared_module.optimizer_initialized:
            raise MXNetError('Module.borrow_optimizer: the other module has no optimizer yet')
        self._optimizer, self._updater = shared_module._optimizer, shared_module._updater
        self._updater_index = shared_module._updater_index
        self.optimizer_initialized = True

    def get_outputs(self, merge_multi_context=True):
        self._check_ready('get_outputs', params=False)
        outs = list(self._exec.outputs)
        if merge_multi_context:
            return outs
        layouts = [self._symbol[i].attr('__layout__') for i in range(len(outs))]
        return [self._per_context(o, lay) for o, lay in zip(outs, layouts)]

    def get_input_grads(self, merge_multi_context=True):
        self._check_ready('get_input_grads')
        if not self.inputs_need_grad:
            raise MXNetError('Module.get_input_grads: bind with inputs_need_grad=True')
        grads = [self._exec.grad_dict[n] for n in self._data_names]
        if merge_multi_context:
            return grads
        return [self._per_context(g, d.layout) for g, d in zip(grads, self._data_shapes)]

    def _per_context(self, array, layout):
        """merge_multi_context=False: the parts of a batch's array each listed context holds in
        MXNet (equal slices along the layout's batch axis, the rest to the last)."""
        axis = DataDesc.get_batch_axis(layout)
        if len(self._contexts) == 1 or axis < 0:
            return [array]
        return [array.slice_axis(axis=axis, begin=b, end=e)
                for b, e in self._context_bounds(array.shape[axis])]

    def _context_bounds(self, length):
        n = len(self._contexts)
        cuts = [i * (length // n) for i in range(n)] + [length]
        return list(zip(cuts, cuts[1:]))

    def get_states(self, merge_multi_context=True):
        """The arrays of the state inputs (state_names), per context when not merged."""
        self._check_ready('get_states')
        states = [self._exec.arg_dict[n] for n in self._state_names]
        if merge_multi_context:
            return states
        return [self._per_context(a, None) for a in states]

    def set_states(self, states=None, value=None):
        """Set the state inputs from `states` (one list of per-context arrays per state, as
        get_states(merge_multi_context=False) gives) or to the scalar `value`."""
        self._check_ready('set_states')
        if (states is None) == (value is None):
            raise MXNetError('Module.set_states: give one of states and value')
        if states is not None and len(states) != len(self._state_names):
            raise MXNetError(f'Module.set_states: {len(states)} states given, the module has '
                             f'{self._state_names}')
        for i, name in enumerate(self._state_names):
            arr = self._exec.arg_dict[name]
            if value is not None:
                arr[:] = value
                continue
            parts = states[i] if isinstance(states[i], (list, tuple)) else [states[i]]
            bounds = self._context_bounds(arr.shape[0]) if len(parts) > 1 else [(0, arr.shape[0])]
            if len(parts) != len(bounds):
                raise MXNetError(f"Module.set_states: state '{name}' has {len(parts)} parts, the "
                                 f'module has {len(self._contexts)} contexts')
            for (b, e), part in zip(bounds, parts):
                arr[b:e] = part

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        labels = list(labels or [])
        eval_metric.update_dict(dict(zip([d.name for d in self._label_shapes] or self._label_names, labels)),
                                dict(zip(self._output_names, self._exec.outputs)))

    def prepare(self, data_batch, sparse_row_id_fn=None):
        """Nothing to prepare: parameters are dense and live on the module's one context."""
        if sparse_row_id_fn is not None:
            raise MXNetError('Module.prepare: sparse_row_id_fn (row-sparse parameters pulled from a '
                             'kvstore) is not supported by the engine')

    def install_monitor(self, mon):
        raise MXNetError('Module.install_monitor: monitors are not supported by the engine')

    # ---- checkpoints ------------------------------------------------------------------------
    def save_params(self, fname):
        from .serialization import save_arrays
        arg, aux = self.get_params()
        arrays = {f'arg:{k}': v for k, v in arg.items()}
        arrays.update({f'aux:{k}': v for k, v in aux.items()})
        save_arrays(fname, arrays)

    def load_params(self, fname):
        from .serialization import load_arrays
        loaded = load_arrays(fname)
        arg, aux = {}, {}
        for k, v in loaded.items():
            kind, sep, name = k.partition(':')
            if kind not in ('arg', 'aux') or not sep:
                raise MXNetError(f'{fname}: entry {k!r} is not named arg:<name> or aux:<name>')
            (arg if kind == 'arg' else aux)[name] = v
        self.set_params(arg, aux)

    def save_checkpoint(self, prefix, epoch, save_optimizer_states=False, remove_amp_cast=True):
        """`prefix-symbol.json`, `prefix-%04d.params` (and `prefix-%04d.states`)."""
        from .model import save_checkpoint
        arg, aux = self.get_params()
        save_checkpoint(prefix, epoch, self._symbol, arg, aux, remove_amp_cast=remove_amp_cast)
        if save_optimizer_states:
            self.save_optimizer_states(f'{prefix}-{int(epoch):04d}.states')

    @staticmethod
    def load(prefix, epoch, load_optimizer_states=False, **kwargs):
        """A Module of a checkpoint; bind it (fit does) to use it."""
        from .model import load_checkpoint
        sym, arg, aux = load_checkpoint(prefix, epoch)
        mod = Module(symbol=sym, **kwargs)
        mod._arg_params, mod._aux_params = arg, aux
        mod.params_initialized = True
        if load_optimizer_states:
            mod._preload_opt_states = f'{prefix}-{int(epoch):04d}.states'
        return mod


class BucketingModule(BaseModule):
    """MXNet's BucketingModule: one Module per bucket key, built from
    `sym_gen(key) -> (symbol, data_names, label_names)` when a batch of that key first comes and
    bound sharing the default bucket's parameters, gradients and optimizer, so that all buckets
    (sequence lengths, ...) train one set of parameters."""

    def __init__(self, sym_gen, default_bucket_key=None, logger=logging, context=None,
                 work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None,
                 compression_params=None):
        super().__init__(logger=logger)
        if default_bucket_key is None:
            raise MXNetError('BucketingModule: give default_bucket_key')
        self._sym_gen, self._default_bucket_key = sym_gen, default_bucket_key
        self._kwargs = dict(logger=logger, context=context, fixed_param_names=fixed_param_names,
                            state_names=state_names)
        self._default = self._new_module(default_bucket_key)
        self._buckets = {}
        self._curr_module, self._curr_bucket_key = self._default, default_bucket_key
        self._grad_req = 'write'

    def _new_module(self, key):
        out = self._sym_gen(key)
        if not isinstance(out, tuple) or len(out) != 3:
            raise MXNetError(f'BucketingModule: sym_gen({key!r}) must return (symbol, data_names, '
                             f'label_names), got {type(out).__name__}')
        sym, data_names, label_names = out
        return Module(sym, data_names, label_names, **self._kwargs)

    symbol = property(lambda self: self._curr_module.symbol)
    data_names = property(lambda self: self._curr_module.data_names)
    output_names = property(lambda self: self._curr_module.output_names)
    data_shapes = property(lambda self: self._curr_module.data_shapes)
    label_shapes = property(lambda self: self._curr_module.label_shapes)
    output_shapes = property(lambda self: self._curr_module.output_shapes)

    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req='write'):
        """Bind the default bucket's module for these shapes (the other buckets bind when their
        first batch comes)."""
        if self.binded and not force_rebind:
            self.logger.warning('Already bound, ignoring bind()')
            return
        if shared_module is not None:
            raise MXNetError('BucketingModule.bind: shared_module is not supported')
        if force_rebind:
            self._default = self._new_module(self._default_bucket_key)
        self._default.bind(data_shapes, label_shapes, for_training, inputs_need_grad,
                           force_rebind=True, grad_req=grad_req)
        self.for_training, self.inputs_need_grad = bool(for_training), bool(inputs_need_grad)
        self._grad_req = grad_req
        self._buckets = {self._default_bucket_key: self._default}
        self._curr_module, self._curr_bucket_key = self._default, self._default_bucket_key
        self.binded = True
        self.params_initialized = self._default.params_initialized

    def switch_bucket(self, bucket_key, data_shapes, label_shapes=None):
        """Make `bucket_key`'s module the current one, binding it first if it is new."""
        if not self.binded:
            raise MXNetError('BucketingModule.switch_bucket: call bind() first')
        mod = self._buckets.get(bucket_key)
        if mod is None:
            mod = self._new_module(bucket_key)
            mod.bind(data_shapes, label_shapes, self.for_training, self.inputs_need_grad,
                     shared_module=self._default, grad_req=self._grad_req)
            if self.optimizer_initialized:
                mod.borrow_optimizer(self._default)
            self._buckets[bucket_key] = mod
        self._curr_module, self._curr_bucket_key = mod, bucket_key

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False):
        if self.params_initialized and not force_init:
            return
        if not self.binded:
            raise MXNetError('BucketingModule.init_params: call bind() first')
        self._default.init_params(initializer, arg_params, aux_params, allow_missing,
                                  force_init=True, allow_extra=allow_extra)
        self._all_initialized()

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True,
                   allow_extra=False):
        self._default.set_params(arg_params, aux_params, allow_missing, force_init, allow_extra)
        self._all_initialized()

    def _all_initialized(self):
        for mod in self._buckets.values():      # the arrays are shared: only the flags differ
            mod.params_initialized = True
        self.params_initialized = True

    def get_params(self):
        return self._default.get_params()

    def init_optimizer(self, kvstore='local', optimizer='sgd',
                       optimizer_params=(('learning_rate', 0.01),), force_init=False):
        if self.optimizer_initialized and not force_init:
            self.logger.warning('optimizer already initialized, ignoring.')
            return
        self._default.init_optimizer(kvstore, optimizer, optimizer_params, force_init=True)
        for mod in self._buckets.values():
            if mod is not self._default:
                mod.borrow_optimizer(self._default)
        self.optimizer_initialized = True

    def forward(self, data_batch, is_train=None):
        """Run the module of the batch's bucket_key (the default bucket's when it has none)."""
        key = getattr(data_batch, 'bucket_key', None)
        key = self._default_bucket_key if key is None else key
        self.switch_bucket(key, data_batch.provide_data or self._curr_module.data_shapes,
                           data_batch.provide_label)
        self._curr_module.forward(data_batch, is_train=is_train)

    def backward(self, out_grads=None):
        self._curr_module.backward(out_grads)

    def update(self):
        self._curr_module.update()

    def get_outputs(self, merge_multi_context=True):
        return self._curr_module.get_outputs(merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        return self._curr_module.get_input_grads(merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        self._curr_module.update_metric(eval_metric, labels, pre_sliced)

    def save_checkpoint(self, prefix, epoch, save_optimizer_states=False, remove_amp_cast=True):
        """The default bucket's symbol, the shared parameters (and optimizer states)."""
        self._default.save_checkpoint(prefix, epoch, save_optimizer_states, remove_amp_cast)

    @staticmethod
    def load(prefix, epoch, sym_gen=None, default_bucket_key=None, load_optimizer_states=False,
             **kwargs):
        """A BucketingModule whose parameters come from a checkpoint (bind it to use them)."""
        from .model import load_checkpoint
        _, arg, aux = load_checkpoint(prefix, epoch)
        mod = BucketingModule(sym_gen, default_bucket_key, **kwargs)
        mod.set_params(arg, aux)
        if load_optimizer_states:
            mod._default._preload_opt_states = f'{prefix}-{int(epoch):04d}.states'
        return mod
