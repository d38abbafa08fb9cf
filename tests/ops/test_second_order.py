"""Second-order gradients through the nn ops, float64.

Each case is a function f of NDArrays. `first_gradient(f)` is the function x -> d<f(x), h>/dx for
a fixed random head h, computed by `autograd.grad(create_graph=True)`; checking it with finite
differences (`check_numeric_gradient`) compares the second-order result (the backward of the
first gradient, which runs the backward ops' own rules) with finite differences of the first
gradient. A rule missing or dropping a term fails here. Inputs stay away from kinks (max-pool
ties) by construction; everything is smooth elsewhere (tanh, squares).
"""
import numpy as np
import pytest

from engine import autograd, nd
from engine.base import MXNetError
from engine.test_utils import check_numeric_gradient

_rng = np.random.default_rng(7)


def u(*shape):
    return _rng.uniform(-1.0, 1.0, shape)


def pos(*shape):
    return _rng.uniform(0.5, 1.5, shape)


def distinct(*shape):
    """Values at least 0.1 apart: max pooling has no ties, within and across finite-difference steps."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.1 - 0.05 * n).reshape(shape)


def first_gradient(f, head_seed=1):
    """x -> the gradients of sum(f(x) * h) w.r.t. every float input, computed differentiably."""
    def grads(*xs):
        # fresh handles: variables when called plainly, recorded copies under an outer record()
        zs = [x + 0.0 for x in xs]
        for z in zs:
            if z._entry is None:
                z.attach_grad()
        with autograd.record():
            y = f(*zs)
        heads = np.random.default_rng(head_seed).standard_normal(y.shape)
        return tuple(autograd.grad(y, zs, head_grads=nd.array(heads, dtype=y.dtype), create_graph=True))
    return grads


def _bn(fix_gamma):
    def bn(x, g, b):
        c = x.shape[1]
        return nd.BatchNorm(x, g, b, nd.zeros(c, dtype=x.dtype), nd.ones(c, dtype=x.dtype), fix_gamma=fix_gamma)
    return bn


_LABELS = np.array([0, 2, 1, 3], dtype=np.float64)

# (name, f, inputs): f is smooth in its inputs around the given values
CASES = [
    ('conv2d', lambda x, w, b: nd.tanh(nd.Convolution(x, w, b, kernel=(3, 3), pad=(1, 1))),
     [u(2, 2, 4, 4), u(3, 2, 3, 3), u(3)]),
    ('conv2d-stride-pad', lambda x, w: nd.tanh(nd.Convolution(x, w, kernel=(3, 2), stride=(2, 1), pad=(1, 0),
                                                               no_bias=True)),
     [u(1, 2, 5, 4), u(3, 2, 3, 2)]),
    ('conv2d-groups-dilate', lambda x, w, b: nd.tanh(nd.Convolution(x, w, b, kernel=(2, 2), num_group=2,
                                                                    dilate=(2, 1), pad=(1, 1))),
     [u(1, 4, 4, 4), u(4, 2, 2, 2), u(4)]),
    ('conv1d', lambda x, w: nd.tanh(nd.Convolution(x, w, kernel=(3,), no_bias=True)), [u(2, 2, 5), u(3, 2, 3)]),
    ('deconv', lambda x, w, b: nd.tanh(nd.Deconvolution(x, w, b, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                                                          adj=(1, 1), no_bias=False)),
     [u(1, 2, 3, 3), u(2, 3, 3, 3), u(3)]),
    ('max_pool', lambda x: nd.Pooling(x, kernel=(2, 2), stride=(2, 2)) ** 3, [distinct(2, 2, 4, 4)]),
    ('max_pool-pad-full', lambda x: nd.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                                               pooling_convention='full') ** 3, [distinct(1, 2, 5, 5)]),
    ('conv-max_pool', lambda x, w: nd.tanh(nd.Pooling(nd.Convolution(x, w, kernel=(1, 1), no_bias=True),
                                                      kernel=(2, 2), stride=(2, 2))),
     [distinct(1, 1, 4, 4), np.array([[[[0.7]]], [[[-1.3]]]])]),
    ('avg_pool', lambda x: nd.Pooling(x, kernel=(2, 3), stride=(1, 2), pool_type='avg') ** 3, [u(1, 2, 4, 5)]),
    ('avg_pool-pad', lambda x: nd.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg',
                                          count_include_pad=False) ** 3, [u(1, 2, 5, 5)]),
    ('batch_norm', lambda x, g, b: nd.tanh(_bn(False)(x, g, b)), [u(4, 3, 2, 2), pos(3), u(3)]),
    ('batch_norm-fix_gamma', lambda x, b: nd.tanh(_bn(True)(x, nd.array(pos(2), dtype='float64'), b)),
     [u(3, 2, 3), u(2)]),
    ('batch_norm-2d', lambda x, g, b: nd.tanh(_bn(False)(x, g, b)), [u(5, 3), pos(3), u(3)]),
    ('layer_norm', lambda x, g, b: nd.tanh(nd.LayerNorm(x, g, b)), [u(3, 5), pos(5), u(5)]),
    ('layer_norm-axis1', lambda x, g, b: nd.tanh(nd.LayerNorm(x, g, b, axis=1)), [u(2, 4, 3), pos(4), u(4)]),
    ('instance_norm', lambda x, g, b: nd.tanh(nd.InstanceNorm(x, g, b)), [u(2, 3, 2, 3), pos(3), u(3)]),
    ('softmax_ce', lambda x: nd.softmax_cross_entropy_loss(x, nd.array(_LABELS, dtype='float64')), [u(4, 5)]),
    ('fc-softmax_ce', lambda x, w: nd.softmax_cross_entropy_loss(nd.FullyConnected(x, w, no_bias=True, num_hidden=5),
                                                                 nd.array(_LABELS, dtype='float64')),
     [u(4, 3), u(5, 3)]),
    ('softmax_ce-dense', lambda x, p: nd.softmax_cross_entropy_loss(x, p, sparse_label=False), [u(4, 5), pos(4, 5)]),
    ('softmax_ce-per-pixel', lambda x: nd.softmax_cross_entropy_loss(
        x, nd.array(np.array([[0, 2], [1, 1]], dtype=np.float64)), axis=1), [u(2, 3, 2)]),
    ('softmax', lambda x: nd.softmax(x) ** 2, [u(3, 4)]),
    ('log_softmax', lambda x: nd.log_softmax(x) ** 2, [u(3, 4)]),
    ('embedding', lambda w: nd.tanh(nd.Embedding(nd.array([[0, 2], [2, 3]]), w, input_dim=4, output_dim=3)),
     [u(4, 3)]),
]


def _train(f):
    def run(*xs):
        with autograd.train_mode():
            return f(*xs)
    return run


@pytest.mark.parametrize('name,f,inputs', CASES, ids=[c[0] for c in CASES])
def test_second_order_matches_finite_differences_of_the_first_gradient(name, f, inputs):
    check_numeric_gradient(_train(first_gradient(f)), inputs, rtol=1e-5, atol=1e-7)


def test_second_order_reaches_the_backward_ops_rules():
    """The second-order tape holds the backward ops themselves (their rules ran, not a constant)."""
    x = nd.array(u(1, 2, 4, 4), dtype='float64')
    w = nd.array(u(3, 2, 3, 3), dtype='float64')
    for v in (x, w):
        v.attach_grad()
    with autograd.record():
        y = nd.tanh(nd.Pooling(nd.Convolution(x, w, kernel=(3, 3), pad=(1, 1), no_bias=True), kernel=(2, 2),
                               stride=(2, 2)))
        gx, gw = autograd.grad(y, [x, w], create_graph=True)
        z = (gx * gx).sum() + (gw * gw).sum()
    ops = {n.op.name for n in autograd._topo_order([z]) if isinstance(n, autograd.Node)}
    assert {'conv2d_backward_data', 'conv2d_backward_weight', 'max_pool2d_backward'} <= ops
    z.backward()
    assert float(np.abs(x.grad.asnumpy()).sum()) > 0 and float(np.abs(w.grad.asnumpy()).sum()) > 0


def _gradient_of_a_first_order_only_backward(make):
    x = nd.array(u(3, 2), dtype='float64')
    x.attach_grad()
    f = make()
    with autograd.record():
        gx = autograd.grad(f(x), x, create_graph=True)
        z = (gx * x).sum()   # d z/dx = gx + x * d gx/dx: the second term needs the block's own rule
    z.backward()


def test_second_order_through_a_hybridized_block_is_a_clear_error():
    """A compiled block's backward records nothing: its gradient would be a constant and the
    second-order result silently miss terms."""
    from engine.gluon import nn

    def make():
        net = nn.Dense(2, activation='tanh', in_units=2, dtype='float64')
        net.initialize()
        net.hybridize()
        return net
    with pytest.raises(MXNetError, match=r'second-order gradients \(create_graph=True\) through it are not '
                                         r'supported: it is a hybridized block'):
        _gradient_of_a_first_order_only_backward(make)


def test_second_order_through_an_autograd_function_is_a_clear_error():
    class Cube(autograd.Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x * x

        def backward(self, dy):
            x, = self.saved_tensors
            return dy * 3 * x * x
    with pytest.raises(MXNetError, match='Cube: second-order .* autograd.Function runs its backward'):
        _gradient_of_a_first_order_only_backward(lambda: Cube())
    x = nd.array(u(3), dtype='float64')   # first order with create_graph=True still works
    x.attach_grad()
    with autograd.record():
        gx = autograd.grad(Cube()(x), x, create_graph=True)
    np.testing.assert_allclose(gx.asnumpy(), 3 * x.asnumpy() ** 2, rtol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize('norm_kind', ['batch', 'layer', 'instance'])
@pytest.mark.parametrize('pool_kind', ['max', 'avg'])
def test_double_backward_matches_torch(norm_kind, pool_kind):
    """Gradient-penalty style double backward through conv (stride/pad/groups), pooling and a norm,
    then softmax-CE, against PyTorch's double backward."""
    torch = pytest.importorskip('torch')
    import torch.nn.functional as tF
    xa, wa, ba = distinct(2, 4, 6, 6) / 10, u(4, 2, 3, 3), u(4)
    ga, bea, la = pos(4), u(4), np.array([1.0, 3.0])
    fa = u(6, 4)

    def mine(x, w, b, g, be, f):
        h = nd.Convolution(x, w, b, kernel=(3, 3), stride=(1, 1), pad=(1, 1), num_group=2)
        h = nd.Pooling(h, kernel=(2, 2), stride=(2, 2), pool_type=pool_kind)
        if norm_kind == 'batch':
            h = nd.BatchNorm(h, g, be, nd.zeros(4, dtype='float64'), nd.ones(4, dtype='float64'), fix_gamma=False,
                             eps=1e-5)
        elif norm_kind == 'layer':
            h = nd.LayerNorm(h, g, be, axis=1)
        else:
            h = nd.InstanceNorm(h, g, be, eps=1e-5)
        logits = nd.FullyConnected(nd.tanh(h).mean(axis=(2, 3)), f, no_bias=True, num_hidden=6)
        return nd.softmax_cross_entropy_loss(logits, nd.array(la, dtype='float64')).sum()

    def theirs(x, w, b, g, be, f):
        h = tF.conv2d(x, w, b, padding=1, groups=2)
        h = tF.max_pool2d(h, 2) if pool_kind == 'max' else tF.avg_pool2d(h, 2)
        if norm_kind == 'batch':
            h = tF.batch_norm(h, None, None, g, be, training=True, eps=1e-5)
        elif norm_kind == 'layer':
            m = h.mean(1, keepdim=True)
            v = ((h - m) ** 2).mean(1, keepdim=True)
            h = (h - m) / torch.sqrt(v + 1e-5) * g.view(1, -1, 1, 1) + be.view(1, -1, 1, 1)
        else:
            h = tF.instance_norm(h, weight=g, bias=be, eps=1e-5)
        logits = torch.tanh(h).mean((2, 3)) @ f.T
        return tF.cross_entropy(logits, torch.tensor(la, dtype=torch.long), reduction='sum')

    arrays = [xa, wa, ba, ga, bea, fa]
    xs = [nd.array(a, dtype='float64') for a in arrays]
    for v in xs:
        v.attach_grad()
    with autograd.record(), autograd.train_mode():
        loss = mine(*xs)
        grads = autograd.grad(loss, xs[:2], create_graph=True)
        penalty = sum(((g_ * g_).sum() for g_ in grads[1:]), (grads[0] * grads[0]).sum())
    penalty.backward()
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    tgrads = torch.autograd.grad(theirs(*ts), ts[:2], create_graph=True)
    tpen = sum((g_ * g_).sum() for g_ in tgrads)
    tpen.backward()
    np.testing.assert_allclose(penalty.asscalar(), tpen.item(), rtol=1e-10)
    for mine_v, ref, name in zip(xs, ts, ['x', 'w', 'b', 'gamma', 'beta', 'fc']):
        np.testing.assert_allclose(mine_v.grad.asnumpy(), ref.grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=f'd penalty / d {name}')
