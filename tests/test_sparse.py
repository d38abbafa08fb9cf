"""Sparse storage (engine/ndarray_sparse.py): creation, conversion, sparse.dot and its gradients,
Embedding(sparse_grad=True), lazy optimizer updates of row_sparse gradients, clear refusals.
Reference numbers marked "MXNet 1.9.1" were printed by MXNet 1.9.1 for the same inputs."""
import numpy as np
import pytest
import scipy.sparse as sp

import engine as mx
from engine import autograd, gluon
from engine.base import MXNetError

S = mx.nd.sparse


def _csr():
    # [[1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 0]]
    return S.csr_matrix(([1., 2, 3], [0, 2, 1], [0, 2, 2, 3]), shape=(3, 4))


# ---- creation and conversion ------------------------------------------------------------------
def test_csr_creation_forms_agree():
    dense = np.array([[1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 0]], np.float32)
    forms = [_csr(), S.csr_matrix(dense), S.csr_matrix(mx.nd.array(dense)), S.csr_matrix(sp.csr_matrix(dense)),
             S.csr_matrix(([1., 2, 3], ([0, 0, 2], [0, 2, 1])), shape=(3, 4)), mx.nd.array(dense).tostype('csr')]
    for c in forms:
        assert c.stype == 'csr' and c.shape == (3, 4) and c.dtype == np.float32
        assert isinstance(c, mx.nd.NDArray)
        np.testing.assert_array_equal(c.asnumpy(), dense)
        np.testing.assert_array_equal(c.indptr.asnumpy(), [0, 2, 2, 3])
        np.testing.assert_array_equal(c.indices.asnumpy(), [0, 2, 1])
        np.testing.assert_array_equal(c.data.asnumpy(), [1, 2, 3])
        assert c.indices.dtype == np.int64
        np.testing.assert_array_equal(c.asscipy().toarray(), dense)
        np.testing.assert_array_equal(c.tostype('default').asnumpy(), dense)
        np.testing.assert_array_equal(c.tostype('row_sparse').asnumpy(), dense)
    assert S.csr_matrix((2, 5)).asnumpy().shape == (2, 5)


def test_row_sparse_creation_sorts_and_sums_duplicates():
    r = S.row_sparse_array(([[1., 2], [3, 4], [10, 20]], [3, 0, 3]), shape=(5, 2))
    assert r.stype == 'row_sparse' and r.shape == (5, 2)
    np.testing.assert_array_equal(r.indices.asnumpy(), [0, 3])
    np.testing.assert_array_equal(r.data.asnumpy(), [[3, 4], [11, 22]])
    want = np.zeros((5, 2), np.float32)
    want[0], want[3] = [3, 4], [11, 22]
    np.testing.assert_array_equal(r.asnumpy(), want)
    d = mx.nd.array(want)
    back = d.tostype('row_sparse')
    np.testing.assert_array_equal(back.indices.asnumpy(), [0, 3])
    np.testing.assert_array_equal(S.row_sparse_array(want).asnumpy(), want)
    np.testing.assert_array_equal(back.tostype('csr').asnumpy(), want)
    assert r.copy().asnumpy().tolist() == want.tolist() and r.astype('float64').dtype == np.float64


def test_zeros_with_stype():
    for st, cls in (('row_sparse', S.RowSparseNDArray), ('csr', S.CSRNDArray)):
        z = mx.nd.zeros((3, 4), stype=st)
        assert isinstance(z, cls) and z.stype == st
        np.testing.assert_array_equal(z.asnumpy(), np.zeros((3, 4)))
        assert S.zeros(st, (3, 4), dtype='float64').dtype == np.float64
    assert mx.nd.zeros((2,), stype='default').stype == 'default'
    with pytest.raises(MXNetError, match="unknown storage type 'coo'"):
        mx.nd.zeros((2, 2), stype='coo')


def test_malformed_csr_is_refused():
    with pytest.raises(MXNetError, match='indptr'):
        S.csr_matrix(([1., 2], [0, 1], [0, 1, 3]), shape=(2, 2))
    with pytest.raises(MXNetError, match=r'column indices must be in \[0, 2\)'):
        S.csr_matrix(([1., 2], [0, 5], [0, 1, 2]), shape=(2, 2))
    with pytest.raises(MXNetError, match='out of range'):
        S.row_sparse_array(([[1.]], [4]), shape=(3, 1))
    with pytest.raises(MXNetError, match='csr storage is 2-D'):
        mx.nd.ones((2, 2, 2)).tostype('csr')


