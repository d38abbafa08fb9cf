"""Optimizers: each fused kernel against a NumPy transcription of MXNet's formula, against
torch.optim where the formulas coincide, and the Updater's state (de)serialization."""
import warnings

import numpy as np
import pytest

from engine import lr_scheduler, nd, optimizer
from engine.base import MXNetError
from engine.ndarray import NDArray

STEPS = 5
SHAPE = (7, 5)


# ---- reference formulas (MXNet 1.x, src/operator/optimizer_op-inl.h), in float64 ---------------

def _clip(x, c):
    return np.clip(x, -c, c) if c else x


def ref_sgd(w, g, s, t, lr, wd, rescale, clip, momentum=0.0):
    g = _clip(rescale * g, clip)
    if momentum == 0.0:
        return (1 - lr * wd) * w - lr * g
    s['mom'] = momentum * s['mom'] - lr * wd * w - lr * g
    return w + s['mom']


def ref_nag(w, g, s, t, lr, wd, rescale, clip, momentum=0.0):
    # MXNet's nag_mom_update: the momentum holds lr-scaled steps
    g = _clip(rescale * g, clip) + wd * w
    s['mom'] = momentum * s['mom'] - lr * g
    return w + momentum * s['mom'] - lr * g


def ref_adam(w, g, s, t, lr, wd, rescale, clip, beta1=0.9, beta2=0.999, epsilon=1e-8):
    g = _clip(rescale * g + wd * w, clip)
    s['m'] = beta1 * s['m'] + (1 - beta1) * g
    s['v'] = beta2 * s['v'] + (1 - beta2) * g * g
    lr_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - lr_t * s['m'] / (np.sqrt(s['v']) + epsilon)


def ref_adamw(w, g, s, t, lr, wd, rescale, clip, beta1=0.9, beta2=0.999, epsilon=1e-8):
    g = _clip(rescale * g, clip)
    s['m'] = beta1 * s['m'] + (1 - beta1) * g
    s['v'] = beta2 * s['v'] + (1 - beta2) * g * g
    corr = np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - lr * (corr * s['m'] / (np.sqrt(s['v']) + epsilon) + wd * w)


def ref_rmsprop(w, g, s, t, lr, wd, rescale, clip, gamma1=0.9, gamma2=0.9, epsilon=1e-8,
                centered=False, clip_weights=None):
    g = _clip(rescale * g + wd * w, clip)
    s['n'] = (1 - gamma1) * g * g + gamma1 * s['n']
    if not centered:
        w = w - lr * g / np.sqrt(s['n'] + epsilon)
    else:
        s['g'] = (1 - gamma1) * g + gamma1 * s['g']
        s['delta'] = gamma2 * s['delta'] - lr * g / np.sqrt(s['n'] - s['g'] ** 2 + epsilon)
        w = w + s['delta']
    return _clip(w, clip_weights)


def ref_adagrad(w, g, s, t, lr, wd, rescale, clip, eps=1e-7):
    g = _clip(rescale * g, clip)
    s['h'] = s['h'] + g * g
    return w - lr * (g / np.sqrt(s['h'] + eps) + wd * w)


CASES = [
    ('sgd', ref_sgd, {}),
    ('sgd', ref_sgd, {'momentum': 0.9}),
    ('nag', ref_nag, {'momentum': 0.8}),
    ('nag', ref_nag, {}),
    ('adam', ref_adam, {'beta1': 0.8, 'beta2': 0.99, 'epsilon': 1e-6}),
    ('adamw', ref_adamw, {'beta1': 0.85, 'beta2': 0.995, 'epsilon': 1e-6}),
    ('rmsprop', ref_rmsprop, {'gamma1': 0.8, 'epsilon': 1e-6}),
    ('rmsprop', ref_rmsprop, {'gamma1': 0.85, 'gamma2': 0.7, 'epsilon': 1e-4, 'centered': True,
                              'clip_weights': 0.9}),
    ('adagrad', ref_adagrad, {'eps': 1e-6}),
]


