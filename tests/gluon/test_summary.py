"""Block.summary() (issue 17, item 5): it returns the table it prints, and no row is dropped: the
block summary() is called on gets its row (only Sequential containers have none), nested blocks,
blocks called twice and blocks sharing parameters each get theirs, and a block with several outputs
(an LSTM's output and states) lists every output shape."""
import contextlib
import io

import numpy as np

from engine import nd
from engine.gluon import HybridBlock, nn, rnn


def _summary(block, *inputs):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        table = block.summary(*inputs)
    assert buf.getvalue() == str(table) + '\n'       # what it printed is what it returned
    return table


def _layers(table):
    return [r.layer for r in table.rows]


class Scaled(HybridBlock):
    """A block with a parameter of its own and a child."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.scale = self.params.get('scale', shape=(1,))
            self.dense = nn.Dense(3, in_units=2)

    def hybrid_forward(self, F, x, scale):
        return F.broadcast_mul(self.dense(x), scale)


class Twice(HybridBlock):
    """Calls one child twice."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.dense = nn.Dense(2, in_units=2)

    def hybrid_forward(self, F, x):
        return self.dense(self.dense(x))


def test_a_single_layer_has_its_row():
    dense = nn.Dense(3, in_units=2)
    dense.initialize()
    table = _summary(dense, nd.ones((4, 2)))
    assert _layers(table) == ['Dense-1']
    assert table.rows[0].output_shape == '(4, 3)' and table.rows[0].params == 9
    assert table.total == 9 and 'Total params: 9' in str(table)


def test_the_outer_block_and_its_own_parameters_are_counted():
    net = Scaled()
    net.initialize()
    table = _summary(net, nd.ones((4, 2)))
    assert _layers(table) == ['Dense-1', 'Scaled-2']          # children finish first
    assert [r.params for r in table.rows] == [9, 1]
    assert table.total == 10 == sum(int(np.prod(p.shape)) for p in net.collect_params().values())


def test_nested_containers_have_no_rows_of_their_own():
    net = nn.HybridSequential()
    inner = nn.HybridSequential()
    inner.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.add(inner, Scaled())
    net.initialize()
    table = _summary(net, nd.ones((5, 3)))
    assert _layers(table) == ['Dense-1', 'Dense-2', 'Dense-3', 'Scaled-4']
    assert table.total == 16 + 10 + 9 + 1


def test_a_block_called_twice_has_two_rows_and_counts_as_shared():
    net = Twice()
    net.initialize()
    table = _summary(net, nd.ones((1, 2)))
    assert _layers(table) == ['Dense-1', 'Dense-2', 'Twice-3']
    assert [r.shared for r in table.rows] == [0, 6, 0]
    assert table.total == 12 and table.shared == 6
    assert 'Unique parameters in model: 6' in str(table)


def test_blocks_sharing_parameters_are_both_listed():
    a = nn.Dense(2, in_units=2)
    b = nn.Dense(2, in_units=2, params=a.collect_params())
    net = nn.HybridSequential()
    net.add(a, b)
    net.initialize()
    table = _summary(net, nd.ones((1, 2)))
    assert _layers(table) == ['Dense-1', 'Dense-2']
    assert table.total - table.shared == 6


def test_every_output_of_an_lstm_is_listed():
    lstm = rnn.LSTM(8, input_size=4)
    lstm.initialize()
    table = _summary(lstm, nd.ones((5, 2, 4)), lstm.begin_state(batch_size=2))
    assert _layers(table) == ['LSTM-1']
    assert table.rows[0].output_shape == '(5, 2, 8), (1, 2, 8), (1, 2, 8)'
    assert table.rows[0].params == 4 * 8 * (4 + 8) + 2 * 4 * 8
    assert repr(table) == '<Summary: 1 rows, 448 unique parameters>'


def test_frozen_parameters_are_non_trainable_and_hooks_are_removed():
    net = nn.HybridSequential()
    net.add(nn.Dense(4, in_units=2), nn.BatchNorm(in_channels=4))
    net.initialize()
    net.hybridize()
    table = _summary(net, nd.ones((3, 2)))
    assert (table.total, table.trainable) == (28, 20)
    assert all(not b._forward_hooks for b in (net, net[0], net[1]))
