"""Optimizer state layouts shared with MXNet 1.9 (multi-precision order, NAG's lr-scaled
momentum, versions of the saved states) and updates of sparse weights and gradients."""
import io
import json

import numpy as np
import pytest

from engine import nd, optimizer
from engine.ndarray_sparse import row_sparse_array


def _w16():
    return nd.array(np.linspace(-1, 1, 12).reshape(3, 4), dtype='float16')


@pytest.mark.parametrize('name', ['sgd', 'nag', 'lars'])
def test_multi_precision_state_is_state_then_master_for_sgd_family(name):
    opt = optimizer.create(name, momentum=0.9, multi_precision=True)
    w = _w16()
    mom, master = opt.create_state_multi_precision(0, w)
    assert master.dtype == np.float32 and mom.dtype == np.float32
    np.testing.assert_array_equal(master.asnumpy(), w.asnumpy().astype(np.float32))
    assert not mom.asnumpy().any()
    g = nd.ones((3, 4), dtype='float16')
    opt.update_multi_precision(0, w, g, (mom, master))
    assert mom.asnumpy().any()                               # the momentum moved, not the master
    np.testing.assert_allclose(w.asnumpy(), master.asnumpy().astype(np.float16))


def test_multi_precision_state_is_master_then_state_for_adam():
    opt = optimizer.Adam(multi_precision=True)
    w = _w16()
    master, (mean, var) = opt.create_state_multi_precision(0, w)
    np.testing.assert_array_equal(master.asnumpy(), w.asnumpy().astype(np.float32))
    opt.update_multi_precision(0, w, nd.ones((3, 4), dtype='float16'), (master, (mean, var)))
    assert mean.asnumpy().any() and var.asnumpy().any()


def test_nag_momentum_holds_lr_scaled_steps():
    # MXNet's nag_mom_update: mom = momentum*mom - lr*(g + wd*w); w += momentum*mom - lr*(g + wd*w)
    lr, m, wd = 0.1, 0.9, 0.01
    opt = optimizer.NAG(learning_rate=lr, momentum=m, wd=wd)
    w0 = np.array([[1.0, -2.0, 0.5]], np.float64)
    g = np.array([[0.3, 0.2, -0.4]], np.float64)
    w = nd.array(w0, dtype='float64')
    mom = opt.create_state(0, w)
    opt.update(0, w, nd.array(g, dtype='float64'), mom)
    step = g + wd * w0
    np.testing.assert_allclose(mom.asnumpy(), -lr * step)
    np.testing.assert_allclose(w.asnumpy(), w0 + m * (-lr * step) - lr * step)
    # the op of the same name keeps the same state
    w2, mom2 = nd.array(w0, dtype='float64'), nd.zeros((1, 3), dtype='float64')
    nd.nag_mom_update(w2, nd.array(g, dtype='float64'), mom2, lr=lr, momentum=m, wd=wd, out=w2)
    np.testing.assert_allclose(mom2.asnumpy(), mom.asnumpy())
    np.testing.assert_allclose(w2.asnumpy(), w.asnumpy())


def _version1_blob(state_pair):
    """An Updater archive as version 1 wrote a multi-precision state: (master, momentum)."""
    master, mom = state_pair
    header = {'format': 'engine.optimizer.Updater', 'version': 1,
              'states': [[0, {'tuple': [{'array': 'a0'}, {'array': 'a1'}]}]],
              'optimizer': None, 'meta': None}
    buf = io.BytesIO()
    np.savez(buf, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), a0=master, a1=mom)
    return buf.getvalue()


def test_version1_multi_precision_states_load_in_the_new_order():
    master = np.full((3, 4), 0.5, np.float32)
    mom = np.full((3, 4), -0.25, np.float32)
    sgd = optimizer.get_updater(optimizer.SGD(momentum=0.9, multi_precision=True))
    sgd.set_states(_version1_blob((master, mom)))
    got_mom, got_master = sgd.states[0]
    np.testing.assert_array_equal(got_master.asnumpy(), master)
    np.testing.assert_array_equal(got_mom.asnumpy(), mom)
    # the states written now read back unchanged
    again = optimizer.get_updater(optimizer.SGD(momentum=0.9, multi_precision=True))
    again.set_states(sgd.get_states())
    np.testing.assert_array_equal(again.states[0][1].asnumpy(), master)


# ---- sparse storage ------------------------------------------------------------------------------

def _weight(stype):
    w = nd.array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10 + 1)
    return w if stype == 'default' else w.tostype(stype)


def _grad():   # a gradient for row 1 only
    return row_sparse_array((np.ones((1, 3), np.float32), np.array([1])), shape=(4, 3))


# column 0 of the weight after one step, printed by MXNet 1.9.1 for these inputs
MXNET_COL0 = {
    ('sgd', 'lazy'): [1.0, 1.2887, 1.6, 1.9],
    ('sgd', 'std'): [0.999, 1.2887, 1.5984, 1.8981],
    ('adam', 'lazy'): [1.0, 1.299, 1.6, 1.9],
    ('adam', 'std'): [0.999, 1.299, 1.599, 1.899],
}


@pytest.mark.parametrize('wstype', ['default', 'row_sparse'])
@pytest.mark.parametrize('name,mode', list(MXNET_COL0))
def test_row_sparse_gradient_lazy_and_standard_updates(name, mode, wstype):
    kw = dict(wd=0.1, lazy_update=(mode == 'lazy'))
    if name == 'sgd':
        kw['momentum'] = 0.9
    opt = optimizer.create(name, **kw)
    w = _weight(wstype)
    state = opt.create_state_multi_precision(0, w)
    opt.update_multi_precision(0, w, _grad(), state)
    assert w.stype == wstype
    np.testing.assert_allclose(w.asnumpy()[:, 0], MXNET_COL0[name, mode], atol=1e-4)
    first = state[0] if isinstance(state, tuple) else state
    moved = np.flatnonzero(first.asnumpy().any(axis=1))
    assert list(moved) == ([1] if mode == 'lazy' else [0, 1, 2, 3])


def test_ftrl_is_lazy_for_row_sparse_weights_only():
    # MXNet: ftrl_update on row_sparse weight and gradient updates the gradient's rows; a dense
    # weight takes the standard update, which moves the rows without gradient too
    for wstype, col0 in (('row_sparse', [1.0, 0.5965, 1.6, 1.9]), ('default', [0.0, 0.5965, 0.0, 0.0])):
        opt = optimizer.Ftrl(wd=0.1)
        w = _weight(wstype)
        opt.update(0, w, _grad(), opt.create_state(0, w))
        np.testing.assert_allclose(w.asnumpy()[:, 0], col0, atol=1e-4)


def test_csr_weight_and_gradient_take_the_dense_update():
    w = nd.array(np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    g = nd.array(np.array([[0, 1, 0], [2, 0, 0]], np.float32))
    ref = w.copy()
    optimizer.SGD(learning_rate=0.5, wd=0.1).update(0, ref, g, None)
    ws = w.tostype('csr')
    optimizer.SGD(learning_rate=0.5, wd=0.1).update(0, ws, g.tostype('csr'), None)
    assert ws.stype == 'csr'
    np.testing.assert_allclose(ws.asnumpy(), ref.asnumpy(), rtol=1e-6)


def test_sparse_gradient_of_another_shape_is_an_error():
    from engine.base import MXNetError
    g = row_sparse_array((np.ones((1, 3), np.float32), np.array([0])), shape=(5, 3))
    with pytest.raises(MXNetError, match='one shape'):
        optimizer.SGD().update(0, _weight('row_sparse'), g, None)