def _zero_state():
    z = np.zeros(SHAPE)
    return {'mom': z, 'm': z, 'v': z, 'n': z, 'g': z, 'delta': z, 'h': z}


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name,ref,hyper', CASES, ids=[f'{c[0]}-{i}' for i, c in enumerate(CASES)])
def test_fused_update_matches_reference(name, ref, hyper, dtype):
    rng = np.random.default_rng(0)
    lr, wd, rescale, clip = 0.05, 0.02, 0.5, 0.4
    w0 = rng.normal(size=SHAPE)
    grads = [rng.normal(size=SHAPE) * 2 for _ in range(STEPS)]
    opt = optimizer.create(name, learning_rate=lr, wd=wd, rescale_grad=rescale,
                           clip_gradient=clip, **hyper)
    weight = nd.array(w0, dtype=dtype)
    buf = weight._data
    state = opt.create_state(0, weight)
    w_ref, s_ref = w0.copy(), _zero_state()
    for t, g in enumerate(grads, start=1):
        opt.update(0, weight, nd.array(g, dtype=dtype), state)
        w_ref = ref(w_ref, g, s_ref, t, lr, wd, rescale, clip, **hyper)
        tol = 1e-5 if dtype == 'float32' else 1e-12
        np.testing.assert_allclose(weight.asnumpy(), w_ref, rtol=tol, atol=tol,
                                   err_msg=f'{name} {hyper} {dtype} step {t}')
    assert weight._data is buf and weight.dtype == np.dtype(dtype)  # updated in place
    assert opt.num_update == STEPS


def test_clip_applies_to_rescaled_grad_only_when_positive():
    for clip in (None, 0):
        opt = optimizer.SGD(learning_rate=1.0, clip_gradient=clip)
        w = nd.zeros((3,), dtype='float64')
        opt.update(0, w, nd.array([10.0, -20.0, 0.5], dtype='float64'), None)
        np.testing.assert_allclose(w.asnumpy(), [-10.0, 20.0, -0.5])
    opt = optimizer.SGD(learning_rate=1.0, clip_gradient=1.0, rescale_grad=0.1)
    w = nd.zeros((3,), dtype='float64')
    opt.update(0, w, nd.array([5.0, -20.0, np.nan], dtype='float64'), None)
    np.testing.assert_allclose(w.asnumpy(), [-0.5, 1.0, np.nan])  # NaN is not hidden by clip


def test_noncontiguous_and_float16_weights():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(6, 8))
    g = rng.normal(size=(6, 4))
    # a strided (non-contiguous) weight view: the update must land in the parent buffer
    parent = base.copy()
    view = NDArray(parent[:, ::2])
    opt = optimizer.Adam(learning_rate=0.1)
    st = opt.create_state(0, view)
    opt.update(0, view, nd.array(g, dtype='float64'), st)
    ref = ref_adam(base[:, ::2].copy(), g, {'m': 0.0, 'v': 0.0}, 1, 0.1, 0.0, 1.0, None)
    np.testing.assert_allclose(parent[:, ::2], ref, rtol=1e-12)
    np.testing.assert_array_equal(parent[:, 1::2], base[:, 1::2])
    # float16 weights: states in float32, weight rounded once per step
    w16 = nd.array(base, dtype='float16')
    opt = optimizer.SGD(learning_rate=0.1, momentum=0.9)
    st = opt.create_state(0, w16)
    assert st.dtype == np.float32
    opt.update(0, w16, nd.array(np.ones((6, 8)), dtype='float16'), st)
    assert w16.dtype == np.float16
    np.testing.assert_allclose(w16.asnumpy(), base.astype(np.float16).astype(np.float64) - 0.1,
                               atol=2e-3)


def test_shape_mismatch_is_a_clear_error():
    opt = optimizer.SGD(param_idx2name={3: 'dense0_weight'})
    with pytest.raises(MXNetError, match=r'gradient shape \(2, 3\).*weight shape \(3, 2\).*dense0_weight'):
        opt.update(3, nd.zeros((3, 2)), nd.zeros((2, 3)), None)


