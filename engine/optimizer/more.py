"""The less common optimizers of MXNet 1.x: Signum, FTML, Ftrl, LAMB, LARS, SGLD, AdaDelta,
Adamax and Nadam, registered in the same registry as SGD/Adam.

Each step runs through the update ops of ``engine/ops/optim_updates.py`` (``signum_update``,
``ftml_update``, ...; the optimizers MXNet updates in Python use the same module's kernels), so
an optimizer and the ``nd.*_update`` op of the same name share one implementation. Defaults and
formulas are MXNet 1.9's, including its quirks (AdaDelta has no learning rate; LARS leaves
parameters named ``*gamma``/``*beta``/``*bias`` at the plain rate and decays only ``*_weight``).
"""
import math

from kernels.cpu import optim_more as _more

from .. import random as _random
from ..base import MXNetError
from ..ops import optim_updates as _u
from .optimizer import SGD, Optimizer, _number, _zeros_like, register

__all__ = ['Signum', 'FTML', 'Ftrl', 'LAMB', 'LARS', 'SGLD', 'AdaDelta', 'Adamax', 'Nadam', 'DCASGD',
           'ccSGD']


def _check_array(opt, what, x):
    from ..ndarray import NDArray
    if not isinstance(x, NDArray):
        raise MXNetError(f'{type(opt).__name__}.update: {what} must be an NDArray, got '
                         f'{type(x).__name__}')


@register
class Signum(Optimizer):
    """Signum (Bernstein et al. 2018): ``mom = momentum*mom - (1-momentum)*(clip(rescale*grad) +
    wd*w); w = (1 - lr*wd_lh)*w + lr*sign(mom)``; with momentum 0, signSGD
    ``w = (1 - lr*wd)*w - lr*sign(grad)``."""
    _extra_hyper = ('momentum', 'wd_lh')

    def __init__(self, learning_rate=0.01, momentum=0.9, wd_lh=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _number(momentum, 'momentum', self)
        self.wd_lh = _number(wd_lh, 'wd_lh', self)

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        if state is None:
            _u.signsgd_update(weight, grad, lr, wd, self.rescale_grad, self._clip(), out=weight)
        else:
            _u.signum_update(weight, grad, state, lr, self.momentum, wd, self.rescale_grad,
                             self._clip(), self.wd_lh, out=weight)


@register
class FTML(Optimizer):
    """FTML, Follow the Moving Leader (Zheng & Kwok 2017); see ``nd.ftml_update``."""
    _extra_hyper = ('beta1', 'beta2', 'epsilon')

    def __init__(self, beta1=0.6, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.beta1 = _number(beta1, 'beta1', self)
        self.beta2 = _number(beta2, 'beta2', self)
        self.epsilon = _number(epsilon, 'epsilon', self)

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight), _zeros_like(weight))  # d, v, z

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        d, v, z = state
        _u.ftml_update(weight, grad, d, v, z, lr, self.beta1, self.beta2, self.epsilon,
                       t=self._index_update_count[index], wd=wd, rescale_grad=self.rescale_grad,
                       clip_grad=self._clip(), out=weight)


@register
class Ftrl(Optimizer):
    """FTRL-proximal (McMahan et al. 2013), the sparse-feature optimizer; see
    ``nd.ftrl_update``. Default learning rate 0.1."""
    _extra_hyper = ('lamda1', 'beta')

    def __init__(self, lamda1=0.01, learning_rate=0.1, beta=1, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1 = _number(lamda1, 'lamda1', self)
        self.beta = _number(beta, 'beta', self)

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))  # z, n

    def _lazy_sparse(self, index, weight):
        # MXNet's sparse ftrl_update (row_sparse weight and gradient) updates the gradient's rows
        # only; a dense weight takes the standard update (where rows without gradient move too)
        return weight.stype == 'row_sparse'

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        z, n = state
        _u.ftrl_update(weight, grad, z, n, lr, self.lamda1, self.beta, wd, self.rescale_grad,
                       self._clip(), out=weight)


