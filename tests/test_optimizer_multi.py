"""Trainer.step's multi-tensor update (Optimizer.update_many, kernels/cpu/optim.py *_multi): the
same weights, bit for bit, as updating each parameter with its own kernel call."""
import gc
import weakref

import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine import optimizer as opt
from engine.gluon import nn
from engine.optimizer import optimizer as optmod
from kernels.cpu import optim as kcpu

CASES = [
    ('sgd', {'learning_rate': 0.1}, 'sgd_update_multi'),
    ('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3, 'clip_gradient': 0.05}, 'sgd_mom_update_multi'),
    ('nag', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3}, 'nag_mom_update_multi'),
    ('adam', {'learning_rate': 0.01, 'wd': 1e-3, 'clip_gradient': 0.1}, 'adam_update_multi'),
    ('adamw', {'learning_rate': 0.01}, 'adamw_update_multi'),
]


def _net(dtype, hybridize):
    mx.random.seed(3)
    np.random.seed(3)
    net = nn.HybridSequential()
    net.add(nn.Dense(7, activation='relu', in_units=6), nn.Dense(5, in_units=7))
    net.initialize(mx.init.Xavier())
    net.cast(dtype)
    params = list(net.collect_params().values())
    params[0].lr_mult, params[1].wd_mult = 0.5, 3.0     # per-parameter rates reach the kernel
    if hybridize:
        net.hybridize()
    return net, params


def _backward(net, dtype):
    rng = np.random.RandomState(0)
    x = nd.array(rng.randn(4, 6).astype(dtype))
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), nd.array([3, 1, 2, 0]))
    loss.backward()


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(kcpu, name)
    monkeypatch.setattr(kcpu, name, lambda *a: (calls.append(1), real(*a)))
    return calls


@pytest.mark.parametrize('hybridize', [False, True])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name, params, kernel', CASES)
def test_one_kernel_call_per_step_gives_the_per_parameter_result(monkeypatch, name, params, kernel,
                                                                 dtype, hybridize):
    calls = _count_calls(monkeypatch, kernel)
    net, ps = _net(dtype, hybridize)
    trainer = gluon.Trainer(net.collect_params(), name, dict(params))
    _, ref_ps = _net(dtype, hybridize)
    ref_opt = opt.create(name, rescale_grad=1 / 4, **params)
    ref_opt.param_dict = dict(enumerate(ref_ps))
    updater = opt.get_updater(ref_opt)
    for _ in range(4):
        _backward(net, dtype)
        for p, q in zip(ps, ref_ps):        # the same gradients (BLAS may round by alignment)
            q.grad()[:] = p.grad()
        trainer.step(4)
        for i, q in enumerate(ref_ps):      # the per-parameter path, one kernel call each
            updater(i, q.grad(), q.data())
    assert len(calls) == 4
    for p, q in zip(ps, ref_ps):
        assert p.data().dtype == np.dtype(dtype)
        np.testing.assert_array_equal(p.data().asnumpy(), q.data().asnumpy())


def test_a_subclass_that_overrides_the_update_runs_its_own_code(monkeypatch):
    seen = []

    class LoggedSGD(opt.SGD):
        def _update_one(self, index, weight, grad, state):
            seen.append(index)
            super()._update_one(index, weight, grad, state)

    calls = _count_calls(monkeypatch, 'sgd_mom_update_multi')
    net, ps = _net('float32', True)
    trainer = gluon.Trainer(net.collect_params(), LoggedSGD(learning_rate=0.1, momentum=0.9))
    _backward(net, 'float32')
    trainer.step(4)
    assert seen == list(range(len(ps))) and calls == []


def test_mixed_dtypes_and_float16_masters_take_the_per_parameter_path(monkeypatch):
    calls = _count_calls(monkeypatch, 'sgd_mom_update_multi')
    net, ps = _net('float32', False)
    ps[1].cast('float64')
    ps[1].grad()[:] = 1.0
    for p in ps:
        p.grad()[:] = 1.0
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    before = ps[1].data().asnumpy()
    trainer.step(1)
    np.testing.assert_allclose(ps[1].data().asnumpy(), before - 0.1)
    assert calls == []

    net16, _ = _net('float16', False)
    for p in net16.collect_params().values():
        p.grad()[:] = 1.0
    gluon.Trainer(net16.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9,
                                                  'multi_precision': True}).step(1)
    assert calls == []


def test_the_address_table_follows_new_arrays_and_keeps_none_alive():
    w = nd.array(np.ones(5, np.float32))
    g1, g2 = nd.array(np.full(5, 2, np.float32)), nd.array(np.full(5, 4, np.float32))
    sgd = opt.SGD(learning_rate=0.5)
    tables = {}
    sgd.update_many([0], [w], [g1], [None], tables)
    sgd.update_many([0], [w], [g2], [None], tables)     # a new gradient array: its address re-read
    np.testing.assert_array_equal(w.asnumpy(), 1 - 0.5 * 2 - 0.5 * 4)
    dead = weakref.ref(g1._data)
    del g1
    gc.collect()
    assert dead() is None                                # the table held only a weak reference
    assert kcpu.address(w._data) == w._data.ctypes.data


def test_update_many_checks_shapes_as_the_per_parameter_update():
    w, g = nd.array(np.ones((2, 3), np.float32)), nd.array(np.ones((3, 2), np.float32))
    with pytest.raises(mx.MXNetError, match=r'gradient shape \(3, 2\) does not match weight shape \(2, 3\)'):
        opt.SGD(learning_rate=0.1).update_many([0], [w], [g], [None], {})
    assert optmod._multi_capable(opt.SGD) and not optmod._multi_capable(opt.RMSProp)
