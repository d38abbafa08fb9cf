"""Eager autograd: the seed-talk programs, grad_req, retain_graph, head gradients, autograd.grad,
higher-order gradients, custom Functions, detach/pause and the mode flags."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(a.asnumpy() if hasattr(a, 'asnumpy') else a,
                               b.asnumpy() if hasattr(b, 'asnumpy') else b, rtol=rtol, atol=atol)


# ---- (a) the seed talk: a paraboloid on a grid -------------------------------------------------

def test_seed_talk_paraboloid():
    yy, xx = np.indices((20, 20))
    x, y = nd.array(xx), nd.array(yy)
    x.attach_grad()
    y.attach_grad()
    with mx.autograd.record():
        z = (x - 5) ** 2 + (y - 10) ** 2
    z.backward()
    close(x.grad, 2 * (x - 5))
    close(y.grad, 2 * (y - 10))
    close(x.grad, 2 * (xx - 5))
    assert x.grad.dtype == np.float32 and x.grad.shape == (20, 20)


# ---- (b) the seed talk: value-dependent control flow ------------------------------------------

def funky_function(a):
    b = a * 2
    while (nd.norm(b) < 10).asscalar():
        b = b ** 2
    if (mx.nd.sum(b) > 1).asscalar():
        c = b
    else:
        c = 10 * b
    return c


def _funky_reference(a):
    """n squarings and the factor k, decided in float32 like the forward pass; c = k (2a)^(2^n)."""
    b = (a * 2).astype(np.float32)
    n = 0
    while np.sqrt(np.sum(b * b)) < 10:
        b = b ** 2
        n += 1
    k = 1.0 if b.sum() > 1 else 10.0
    p = 2 ** n
    a64 = a.astype(np.float64)
    return k * (2 * a64) ** p, k * p * 2 * (2 * a64) ** (p - 1), n, k


@pytest.mark.parametrize('seed', [0, 1, 2, 3, 5])
def test_seed_talk_funky_function(seed):
    mx.random.seed(seed)
    a = nd.random_normal(shape=3)
    a_np = a.asnumpy()
    assert np.abs(2 * a_np).max() > 1, 'the loop would not terminate for this draw'
    a.attach_grad()
    with mx.autograd.record():
        c = funky_function(a)
    c.backward()
    value, grad, n, k = _funky_reference(a_np)
    assert n >= 1
    close(c, value, rtol=1e-4)
    close(a.grad, grad, rtol=1e-4, atol=1e-6)


def test_funky_function_else_branch():
    a = nd.array([-6.0, 1.0, 0.5])   # norm(2a) >= 10 at once, sum(2a) < 1: c = 10 * (2a)
    a.attach_grad()
    with mx.autograd.record():
        c = funky_function(a)
    c.backward()
    value, grad, n, k = _funky_reference(a.asnumpy())
    assert (n, k) == (0, 10.0)
    close(c, value)
    close(a.grad, grad)
    close(a.grad, np.full(3, 20.0))


# ---- (c) custom Functions --------------------------------------------------------------------

class Sin(mx.autograd.Function):
    def forward(self, x):
        self.save_for_backward(x)
        return nd.sin(x)

    def backward(self, dy):
        x, = self.saved_tensors
        return dy * nd.cos(x)


class Multiply(mx.autograd.Function):
    def forward(self, x, y):
        self.save_for_backward(x, y)
        return x * y

    def backward(self, dz):
        x, y = self.saved_tensors
        return [y * dz, x * dz]


class SplitScale(mx.autograd.Function):
    """Two outputs: (2x, 3x)."""
    def forward(self, x):
        return x * 2, x * 3

    def backward(self, d1, d2):
        return d1 * 2 + d2 * 3


def test_custom_functions_composed():
    xa, ya = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.5, -2.0])
    x, y = nd.array(xa), nd.array(ya)
    x.attach_grad()
    y.attach_grad()
    with autograd.record():
        s = Sin()(x)
        z = Multiply()(s, y)
        out = (z * 2 + 1).sum()
    out.backward()
    close(s, np.sin(xa))
    close(z, np.sin(xa) * ya)
    close(x.grad, 2 * ya * np.cos(xa))
    close(y.grad, 2 * np.sin(xa))


def test_custom_function_inside_a_graph_and_multi_output():
    xa = np.array([0.5, 1.0, -0.7])
    x = nd.array(xa)
    x.attach_grad()
    with autograd.record():
        h = x * x
        a, b = SplitScale()(Sin()(h))
        out = a * b
    out.backward()
    # out = 6 sin(x^2)^2
    close(x.grad, 6 * 2 * np.sin(xa ** 2) * np.cos(xa ** 2) * 2 * xa)
    # only one output of the multi-output Function used: the other gets a zero gradient
    with autograd.record():
        a, b = SplitScale()(x)
    b.backward()
    close(x.grad, np.full(3, 3.0))


def test_custom_function_outside_record_is_plain():
    x = nd.array([0.1, 0.2])
    y = Sin()(x)
    close(y, np.sin([0.1, 0.2]))
    assert y._entry is None


# ---- grad_req ----------------------------------------------------------------------------------

def _square_backward(x):
    with autograd.record():
        y = x * x
    y.backward()


def test_grad_req_write_overwrites():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    _square_backward(x)
    _square_backward(x)
    close(x.grad, [2.0, 4.0])


def test_grad_req_add_accumulates():
    x = nd.array([1.0, 2.0])
    x.attach_grad(grad_req='add')
    _square_backward(x)
    _square_backward(x)
    close(x.grad, [4.0, 8.0])
    x.grad[:] = 0     # the usual zero_grad
    _square_backward(x)
    close(x.grad, [2.0, 4.0])


def test_grad_req_null_leaves_grad_alone():
    x, w = nd.array([1.0, 2.0]), nd.array([3.0, 4.0])
    x.attach_grad(grad_req='null')
    w.attach_grad()
    with autograd.record():
        y = x * w
    y.backward()
    close(x.grad, [0.0, 0.0])
    close(w.grad, [1.0, 2.0])


def test_write_zeroes_variables_that_get_no_gradient():
    x, w = nd.array([1.0, 2.0]), nd.array([3.0, 4.0])
    x.attach_grad()
    w.attach_grad()
    with autograd.record():
        y = x * w
    y.backward()
    close(w.grad, [1.0, 2.0])
    with autograd.record():
        y = nd.where(w, x * 2, x)     # w is on the tape, but as a condition it gets no gradient
    y.backward()
    close(x.grad, [2.0, 2.0])
    close(w.grad, [0.0, 0.0])


# ---- retain_graph and misuse -------------------------------------------------------------------

def test_retain_graph():
    x = nd.array([1.0, 3.0])
    x.attach_grad(grad_req='add')
    with autograd.record():
        y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    close(x.grad, [4.0, 12.0])
    with pytest.raises(MXNetError) as e:
        y.backward()
    assert type(e.value) is MXNetError and 'retain_graph' in str(e.value)


def test_backward_without_record_raises():
    x = nd.array([1.0, 2.0])
    with pytest.raises(MXNetError) as e:
        x.backward()
    assert type(e.value) is MXNetError
    x.attach_grad()
    y = x * 2                  # not recorded
    with pytest.raises(MXNetError) as e:
        y.backward()
    assert type(e.value) is MXNetError and 'record' in str(e.value)


def test_head_gradient_with_wrong_shape_raises():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = x * 2
    with pytest.raises(MXNetError) as e:
        y.backward(nd.ones((2,)))
    assert type(e.value) is MXNetError and '(2,)' in str(e.value) and '(3,)' in str(e.value)


def test_head_gradients_count_mismatch_raises():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y1, y2 = x * 2, x * 3
    with pytest.raises(MXNetError):
        autograd.backward([y1, y2], [nd.ones(2)])


def test_head_gradient_weights_the_output():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = x * x
    y.backward(nd.array([1.0, 0.5, -1.0]))
    close(x.grad, [2.0, 2.0, -6.0])


def test_backward_of_a_leaf_is_ones():
    x = nd.array([[1.0, 2.0]])
    x.attach_grad()
    x.backward()
    close(x.grad, [[1.0, 1.0]])


def test_backward_several_heads_with_head_grads():
    x, w = nd.array([1.0, 2.0]), nd.array([3.0, -1.0])
    x.attach_grad()
    w.attach_grad()
    with autograd.record():
        y1 = x * w
        y2 = (x * x).sum()
    autograd.backward([y1, y2], [nd.array([1.0, 2.0]), nd.array(0.5)])
    close(x.grad, np.array([3.0, -2.0]) + 0.5 * 2 * np.array([1.0, 2.0]))
    close(w.grad, [1.0, 4.0])
    with autograd.record():
        y1, y2 = x * 2, x * 3
    autograd.backward([y1, y2])   # default head gradients are ones
    close(x.grad, [5.0, 5.0])


# ---- autograd.grad -------------------------------------------------------------------------------

def test_grad_returns_gradients_without_touching_dot_grad():
    x, y = nd.array([1.0, 2.0]), nd.array([3.0, 4.0])
    x.attach_grad()
    y.attach_grad()
    with autograd.record():
        z = x * x * y
    gx, gy = autograd.grad(z, [x, y])
    close(gx, 2 * np.array([1.0, 2.0]) * np.array([3.0, 4.0]))
    close(gy, [1.0, 4.0])
    close(x.grad, [0.0, 0.0])
    close(y.grad, [0.0, 0.0])
    with autograd.record():
        z = (x * 3).sum()
    g = autograd.grad(z, x)            # a single variable gives a single array
    close(g, [3.0, 3.0])


def test_grad_with_head_grads_and_unused_variable():
    x, u = nd.array([1.0, 2.0]), nd.array([5.0])
    x.attach_grad()
    u.attach_grad()
    with autograd.record():
        y = nd.exp(x)
    gx, gu = autograd.grad(y, [x, u], head_grads=nd.array([2.0, -1.0]))
    close(gx, np.array([2.0, -1.0]) * np.exp([1.0, 2.0]))
    close(gu, [0.0])


def test_grad_with_respect_to_an_intermediate():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        h = x * 3
        z = (h * h).sum()
    gh = autograd.grad(z, h)
    close(gh, 2 * np.array([3.0, 6.0]))


def test_grad_of_unmarked_variable_raises():
    with pytest.raises(MXNetError):
        autograd.grad(nd.ones(2), nd.ones(2))


# ---- higher order --------------------------------------------------------------------------------
SECOND = [
    ('exp', nd.exp, np.exp),
    ('sin', nd.sin, lambda x: -np.sin(x)),
    ('tanh', nd.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ('sigmoid', nd.sigmoid, lambda x: (lambda s: s * (1 - s) * (1 - 2 * s))(1 / (1 + np.exp(-x)))),
    ('cube', lambda x: x ** 3, lambda x: 6 * x),
    ('square', lambda x: x ** 2, lambda x: 2 + 0 * x),
    ('log', nd.log, lambda x: -1 / x ** 2),
    ('sqrt', nd.sqrt, lambda x: -0.25 * x ** -1.5),
    ('reciprocal', lambda x: 1 / x, lambda x: 2 / x ** 3),
]


@pytest.mark.parametrize('name,f,f2', SECOND, ids=[s[0] for s in SECOND])
def test_second_order_unary(name, f, f2):
    xa = np.array([0.3, 0.9, 1.7, 2.2])
    x = nd.array(xa, dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = f(x)
        g = autograd.grad(y, x, create_graph=True)
    assert g._entry is not None
    g.backward()
    close(x.grad, f2(xa), rtol=1e-10, atol=1e-12)


def test_second_order_product():
    xa, ya = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.25, -1.0])
    x, y = nd.array(xa, dtype='float64'), nd.array(ya, dtype='float64')
    x.attach_grad()
    y.attach_grad()
    with autograd.record():
        z = x * x * y
        gx, gy = autograd.grad(z, [x, y], create_graph=True)   # 2xy, x^2
        loss = (gx + gy * 3).sum()
    loss.backward()
    close(x.grad, 2 * ya + 6 * xa, rtol=1e-12)
    close(y.grad, 2 * xa, rtol=1e-12)
    y.attach_grad()
    with autograd.record():
        z = x * y
        gx = autograd.grad(z, x, create_graph=True)              # y: d/dy = 1 (x is not reached)
        gx.sum().backward()
    close(y.grad, np.ones(3))


def test_second_order_dot():
    rng = np.random.default_rng(3)
    xa, wa, h, c = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((3, 2)), \
        rng.standard_normal((3, 4))
    x, w = nd.array(xa, dtype='float64'), nd.array(wa, dtype='float64')
    x.attach_grad()
    w.attach_grad()
    with autograd.record():
        y = nd.dot(x, w)
        gx = autograd.grad(y, x, head_grads=nd.array(h, dtype='float64'), create_graph=True)  # h w^T
        loss = (gx * nd.array(c, dtype='float64')).sum()
    close(gx, h @ wa.T, rtol=1e-12)
    loss.backward()
    close(w.grad, c.T @ h, rtol=1e-10, atol=1e-12)
    close(x.grad, np.zeros((3, 4)))
    # the Hessian-vector product of sum((xw)^2) w.r.t. x
    with autograd.record():
        y = (nd.dot(x, w) ** 2).sum()
        gx = autograd.grad(y, x, create_graph=True)              # 2 (xw) w^T
        (gx * nd.array(c, dtype='float64')).sum().backward()
    close(x.grad, 2 * (c @ wa) @ wa.T, rtol=1e-10, atol=1e-12)


def test_third_order():
    x = nd.array([0.5, 1.5], dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = x ** 4
        g1 = autograd.grad(y, x, create_graph=True)      # 4x^3
        g2 = autograd.grad(g1, x, create_graph=True)     # 12x^2
    g2.backward()                                        # 24x
    close(g1, 4 * np.array([0.5, 1.5]) ** 3)
    close(g2, 12 * np.array([0.5, 1.5]) ** 2)
    close(x.grad, 24 * np.array([0.5, 1.5]))


@pytest.mark.torch
def test_second_order_matches_torch():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(5)
    xa, wa = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))

    def f(F, x, w, mm):
        return (F.tanh(mm(x, w)) * F.sigmoid(x.sum() * 0.1)).sum()

    x, w = nd.array(xa, dtype='float64'), nd.array(wa, dtype='float64')
    x.attach_grad()
    w.attach_grad()
    with autograd.record():
        gx = autograd.grad(f(nd, x, w, nd.dot), x, create_graph=True)
        (gx * gx).sum().backward()
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    tgx, = torch.autograd.grad(f(torch, tx, tw, torch.matmul), tx, create_graph=True)
    (tgx * tgx).sum().backward()
    close(gx, tgx.detach().numpy(), rtol=1e-10, atol=1e-12)
    close(x.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    close(w.grad, tw.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---- detach, pause, flags --------------------------------------------------------------------------

def test_detach_stops_gradients():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * x
        z = y.detach() * x        # d/dx = y, not 3x^2
    z.backward()
    close(x.grad, [1.0, 4.0])


def test_pause_inside_record():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        y = x * 2
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
            k = y * 10             # a constant to the tape
        with autograd.pause(train_mode=True):
            assert not autograd.is_recording() and autograd.is_training()
        assert autograd.is_recording()
        z = y * k
    assert k._entry is None
    z.backward()
    close(x.grad, 2 * np.array([20.0, 40.0]))


def test_mode_flags():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
    with autograd.record(train_mode=False):
        assert autograd.is_recording() and not autograd.is_training()
    with autograd.train_mode():
        assert autograd.is_training() and not autograd.is_recording()
        with autograd.predict_mode():
            assert not autograd.is_training()
        assert autograd.is_training()
    with autograd.record():
        with autograd.predict_mode():
            assert autograd.is_recording() and not autograd.is_training()
    assert not autograd.is_recording() and not autograd.is_training()
    with pytest.raises(ZeroDivisionError):
        with autograd.record():
            1 / 0
    assert not autograd.is_recording() and not autograd.is_training()   # restored after an error
    old = autograd.set_recording(True)
    assert old is False and autograd.is_recording()
    autograd.set_recording(old)
    old = autograd.set_training(True)
    assert old is False and autograd.is_training()
    autograd.set_training(old)


def test_ops_outside_record_are_not_taped():
    x = nd.array([1.0])
    x.attach_grad()
    y = x * 2
    assert y._entry is None
    with autograd.record():
        c = nd.ones(1) * 3          # no variable involved: not taped either
    assert c._entry is None


# ---- accumulation and multi-output ops ----------------------------------------------------------

def test_reusing_an_input_accumulates():
    xa = np.array([0.5, -1.0, 2.0])
    x = nd.array(xa)
    x.attach_grad()
    with autograd.record():
        y = x * x + x * 3 + nd.sin(x) + x
    y.backward()
    close(x.grad, 2 * xa + 3 + np.cos(xa) + 1)


def test_diamond_graph():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        a = x * 2
        b = a * a
        c = a * 3
        d = b + c + a
    d.backward()
    a_ = 2 * np.array([1.0, 2.0])
    close(x.grad, (2 * a_ + 3 + 1) * 2)


def test_split_gradients_with_unused_outputs():
    x = nd.array(np.arange(12.0).reshape(2, 6))
    x.attach_grad()
    with autograd.record():
        a, b, c = nd.split(x, num_outputs=3, axis=1)
        y = (b * 2).sum() + (a * c).sum() * 0
    y.backward()
    want = np.zeros((2, 6))
    want[:, 2:4] = 2
    want[:, 0:2] = 0 * x.asnumpy()[:, 4:6]
    close(x.grad, want)
    with autograd.record():
        parts = nd.split(x, num_outputs=3, axis=1)
        y = parts[2] * parts[2]
    y.backward()
    want = np.zeros((2, 6))
    want[:, 4:6] = 2 * x.asnumpy()[:, 4:6]
    close(x.grad, want)


def test_gradient_dtype_follows_the_variable():
    x = nd.array([1.0, 2.0], dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = nd.cast(x, 'float32') * 3
    y.backward()
    assert x.grad.dtype == np.float64
    close(x.grad, [3.0, 3.0])


def test_long_chain_is_not_recursive():
    x = nd.array([1.0])
    x.attach_grad()
    with autograd.record():
        y = x
        for _ in range(3000):
            y = y * 1.0
    y.backward()
    close(x.grad, [1.0])


# ---- aliasing and misuse of custom backward rules -------------------------------------------------

def test_grad_results_never_alias_head_grads_or_each_other():
    x, y = nd.array([1.0, 2.0]), nd.array([3.0, 4.0])
    x.attach_grad()
    y.attach_grad()
    h = nd.array([0.5, -1.0])
    with autograd.record():
        z = x + y                          # add passes the head gradient through unchanged
    gx, gy = autograd.grad(z, [x, y], head_grads=h)
    assert gx is not h and gy is not h and gx is not gy
    gx[:] = 100
    close(gy, [0.5, -1.0])
    close(h, [0.5, -1.0])


class Identity(mx.autograd.Function):
    def forward(self, x):
        return x

    def backward(self, dy):
        return dy * 1


class WrongCount(mx.autograd.Function):
    def forward(self, x, y):
        return x * y

    def backward(self, dz):
        return dz                  # one gradient for two inputs


def test_function_returning_its_input_keeps_the_variable():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = Identity()(x)
        z = y * y
    z.backward()
    close(x.grad, [2.0, 4.0])


def test_function_backward_with_wrong_gradient_count_raises():
    x, y = nd.array([1.0]), nd.array([2.0])
    x.attach_grad()
    y.attach_grad()
    with autograd.record():
        z = WrongCount()(x, y)
    with pytest.raises(MXNetError) as e:
        z.backward()
    assert 'WrongCount' in str(e.value)


def test_head_gradient_must_be_an_ndarray():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 2
    with pytest.raises(MXNetError):
        y.backward(np.ones(2))