@register
class LAMB(Optimizer):
    """LAMB (You et al. 2019): Adam's direction plus decay, ``g = m^/(sqrt(v^) + eps) + wd*w``
    (``nd.lamb_update_phase1``), scaled by the trust ratio ``||w||/||g||``
    (``nd.lamb_update_phase2``; ``lower_bound``/``upper_bound`` clamp ``||w||``)."""
    default_lr = 0.001
    _extra_hyper = ('beta1', 'beta2', 'epsilon', 'lower_bound', 'upper_bound', 'bias_correction')

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-6,
                 lower_bound=None, upper_bound=None, bias_correction=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = _number(beta1, 'beta1', self)
        self.beta2 = _number(beta2, 'beta2', self)
        self.epsilon = _number(epsilon, 'epsilon', self)
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = bool(bias_correction)

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))  # mean, var

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        mean, var = state
        g = _u.lamb_update_phase1(weight, grad, mean, var, self.beta1, self.beta2, self.epsilon,
                                  t=self._index_update_count[index],
                                  bias_correction=self.bias_correction, wd=wd,
                                  rescale_grad=self.rescale_grad, clip_gradient=self._clip())
        _u.lamb_update_phase2(weight, g, weight.norm().reshape((1,)), g.norm().reshape((1,)), lr,
                              lower_bound=self.lower_bound or -1.0,
                              upper_bound=self.upper_bound or -1.0, out=weight)


@register
class LARS(Optimizer):
    """LARS (You et al. 2017): SGD (with momentum) whose rate is scaled per layer by
    ``eta*||w|| / (||rescale*grad|| + wd*||w|| + eps)`` (1 when a norm is 0); parameters named
    ``*gamma``, ``*beta`` or ``*bias`` keep the plain rate. ``momentum_correction`` scales the
    momentum by ``lr_t/lr_{t-1}`` when a scheduler changes the rate (Goyal et al. 2017)."""
    _extra_hyper = ('momentum', 'eta', 'eps', 'momentum_correction')
    _master_last = True

    def __init__(self, momentum=0.0, lazy_update=True, eta=0.001, eps=0, momentum_correction=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.momentum = _number(momentum, 'momentum', self)
        self.lazy_update = lazy_update
        self.eta = _number(eta, 'eta', self)
        self.eps = _number(eps, 'eps', self)
        self.momentum_correction = bool(momentum_correction)
        self.last_lr = None
        self.cur_lr = None

    def set_wd_mult(self, args_wd_mult):
        # LARS decays only parameters whose name ends with '_weight' (MXNet's rule for LARS)
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not str(n).endswith('_weight')}
        self.wd_mult.update(args_wd_mult)

    def _get_lrs(self, indices):
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        self.last_lr = lr if self.cur_lr is None else self.cur_lr
        self.cur_lr = lr
        return [lr * self._mult(index, self.lr_mult, 'lr_mult') for index in indices]

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def _update_one(self, index, weight, grad, state):
        _check_array(self, 'weight', weight)
        _check_array(self, 'grad', grad)
        lr, wd = self._get_lr(index), self._get_wd(index)
        name = str(self.idx2name.get(index, index))
        if not name.endswith(('gamma', 'beta', 'bias')):
            w_norm = float(weight.astype('float32').norm().asscalar())
            g_norm = float((grad.astype('float32') * self.rescale_grad).norm().asscalar())
            if w_norm > 0.0 and g_norm > 0.0:
                lr *= self.eta * w_norm / (g_norm + wd * w_norm + self.eps)
        if state is None:
            _u.sgd_update(weight, grad, lr, wd, self.rescale_grad, self._clip(), out=weight)
        else:
            momentum = self.momentum
            if self.momentum_correction and self.last_lr:
                momentum *= self.cur_lr / self.last_lr
            _u.sgd_mom_update(weight, grad, state, lr, momentum, wd, self.rescale_grad,
                              self._clip(), out=weight)


