"""Compiled graphs a user can read: values named after the blocks that compute them (printed IR
and generated code), each node's block path and source line, and net.graph_code() per stage."""
import keyword
import re
import sys

import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn
from engine.graph.ir import Namer, identifier, name_values, value_names

from graphkit import new_graph, node

_LINES = {}


def _conv_dense_net():
    net = nn.HybridSequential(prefix='net_')
    with net.name_scope():
        net.add(nn.Conv2D(4, 3), nn.Activation('relu'), nn.Dense(3, activation='tanh'), nn.Dense(2))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    return net


def _x():
    return nd.array(np.random.RandomState(0).randn(2, 1, 6, 6).astype('float32'))


def _assert_identifiers(names):
    assert all(n.isidentifier() and not keyword.iskeyword(n) for n in names), names
    assert len(set(names)) == len(names), names


def test_printed_graph_names_values_after_blocks_and_says_where_nodes_come_from():
    net = _conv_dense_net()
    net(_x())
    text = str(net.graph())
    assert text.startswith('graph(data0: float32(2, 1, 6, 6), net_conv0_weight: float32(4, 1, 3, 3)')
    here = f'{__file__}:'
    lines = {l.split(':')[0].strip(): l for l in text.splitlines()[1:-2]}
    conv = lines['net_conv0_out']
    assert '= conv2d(data0, net_conv0_weight, net_conv0_bias;' in conv
    assert '# 0 (Conv2D) at ' + here in conv                       # block path, then the user's line
    assert '= relu(net_conv0_out)' in lines['net_relu0_out']
    # Dense(activation=) is two blocks: the matrix product is dense0's last value, tanh its child's
    assert '= fully_connected(net_relu0_out, net_dense0_weight' in lines['net_dense0_out']
    assert '# 2.act (Activation)' in lines['net_dense0_tanh_out']
    assert 'return net_dense1_out' in text
    _assert_identifiers(list(value_names(net.graph()).values()))


class _Twice(nn.HybridBlock):
    """One Dense applied twice and an op in the block's own forward: the line is the user's."""

    def __init__(self):
        super().__init__(prefix='twice_')
        with self.name_scope():
            self.dense = nn.Dense(3, in_units=3)

    def forward(self, x):
        _LINES['forward'] = sys._getframe().f_lineno + 1
        return self.dense(self.dense(x)) * 2.0


def test_names_stay_unique_when_a_block_runs_twice_and_lines_point_at_the_user_forward():
    net = _Twice()
    net.initialize()
    x = nd.ones((2, 3))
    eager = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-6)
    graph = net.graph()
    names = value_names(graph)
    _assert_identifiers(list(names.values()))
    fc = [names[n.outputs[0].id] for n in graph.nodes if n.op.name == 'fully_connected']
    assert fc == ['twice_dense0_fully_connected', 'twice_dense0_out']   # the block's last value is _out
    (scale,) = [n for n in graph.nodes if n.op.name == '_mul_scalar']
    assert names[scale.outputs[0].id] == 'twice_out'
    assert scale.scope == 'twice' and scale.line == f"{__file__}:{_LINES['forward']}"
    assert scale.path == 'twice (_Twice)'
    assert all(n.line == scale.line for n in graph.nodes)


def test_generated_code_uses_the_same_names_and_calls_kernels_by_op():
    net = _conv_dense_net()
    net(_x())
    code = net.graph_code()
    compile(code, '<graph_code>', 'exec')
    assert code.startswith('def run(inputs, buffers):\n    data0, net_conv0_weight, net_conv0_bias,')
    assert 'net_dense1_out = fully_connected(net_dense0_tanh_out, net_dense1_weight, net_dense1_bias' in code
    assert '# 3 (Dense) at ' in code and code.rstrip().endswith('return [net_dense1_out]')


def test_names_from_hand_built_graphs_are_valid_and_unique():
    g, (x,) = new_graph((2, 3))
    a = node(g, 'exp', [x])
    b = node(g, 'exp', [a])
    g.outputs = [node(g, '_plus_scalar', [b], scalar=1.0)]
    for n, scope in zip(g.nodes, ('blk', 'blk', None)):
        n.scope = scope
    name_values(g)
    assert [n.outputs[0].name for n in g.nodes] == ['blk_exp', 'blk_out', 'plus_scalar_out']
    assert identifier('0 weird-name') == 'v0_weird_name' and identifier('lambda') == 'vlambda'
    namer = Namer(['run'])
    assert [namer.fresh('run'), namer.fresh('run'), namer.fresh('_x')] == ['run_1', 'run_2', 'x']


def _trained(net, x):
    with autograd.record():
        y = net(x)
    y.backward()
    return net