# ---- dense ops on sparse arrays: MXNet's storage fallback (dense copies, dense outputs) ---------
def test_dense_ops_run_on_dense_copies_of_sparse_inputs():
    c, r = _csr(), S.row_sparse_array(([[1., 2]], [1]), shape=(3, 2))
    cd, rd = c.asnumpy(), r.asnumpy()
    cases = [(lambda: mx.nd.relu(c), np.maximum(cd, 0)), (lambda: c + 1, cd + 1),
             (lambda: mx.nd.ones((3, 2)) * r, rd), (lambda: r.sum(), rd.sum()),
             (lambda: mx.nd.exp(r), np.exp(rd)), (lambda: c * c, cd * cd)]
    for fn, want in cases:
        out = fn()
        assert out.stype == 'default'
        np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-6)
    with pytest.raises(MXNetError, match='setitem'):
        r[0] = 1
    with pytest.raises(MXNetError, match='reads a dense buffer'):   # raw buffer reads stay refused
        r._data.sum()


def test_sparse_variables_get_gradients_in_their_storage():
    base = np.array([[0., 1, 0], [0, 0, 0], [2, 0, 3]], np.float32)
    for stype in ('row_sparse', 'csr'):
        x = mx.nd.array(base).tostype(stype)
        x.attach_grad()
        assert x.grad.stype == stype
        with autograd.record():
            y = mx.nd.exp(x) * 2 + x * x
        y.backward()
        assert x.grad.stype == stype
        np.testing.assert_allclose(x.grad.asnumpy(), 2 * np.exp(base) + 2 * base, rtol=1e-6)
        # grad_req='add' sums into the sparse buffer
        x.attach_grad(grad_req='add')
        for _ in range(2):
            with autograd.record():
                y = x * 3
            y.backward(out_grad=mx.nd.ones_like(y).tostype(stype))
        assert x.grad.stype == stype
        np.testing.assert_allclose(x.grad.asnumpy(), np.full((3, 3), 6.))
    # gradient storage chosen apart from the array's
    x = mx.nd.array(base).tostype('row_sparse')
    x.attach_grad(stype='default')
    with autograd.record():
        y = x * 2
    y.backward()
    assert x.grad.stype == 'default'
    np.testing.assert_allclose(x.grad.asnumpy(), np.full((3, 3), 2.))
    d = mx.nd.array(base)
    d.attach_grad(stype='csr')      # a csr buffer takes the dense gradient's values
    with autograd.record():
        y = d * 2
    y.backward()
    assert d.grad.stype == 'csr'
    np.testing.assert_allclose(d.grad.asnumpy(), np.full((3, 3), 2.))
    # a dense gradient into a dense weight's row_sparse buffer is still refused (rows unknown)
    d.attach_grad(stype='row_sparse')
    with autograd.record():
        y = d * 2
    with pytest.raises(MXNetError, match='row_sparse'):
        y.backward()


def test_zeros_like_keeps_sparse_storage_ones_like_is_dense():
    r = S.row_sparse_array(([[1., 2]], [1]), shape=(3, 2))
    for x in (r, _csr()):
        z, o = mx.nd.zeros_like(x), mx.nd.ones_like(x)
        assert z.stype == x.stype and o.stype == 'default'
        assert z.shape == o.shape == x.shape
        np.testing.assert_array_equal(z.asnumpy(), 0)
        np.testing.assert_array_equal(o.asnumpy(), 1)


def test_dot_csr_with_row_sparse_rhs_gives_row_sparse_gradient():
    c = _csr()
    w = mx.nd.array(np.arange(8.).reshape(4, 2)).tostype('row_sparse')
    w.attach_grad()
    with autograd.record():
        y = mx.nd.dot(c, w)
    np.testing.assert_allclose(y.asnumpy(), c.asnumpy() @ w.asnumpy())
    y.backward()
    assert w.grad.stype == 'row_sparse'
    np.testing.assert_allclose(w.grad.asnumpy(), c.asnumpy().T @ np.ones((3, 2)))