def test_registry_and_bad_arguments():
    assert isinstance(optimizer.create('SGD', momentum=0.9), optimizer.SGD)
    for name, cls in [('nag', optimizer.NAG), ('adam', optimizer.Adam), ('adamw', optimizer.AdamW),
                      ('rmsprop', optimizer.RMSProp), ('adagrad', optimizer.AdaGrad)]:
        assert type(optimizer.create(name)) is cls
    with pytest.raises(MXNetError, match="unknown optimizer 'adamx'"):
        optimizer.create('adamx')
    with pytest.raises(MXNetError, match='unexpected argument.*momentun'):
        optimizer.create('sgd', momentun=0.9)
    with pytest.raises(MXNetError, match='beta1'):
        optimizer.Adam(beta1=1.5)
    assert optimizer.create('adam').learning_rate == 0.001
    assert optimizer.create('sgd').learning_rate == 0.01


def test_num_update_lr_scheduler_and_multipliers():
    sched = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    opt = optimizer.SGD(lr_scheduler=sched, param_idx2name={0: 'fc_weight', 1: 'fc_bias'}, wd=0.1)
    assert opt.learning_rate == 1.0 and opt.num_update == 0
    # the bias gets no weight decay by default (MXNet's set_wd_mult), the weight does
    assert opt._get_wd(0) == pytest.approx(0.1) and opt._get_wd(1) == 0.0
    opt.set_lr_mult({'fc_bias': 2.0})
    w = {i: nd.zeros((2,), dtype='float64') for i in (0, 1)}
    for step in range(4):
        for i in (0, 1):
            opt.update(i, w[i], nd.ones((2,), dtype='float64'), None)
    assert opt.num_update == 4 and opt._index_update_count == {0: 4, 1: 4}
    # step 1-2: lr 1, steps 3-4: lr 0.5; bias lr doubled
    assert opt.learning_rate == 0.5
    np.testing.assert_allclose(w[1].asnumpy(), -(2 * 1 + 2 * 1 + 2 * 0.5 + 2 * 0.5) * np.ones(2))
    expect = 0.0
    for lr in (1.0, 1.0, 0.5, 0.5):
        expect = (1 - lr * 0.1) * expect - lr
    np.testing.assert_allclose(w[0].asnumpy(), expect)
    with pytest.raises(MXNetError, match='lr_scheduler'):
        opt.set_learning_rate(0.3)
    with pytest.raises(UserWarning):        # what MXNet raises there
        opt.set_learning_rate(0.3)
    plain = optimizer.SGD(learning_rate=0.2)
    plain.set_learning_rate(0.3)
    assert plain.learning_rate == 0.3