def test_graph_code_per_stage_of_a_training_call():
    net = _trained(_conv_dense_net(), _x())
    fwd = net.graph_code(stage='forward')
    bwd = net.graph_code(stage='backward')
    for code in (fwd, bwd):
        compile(code, '<graph_code>', 'exec')
        assert code.startswith('def run(inputs, buffers):')
    # the ReLU runs in the conv's kernel (epilogue), so the conv computes relu0's value
    assert "net_relu0_out = conv2d(data0, net_conv0_weight, net_conv0_bias" in fwd and "act='relu'" in fwd
    assert 'head_grad0' not in fwd
    assert 'head_grad0' in bwd.splitlines()[1]                     # the backward program's inputs
    for p in net.collect_params().values():                        # every gradient by its parameter
        assert f'{p.name}_grad = ' in bwd
    both = net.graph_code(stage='train')
    assert both == f'# forward program\n{fwd}\n# backward program\n{bwd}'
    assert net.graph_code(stage='infer') == net.graph_code() != fwd


def test_backward_values_are_named_after_the_layer_they_differentiate():
    bwd = _trained(_conv_dense_net(), _x()).graph_code(stage='backward')
    body = [line for line in bwd.splitlines()[3:] if ' = ' in line and not line.lstrip().startswith('return')]
    assert body and all(re.match(r'\s+net_(conv0|relu0|dense0|dense1)_\w+ = ', line) for line in body), bwd
    assert all(re.search(r'# \d+ \((Conv2D|Activation|Dense)\) at ', line) for line in body
               if '.reshape(' not in line), bwd


def test_graph_code_with_kernels_appends_each_generated_kernel_after_its_program():
    net = _trained(_conv_dense_net(), _x())
    text = net.graph_code(stage='backward', kernels=True)
    program, _, kernels = text.partition('\n# kernel ')
    assert program.startswith('# backward program\ndef run(')
    sections = ('# kernel ' + kernels).split('\n# kernel ')
    assert sections[0].startswith('# kernel ') and len(sections) >= 1
    for section in sections:
        head, src = section.split('\n', 1)
        name, op = head.replace('# kernel ', '').split(': ')
        assert op.startswith('fused[') and 'def kernel(' in src
        assert f' = {name}(' in program                          # the name the program calls it by
    assert net.graph_code(stage='backward', kernels=False) in text


def test_graph_code_of_training_programs_from_example_inputs():
    net = _conv_dense_net()
    net(_x())                                      # an inference call only
    with pytest.raises(MXNetError, match='run a training call'):
        net.graph_code(stage='forward')
    code = net.graph_code(_x(), stage='backward')
    assert 'net_conv0_weight_grad = ' in code and 'net_dense1_bias_grad = ' in code
    stages = r"\['infer', 'forward', 'backward', 'train'\]"
    with pytest.raises(MXNetError, match=f"stage must be one of {stages}, got 'fwd'"):
        net.graph_code(stage='fwd')


def test_in_a_block_without_a_name_mx_sym_nodes_name_the_values_even_auto_named_ones():
    data = mx.sym.var('data')
    out = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=3, name='fc1'), act_type='relu')
    net = mx.gluon.SymbolBlock(out, [data])       # prefix '': the block's name is empty
    net.initialize()
    net.hybridize()
    net(nd.ones((2, 4)))
    text = str(net.graph())
    assert '  fc1_out: float32(2, 3) = fully_connected(data0, fc1_weight, fc1_bias;' in text
    # MXNet's automatic node name (a global counter): activation<k>
    assert re.search(r'\n  (activation\d+)_out: float32\(2, 3\) = relu\(fc1_out\)   # \1 \(Activation\) at ', text)


def test_dot_text_of_a_backward_program_names_its_values():
    net = _trained(_conv_dense_net(), _x())
    (c,) = [c for c in net._cached_op.graphs.values() if c.train]
    (op, _), = c.train.values()
    dot = op.backward.graph.to_dot()        # its inputs are values forward nodes computed
    defined = set(re.findall(r'^\s*(\w+) \[', dot, re.M))
    edges = re.findall(r'^\s*(\w+) -> (\w+)', dot, re.M)
    assert edges and all(a in defined and b in defined for a, b in edges)
    assert 'label="head_grad0\\n' in dot and '\\nnet_conv0_weight_grad"' in dot


def test_an_mx_sym_graph_has_its_values_named_after_its_nodes():
    data = mx.sym.var('data')
    fc1 = mx.sym.FullyConnected(data, num_hidden=8, name='fc1')
    out = mx.sym.FullyConnected(mx.sym.Activation(fc1, act_type='relu', name='relu1'), num_hidden=2, name='fc2')
    net = mx.gluon.SymbolBlock(out, [data])
    net.initialize()
    net.hybridize()
    net(nd.ones((3, 4)))
    code = net.graph_code()
    for name, kind in (('fc1', 'FullyConnected'), ('relu1', 'Activation'), ('fc2', 'FullyConnected')):
        assert re.search(rf'\n    {name}_out = \w+\(.*# {name} \({kind}\) at ', code), code
