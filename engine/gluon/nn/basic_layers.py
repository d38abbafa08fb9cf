"""Containers and basic layers: Sequential, Dense, Dropout, norms, Embedding, Flatten, Lambda."""
import warnings

import numpy as np

from ... import autograd, nd
from ...base import MXNetError
from ..block import Block, HybridBlock
from .activations import Activation, fwd


def _mode_attrs(F):
    """The training mode a BatchNorm/Dropout layer gives its op: autograd's flag now, explicit in
    the call (a hybridized trace runs under its signature's mode, so the graph records it); none
    for an mx.sym graph, whose executor picks the mode when it runs (forward(is_train=...))."""
    from ... import symbol
    return {} if F is symbol else {'training': autograd.is_training()}


class Sequential(Block):
    """Stacks blocks; calling it runs them in order."""

    def add(self, *blocks):
        for b in blocks:
            self.register_child(b)
        return self

    def hybridize(self, active=True, **kwargs):
        if self._children and all(isinstance(c, HybridBlock) for c in self._children.values()):
            warnings.warn(f"All children of this Sequential layer '{self.prefix}' are HybridBlocks. "
                          'Consider using HybridSequential for the best performance.',
                          UserWarning, stacklevel=2)
        super().hybridize(active, **kwargs)

    def forward(self, x, *args):
        for block in self._children.values():
            x = block(x, *args)
            args = ()
        return x

    def __getitem__(self, key):
        layers = list(self._children.values())[key]
        if isinstance(key, slice):
            net = type(self)(prefix=self._prefix)
            with net.name_scope():
                net.add(*layers)
            return net
        return layers

    def __len__(self):
        return len(self._children)


class HybridSequential(HybridBlock):
    """Sequential for HybridBlocks: the whole stack can be hybridized into one graph."""
    add = Sequential.add
    __getitem__ = Sequential.__getitem__
    __len__ = Sequential.__len__

    def forward(self, x, *args):
        return Sequential.forward(self, x, *args)


class Dense(HybridBlock):
    """Fully connected layer: y = activation(x W^T + b). `in_units=0` infers it on first call."""

    def __init__(self, units, activation=None, use_bias=True, flatten=True, dtype='float32',
                 weight_initializer=None, bias_initializer='zeros', in_units=0, prefix=None, params=None):
        super().__init__(prefix, params)
        self._units, self._flatten, self._activation = units, flatten, activation
        with self.name_scope():
            self.weight = self.params.get('weight', shape=(units, in_units), dtype=dtype,
                                          init=weight_initializer, allow_deferred_init=True)
            self.bias = (self.params.get('bias', shape=(units,), dtype=dtype, init=bias_initializer,
                                         allow_deferred_init=True) if use_bias else None)
            # as MXNet: the activation is a child block named after it ('dense0_relu_fwd')
            self.act = Activation(activation, prefix=f'{activation}_') if activation is not None else None

    def infer_shape(self, x, *args):
        in_units = int(np.prod(x.shape[1:])) if self._flatten else x.shape[-1]
        self.weight.shape = (self._units, in_units)

    def hybrid_forward(self, F, x, weight, bias=None):
        y = F.FullyConnected(x, weight, bias, num_hidden=self._units, no_bias=bias is None,
                             flatten=self._flatten, **fwd(F))
        return y if self.act is None else self.act(y)

    def _repr_args(self):
        shape = self.weight.shape
        return f'{shape[1] if shape[1] else None} -> {shape[0]}, {self._activation or "linear"}'


class Dropout(HybridBlock):
    """Zeroes a fraction `rate` of the inputs while training (scaled by 1/(1-rate))."""

    def __init__(self, rate, axes=(), prefix=None, params=None):
        super().__init__(prefix, params)
        if not 0 <= rate < 1:
            raise MXNetError(f'Dropout: rate must be in [0, 1), got {rate}')
        self._rate, self._axes = rate, tuple(axes)

    def hybrid_forward(self, F, x):
        return F.Dropout(x, p=self._rate, axes=self._axes, **_mode_attrs(F), **fwd(F))

    def _repr_args(self):
        return f'p = {self._rate}'


