"""Activation layers."""
from ..block import HybridBlock


def fwd(F):
    """MXNet's node name of a layer's main op, 'fwd' under the layer's prefix ('dense0_fwd'),
    given when composing an mx.sym graph (NDArray calls and traces take no name)."""
    from ... import symbol
    return {'name': 'fwd'} if F is symbol else {}


class Activation(HybridBlock):
    """relu, sigmoid, tanh, softrelu or softsign (named after it, as MXNet: 'relu0')."""

    def __init__(self, activation, prefix=None, params=None):
        self._act_type = activation
        super().__init__(prefix, params)

    @property
    def _alias(self):
        return self._act_type

    def hybrid_forward(self, F, x):
        return F.Activation(x, act_type=self._act_type, **fwd(F))

    def _repr_args(self):
        return self._act_type


class LeakyReLU(HybridBlock):
    def __init__(self, alpha, prefix=None, params=None):
        super().__init__(prefix, params)
        self._alpha = alpha

    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='leaky', slope=self._alpha, **fwd(F))


class PReLU(HybridBlock):
    """Leaky ReLU with a learned slope per channel (`in_channels`, 1 = shared)."""

    def __init__(self, alpha_initializer=None, in_channels=1, prefix=None, params=None):
        super().__init__(prefix, params)
        from ... import initializer
        with self.name_scope():
            self.alpha = self.params.get('alpha', shape=(in_channels,),
                                         init=alpha_initializer or initializer.Constant(0.25))

    def hybrid_forward(self, F, x, alpha):
        return F.LeakyReLU(x, alpha, act_type='prelu', **fwd(F))


class ELU(HybridBlock):
    def __init__(self, alpha=1.0, prefix=None, params=None):
        super().__init__(prefix, params)
        self._alpha = alpha

    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='elu', slope=self._alpha, **fwd(F))


class SELU(HybridBlock):
    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='selu', **fwd(F))


class GELU(HybridBlock):
    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='gelu', **fwd(F))


class Swish(HybridBlock):
    """x * sigmoid(beta * x)."""

    def __init__(self, beta=1.0, prefix=None, params=None):
        super().__init__(prefix, params)
        self._beta = beta

    def hybrid_forward(self, F, x):
        return x * F.sigmoid(x * self._beta)