# ---- sparse.dot ----------------------------------------------------------------------------------
def test_dot_kernels_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 4)) * (rng.random((5, 4)) < 0.4)
    a[2] = 0
    b, b2, d = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal((2, 5))
    c = S.csr_matrix(a, dtype='float64')
    r = S.row_sparse_array(a, dtype='float64')
    nd = lambda x: mx.nd.array(x, dtype='float64')  # noqa: E731
    checks = [(S.dot(c, nd(b)), a @ b), (S.dot(c, nd(b2), transpose_a=True), a.T @ b2),
              (S.dot(c, nd(b.T), transpose_b=True), a @ b), (S.dot(r, nd(b)), a @ b),
              (S.dot(r, nd(b2), transpose_a=True), a.T @ b2), (S.dot(nd(d), c), d @ a),
              (S.dot(nd(b2), c, transpose_a=True), b2.T @ a)]
    for got, want in checks:
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mx.nd.dot(c, nd(b)).asnumpy(), a @ b, rtol=1e-12)   # nd.dot dispatches
    t = S.dot(c, nd(b2), transpose_a=True)
    assert t.stype == 'row_sparse'
    np.testing.assert_array_equal(t.indices.asnumpy(), np.flatnonzero(np.abs(a).sum(0)))
    with pytest.raises(MXNetError, match=r'sparse.dot: storage types \(csr, csr\)'):
        S.dot(c, c)
    with pytest.raises(MXNetError, match='inner dimensions'):
        S.dot(c, nd(b2))


def test_dot_transpose_a_matches_mxnet():
    # MXNet 1.9.1: dot(csr.T, dense) is row_sparse with the csr's non-empty columns
    r = S.dot(_csr(), mx.nd.array([[1, 2], [3, 4], [5, 6]]), transpose_a=True)
    assert r.stype == 'row_sparse'
    np.testing.assert_array_equal(r.indices.asnumpy(), [0, 1, 2])
    np.testing.assert_array_equal(r.data.asnumpy(), [[1, 2], [15, 18], [2, 4]])


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize('case', ['csr', 'csr_ta', 'csr_tb', 'rsp', 'rsp_ta', 'dense_csr', 'dense_csr_ta'])
def test_dot_gradient_of_the_dense_operand_float64(case):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 3)) * (rng.random((4, 3)) < 0.5)
    sparse = (S.row_sparse_array if case.startswith('rsp') else S.csr_matrix)(a, dtype='float64')
    ta, tb = case.endswith('_ta'), case.endswith('_tb')
    if case.startswith('dense'):
        shape = (4, 2) if ta else (2, 4)
        fn = lambda w: S.dot(w, sparse, transpose_a=ta)  # noqa: E731
    else:
        k = a.shape[0] if ta else a.shape[1]
        shape = (2, k) if tb else (k, 2)
        fn = lambda w: S.dot(sparse, w, transpose_a=ta, transpose_b=tb)  # noqa: E731
    w0 = rng.standard_normal(shape)
    h = rng.standard_normal(fn(mx.nd.array(w0, dtype='float64')).shape)
    w = mx.nd.array(w0, dtype='float64')
    w.attach_grad()
    with autograd.record():
        loss = (fn(w).tostype('default') * mx.nd.array(h, dtype='float64')).sum()
    loss.backward()
    num = _numeric_grad(lambda v: float((fn(mx.nd.array(v, dtype='float64')).asnumpy() * h).sum()), w0)
    np.testing.assert_allclose(w.grad.asnumpy(), num, rtol=1e-6, atol=1e-8)


def test_sparse_linear_weight_gets_row_sparse_gradient():
    # dot(csr data, w): w's gradient is dot(csr.T, g), holding the rows of the features present
    x = _csr()
    w = mx.nd.array(np.arange(8.).reshape(4, 2))
    w.attach_grad(stype='row_sparse')
    with autograd.record():
        loss = S.dot(x, w).sum()
    loss.backward()
    g = w.grad
    assert g.stype == 'row_sparse'
    np.testing.assert_array_equal(g.indices.asnumpy(), [0, 1, 2])
    np.testing.assert_array_equal(g.asnumpy(), x.asnumpy().T @ np.ones((3, 2)))