class BatchNorm(HybridBlock):
    """Batch normalization over `axis` with running statistics for inference."""

    def __init__(self, axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True,
                 use_global_stats=False, beta_initializer='zeros', gamma_initializer='ones',
                 running_mean_initializer='zeros', running_variance_initializer='ones',
                 in_channels=0, prefix=None, params=None):
        super().__init__(prefix, params)
        self._kw = dict(axis=axis, momentum=momentum, eps=epsilon, fix_gamma=not scale,
                        use_global_stats=use_global_stats)
        self._axis = axis
        with self.name_scope():
            mk = self.params.get
            self.gamma = mk('gamma', grad_req='write' if scale else 'null', shape=(in_channels,),
                            init=gamma_initializer, allow_deferred_init=True, differentiable=scale)
            self.beta = mk('beta', grad_req='write' if center else 'null', shape=(in_channels,),
                           init=beta_initializer, allow_deferred_init=True, differentiable=center)
            self.running_mean = mk('running_mean', grad_req='null', shape=(in_channels,),
                                   init=running_mean_initializer, allow_deferred_init=True,
                                   differentiable=False)
            self.running_var = mk('running_var', grad_req='null', shape=(in_channels,),
                                  init=running_variance_initializer, allow_deferred_init=True,
                                  differentiable=False)

    def infer_shape(self, x, *args):
        if not -x.ndim <= self._axis < x.ndim:
            raise MXNetError(f'BatchNorm: axis {self._axis} is out of range for an input of shape '
                             f'{tuple(x.shape)}')
        c = x.shape[self._axis]
        for p in (self.gamma, self.beta, self.running_mean, self.running_var):
            p.shape = (c,)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return F.BatchNorm(x, gamma, beta, running_mean, running_var, **self._kw, **_mode_attrs(F),
                           **fwd(F))

    def _repr_args(self):
        return f'axis={self._axis}, eps={self._kw["eps"]}, momentum={self._kw["momentum"]}, in_channels={self.gamma.shape[0]}'


class LayerNorm(HybridBlock):
    """Normalizes each sample over `axis` (the last by default)."""

    def __init__(self, axis=-1, epsilon=1e-5, center=True, scale=True, beta_initializer='zeros',
                 gamma_initializer='ones', in_channels=0, prefix=None, params=None):
        super().__init__(prefix, params)
        self._axis, self._eps = axis, epsilon
        with self.name_scope():
            self.gamma = self.params.get('gamma', grad_req='write' if scale else 'null', shape=(in_channels,),
                                         init=gamma_initializer, allow_deferred_init=True)
            self.beta = self.params.get('beta', grad_req='write' if center else 'null', shape=(in_channels,),
                                        init=beta_initializer, allow_deferred_init=True)

    def infer_shape(self, x, *args):
        if not -x.ndim <= self._axis < x.ndim:
            raise MXNetError(f'LayerNorm: axis {self._axis} is out of range for an input of shape '
                             f'{tuple(x.shape)}')
        self.gamma.shape = self.beta.shape = (x.shape[self._axis],)

    def hybrid_forward(self, F, x, gamma, beta):
        return F.LayerNorm(x, gamma, beta, axis=self._axis, eps=self._eps)


class InstanceNorm(HybridBlock):
    """Normalizes each sample and channel over its spatial axes."""

    def __init__(self, axis=1, epsilon=1e-5, center=True, scale=False, beta_initializer='zeros',
                 gamma_initializer='ones', in_channels=0, prefix=None, params=None):
        super().__init__(prefix, params)
        self._axis, self._eps = axis, epsilon
        with self.name_scope():
            self.gamma = self.params.get('gamma', grad_req='write' if scale else 'null', shape=(in_channels,),
                                         init=gamma_initializer, allow_deferred_init=True)
            self.beta = self.params.get('beta', grad_req='write' if center else 'null', shape=(in_channels,),
                                        init=beta_initializer, allow_deferred_init=True)

    def infer_shape(self, x, *args):
        if not -x.ndim <= self._axis < x.ndim:
            raise MXNetError(f'InstanceNorm: axis {self._axis} is out of range for an input of shape '
                             f'{tuple(x.shape)}')
        self.gamma.shape = self.beta.shape = (x.shape[self._axis],)

    def hybrid_forward(self, F, x, gamma, beta):
        return F.InstanceNorm(x, gamma, beta, eps=self._eps)


