"""Trainer: applies an optimizer to a set of parameters after backward()."""
from .. import optimizer as opt
from ..base import MXNetError
from .parameter import Parameter, ParameterDict


class Trainer:
    """`Trainer(params, 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})`; call `step(batch_size)`
    after `loss.backward()`. Gradients are rescaled by 1/batch_size; frozen parameters
    (grad_req='null') are skipped."""

    def __init__(self, params, optimizer, optimizer_params=None, kvstore=None, compression_params=None,
                 update_on_kvstore=None):
        if isinstance(params, (dict, ParameterDict)):
            params = list(params.values())
        params = list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise MXNetError(f'Trainer: expected Parameters, got {type(p).__name__}')
        self._params = params
        optimizer_params = dict(optimizer_params or {})
        if 'learning_rage' in optimizer_params:
            raise MXNetError("Trainer: unknown optimizer argument 'learning_rage' (did you mean 'learning_rate'?)")
        self._scale = float(optimizer_params.pop('rescale_grad', 1.0))
        if isinstance(optimizer, opt.Optimizer):
            self._optimizer = optimizer
        else:
            self._optimizer = opt.create(optimizer, rescale_grad=self._scale, **optimizer_params)
        self._optimizer.param_dict = {i: p for i, p in enumerate(params)}
        self._updater = opt.get_updater(self._optimizer)

    @property
    def optimizer(self):
        return self._optimizer

    @property
    def learning_rate(self):
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr):
        self._optimizer.set_learning_rate(lr)

    def step(self, batch_size, ignore_stale_grad=False):
        """Rescale gradients by 1/batch_size and update every trainable parameter."""
        self._optimizer.rescale_grad = self._scale / batch_size
        self.allreduce_grads()
        self.update(batch_size, ignore_stale_grad)

    def allreduce_grads(self):
        """Sum gradients across devices (each device then holds the total)."""
        for p in self._trainable():
            if len(p._data) == 1:
                continue
            grads = p.list_grad()
            if len(grads) > 1:
                total = grads[0].asnumpy().copy()
                for g in grads[1:]:
                    total += g.asnumpy()
                for g in grads:
                    g[:] = total

    def update(self, batch_size, ignore_stale_grad=False):
        self._optimizer.rescale_grad = self._scale / batch_size
        for i, p in enumerate(self._params):
            if p.grad_req == 'null':
                continue
            if p._data is None:
                if ignore_stale_grad:
                    continue
                raise MXNetError(f'Trainer: parameter {p.name} has not been initialized (was the model '
                                 'run on an input before step()?)')
            for w, g in zip(p.list_data(), p.list_grad()):
                self._updater(i, g, w)

    def _trainable(self):
        return [p for p in self._params if p.grad_req != 'null' and p._data is not None]

    def save_states(self, fname):
        """Write the optimizer's states and settings (learning rate, update counts, so that
        Adam's bias correction resumes where it stopped) to `fname` (no pickle)."""
        from ..serialization import atomic_write
        try:
            states = self._updater.get_states(dump_optimizer=True)
        except MXNetError:   # an unregistered custom optimizer: its settings cannot be named
            states = self._updater.get_states(dump_optimizer=False)
        atomic_write(fname, lambda f: f.write(states))

    def load_states(self, fname):
        try:
            with open(fname, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise MXNetError(f'Trainer.load_states: cannot read {fname}: {e}') from None
        self._updater.set_states(data)
        if self._updater.optimizer is not self._optimizer:   # the file held the optimizer too
            self._optimizer = self._updater.optimizer
            self._optimizer.param_dict = {i: p for i, p in enumerate(self._params)}