# ---- Embedding(sparse_grad=True) -----------------------------------------------------------------------
def _emb_net(**kw):
    emb = gluon.nn.Embedding(6, 3, sparse_grad=True, **kw)
    emb.initialize(mx.init.Constant(0.5))
    return emb


def test_embedding_sparse_grad_matches_mxnet():
    emb = _emb_net()
    x = mx.nd.array([[1, 3], [3, 5]])
    h = mx.nd.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [1, 1, 1]]])
    with autograd.record():
        loss = (emb(x) * h).sum()
    loss.backward()
    g = emb.weight.grad()
    # MXNet 1.9.1: row_sparse, indices [1 3 5], data [[1 2 3] [11 13 15] [1 1 1]]
    assert g.stype == 'row_sparse'
    np.testing.assert_array_equal(g.indices.asnumpy(), [1, 3, 5])
    np.testing.assert_array_equal(g.data.asnumpy(), [[1, 2, 3], [11, 13, 15], [1, 1, 1]])
    assert emb.weight.grad() is g   # one gradient object across steps, as for dense gradients
    emb.weight.zero_grad()
    assert g.data.shape == (0, 3) and not g.asnumpy().any()


def test_embedding_sparse_grad_finite_differences_float64():
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal((5, 2))
    idx = mx.nd.array([[4, 0, 4], [2, 0, 1]])
    h = rng.standard_normal((2, 3, 2))
    w = mx.nd.array(w0, dtype='float64')
    w.attach_grad(stype='row_sparse')
    with autograd.record():
        loss = (mx.nd.Embedding(idx, w, sparse_grad=True) * mx.nd.array(h, dtype='float64')).sum()
    loss.backward()
    num = _numeric_grad(lambda v: float((v[idx.asnumpy().astype(int)] * h).sum()), w0)
    assert w.grad.stype == 'row_sparse'
    np.testing.assert_array_equal(w.grad.indices.asnumpy(), [0, 1, 2, 4])
    np.testing.assert_allclose(w.grad.asnumpy(), num, rtol=1e-7, atol=1e-9)


def test_embedding_sparse_grad_add_and_shared_use():
    emb = _emb_net()
    emb.weight.grad_req = 'add'
    for rows in ([0, 2], [2, 4]):
        with autograd.record():
            loss = emb(mx.nd.array(rows)).sum() + emb(mx.nd.array([2])).sum()   # weight used twice
        loss.backward()
    g = emb.weight.grad()
    np.testing.assert_array_equal(g.indices.asnumpy(), [0, 2, 4])
    np.testing.assert_array_equal(g.data.asnumpy()[:, 0], [1, 4, 1])
    # a dense variable takes the values of a row_sparse gradient
    w = mx.nd.ones((6, 3))
    w.attach_grad()
    with autograd.record():
        loss = mx.nd.Embedding(mx.nd.array([1, 1]), w, sparse_grad=True).sum()
    loss.backward()
    assert w.grad.stype == 'default' and w.grad.asnumpy()[:, 0].tolist() == [0, 2, 0, 0, 0, 0]


def test_hybridized_sparse_grad_embedding_infers_but_refuses_training():
    net = gluon.nn.HybridSequential()
    net.add(_emb_net(), gluon.nn.Dense(2, in_units=6))
    net[1].initialize()
    x = mx.nd.array([[1, 3]])
    eager = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-6)
    with autograd.record():
        loss = net(x).sum()
    with pytest.raises(MXNetError, match='gradient storage is row_sparse.*without hybridize'):
        loss.backward()