class GroupNorm(HybridBlock):
    """Normalizes each sample over groups of channels: the input (N, C, ...) is viewed as
    (N, num_groups, C // num_groups * ...), normalized over the last axis, then scaled and
    shifted. As in MXNet 1.9, gamma and beta hold one value per group (shape (num_groups,))."""

    def __init__(self, num_groups=1, epsilon=1e-5, center=True, scale=True,
                 beta_initializer='zeros', gamma_initializer='ones', prefix=None, params=None):
        super().__init__(prefix, params)
        self._groups, self._eps = int(num_groups), epsilon
        with self.name_scope():
            self.gamma = self.params.get('gamma', grad_req='write' if scale else 'null',
                                         shape=(num_groups,), init=gamma_initializer)
            self.beta = self.params.get('beta', grad_req='write' if center else 'null',
                                        shape=(num_groups,), init=beta_initializer)

    def hybrid_forward(self, F, x, gamma, beta):
        if x.ndim < 2 or x.shape[1] % self._groups:
            raise MXNetError(f'GroupNorm: input of shape {tuple(x.shape)} needs at least 2 axes '
                             f'and channels (axis 1) divisible by num_groups={self._groups}')
        g = F.reshape(x, (x.shape[0], self._groups, -1))
        centered = g - F.mean(g, axis=2, keepdims=True)
        var = F.mean(centered * centered, axis=2, keepdims=True)
        y = centered / F.sqrt(var + self._eps)
        y = y * F.reshape(gamma, (1, self._groups, 1)) + F.reshape(beta, (1, self._groups, 1))
        return F.reshape(y, x.shape)

    def _repr_args(self):
        return f'num_groups={self._groups}, eps={self._eps}'


class Embedding(HybridBlock):
    """Maps integer indices to dense vectors of size `output_dim`. With `sparse_grad=True` the
    weight's gradient is a RowSparseNDArray of the rows used (grad_stype='row_sparse'); a
    hybridized block computes dense gradients, so training it hybridized is refused at backward."""

    def __init__(self, input_dim, output_dim, dtype='float32', weight_initializer=None,
                 sparse_grad=False, prefix=None, params=None):
        super().__init__(prefix, params)
        self._input_dim, self._output_dim = input_dim, output_dim
        self._sparse_grad = bool(sparse_grad)
        with self.name_scope():
            self.weight = self.params.get('weight', shape=(input_dim, output_dim), dtype=dtype,
                                          init=weight_initializer,
                                          grad_stype='row_sparse' if sparse_grad else 'default')

    def hybrid_forward(self, F, x, weight):
        return F.Embedding(x, weight, input_dim=self._input_dim, output_dim=self._output_dim,
                           sparse_grad=self._sparse_grad, **fwd(F))

    def _repr_args(self):
        return f'{self._input_dim} -> {self._output_dim}'


class Flatten(HybridBlock):
    """(N, a, b, ...) -> (N, a*b*...)."""

    def hybrid_forward(self, F, x):
        return F.flatten(x)


class Identity(HybridBlock):
    def hybrid_forward(self, F, x):
        return x


class Lambda(Block):
    """Wraps a function (or the name of an nd function) as a Block."""

    def __init__(self, function, prefix=None):
        super().__init__(prefix)
        self._fn = getattr(nd, function) if isinstance(function, str) else function

    def forward(self, *args):
        return self._fn(*args)


class HybridLambda(HybridBlock):
    """Wraps `function(F, x, ...)` (or the name of an op) as a HybridBlock."""

    def __init__(self, function, prefix=None):
        super().__init__(prefix)
        if isinstance(function, str):
            name = function
            self._fn = lambda F, *args: getattr(F, name)(*args)
        else:
            self._fn = function

    def hybrid_forward(self, F, x, *args):
        return self._fn(F, x, *args)
