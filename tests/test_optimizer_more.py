"""The optimizers of engine/optimizer/more.py and the nd.*_update ops, checked against numbers
MXNet 1.9.1 produced (the reference dicts below were printed by running the same configurations
in MXNet's venv; hyperparameters are exact in float32 because MXNet keeps op attributes as
float32) and, where PyTorch has the same optimizer, against torch.optim."""
import numpy as np
import pytest

import engine as mx
from engine import optimizer
from engine.base import MXNetError

# optimizer name -> keyword arguments (3 steps on a weight "fc_weight" and a bias "fc_bias")
CFG = {
 'signum': dict(learning_rate=0.125, momentum=0.75, wd=0.0625, wd_lh=0.03125, rescale_grad=0.5, clip_gradient=0.75),
 'signsgd': dict(learning_rate=0.125, momentum=0.0, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'ftml': dict(learning_rate=0.125, beta1=0.625, beta2=0.875, epsilon=1e-8, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'ftrl': dict(learning_rate=0.125, lamda1=0.0625, beta=1.0, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'lamb': dict(learning_rate=0.125, beta1=0.75, beta2=0.875, epsilon=2**-20, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'lamb_bounds': dict(learning_rate=0.125, beta1=0.75, beta2=0.875, epsilon=2**-20, wd=0.0625, lower_bound=2.5, upper_bound=3.0, bias_correction=False),
 'lars': dict(learning_rate=0.125, momentum=0.75, eta=0.5, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'adadelta': dict(rho=0.875, epsilon=2**-10, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'adamax': dict(learning_rate=0.125, beta1=0.75, beta2=0.875, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'nadam': dict(learning_rate=0.125, beta1=0.75, beta2=0.875, epsilon=2**-20, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
 'dcasgd': dict(learning_rate=0.125, lamda=0.25, wd=0.0625, rescale_grad=0.5, clip_gradient=0.75),
}

# final (weight, bias) after the 3 steps, produced by MXNet 1.9.1 (float64 arrays)
REF = {
    'signum': [[[1.297255077472, -0.086961404529, -0.093049321084], [0.279222268282, -0.656176840292, 0.126555087503]], [0.122657071244, -1.608754977294, 1.13126522384]],
    'signsgd': [[[1.529134804119, -0.333024115029, 0.156088001888], [0.27596160236, -0.648498783181, 0.126048605168]], [0.124109614142, -1.629724306345, 1.142658005663]],
    'ftml': [[[1.587026162872, -0.323619070647, 0.105067564633], [0.331525749885, -0.661392681874, 0.09832099631]], [0.067281956552, -1.726554940204, 1.080519123457]],
    'ftrl': [[[0.605809706937, -0.120398728564, 0.0], [0.124988507257, -0.147320935464, 0.012196420493]], [0.017153854329, -0.574367197249, 0.173360704334]],
    'lamb': [[[1.506866429318, -0.203848551407, 0.040502863147], [0.34304017518, -0.682730341418, 0.141529397226]], [0.317914547341, -1.661185640517, 1.244450841481]],
    'lamb_bounds': [[[1.593494202737, -0.122048524802, -0.087786480467], [0.274255645544, -0.664387459223, 0.053298035221]], [0.423494243672, -1.558593557673, 1.23711280522]],
    'lars': [[[1.535506887615, -0.302785209401, 0.036816057827], [0.300081299985, -0.713923432982, 0.026723113592]], [0.192370348404, -1.704095177752, 1.111877233583]],
    'adadelta': [[[1.369074802772, -0.315112679805, 0.069528885555], [0.329980501562, -0.615986916882, 0.083988269378]], [0.018942641024, -1.636610718584, 1.184767237247]],
    'adamax': [[[1.466563692084, -0.20973292371, 0.09381673754], [0.217250727994, -0.571957312228, 0.096316458738]], [0.182788954959, -1.77579700536, 1.020885023185]],
    'nadam': [[[1.571363587359, -0.297453120383, 0.110315537172], [0.326938412142, -0.648852377656, 0.118108606769]], [0.041275358367, -1.661500022435, 1.16281682004]],
    'dcasgd': [[[1.638054844656, -0.381975029288, 0.012351375142], [0.409964638241, -0.785282135673, 0.03375416066]], [0.031547391484, -1.6369976543, 1.134980626005]],
}


def _inputs():
    rs = np.random.RandomState(7)
    w = [rs.randn(2, 3), rs.randn(3)]
    gs = [[rs.randn(2, 3) * 2, rs.randn(3) * 2] for _ in range(3)]
    return w, gs


def _run(name, dtype='float64'):
    kw = dict(CFG[name])
    cls = {'signsgd': 'signum', 'lamb_bounds': 'lamb'}.get(name, name)
    if name == 'lars':
        kw['lr_scheduler'] = mx.lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.125)
    opt = optimizer.create(cls, param_idx2name={0: 'fc_weight', 1: 'fc_bias'}, **kw)
    w0, gs = _inputs()
    ws = [mx.nd.array(w, dtype=dtype) for w in w0]
    states = [opt.create_state(i, w) for i, w in enumerate(ws)]
    for g in gs:
        for i in range(2):
            opt.update(i, ws[i], mx.nd.array(g[i], dtype=dtype), states[i])
    return [w.asnumpy() for w in ws]


@pytest.mark.parametrize('name', sorted(CFG))
def test_optimizer_matches_mxnet(name):
    # LARS: MXNet multiplies the layer rates in a float32 array (multi_lars)
    atol = 1e-7 if name == 'lars' else 1e-11
    for got, want in zip(_run(name), REF[name]):
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize('name', ['signum', 'ftml', 'lamb', 'adamax', 'nadam'])
def test_optimizer_float32_weights(name):
    for got, want in zip(_run(name, 'float32'), REF[name]):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


C = dict(rescale_grad=0.5, clip_gradient=0.75)
CASES = {
 'sgd_update': (2, dict(lr=0.125, wd=0.0625, **C)),
 'sgd_mom_update': (3, dict(lr=0.125, momentum=0.75, wd=0.0625, **C)),
 'nag_mom_update': (3, dict(lr=0.125, momentum=0.75, wd=0.0625, **C)),
 'adam_update': (4, dict(lr=0.125, beta1=0.75, beta2=0.875, epsilon=2**-20, wd=0.0625, **C)),
 'rmsprop_update': (3, dict(lr=0.125, gamma1=0.75, epsilon=2**-20, wd=0.0625, clip_weights=1.5, **C)),
 'rmspropalex_update': (5, dict(lr=0.125, gamma1=0.75, gamma2=0.5, epsilon=2**-20, wd=0.0625, **C)),
 'signsgd_update': (2, dict(lr=0.125, wd=0.0625, **C)),
 'signum_update': (3, dict(lr=0.125, momentum=0.75, wd=0.0625, wd_lh=0.03125, **C)),
 'ftml_update': (5, dict(lr=0.125, beta1=0.625, beta2=0.875, epsilon=1e-8, t=3, wd=0.0625, rescale_grad=0.5, clip_grad=0.75)),
 'ftrl_update': (4, dict(lr=0.125, lamda1=0.0625, beta=1.0, wd=0.0625, **C)),
 'lamb_update_phase1': (4, dict(beta1=0.75, beta2=0.875, epsilon=2**-20, t=3, bias_correction=True, wd=0.0625, **C)),
}

# outputs (the new weight, then the states in input order) of the MXNet 1.9.1 ops on these inputs
OPS_REF = {
    'sgd_update': [[1.841172122095, 0.448613645083, 0.189493581603, -1.840718259936, -0.18574272649]],
    'sgd_mom_update': [[2.08460113995, 0.553046376076, 0.443089169845, -1.619144703405, -0.176749520598], [0.29597266652, 0.116536525564, 0.346591701773, 0.244347999959, 0.100638681916]],
    'nag_mom_update': [[2.063151621984, 0.536016039256, 0.449437357933, -1.657457259967, -0.110263715053], [0.29597266652, 0.116536525564, 0.346591701773, 0.244347999959, 0.100638681916]],
    'adam_update': [[1.755136229242, 0.40688633993, 0.080036667165, -1.924947044521, -0.241591521581], [0.138341720527, 0.080225141851, 0.066095588243, 0.176024669675, -0.174297746158], [0.266585343616, 0.114594960266, 0.251919273692, 0.128191625463, 0.370438985468]],
    'rmsprop_update': [[1.5, 0.473550725265, 0.24581166413, -1.5, -0.035356577413], [0.287602378095, 0.106776760481, 0.394220588243, 0.229872360906, 0.143375498304]],
    'rmspropalex_update': [[1.998632850775, 0.513728399423, 0.382166243259, -1.620526672026, 0.046349084278], [0.287602378095, 0.106776760481, 0.394220588243, 0.229872360906, 0.143375498304], [0.104482985668, 0.073012078449, -0.031837051121, 0.060773018808, 0.076635767318], [0.210004377345, 0.077218548911, 0.285668775187, 0.242966031339, 0.323737286793]],
    'signsgd_update': [[1.899654813482, 0.558099617305, 0.220743581603, -1.723934166619, -0.150221107182]],
    'signum_update': [[1.906641643456, 0.559804733908, 0.221120524837, -1.731213434992, -0.151304654848], [0.348516315184, 0.128640320135, 0.439587815304, 0.267122443387, 0.192284157941]],
    'ftml_update': [[1.725538504358, 0.422280474686, 0.113658191423, -1.818762671873, -0.249089864036], [5.434264320995, 3.562914378128, 5.282668054978, 3.768360591279, 6.405911971136], [0.266585343616, 0.114594960266, 0.251919273692, 0.128191625463, 0.370438985468], [-9.377032328736, -1.504549174861, -0.600418497019, 6.853753577575, 1.595647741918]],
    'ftrl_update': [[0.235646376406, -0.0, 0.044760407891, -0.022669481425, 0.0], [-3.376400822584, -0.05747488375, -0.737607900574, 0.314588269976, 0.046463953911], [0.562598394082, 0.145030067159, 0.770050598505, 0.146082612734, 0.858977318282]],
    'lamb_update_phase1': [[0.319154340604, 0.242066796123, 0.136897421366, 0.461111424884, -0.296033723113], [0.11039440063, 0.073404675437, 0.066095588243, 0.205141743165, -0.169963555493], [0.279895082257, 0.115348425985, 0.251919273692, 0.124582232256, 0.367298884153]],
    ('lamb_update_phase2', -1, -1): [1.923114872858, 0.467876509506, 0.33418860034, -1.846881572655, -0.096478519052],
    ('lamb_update_phase2', 2.5, -1): [1.923114872858, 0.467876509506, 0.33418860034, -1.846881572655, -0.096478519052],
    ('lamb_update_phase2', -1, 0.5): [1.814137853928, 0.442459478449, 0.14158272249, -1.86034190406, -0.243073253413],
}


def _op_inputs(n):
    rs = np.random.RandomState(3)
    w, g = rs.randn(5), rs.randn(5) * 3
    states = [rs.rand(5) * 0.5 for _ in range(n - 2)]
    return [w, g] + states


@pytest.mark.parametrize('name', sorted(CASES))
def test_update_op_matches_mxnet(name):
    n, kw = CASES[name]
    arrays = [mx.nd.array(x, dtype='float64') for x in _op_inputs(n)]
    w_before = arrays[0].asnumpy()
    out = getattr(mx.nd, name)(*arrays, **kw)
    want = OPS_REF[name]
    np.testing.assert_allclose(out.asnumpy(), want[0], rtol=0, atol=1e-11)
    for s, ws in zip(arrays[2:], want[1:]):       # the states are updated in place
        np.testing.assert_allclose(s.asnumpy(), ws, rtol=0, atol=1e-11)
    np.testing.assert_array_equal(arrays[0].asnumpy(), w_before)   # no out: weight unchanged


def test_update_op_out_is_weight_updates_in_place():
    n, kw = CASES['adam_update']
    arrays = [mx.nd.array(x, dtype='float64') for x in _op_inputs(n)]
    w = arrays[0]
    r = mx.nd.adam_update(*arrays, out=w, **kw)
    assert r is w
    np.testing.assert_allclose(w.asnumpy(), OPS_REF['adam_update'][0], rtol=0, atol=1e-11)
    # float32 and a strided (non-contiguous) weight go through the same kernel
    big = mx.nd.array(np.stack([_op_inputs(2)[0]] * 2, axis=1), dtype='float32')
    w32 = big[:, 0]
    g32 = mx.nd.array(_op_inputs(2)[1], dtype='float32')
    mx.nd.sgd_update(w32, g32, out=w32, **CASES['sgd_update'][1])
    np.testing.assert_allclose(w32.asnumpy(), OPS_REF['sgd_update'][0], rtol=1e-6)


@pytest.mark.parametrize('lb,ub', [(-1, -1), (2.5, -1), (-1, 0.5)])
def test_lamb_phase2_matches_mxnet(lb, ub):
    w, st = [mx.nd.array(x, dtype='float64') for x in _op_inputs(2)]
    st = st * 0.1
    out = mx.nd.lamb_update_phase2(w, st, w.norm().reshape((1,)), st.norm().reshape((1,)),
                                   lr=0.125, lower_bound=lb, upper_bound=ub)
    np.testing.assert_allclose(out.asnumpy(), OPS_REF[('lamb_update_phase2', lb, ub)],
                               rtol=0, atol=1e-11)


def test_update_op_errors_name_the_op():
    w, g = mx.nd.ones((2, 3)), mx.nd.ones((3, 2))
    with pytest.raises(MXNetError, match=r'sgd_update: grad has shape \(3, 2\)'):
        mx.nd.sgd_update(w, g, lr=0.1)
    with pytest.raises(MXNetError, match='signum_update: mom must be an NDArray'):
        mx.nd.signum_update(w, w, np.zeros((2, 3)), lr=0.1)
    with pytest.raises(MXNetError, match='ftml_update: t'):
        mx.nd.ftml_update(w, w, w.copy(), w.copy(), w.copy(), lr=0.1)
    with pytest.raises(MXNetError, match='lamb_update_phase1: wd'):
        mx.nd.lamb_update_phase1(w, w, w.copy(), w.copy(), t=1)
    with pytest.raises(MXNetError, match='lamb_update_phase2: r1 must be a 1-element'):
        mx.nd.lamb_update_phase2(w, w, w, w.norm(), lr=0.1)
    g_sparse = mx.nd.sparse.row_sparse_array((mx.nd.ones((1, 3)), mx.nd.array([1])), shape=(2, 3))
    with pytest.raises(MXNetError, match="ftrl_update: grad has storage type 'row_sparse'"):
        mx.nd.ftrl_update(w, g_sparse, w.copy(), w.copy(), lr=0.1)
    with pytest.raises(MXNetError, match='adam_update: mean has dtype int32'):
        mx.nd.adam_update(w, w, mx.nd.zeros((2, 3), dtype='int32'), w.copy(), lr=0.1)


def test_sgld_is_half_step_drift_plus_seeded_noise():
    w0, g0 = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([[1.0, 3.0], [-2.0, 0.5]])
    opt = optimizer.SGLD(learning_rate=0.04, wd=0.5, rescale_grad=0.5, clip_gradient=1.0)
    w = mx.nd.array(w0, dtype='float64')
    mx.random.seed(11)
    opt.update(0, w, mx.nd.array(g0, dtype='float64'), opt.create_state(0, w))
    mx.random.seed(11)
    noise = mx.random.normal(0, 0.2, shape=(2, 2), dtype='float64').asnumpy()
    drift = -0.02 * (np.clip(0.5 * g0, -1, 1) + 0.5 * w0)
    np.testing.assert_allclose(w.asnumpy(), w0 + drift + noise, rtol=1e-12)


def test_new_optimizers_registered_and_states_round_trip():
    for name in ('signum', 'ftml', 'ftrl', 'lamb', 'lars', 'sgld', 'adadelta', 'adamax', 'nadam', 'dcasgd', 'ccsgd'):
        assert type(optimizer.create(name)).__name__.lower() == name
    opt = optimizer.Nadam(learning_rate=0.1)
    up = optimizer.get_updater(opt)
    w = mx.nd.array([1.0, -2.0, 3.0], dtype='float64')
    g = mx.nd.array([0.5, 0.25, -1.0], dtype='float64')
    up(0, g, w)
    blob = up.get_states(dump_optimizer=True)
    w2 = w.copy()
    up2 = optimizer.get_updater(optimizer.Nadam())
    up2.set_states(blob)
    assert up2.optimizer.m_schedule == opt.m_schedule
    up(0, g, w)
    up2(0, g, w2)
    np.testing.assert_array_equal(w.asnumpy(), w2.asnumpy())
    with pytest.raises(MXNetError, match='Signum: momentum must be a number'):
        optimizer.Signum(momentum='x')


@pytest.mark.torch
def test_adamax_adadelta_match_torch():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(5)]
    # PyTorch's Adamax adds eps to |g| inside the max (MXNet has no eps: eps=0 there), and its
    # Adadelta scales the step by lr (MXNet has none: lr=1); MXNet's AdaDelta decays outside
    # the accumulators, so wd = 0 for it
    pairs = [(optimizer.Adamax(learning_rate=0.05, beta1=0.8, beta2=0.9, wd=0.01),
              lambda p: torch.optim.Adamax(p, lr=0.05, betas=(0.8, 0.9), eps=0.0, weight_decay=0.01)),
             (optimizer.AdaDelta(rho=0.8, epsilon=1e-4),
              lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.8, eps=1e-4))]
    for ours, make in pairs:
        w = mx.nd.array(w0, dtype='float64')
        p = torch.tensor(w0, requires_grad=True)
        topt = make([p])
        state = ours.create_state(0, w)
        for g in grads:
            ours.update(0, w, mx.nd.array(g, dtype='float64'), state)
            p.grad = torch.tensor(g)
            topt.step()
            np.testing.assert_allclose(w.asnumpy(), p.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=type(ours).__name__)


def test_dcasgd_with_momentum_matches_numpy():
    # MXNet 1.9's DCASGD fails with momentum > 0 (it tests an NDArray's truth value), so the
    # momentum form is checked against its formula
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(4)]
    opt = optimizer.DCASGD(learning_rate=0.1, momentum=0.5, lamda=0.3, wd=0.02, clip_gradient=1.0)
    w = mx.nd.array(w0, dtype='float64')
    state = opt.create_state(0, w)
    ref, prev, mom = w0.copy(), w0.copy(), np.zeros_like(w0)
    for g in grads:
        opt.update(0, w, mx.nd.array(g, dtype='float64'), state)
        gc = np.clip(g, -1, 1)
        mom = 0.5 * mom - 0.1 * (gc + 0.02 * ref + 0.3 * gc * gc * (ref - prev))
        prev = ref.copy()
        ref = ref + mom
    np.testing.assert_allclose(w.asnumpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(state[1].asnumpy(), prev, rtol=1e-12)


def test_multi_precision_and_multi_tensor_ops_match_mxnet():
    # numbers printed by MXNet 1.9.1 for these inputs (float16 weight, float32 master copy)
    rs = np.random.RandomState(0)
    w32, g, m = rs.randn(4).astype('float32'), rs.randn(4).astype('float16'), rs.rand(4).astype('float32')
    kw = dict(lr=0.125, wd=0.25, rescale_grad=0.5, clip_gradient=0.75)
    W, G, W32, M = (mx.nd.array(w32, dtype='float16'), mx.nd.array(g, dtype='float16'), mx.nd.array(w32),
                    mx.nd.array(m))
    mx.nd.mp_sgd_mom_update(W, G, M, W32, momentum=0.5, out=W, **kw)
    assert W.dtype == np.float16
    np.testing.assert_allclose(W.asnumpy(), [2.09765625, 0.640625, 1.2841796875, 2.4453125], rtol=1e-3)
    np.testing.assert_allclose(W32.asnumpy(), [2.0970070362, 0.6404387355, 1.2846277952, 2.4447731972], rtol=1e-6)
    np.testing.assert_allclose(M.asnumpy(), [0.3329547346, 0.2402815223, 0.3058897555, 0.2038799822], rtol=1e-6)
    W, W32 = mx.nd.array(w32, dtype='float16'), mx.nd.array(w32)
    mx.nd.mp_sgd_update(W, G, W32, out=W, **kw)
    np.testing.assert_allclose(W32.asnumpy(), [1.6151757240, 0.4487179816, 0.8887652159, 2.1803257465], rtol=1e-6)
    ws = [mx.nd.array(rs.randn(3)) for _ in range(2)]
    gs = [mx.nd.array(rs.randn(3)) for _ in range(2)]
    got = mx.nd.multi_sgd_update(ws[0], gs[0], ws[1], gs[1], lrs=(0.125, 0.25), wds=(0.0, 0.5), num_weights=2, out=ws)
    assert got[0] is ws[0] and got[1] is ws[1]
    np.testing.assert_allclose(ws[0].asnumpy(), [0.7219042182, 0.2284369767, 0.7629869580], rtol=1e-6)
    np.testing.assert_allclose(ws[1].asnumpy(), [0.1285604089, 1.0912101269, 0.0060277730], rtol=1e-5)
    with pytest.raises(MXNetError, match='multi_sgd_update: expected 2 arrays per weight'):
        mx.nd.multi_sgd_update(ws[0], gs[0], ws[1], lrs=(0.1,), wds=(0.0,), num_weights=2)
    with pytest.raises(MXNetError, match='mp_sgd_update: weight32 must be float32'):
        mx.nd.mp_sgd_update(W, G, mx.nd.array(w32, dtype='float64'), lr=0.1)