# ---- optimizer updates of row_sparse gradients -------------------------------------------------------
W0 = np.arange(15, dtype=np.float32).reshape(5, 3) / 7 - 1
G1 = (np.array([[0.5, -1, 2], [3, 0.25, -0.75]], np.float32), [0, 3])
G2 = (np.array([[1, 1, -1], [-2, 0.5, 0.125]], np.float32), [3, 4])
# MXNet 1.9.1, the weight after opt.update with G1 then G2 (row_sparse gradients of a dense weight)
MXNET_AFTER = {
    ('sgd', 'lazy'): [[-1.015, -0.7985714, -0.8071429], [-0.57142854, -0.4285714, -0.28571427],
                      [-0.14285713, 0., 0.1428572], [0.08152854, 0.3576679, 0.64718217],
                      [0.8071429, 0.8235714, 0.98375]],
    ('sgd_mom', 'lazy'): [[-1.015, -0.79857147, -0.80714285], [-0.57142854, -0.4285714, -0.28571427],
                          [-0.14285713, 0., 0.1428572], [0.03845713, 0.34256077, 0.67578924],
                          [0.80714285, 0.8235714, 0.98375]],
    ('adam', 'lazy'): [[-1.01, -0.8471428, -0.7242858], [-0.57142854, -0.4285714, -0.28571427],
                       [-0.14285713, 0., 0.1428572], [0.26695168, 0.40948108, 0.591382],
                       [0.72172713, 0.8497014, 0.9925586]],
    ('adam', 'standard'): [[-1.0113996, -0.83944553, -0.73038715], [-0.5514335, -0.40857825, -0.2657252],
                           [-0.12288286, 0., 0.12288292], [0.26695168, 0.40948108, 0.591382],
                           [0.71119213, 0.8382723, 0.9801461]],
}
OPTS = {'sgd': ('sgd', dict(learning_rate=0.1, wd=0.1, rescale_grad=0.5)),
        'sgd_mom': ('sgd', dict(learning_rate=0.1, momentum=0.9, wd=0.1, rescale_grad=0.5, clip_gradient=1.0)),
        'adam': ('adam', dict(learning_rate=0.01, wd=0.1, rescale_grad=0.5))}


@pytest.mark.parametrize('key', sorted(MXNET_AFTER))
def test_row_sparse_updates_match_mxnet(key):
    name, kw = OPTS[key[0]]
    opt = mx.optimizer.create(name, lazy_update=key[1] == 'lazy', **kw)
    w = mx.nd.array(W0)
    state = opt.create_state(0, w)
    for g in (G1, G2):
        opt.update(0, w, S.row_sparse_array(g, shape=(5, 3)), state)
    np.testing.assert_allclose(w.asnumpy(), MXNET_AFTER[key], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('key', ['sgd', 'sgd_mom', 'adam'])
def test_lazy_update_is_the_dense_update_on_the_present_rows(key):
    name, kw = OPTS[key]
    lazy, dense = mx.optimizer.create(name, **kw), mx.optimizer.create(name, **kw)
    wl, wd = mx.nd.array(W0), mx.nd.array(W0)
    sl, sd = lazy.create_state(0, wl), dense.create_state(0, wd)
    g = S.row_sparse_array(G1, shape=(5, 3))
    lazy.update(0, wl, g, sl)
    dense.update(0, wd, g.tostype('default'), sd)
    rows, others = [0, 3], [1, 2, 4]
    np.testing.assert_array_equal(wl.asnumpy()[rows], wd.asnumpy()[rows])
    np.testing.assert_array_equal(wl.asnumpy()[others], W0[others])


def test_trainer_step_with_sparse_embedding_leaves_other_rows():
    emb = _emb_net()
    trainer = gluon.Trainer(emb.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 0.01})
    for rows in ([0, 2], [2]):
        with autograd.record():
            loss = emb(mx.nd.array(rows)).sum()
        loss.backward()
        trainer.step(1)
    w = emb.weight.data().asnumpy()
    # row 0: one step (mom = -0.1*(1 + 0.005)); row 2: two steps with momentum
    m1 = -0.1 * (1 + 0.01 * 0.5)
    r2 = 0.5 + m1
    np.testing.assert_allclose(w[0], 0.5 + m1, rtol=1e-6)
    np.testing.assert_allclose(w[2], r2 + 0.9 * m1 - 0.1 * (1 + 0.01 * r2), rtol=1e-6)
    np.testing.assert_array_equal(w[[1, 3, 4, 5]], 0.5)


def test_other_optimizers_take_the_dense_update():
    opt = mx.optimizer.create('rmsprop', learning_rate=0.01)
    ref = mx.optimizer.create('rmsprop', learning_rate=0.01)
    w, w2 = mx.nd.array(W0), mx.nd.array(W0)
    g = S.row_sparse_array(G1, shape=(5, 3))
    opt.update(0, w, g, opt.create_state(0, w))
    ref.update(0, w2, g.tostype('default'), ref.create_state(0, w2))
    np.testing.assert_array_equal(w.asnumpy(), w2.asnumpy())


