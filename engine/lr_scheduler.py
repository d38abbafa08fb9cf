"""Learning-rate schedules (``mx.lr_scheduler``): callables ``num_update -> lr``.

``num_update`` is the optimizer's update count, which MXNet increments *before* it reads the rate,
so the first training step asks for ``scheduler(1)``. The MXNet 1.x schedulers (Factor,
MultiFactor, Poly, Cosine) keep MXNet's semantics, including that Factor/MultiFactor/Poly/Cosine
store the current rate in ``base_lr`` as they go (query them with non-decreasing ``num_update``).
:class:`OneCycleScheduler` follows PyTorch's ``OneCycleLR`` step for step and can also cycle the
optimizer's momentum (SGD/NAG momentum, Adam beta1).
"""
import logging
import math

from .base import MXNetError

__all__ = ['LRScheduler', 'FactorScheduler', 'MultiFactorScheduler', 'PolyScheduler',
           'CosineScheduler', 'OneCycleScheduler']


def _check(cond, msg):
    if not cond:
        raise MXNetError(msg)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class LRScheduler:
    """Base class: a warmup phase of ``warmup_steps`` updates that goes from ``warmup_begin_lr``
    to ``base_lr`` ('linear') or stays at ``warmup_begin_lr`` ('constant')."""

    def __init__(self, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear'):
        name = type(self).__name__
        _check(_is_int(warmup_steps), f'{name}: warmup_steps must be an int, got {warmup_steps!r}')
        _check(warmup_steps >= 0, f'{name}: warmup_steps must be >= 0, got {warmup_steps}')
        _check(warmup_begin_lr <= base_lr,
               f'{name}: warmup_begin_lr ({warmup_begin_lr}) must not exceed base_lr ({base_lr})')
        _check(warmup_mode in ('linear', 'constant'),
               f"{name}: warmup_mode must be 'linear' or 'constant', got {warmup_mode!r}")
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.warmup_final_lr = base_lr
        self.warmup_begin_lr = warmup_begin_lr
        self.warmup_mode = warmup_mode

    def get_warmup_lr(self, num_update):
        _check(num_update < self.warmup_steps,
               f'get_warmup_lr: update {num_update} is past the {self.warmup_steps} warmup steps')
        if self.warmup_mode == 'linear':
            frac = float(num_update) / float(self.warmup_steps)
            return self.warmup_begin_lr + (self.warmup_final_lr - self.warmup_begin_lr) * frac
        return self.warmup_begin_lr

    def __call__(self, num_update):
        raise NotImplementedError(f'{type(self).__name__} must implement __call__(num_update)')

    def __repr__(self):
        return f'{type(self).__name__}(base_lr={self.base_lr})'


class FactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` every ``step`` updates (after update ``step``, ``2*step``,
    ...), never going below ``stop_factor_lr``."""

    def __init__(self, step, factor=1, stop_factor_lr=1e-8, base_lr=0.01, warmup_steps=0,
                 warmup_begin_lr=0, warmup_mode='linear'):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check(_is_int(step) and step >= 1, f'FactorScheduler: step must be an int >= 1, got {step!r}')
        _check(factor <= 1.0, f'FactorScheduler: factor must be <= 1 to reduce the rate, got {factor}')
        self.step = step
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.count = 0

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        # a loop, not an if, so resuming at a large num_update applies every missed decay
        while num_update > self.count + self.step:
            self.count += self.step
            self.base_lr *= self.factor
            if self.base_lr < self.stop_factor_lr:
                self.base_lr = self.stop_factor_lr
                logging.info('Update[%d]: now learning rate arrived at %0.5e, will not change in the '
                             'future', num_update, self.base_lr)
            else:
                logging.info('Update[%d]: Change learning rate to %0.5e', num_update, self.base_lr)
        return self.base_lr


class MultiFactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` after each update count in the increasing list ``step``."""

    def __init__(self, step, factor=1, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0,
                 warmup_mode='linear'):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check(isinstance(step, (list, tuple)) and len(step) >= 1,
               f'MultiFactorScheduler: step must be a non-empty list of update counts, got {step!r}')
        for i, s in enumerate(step):
            _check(_is_int(s) and s >= 1, f'MultiFactorScheduler: steps must be ints >= 1, got {s!r}')
            _check(i == 0 or s > step[i - 1],
                   f'MultiFactorScheduler: steps must be strictly increasing, got {list(step)}')
        _check(factor <= 1.0, f'MultiFactorScheduler: factor must be <= 1, got {factor}')
        self.step = list(step)
        self.cur_step_ind = 0
        self.factor = factor
        self.count = 0

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while self.cur_step_ind < len(self.step) and num_update > self.step[self.cur_step_ind]:
            self.count = self.step[self.cur_step_ind]
            self.cur_step_ind += 1
            self.base_lr *= self.factor
            logging.info('Update[%d]: Change learning rate to %0.5e', num_update, self.base_lr)
        return self.base_lr


class PolyScheduler(LRScheduler):
    """Polynomial decay from ``base_lr`` to ``final_lr`` over ``max_update`` updates:
    ``final_lr + (base_lr - final_lr) * (1 - (t - warmup)/(max_update - warmup))**pwr``."""

    def __init__(self, max_update, base_lr=0.01, pwr=2, final_lr=0, warmup_steps=0,
                 warmup_begin_lr=0, warmup_mode='linear'):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check(_is_int(max_update) and max_update >= 1,
               f'PolyScheduler: max_update must be an int >= 1, got {max_update!r}')
        _check(max_update > warmup_steps,
               f'PolyScheduler: max_update ({max_update}) must exceed warmup_steps ({warmup_steps})')
        self.power = pwr
        self.base_lr_orig = self.base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            frac = float(num_update - self.warmup_steps) / float(self.max_steps)
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) * pow(1 - frac, self.power)
        return self.base_lr


class CosineScheduler(LRScheduler):
    """Cosine decay from ``base_lr`` to ``final_lr`` over ``max_update`` updates (after warmup):
    ``final_lr + (base_lr - final_lr) * (1 + cos(pi * (t - warmup)/(max_update - warmup))) / 2``;
    ``final_lr`` from ``max_update`` on."""

    def __init__(self, max_update, base_lr=0.01, final_lr=0, warmup_steps=0, warmup_begin_lr=0,
                 warmup_mode='linear'):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check(_is_int(max_update) and max_update >= 1,
               f'CosineScheduler: max_update must be an int >= 1, got {max_update!r}')
        _check(max_update > warmup_steps,
               f'CosineScheduler: max_update ({max_update}) must exceed warmup_steps ({warmup_steps})')
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            frac = (num_update - self.warmup_steps) / self.max_steps
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) * \
                (1 + math.cos(math.pi * frac)) / 2
        return self.base_lr


class OneCycleScheduler(LRScheduler):
    """The one-cycle policy (Smith & Topin), step for step like PyTorch's ``OneCycleLR``.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``max_update`` updates, then anneals to ``max_lr / (div_factor * final_div_factor)`` at update
    ``max_update`` (``three_phase``: back to the initial rate at ``2 * pct_start``, then down to the
    minimum). ``anneal_strategy`` is 'cos' or 'linear'. Update ``n`` (1-based, as the optimizer
    counts) is PyTorch's step ``n - 1``, so update 1 uses the initial rate, update
    ``pct_start * max_update`` the peak and update ``max_update`` the final rate; later updates
    keep the final rate.

    With ``cycle_momentum`` the momentum moves inversely, between ``max_momentum`` (at the low
    rates) and ``base_momentum`` (at the peak); ``momentum(num_update)`` returns it, and the
    optimizers use it as SGD/NAG momentum or Adam's beta1, as PyTorch does.
    ``base_lr`` is an alias of ``max_lr`` (so an optimizer's ``learning_rate`` sets the peak).
    """

    def __init__(self, max_update, max_lr=0.01, pct_start=0.3, div_factor=25.0,
                 final_div_factor=1e4, anneal_strategy='cos', three_phase=False,
                 cycle_momentum=True, base_momentum=0.85, max_momentum=0.95):
        _check(_is_int(max_update) and max_update >= 1,
               f'OneCycleScheduler: max_update must be an int >= 1, got {max_update!r}')
        _check(0.0 <= pct_start <= 1.0, f'OneCycleScheduler: pct_start must be in [0, 1], got {pct_start}')
        _check(anneal_strategy in ('cos', 'linear'),
               f"OneCycleScheduler: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        _check(div_factor > 0 and final_div_factor > 0,
               'OneCycleScheduler: div_factor and final_div_factor must be positive')
        super().__init__(base_lr=max_lr)
        self.max_update = max_update
        self.max_lr = max_lr
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.anneal_strategy = anneal_strategy
        self.three_phase = three_phase
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum

    base_lr = property(lambda self: self.max_lr,
                       lambda self, v: setattr(self, 'max_lr', v))

    @property
    def initial_lr(self):
        return self.max_lr / self.div_factor

    @property
    def min_lr(self):
        return self.initial_lr / self.final_div_factor

    def _phases(self):
        """(end step, start lr, end lr, start momentum, end momentum) per phase, in 0-based steps."""
        up = float(self.pct_start * self.max_update) - 1
        last = self.max_update - 1
        lo, hi, end = self.initial_lr, self.max_lr, self.min_lr
        m_hi, m_lo = self.max_momentum, self.base_momentum
        if self.three_phase:
            return [(up, lo, hi, m_hi, m_lo), (2 * up, hi, lo, m_lo, m_hi),
                    (last, lo, end, m_hi, m_hi)]
        return [(up, lo, hi, m_hi, m_lo), (last, hi, end, m_lo, m_hi)]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == 'cos':
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _at(self, num_update, which):
        step = min(max(num_update - 1, 0), self.max_update - 1)
        phases = self._phases()
        start_step = 0.0
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                span = end_step - start_step
                pct = (step - start_step) / span if span > 0 else 1.0
                a, b = (lr0, lr1) if which == 'lr' else (m0, m1)
                return self._anneal(a, b, min(max(pct, 0.0), 1.0))
            start_step = end_step

    def __call__(self, num_update):
        return self._at(num_update, 'lr')

    def momentum(self, num_update):
        """The momentum (or Adam beta1) for update ``num_update``; None without cycle_momentum."""
        return self._at(num_update, 'momentum') if self.cycle_momentum else None

    def __repr__(self):
        return (f'OneCycleScheduler(max_update={self.max_update}, max_lr={self.max_lr}, '
                f'pct_start={self.pct_start}, anneal_strategy={self.anneal_strategy!r})')