def test_learning_rate_overrides_scheduler_base():
    sched = lr_scheduler.CosineScheduler(max_update=10, base_lr=1.0, final_lr=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        opt = optimizer.SGD(learning_rate=0.5, lr_scheduler=sched)
    assert any('overwritten' in str(c.message) for c in caught)
    assert opt.learning_rate == pytest.approx(0.5)  # num_update 0: the start of the cosine
    opt.num_update = 5
    assert opt.learning_rate == pytest.approx(0.25)


def test_param_dict_multipliers():
    class P:
        lr_mult, wd_mult = 3.0, 0.0
    opt = optimizer.SGD(learning_rate=0.1, wd=0.5, param_dict={0: P()})
    w = nd.ones((2,), dtype='float64')
    opt.update(0, w, nd.ones((2,), dtype='float64'), None)
    np.testing.assert_allclose(w.asnumpy(), [0.7, 0.7])


def test_list_update_and_updater_states():
    opt = optimizer.Adam(learning_rate=0.01)
    up = optimizer.get_updater(opt)
    ws = [nd.array(np.arange(6.0).reshape(2, 3)), nd.array(np.ones(4))]
    gs = [nd.ones((2, 3)), nd.ones((4,)) * 0.5]
    up([0, 1], gs, ws)
    up(0, gs[0], ws[0])
    assert set(up.states) == {0, 1} and opt._index_update_count == {0: 2, 1: 1}


def _train(up, weights, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for i, w in enumerate(weights):
            up(i, nd.array(rng.normal(size=w.shape)), w)


@pytest.mark.parametrize('name,hyper', [('sgd', {'momentum': 0.9}), ('adam', {}),
                                        ('rmsprop', {'centered': True}), ('sgd', {})])
def test_updater_states_round_trip(name, hyper):
    sched = lr_scheduler.FactorScheduler(step=3, factor=0.5, base_lr=0.1)
    opt = optimizer.create(name, lr_scheduler=sched, **hyper)
    up = optimizer.get_updater(opt)
    weights = [nd.array(np.ones((3, 2))), nd.array(np.zeros(5))]
    _train(up, weights, 4, seed=0)
    blob = up.get_states(dump_optimizer=True)
    assert isinstance(blob, bytes) and b'pickle' not in blob
    saved = [w.copy() for w in weights]

    # continue the original ...
    _train(up, weights, 3, seed=1)
    # ... and a fresh updater restored from the bytes: the same trajectory
    fresh = optimizer.get_updater(optimizer.create('nag'))
    fresh.set_states(blob)
    assert type(fresh.optimizer) is type(opt) and fresh.optimizer.num_update == 4
    assert isinstance(fresh.optimizer.lr_scheduler, lr_scheduler.FactorScheduler)
    _train(fresh, saved, 3, seed=1)
    for a, b in zip(weights, saved):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)

    # states only (no optimizer): the updater keeps its optimizer
    other = optimizer.get_updater(optimizer.create(name, **hyper))
    other.set_states(up.get_states())
    assert type(other.optimizer) is type(opt) and other.optimizer.num_update == 0
    assert set(other.states) == {0, 1}


def test_updater_rejects_bad_bytes():
    up = optimizer.get_updater(optimizer.SGD(momentum=0.9))
    up(0, nd.ones((4, 4)), nd.zeros((4, 4)))
    blob = up.get_states(dump_optimizer=True)
    for bad in (blob[: len(blob) // 2], blob[:-10], b'', b'not an archive at all'):
        with pytest.raises(MXNetError, match='cannot read the optimizer states'):
            optimizer.get_updater(optimizer.SGD()).set_states(bad)
    with pytest.raises(MXNetError, match='expected bytes'):
        up.set_states('a string')
    # a well-formed archive holding a pickled object array is refused, never unpickled
    import io
    buf = io.BytesIO()
    np.savez(buf, __header__=np.array([object()], dtype=object))
    with pytest.raises(MXNetError, match='cannot read'):
        up.set_states(buf.getvalue())
    # states that do not fit the weights are reported when first used
    wrong = optimizer.get_updater(optimizer.SGD(momentum=0.9))
    wrong.set_states(blob)
    with pytest.raises(MXNetError, match=r'shape \(4, 4\).*shape \(2, 2\)'):
        wrong(0, nd.ones((2, 2)), nd.zeros((2, 2)))


def test_one_cycle_momentum_drives_sgd_and_adam():
    sched = lr_scheduler.OneCycleScheduler(max_update=10, max_lr=0.1)
    for opt in (optimizer.SGD(momentum=0.9, lr_scheduler=sched),
                optimizer.Adam(lr_scheduler=sched)):
        opt.num_update = 3
        assert opt._scheduled_momentum(0.5) == pytest.approx(sched.momentum(3))
    no_cycle = lr_scheduler.OneCycleScheduler(max_update=10, max_lr=0.1, cycle_momentum=False)
    assert optimizer.SGD(momentum=0.9, lr_scheduler=no_cycle)._scheduled_momentum(0.9) == 0.9


# ---- PyTorch: the same trajectories where the formulas coincide ------------------------------

def _torch_trajectory(torch, make_opt, w0, grads, scheduler=None):
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = make_opt([p])
    sched = scheduler(opt) if scheduler else None
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        if sched:
            sched.step()
        out.append(p.detach().numpy().copy())
    return out


def _our_trajectory(opt, w0, grads):
    w = nd.array(w0, dtype='float64')
    state = opt.create_state(0, w)
    out = []
    for g in grads:
        opt.update(0, w, nd.array(g, dtype='float64'), state)
        out.append(w.asnumpy().copy())
    return out


@pytest.mark.torch
def test_matches_torch_optim():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(4, 6))
    grads = [rng.normal(size=(4, 6)) for _ in range(6)]
    lr, wd = 0.05, 0.01
    O = torch.optim
    # Notes on where MXNet and PyTorch differ, so the comparisons below use settings where
    # they agree: MXNet's Adam adds epsilon to the *uncorrected* sqrt(v) (bias correction folded
    # into lr), PyTorch to the corrected one; RMSProp and AdaGrad put epsilon inside the sqrt in
    # MXNet and outside in PyTorch: so epsilon = 0. MXNet's AdaGrad adds wd*w outside the history,
    # PyTorch inside: so wd = 0 there. MXNet's SGD velocity holds lr-scaled steps, so it equals
    # PyTorch's only for a constant learning rate.
    pairs = [
        (optimizer.SGD(learning_rate=lr, momentum=0.9, wd=wd),
         lambda p: O.SGD(p, lr=lr, momentum=0.9, weight_decay=wd)),
        (optimizer.NAG(learning_rate=lr, momentum=0.9, wd=wd),
         lambda p: O.SGD(p, lr=lr, momentum=0.9, weight_decay=wd, nesterov=True)),
        (optimizer.Adam(learning_rate=lr, beta1=0.8, beta2=0.99, epsilon=0.0, wd=wd),
         lambda p: O.Adam(p, lr=lr, betas=(0.8, 0.99), eps=0.0, weight_decay=wd)),
        (optimizer.AdamW(learning_rate=lr, beta1=0.8, beta2=0.99, epsilon=0.0, wd=0.1),
         lambda p: O.AdamW(p, lr=lr, betas=(0.8, 0.99), eps=0.0, weight_decay=0.1)),
        (optimizer.RMSProp(learning_rate=lr, gamma1=0.9, epsilon=0.0, wd=wd),
         lambda p: O.RMSprop(p, lr=lr, alpha=0.9, eps=0.0, weight_decay=wd)),
        (optimizer.RMSProp(learning_rate=lr, gamma1=0.9, gamma2=0.8, epsilon=0.0, wd=wd, centered=True),
         lambda p: O.RMSprop(p, lr=lr, alpha=0.9, eps=0.0, weight_decay=wd, centered=True,
                             momentum=0.8)),
        (optimizer.AdaGrad(learning_rate=lr, eps=0.0),
         lambda p: O.Adagrad(p, lr=lr, eps=0.0)),
    ]
    for ours, theirs in pairs:
        a = _our_trajectory(ours, w0, grads)
        b = _torch_trajectory(torch, theirs, w0, grads)
        for t, (x, y) in enumerate(zip(a, b), start=1):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12,
                                       err_msg=f'{type(ours).__name__} vs torch, step {t}')


@pytest.mark.torch
def test_adamw_one_cycle_matches_torch():
    """The seed's recipe: AdamW + OneCycleLR (cycling beta1), step for step."""
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=(3, 5))
    steps = 20
    grads = [rng.normal(size=(3, 5)) for _ in range(steps)]
    ours = optimizer.AdamW(epsilon=0.0, lr_scheduler=lr_scheduler.OneCycleScheduler(steps, max_lr=0.01))
    a = _our_trajectory(ours, w0, grads)
    b = _torch_trajectory(
        torch, lambda p: torch.optim.AdamW(p, lr=0.001, eps=0.0), w0, grads,
        scheduler=lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=steps))
    for t, (x, y) in enumerate(zip(a, b), start=1):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12, err_msg=f'step {t}')


def test_custom_optimizer_in_mxnet_style():
    @optimizer.register
    class HalfStep(optimizer.Optimizer):
        def update(self, index, weight, grad, state):
            self._update_count(index)
            weight[:] = weight - 0.5 * self._get_lr(index) * grad

    opt = optimizer.create('halfstep', learning_rate=1.0, lr_scheduler=lambda n: 2.0 / n)
    assert opt.lr == 1.0  # a plain callable schedule is left alone
    up = optimizer.get_updater(opt)
    w = nd.zeros((2,), dtype='float64')
    up(0, nd.ones((2,), dtype='float64'), w)
    up(0, nd.ones((2,), dtype='float64'), w)
    np.testing.assert_allclose(w.asnumpy(), -(0.5 * 2.0 + 0.5 * 1.0))
    assert optimizer.AdamW().wd == 0.01 and optimizer.Adam().wd == 0.0