def _train_on(ctxs, batches, **trainer_kw):
    emb = gluon.nn.Embedding(6, 3, sparse_grad=True)
    emb.initialize(mx.init.Constant(0.5), ctx=ctxs)
    trainer = gluon.Trainer(emb.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 0.1},
                            **trainer_kw)
    for _ in range(2):
        with autograd.record():
            losses = [emb(mx.nd.array(x, ctx=c)).sum() for x, c in zip(batches, ctxs)]
        for loss in losses:
            loss.backward()
        trainer.step(1)
    return [emb.weight.data(c).asnumpy() for c in ctxs]


def test_row_sparse_gradients_on_two_contexts_equal_one_context():
    two = _train_on([mx.cpu(0), mx.cpu(1)], [[1, 2], [2, 3]])
    one = _train_on([mx.cpu(0)], [[1, 2, 2, 3]])
    for w in two:
        np.testing.assert_array_equal(w, one[0])
    assert (one[0][[0, 4, 5]] == 0.5).all() and (one[0][[1, 2, 3]] != 0.5).all()
    with pytest.raises(MXNetError, match='row_sparse gradients.*update_on_kvstore=True'):
        _train_on([mx.cpu(0), mx.cpu(1)], [[1, 2], [2, 3]], update_on_kvstore=False)


# ---- files ---------------------------------------------------------------------------------------
FIXTURES = __file__.rsplit('/', 1)[0] + '/fixtures/mxnet/'


def test_sparse_arrays_round_trip_through_nd_save(tmp_path):
    d = {'r': S.row_sparse_array(([[1., 2], [3, 4]], [4, 1]), shape=(6, 2)),
         'c': S.csr_matrix(([1., 2, 3], [0, 2, 1], [0, 2, 2, 3]), shape=(3, 4), dtype='float64'),
         'dense': mx.nd.array([1, 2, 3]), 'empty_r': S.zeros('row_sparse', (3, 2)), 'empty_c': S.zeros('csr', (2, 5))}
    mx.nd.save(str(tmp_path / 'm.nd'), d)   # MXNet 1.9.1 loads this file with these values
    got = mx.nd.load(str(tmp_path / 'm.nd'))
    for k, v in d.items():
        assert got[k].stype == v.stype and got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k].asnumpy(), v.asnumpy())
    np.testing.assert_array_equal(got['r'].indices.asnumpy(), [1, 4])


@pytest.mark.parametrize('name', ['arrays_row_sparse.nd', 'arrays_csr.nd'])
def test_mxnet_sparse_files_load_and_save_back_equal(tmp_path, name):
    got = mx.nd.load(FIXTURES + name)
    mx.nd.save(str(tmp_path / name), got)
    a, b = open(FIXTURES + name, 'rb').read(), open(tmp_path / name, 'rb').read()
    # only the storage shape differs: MXNet 1.9.1 recorded its first dimension as unknown (0)
    assert len(a) == len(b) and [i for i in range(len(a)) if a[i] != b[i]] == [36]


def test_corrupt_sparse_entries_are_refused(tmp_path):
    raw = bytearray(open(FIXTURES + 'arrays_row_sparse.nd', 'rb').read())
    # the row indices [1, 3] are the int64s before the name table (8 + 1 bytes of 'w')
    end = len(raw) - 8 - 8 - 1
    raw[end - 16:end] = np.array([3, 1], '<i8').tobytes()
    (tmp_path / 'bad.nd').write_bytes(bytes(raw))
    with pytest.raises(MXNetError, match='malformed row_sparse array'):
        mx.nd.load(str(tmp_path / 'bad.nd'))
    with pytest.raises(MXNetError, match='0-d arrays cannot share a file'):
        mx.nd.save(str(tmp_path / 'x.nd'), [_csr(), mx.nd.array(1.0).reshape(())])
    with pytest.raises(MXNetError, match='row_sparse storage'):   # parameter files stay dense
        gluon.nn.Dense(3, in_units=4).load_parameters(FIXTURES + 'arrays_row_sparse.nd')


