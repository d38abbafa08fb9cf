"""Shared helpers for the Gluon tests.

`check_hybrid_matches_eager(make_block, inputs)` is the eager-vs-hybridized contract of issue 5:
one block, the same parameters, run eagerly and then hybridized, in training mode (under
autograd.record()) and in predict mode, on every input signature given (e.g. two batch sizes, so
the hybridized block retraces); outputs, every parameter gradient, every input gradient and the
parameter values afterwards (running statistics) must agree within float32 tolerance.
It is also available as the fixture `check_hybrid`.
"""
import numpy as np
import pytest

from engine import autograd, nd

RTOL, ATOL = 1e-4, 1e-5


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _snapshot(params):
    return {name: p.data().asnumpy().copy() for name, p in params.items() if p._data is not None}


def _restore(params, snap):
    for name, value in snap.items():
        params[name].set_data(value)


def _run(block, xs, heads_seed, train):
    """One forward (+ backward) pass; returns outputs, parameter grads, input grads and the
    parameter values afterwards, all as NumPy arrays."""
    params = block.collect_params()
    xs = [x.copy() for x in xs]
    for x in xs:
        if np.dtype(x.dtype).kind == 'f':
            x.attach_grad()
    with autograd.record(train_mode=train):
        outs = _as_list(block(*xs))
    rng = np.random.default_rng(heads_seed)
    heads = [nd.array(rng.standard_normal(o.shape), dtype=o.dtype) for o in outs]
    autograd.backward(outs, heads)
    grads = {name: p.grad().asnumpy().copy() for name, p in params.items() if p.grad_req != 'null'}
    in_grads = [x.grad.asnumpy().copy() if x.grad is not None else None for x in xs]
    with autograd.predict_mode():
        plain = [o.asnumpy().copy() for o in _as_list(block(*xs))] if not train else None
    return dict(outs=[o.asnumpy().copy() for o in outs], grads=grads, in_grads=in_grads,
                params=_snapshot(params), plain=plain)


def _compare(what, a, b, rtol, atol):
    np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f'hybridized vs eager: {what}')


def check_hybrid_matches_eager(make_block, inputs, rtol=RTOL, atol=ATOL, modes=('train', 'predict'),
                               init=None):
    """`make_block()` returns a new (uninitialized) block; `inputs` is a list of input tuples
    (or single NDArrays), one per signature. Returns the block (hybridized at the end)."""
    block = make_block()
    block.initialize(init)
    signatures = [s if isinstance(s, (list, tuple)) else (s,) for s in inputs]
    with autograd.predict_mode():
        block(*signatures[0])            # completes deferred shapes
    params = block.collect_params()
    start = _snapshot(params)
    for sig_i, xs in enumerate(signatures):
        for mode in modes:
            train = mode == 'train'
            tag = f'signature {[tuple(x.shape) for x in xs]}, {mode} mode'
            block.hybridize(active=False)
            _restore(params, start)
            eager = _run(block, xs, sig_i, train)
            block.hybridize()
            _restore(params, start)
            hyb = _run(block, xs, sig_i, train)
            # the hybridized pass really ran a compiled graph traced for this signature
            assert block._cached_op is not None and block._cached_op.graphs, tag
            assert len(eager['outs']) == len(hyb['outs']), tag
            for k, (a, b) in enumerate(zip(eager['outs'], hyb['outs'])):
                assert a.shape == b.shape and a.dtype == b.dtype, f'{tag}: output {k}'
                _compare(f'{tag}: output {k}', a, b, rtol, atol)
            assert sorted(eager['grads']) == sorted(hyb['grads']), tag
            for name in eager['grads']:
                _compare(f'{tag}: gradient of {name}', eager['grads'][name], hyb['grads'][name], rtol, atol)
            for k, (a, b) in enumerate(zip(eager['in_grads'], hyb['in_grads'])):
                assert (a is None) == (b is None), f'{tag}: input {k} gradient presence'
                if a is not None:
                    _compare(f'{tag}: gradient of input {k}', a, b, rtol, atol)
            for name in eager['params']:
                _compare(f'{tag}: value of {name} after the pass', eager['params'][name],
                         hyb['params'][name], rtol, atol)
            if eager['plain'] is not None:
                for k, (a, b) in enumerate(zip(eager['plain'], hyb['plain'])):
                    _compare(f'{tag}: output {k} without recording', a, b, rtol, atol)
    _restore(params, start)
    return block


@pytest.fixture
def check_hybrid():
    return check_hybrid_matches_eager
