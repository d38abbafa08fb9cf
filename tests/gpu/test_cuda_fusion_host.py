"""The generated CUDA kernels compute what the ops' own kernels compute, checked without a GPU:
the rendered sources are compiled for the host by g++ under a small shim (one thread walks the
whole grid-stride loop; CUDA's math overloads are the C++ ones) and run on NumPy arrays.

* every elementwise op's scalar rule rendered as CUDA C, on the inputs of every call the op tests
  make (the CUDA twin of tests/ops/test_gradients.py::test_numba_rules_match_kernels);
* every fused group of the zoo models' training and inference graphs, against running its nodes
  one by one with their CPU kernels (checks the group's inputs, outputs and evaluation order).

Tolerances: float32 rtol 1e-5 (one op) / 1e-4 (a chain), float64 rtol 1e-10: the C library's
exp/erf/... and NumPy's may differ in the last bits."""
import itertools

import numpy as np
import pytest

from engine.graph import fusion_cuda
from engine.graph.ir import Graph
from engine.ops import expr as E
from engine.ops.registry import REGISTRY

from cudakit import CXX, MODELS, fused_groups, host_library, load_op_cases, model_graphs, run_host

pytestmark = pytest.mark.skipif(CXX is None, reason='g++ is not installed')
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-10, 1e-12)}