def test_sums_with_row_sparse_arrays():
    a = S.row_sparse_array(([[1., 2]], [1]), shape=(3, 2))
    b = S.row_sparse_array(([[10., 20], [5, 5]], [1, 2]), shape=(3, 2))
    d = mx.nd.ones((3, 2))
    assert (a + b).stype == 'row_sparse'
    np.testing.assert_array_equal((a + b).asnumpy(), a.asnumpy() + b.asnumpy())
    np.testing.assert_array_equal((d + a).asnumpy(), 1 + a.asnumpy())
    assert (d + a).stype == 'default' and (a + d).stype == 'default'
    d.attach_grad()
    with autograd.record():      # recorded: the dense add on a dense copy of a
        y = d + a
    y.backward()
    np.testing.assert_array_equal(y.asnumpy(), 1 + a.asnumpy())
    np.testing.assert_array_equal(d.grad.asnumpy(), 1)
    a.attach_grad()
    b.attach_grad()
    with autograd.record():
        y = a + b
    assert y.stype == 'default'
    y.backward()
    assert a.grad.stype == b.grad.stype == 'row_sparse'
    np.testing.assert_array_equal(a.grad.asnumpy(), 1)
    np.testing.assert_array_equal(b.grad.asnumpy(), 1)


def test_retain_array_and_copies():
    r = S.row_sparse_array(([[1., 2], [3, 4], [5, 6]], [0, 2, 4]), shape=(5, 2))
    kept = S.retain(r, mx.nd.array([2, 4, 3]))
    np.testing.assert_array_equal(kept.indices.asnumpy(), [2, 4])
    np.testing.assert_array_equal(kept.data.asnumpy(), [[3, 4], [5, 6]])
    c = S.array(sp.csr_matrix(np.eye(3, dtype=np.float32)))
    assert c.stype == 'csr' and S.array(r).stype == 'row_sparse'
    d = mx.nd.zeros((5, 2))
    r.copyto(d)
    np.testing.assert_array_equal(d.asnumpy(), r.asnumpy())
    v = r.data
    v[:] = 0                       # .data is a copy: the array keeps its values
    assert r.asnumpy().sum() == 21
    with pytest.raises(MXNetError, match='sparse.array: expected a sparse'):
        S.array(np.ones((2, 2)))


def test_in_place_arithmetic_keeps_the_sparse_array():
    base = np.array([[0., 3], [4, 0], [0, 0]], np.float32)
    for stype in ('row_sparse', 'csr'):
        x = mx.nd.array(base).tostype(stype)
        same = x
        x *= 0.5
        x /= 2
        x += mx.nd.ones((3, 2))
        assert x is same and x.stype == stype
        np.testing.assert_allclose(x.asnumpy(), base / 4 + 1)
        with pytest.raises(MXNetError, match='does not fit'):
            x += mx.nd.ones((2, 3, 2))
    # clip_global_norm scales sparse gradients in place
    g = mx.nd.ones((3, 3)).tostype('row_sparse')
    h = mx.nd.ones((4, 4)).tostype('row_sparse')
    assert gluon.utils.clip_global_norm([g, h], 1.0) == 5.0
    np.testing.assert_allclose(g.asnumpy(), np.full((3, 3), 0.2), rtol=1e-6)


def test_hybridized_block_reads_dense_copies_of_sparse_inputs():
    class Scale(gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.w = self.params.get('w', shape=(2, 2), init=mx.init.One())

        def hybrid_forward(self, F, x, w):
            return F.dot(x, w) * x

    blk = Scale()
    blk.initialize()
    blk.hybridize()
    x = S.csr_matrix(np.array([[1., 0], [0, 2]], np.float32))
    with autograd.record():
        z = blk(x) + blk(x)
    z.backward()
    np.testing.assert_allclose(z.asnumpy(), 2 * (x.asnumpy() @ np.ones((2, 2))) * x.asnumpy())
    # dz/dw[k, j] = sum_i 2 * x[i, k] * x[i, j]
    np.testing.assert_allclose(blk.w.grad().asnumpy(), 2 * x.asnumpy().T @ x.asnumpy())
    r = mx.nd.array([[0., 0], [3, 1]]).tostype('row_sparse')
    np.testing.assert_allclose(blk(r).asnumpy(), (r.asnumpy() @ np.ones((2, 2))) * r.asnumpy())
