"""The CUDA kernels the GPU fuser generates compile cleanly with nvcc (needs no GPU; runs in CI).

The graph IR does not depend on the device, so the zoo models' graphs are traced on the CPU, then
every fused group is rendered by engine/graph/fusion_cuda.py exactly as a GPU Program would
launch it, and all kernels are compiled in one file with `nvcc -arch=sm_90 -Werror all-warnings`
(any error or warning fails). Skips when nvcc is not installed."""
import numpy as np
import pytest

from engine.graph import fusion_cuda
from engine.graph.ir import Graph
from engine.ops import expr as E
from engine.ops.registry import REGISTRY

from cudakit import MODELS, NVCC, fused_groups, model_graphs, nvcc_compile

pytestmark = pytest.mark.skipif(NVCC is None, reason='nvcc is not installed')


def _compile(rendered, tmp_path, name):
    sources = {kname: src for src, kname, _, _ in rendered}   # identical groups: one kernel
    ok, diagnostics = nvcc_compile(sources, str(tmp_path), name)
    assert ok, f'nvcc failed on {len(sources)} generated kernels ({tmp_path}/{name}.cu):\n{diagnostics[:4000]}'


@pytest.mark.parametrize('name,shape,opts', MODELS, ids=[m[0] for m in MODELS])
def test_fused_kernels_of_zoo_models_compile(name, shape, opts, tmp_path):
    rendered = []
    for graph in model_graphs(name, shape, opts):
        for nodes, outs, readers in fused_groups(graph):
            assert fusion_cuda.supported(nodes), [n.op.name for n in nodes]
            rendered.append(fusion_cuda.render_cuda(nodes, outs, readers))
    assert rendered, f'{name}: no fused group in its graphs'
    _compile(rendered, tmp_path, name.replace('.', '_'))


# ---- every elementwise rule, alone, over the dtypes a group can hold --------------------------

ELEMENTWISE = sorted(n for n, op in REGISTRY.items() if op.template is not None)


def single_op_graph(op, in_dtypes, shape=(4, 3)):
    """A graph applying `op` once; input k gets in_dtypes[k % len(in_dtypes)]; attributes the
    rule reads get 0.5."""
    arity = max(E.arity(op.template), 1)    # full_like reads no input but takes one
    attrs = {k: 0.5 for k in E.attributes(op.template)}
    if op.name == 'cast':
        attrs = {'dtype': 'float64'}
    if op.name == 'reshape':
        attrs = {'shape': shape}
    g = Graph()
    ins = [g.add_input(shape, in_dtypes[i % len(in_dtypes)], f'x{i}') for i in range(arity)]
    shapes, dtypes = op.infer([v.shape for v in ins], [v.dtype for v in ins], **attrs)
    node = g.add_node(op, ins, attrs, shapes, dtypes)
    g.outputs = list(node.outputs)
    return g, node


@pytest.mark.parametrize('in_dtypes', [(np.float32,), (np.float64,), (np.float32, np.int32),
                                       (np.float64, np.bool_), (np.float32, np.int64, np.uint8),
                                       (np.float64, np.float32)],
                         ids=['f32', 'f64', 'f32+i32', 'f64+bool', 'f32+i64+u8', 'f64+f32'])
def test_every_elementwise_rule_compiles(in_dtypes, tmp_path):
    """Each op as a one-node group (float outputs only, as the fuser requires), its float inputs
    mixed with integer, bool and other float inputs where the op allows it."""
    rendered = []
    for name in ELEMENTWISE:
        g, node = single_op_graph(REGISTRY[name], in_dtypes)
        if node.outputs[0].dtype.kind == 'f':
            rendered.append(fusion_cuda.render_cuda([node], {v.id for v in g.outputs}, g.users()))
    assert len(rendered) >= 40
    _compile(rendered, tmp_path, 'templates')


def _one_node(op_name, dtype, attrs):
    g = Graph()
    x = g.add_input((8,), dtype, 'x')
    n = g.add_node(REGISTRY[op_name], [x], attrs, [(8,)], [dtype])
    g.outputs = list(n.outputs)
    return fusion_cuda.render_cuda([n], {n.outputs[0].id}, g.users())


def test_special_float_attributes_compile(tmp_path):
    """inf, nan and negative attributes (e.g. clip to [-inf, 0]) render without divisions or macros."""
    rendered = [_one_node('clip', np.float32, {'a_min': -np.inf, 'a_max': 0.0}),
                _one_node('clip', np.float64, {'a_min': -2.5, 'a_max': np.inf}),
                _one_node('_plus_scalar', np.float64, {'scalar': float('nan')}),
                _one_node('_mul_scalar', np.float32, {'scalar': -1e-30})]
    _compile(rendered, tmp_path, 'special')