@register
class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011):
    ``w += -lr/2*(clip(rescale*grad) + wd*w) + N(0, sqrt(lr))`` (noise from ``mx.random``'s
    generator of the weight's context, so ``mx.random.seed`` makes runs repeatable)."""

    def _update_one(self, index, weight, grad, state):
        _check_array(self, 'weight', weight)
        _check_array(self, 'grad', grad)
        lr, wd = self._get_lr(index), self._get_wd(index)
        noise = _random.normal(0.0, math.sqrt(lr), shape=weight.shape, dtype=weight.dtype,
                               ctx=weight.context)
        # sgd_update with rate lr/2 is exactly the drift term
        _u.sgd_update(weight, grad, lr / 2, wd, self.rescale_grad, self._clip(), out=weight)
        weight._data += noise._data


@register
class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012) as MXNet 1.x: no learning rate; ``wd`` decays the weight
    directly (``w -= delta + wd*w``); ``rho`` decays both accumulators."""
    _extra_hyper = ('rho', 'epsilon')

    def __init__(self, rho=0.90, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho = _number(rho, 'rho', self)
        self.epsilon = _number(epsilon, 'epsilon', self)

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))  # accumulated g^2, accumulated delta^2

    def _update_one(self, index, weight, grad, state):
        wd = self._get_wd(index)
        _u._update('AdaDelta.update', _more.adadelta_update, ('weight', 'grad', 'acc_g', 'acc_delta'),
                   (weight, grad) + tuple(state),
                   (self.rho, self.epsilon, wd, self.rescale_grad, self._clip()), weight)


@register
class Adamax(Optimizer):
    """AdaMax (Kingma & Ba 2015, section 7): ``g = clip(rescale*grad + wd*w);
    m = b1*m + (1-b1)*g; u = max(b2*u, |g|); w -= lr/(1-b1^t) * m/u``."""
    _extra_hyper = ('beta1', 'beta2')

    def __init__(self, learning_rate=0.002, beta1=0.9, beta2=0.999, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = _number(beta1, 'beta1', self)
        self.beta2 = _number(beta2, 'beta2', self)

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))  # m, u

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        lr /= 1.0 - self.beta1 ** self._index_update_count[index]
        _u._update('Adamax.update', _more.adamax_update, ('weight', 'grad', 'm', 'u'),
                   (weight, grad) + tuple(state),
                   (lr, self.beta1, self.beta2, wd, self.rescale_grad, self._clip()), weight)


@register
class Nadam(Optimizer):
    """Nadam, Adam with Nesterov momentum (Dozat 2016), with MXNet's momentum schedule
    ``mom_t = beta1*(1 - 0.5*0.96^(t*schedule_decay))`` (its running product is kept per
    optimizer, as in MXNet)."""
    default_lr = 0.001
    _extra_hyper = ('beta1', 'beta2', 'epsilon', 'schedule_decay')

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 schedule_decay=0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = _number(beta1, 'beta1', self)
        self.beta2 = _number(beta2, 'beta2', self)
        self.epsilon = _number(epsilon, 'epsilon', self)
        self.schedule_decay = _number(schedule_decay, 'schedule_decay', self)
        self.m_schedule = 1.0

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))  # mean, variance

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        t = self._index_update_count[index]
        mom_t = self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        mom_t1 = self.beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        self.m_schedule *= mom_t
        _u._update('Nadam.update', _more.nadam_update, ('weight', 'grad', 'mean', 'var'),
                   (weight, grad) + tuple(state),
                   (lr, self.beta1, self.beta2, self.epsilon, wd, self.rescale_grad, self._clip(),
                    mom_t, mom_t1, self.m_schedule, self.m_schedule * mom_t1, t), weight)


@register
class DCASGD(Optimizer):
    """Delay-compensated asynchronous SGD (Zheng et al. 2017): the gradient is corrected by
    ``lamda*g^2*(w - w_prev)`` for the weight's change since the previous step; the state is
    (momentum or None, the previous weight)."""
    _extra_hyper = ('momentum', 'lamda')

    def __init__(self, momentum=0.0, lamda=0.04, **kwargs):
        super().__init__(**kwargs)
        self.momentum = _number(momentum, 'momentum', self)
        self.lamda = _number(lamda, 'lamda', self)

    def create_state(self, index, weight):
        _check_array(self, 'weight', weight)
        mom = None if self.momentum == 0.0 else _zeros_like(weight)
        return (mom, weight.copy())

    def _update_one(self, index, weight, grad, state):
        lr, wd = self._get_lr(index), self._get_wd(index)
        mom, prev = state
        if mom is None:
            _u._update('DCASGD.update', _more.dcasgd_update, ('weight', 'grad', 'previous weight'),
                       (weight, grad, prev), (lr, self.lamda, wd, self.rescale_grad, self._clip()), weight)
        else:
            _u._update('DCASGD.update', _more.dcasgd_mom_update,
                       ('weight', 'grad', 'previous weight', 'mom'), (weight, grad, prev, mom),
                       (lr, self.momentum, self.lamda, wd, self.rescale_grad, self._clip()), weight)


@register
class ccSGD(SGD):   # noqa: N801  (MXNet's name)
    """MXNet's deprecated alias of SGD."""