def _rule_calls():
    """(op, inputs broadcast to the output shape, attrs) for the kernel calls of elementwise ops
    with a float output (the only ones the fuser fuses)."""
    calls, seen = [], set()
    for op, arrays, attrs in load_op_cases()._kernel_calls():
        if op.template is None or op.name == 'reshape':
            continue
        shapes, dtypes = op.infer([a.shape for a in arrays], [a.dtype for a in arrays], **attrs)
        if np.dtype(dtypes[0]).kind != 'f' or any(a.dtype not in fusion_cuda.C_TYPES for a in arrays):
            continue
        key = (op.name, tuple((a.shape, a.dtype.str) for a in arrays), repr(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            ins = [np.ascontiguousarray(np.broadcast_to(a, shapes[0])) for a in arrays]
            calls.append((op, ins, attrs, shapes[0], np.dtype(dtypes[0])))
    return calls


def _render_one(op, ins, attrs, shape, dtype):
    g = Graph()
    values = [g.add_input(shape, a.dtype, f'x{i}') for i, a in enumerate(ins)]
    node = g.add_node(op, values, attrs, [shape], [dtype])
    g.outputs = list(node.outputs)
    return fusion_cuda.render_cuda([node], {node.outputs[0].id}, g.users())


def test_every_cuda_rule_matches_its_kernel(tmp_path):
    calls = _rule_calls()
    rendered = [_render_one(*c) for c in calls]
    lib = host_library({kname: src for src, kname, _, _ in rendered}, str(tmp_path), 'rules')
    checked = set()
    for (op, ins, attrs, shape, dtype), (src, kname, _, _) in zip(calls, rendered):
        want = op.kernel('cpu')(*ins, **attrs)
        got = run_host(lib, kname, ins, [np.full(shape, 7, dtype)])[0]
        rtol, atol = TOL[dtype]
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f'{op.name} {attrs} on {[a.dtype.name for a in ins]}: '
                                           f'rule {op.template!r} in CUDA vs kernel\n{src}')
        checked.add(op.name)
    with_rule = {n for n, op in REGISTRY.items() if op.template is not None}
    missing = sorted(with_rule - checked - {'reshape'})
    assert not missing, f'rules no CUDA call checked: {missing}'


# negative, zero, small, large, overflowing, infinite and NaN values
EDGE = [-np.inf, -1e4, -50.0, -2.5, -1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0, 2.5, 50.0, 100.0, 1e4, np.inf,
        np.nan]
EDGE_ATTRS = {'scalar': -1.5, 'a_min': -1.0, 'a_max': 2.0, 'slope': 0.1, 'value': 3.0}


def _edge_calls():
    """(op, inputs, attrs, shape, dtype): each rule on every pair of EDGE values, in float32 and
    float64 (where's condition alternates 0 and 1)."""
    calls = []
    for name in sorted(n for n, op in REGISTRY.items() if op.template is not None and n != 'reshape'):
        op = REGISTRY[name]
        n = 3 if name == 'where' else max(E.arity(op.template), 1)
        for dtype in (np.float32, np.float64):
            grid = np.array(list(itertools.product(EDGE, repeat=min(n, 2))), dtype).T
            if name == 'where':
                grid = np.stack([(np.arange(grid.shape[1]) % 2).astype(dtype), *grid])
            attrs = {k: EDGE_ATTRS[k] for k in E.attributes(op.template)}
            attrs.update({'dtype': np.dtype(dtype).name} if name == 'cast' else {})
            calls.append((op, [np.ascontiguousarray(g) for g in grid], attrs, grid.shape[1:], np.dtype(dtype)))
    return calls


def test_every_cuda_rule_matches_its_kernel_on_edge_values(tmp_path):
    calls = _edge_calls()
    rendered = [_render_one(*c) for c in calls]
    lib = host_library({kname: src for src, kname, _, _ in rendered}, str(tmp_path), 'edges')
    for (op, ins, attrs, shape, dtype), (src, kname, _, _) in zip(calls, rendered):
        with np.errstate(all='ignore'):
            want = op.kernel('cpu')(*ins, **attrs)
        got = run_host(lib, kname, ins, [np.full(shape, 7, dtype)])[0]
        rtol, atol = TOL[dtype]
        bad = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        assert not bad.any(), (f'{op.name} {attrs} ({dtype.name}): inputs {[a[bad][:4] for a in ins]} give '
                               f'{got[bad][:4]}, the kernel {want[bad][:4]}\n{src}')


def _random_inputs(values, rng):
    out = []
    for v in values:
        if v.dtype.kind == 'f':
            out.append(rng.standard_normal(v.shape).astype(v.dtype))
        else:
            out.append(rng.integers(0, 2, v.shape).astype(v.dtype))
    return out


def _reference(nodes, ins, values):
    env = {v.id: a for v, a in zip(values, ins)}
    for n in nodes:
        env[n.outputs[0].id] = np.asarray(n.op.kernel('cpu')(*[env[v.id] for v in n.inputs], **n.attrs))
    return env


@pytest.mark.parametrize('name,shape,opts', MODELS, ids=[m[0] for m in MODELS])
def test_fused_groups_of_zoo_models_compute_their_nodes(name, shape, opts, tmp_path):
    groups = [g for graph in model_graphs(name, shape, opts) for g in fused_groups(graph)]
    rendered = [fusion_cuda.render_cuda(*g) for g in groups]
    lib = host_library({kname: src for src, kname, _, _ in rendered}, str(tmp_path), 'groups')
    rng = np.random.default_rng(0)
    with np.errstate(all='ignore'):      # random inputs may hit log(<0), x/0: NaN/inf both ways
        for (nodes, _, _), (src, kname, ins, outs) in zip(groups, rendered):
            arrays = _random_inputs(ins, rng)
            env = _reference(nodes, arrays, ins)
            got = run_host(lib, kname, arrays, [np.empty(v.shape, v.dtype) for v in outs])
            for v, g in zip(outs, got):
                rtol, atol = TOL[v.dtype]
                np.testing.assert_allclose(g, env[v.id], rtol=rtol * 10, atol=atol * 10, equal_nan=True,
                                           err_msg=f'{name}: fused group {[n.op.name for n in nodes]}\n{src}')


def test_fused_op_kernel_launches_inputs_outputs_and_count(tmp_path, monkeypatch):
    """The 'gpu' kernel fuse_elementwise(graph, 'gpu') registers: checks its inputs, allocates its
    outputs and launches with (inputs..., outputs..., element count). Here NumPy stands in for
    CuPy and the launch runs the host build of the same source."""
    import ctypes
    import sys
    import types

    from engine.base import MXNetError
    from engine.graph import fusion
    from engine.ops.registry import get_op

    g = Graph()
    x, y = g.add_input((3, 5), np.float32, 'x'), g.add_input((3, 5), np.float32, 'y')

    def node(name, ins, **attrs):
        op = get_op(name)
        shapes, dtypes = op.infer([v.shape for v in ins], [v.dtype for v in ins], **attrs)
        return g.add_node(op, ins, attrs, shapes, dtypes).outputs[0]
    a = node('exp', [x])
    g.outputs = [a, node('tanh', [node('add', [a, y])])]        # two values leave the group
    fused = [n for n in fusion.fuse_elementwise(g, 'gpu').nodes if n.op.name.startswith('fused[')]
    assert len(fused) == 1 and len(fused[0].outputs) == 2
    op = fused[0].op
    kname = op.source.split('void ')[1].split('(')[0]
    lib = host_library({kname: op.source}, str(tmp_path), 'wrapper')

    def host_launch(cupy, source, name, label, size, args):
        assert name == kname and int(args[-1]) == size
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p] * (len(args) - 1) + [ctypes.c_longlong]
        fn(*[a.ctypes.data for a in args[:-1]], ctypes.c_longlong(int(args[-1])))

    monkeypatch.setitem(sys.modules, 'cupy', types.SimpleNamespace(empty=np.empty,
                                                                    ascontiguousarray=np.ascontiguousarray))
    monkeypatch.setattr(fusion_cuda, '_launch', host_launch)
    rng = np.random.default_rng(0)
    xa, ya = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal((3, 5)).astype(np.float32)
    got_a, got_t = op.kernels['gpu'](xa, ya.T.copy().T)           # a non-contiguous input is copied
    np.testing.assert_allclose(got_a, np.exp(xa), rtol=1e-6)
    np.testing.assert_allclose(got_t, np.tanh(np.exp(xa) + ya), rtol=1e-5)
    with pytest.raises(MXNetError, match=r'fused\[exp\+add\+tanh\]: compiled for inputs float32'):
        op.kernels['gpu'](xa.astype(np.float64), ya)
