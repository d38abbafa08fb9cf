"""`mx.amp`: automatic mixed precision, as MXNet 1.x's `mx.contrib.amp` / `mx.amp`.

`amp.init()` makes every op call (eager or traced for hybridize) cast its float inputs by op
lists: the matrix ops run in float16, numerically delicate ops (softmax, norms, exp/log,
reductions) in float32, and binary ops in the widest dtype among their inputs. Parameters stay
float32 (the master weights); the casts are ops, so gradients flow back through them.
`amp.init_trainer(trainer)` adds dynamic loss scaling: `with amp.scale_loss(loss, trainer) as l:
l.backward()` multiplies the loss, and `trainer.step` divides the gradients back and skips steps
whose gradients overflowed, halving the scale (it doubles again after 2000 clean steps)."""
import contextlib

import numpy as np

from . import imperative
from .base import MXNetError

# ops that gain from low precision (they accumulate in float32 inside the kernels)
TARGET_DTYPE_OPS = ('conv2d', 'conv2d_transpose', 'fully_connected', 'dot', 'batch_dot', 'rnn_layer')
# ops whose float16 results lose too much: their float16 inputs are widened
FP32_OPS = ('softmax', 'log_softmax', 'softmax_cross_entropy', 'softmax_output', 'batch_norm',
            'layer_norm', 'exp', 'expm1', 'log', 'log1p', 'sum', 'mean', 'prod', 'norm', 'power',
            '_power_scalar', '_rpower_scalar', 'sqrt', 'rsqrt', 'erf', 'gelu', 'softplus', 'selu', 'elu')
# ops computing in one dtype from several float inputs: all go to the widest
WIDEST_TYPE_OPS = ('add', 'subtract', 'multiply', 'divide', 'maximum', 'minimum', 'modulo', 'where',
                   'concat', 'equal', 'not_equal', 'greater', 'greater_equal', 'lesser', 'lesser_equal')

_policy = None


class _Policy:
    def __init__(self, target_dtype, target_ops, fp32_ops, widest_ops):
        from .ops import elemwise
        self.target = np.dtype(target_dtype)
        self.rules = {}
        for names, rule in ((widest_ops, 'widest'), (fp32_ops, 'fp32'), (target_ops, 'target')):
            self.rules.update(dict.fromkeys(names, rule))
        self._cast = elemwise._cast_op

    def __call__(self, op, inputs):
        rule = self.rules.get(op.name)
        if rule is None:
            return inputs
        floats = [np.dtype(x.dtype) for x in inputs if np.dtype(x.dtype).kind == 'f']
        if not floats:
            return inputs
        if rule == 'target':
            to = self.target
        elif rule == 'fp32':
            to = np.dtype(np.float32) if any(d == self.target for d in floats) else None
        else:
            to = max(floats, key=lambda d: d.itemsize)
        if to is None:
            return inputs
        # index/label inputs keep their dtype (imperative's list of them, per op)
        skip = imperative._INDEX_INPUTS.get(op.name, ())
        return [x if (skip is None and i > 0) or (skip and i in skip) or np.dtype(x.dtype).kind != 'f'
                or np.dtype(x.dtype) == to else imperative.invoke(self._cast, [x], {'dtype': to.name})
                for i, x in enumerate(inputs)]


def init(target_dtype='float16', target_precision_ops=None, conditional_fp32_ops=None, fp32_ops=None):
    """Turn mixed precision on for every later op call in this process (call it before building
    and hybridizing the model). The op lists default to the module's; names are the engine's
    op names (`engine.ops.REGISTRY`)."""
    global _policy
    if not _is_float16(target_dtype):
        raise MXNetError(f'amp.init: target_dtype must be float16, got {target_dtype!r} (NumPy and '
                         'the kernels have no bfloat16)')
    if conditional_fp32_ops:
        raise MXNetError('amp.init: conditional_fp32_ops is not supported; list such ops in fp32_ops')
    from .ops.registry import REGISTRY
    lists = (tuple(target_precision_ops or TARGET_DTYPE_OPS), tuple(fp32_ops or FP32_OPS))
    unknown = sorted({n for names in lists for n in names if n not in REGISTRY})
    if unknown:
        raise MXNetError(f'amp.init: unknown op names {unknown}')
    _policy = _Policy(target_dtype, lists[0], lists[1], WIDEST_TYPE_OPS)
    imperative.set_cast_hook(_policy)


def _is_float16(dtype):
    try:
        return np.dtype(dtype) == np.float16
    except TypeError:           # e.g. 'bfloat16', which NumPy does not know
        return False


def shutdown():
    """Turn mixed precision off again (ops run in their inputs' dtypes)."""
    global _policy
    _policy = None
    imperative.set_cast_hook(None)


def is_enabled():
    return _policy is not None


class LossScaler:
    """Dynamic loss scale: halve on overflow (and skip that step), double after `window` steps
    without one, between 1 and `max_scale`."""

    def __init__(self, init_scale=2.0 ** 16, window=2000, max_scale=2.0 ** 24):
        self.loss_scale, self.window, self.max_scale = float(init_scale), int(window), float(max_scale)
        self._clean = 0

        self._unscaled = False     # amp.unscale already divided this step's gradients

    def step_scale(self):
        """What this step's gradients are to be divided by (1 once `unscale` did it)."""
        scale = 1.0 if self._unscaled else self.loss_scale
        self._unscaled = False
        return scale

    def skip_step(self, params):
        """True (and the scale halved) when a gradient holds inf or nan."""
        grads = [g for p in params if p.grad_req != 'null' and p._data is not None for g in p.list_grad()]
        finite = all(bool(g.context.xp.isfinite(g._data).all()) for g in grads)
        if not finite:
            self.loss_scale = max(1.0, self.loss_scale / 2)
            self._clean = 0
            return True
        self._clean += 1
        if self._clean >= self.window:
            self.loss_scale = min(self.max_scale, self.loss_scale * 2)
            self._clean = 0
        return False


def init_trainer(trainer, loss_scaler=None):
    """Give `trainer` dynamic loss scaling (for `scale_loss`)."""
    if getattr(trainer, '_amp_loss_scaler', None) is not None:
        raise MXNetError('amp.init_trainer: this trainer already has a loss scaler')
    trainer._amp_loss_scaler = loss_scaler or LossScaler()
    return trainer


@contextlib.contextmanager
def scale_loss(loss, trainer):
    """Yields the loss (or list of losses) multiplied by the trainer's current loss scale."""
    scaler = getattr(trainer, '_amp_loss_scaler', None)
    if scaler is None:
        raise MXNetError('amp.scale_loss: call amp.init_trainer(trainer) first')
    scale = scaler.loss_scale
    from . import autograd
    with autograd.record():         # recorded even when called after the record() block
        scaled = [l * scale for l in loss] if isinstance(loss, (list, tuple)) else loss * scale
    yield scaled


def unscale(trainer):
    """Divide the gradients by the loss scale now (e.g. before clipping them by norm); the next
    `trainer.step` then applies them unscaled."""
    scaler = getattr(trainer, '_amp_loss_scaler', None)
    if scaler is None:
        raise MXNetError('amp.unscale: call amp.init_trainer(trainer) first')
    if not scaler._unscaled:
        for p in trainer._params:
            if p.grad_req != 'null' and p._data is not None:
                for g in p.list_grad():
                    g._data *= g._data.dtype.type(1.0 / scaler.loss_scale)
    scaler._unscaled = True
