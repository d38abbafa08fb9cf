"""LSTMPCell (an LSTM cell with a projection), VariationalDropoutCell (one dropout mask per
sequence) and dynamic_unroll, with MXNet 1.x's gluon.contrib.rnn API and parameter names."""
from ...rnn.rnn_cell import BidirectionalCell, _F, _GatedCell, _lstm_gates, _SequenceStateCell, _train
from .... import nd
from ....base import MXNetError


class LSTMPCell(_GatedCell):
    """LSTM cell whose output o * tanh(c) is projected by `h2r_weight` (P, H) (Sak et al., 2014):
    states [h (N, P), c (N, H)], h2h_weight is (4H, P). One step of `gluon.rnn.LSTM` with
    `projection_size`, so a stack of these unrolls like that layer."""
    _alias, _gates = 'lstmp', 4

    def __init__(self, hidden_size, projection_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 h2r_weight_initializer=None, i2h_bias_initializer='zeros', h2h_bias_initializer='zeros',
                 input_size=0, prefix=None, params=None):
        if not (isinstance(projection_size, int) and projection_size >= 1):
            raise MXNetError(f'LSTMPCell: projection_size must be a positive int, got {projection_size!r}')
        self._projection_size = projection_size     # read by _state_widths during the set-up below
        super().__init__(hidden_size, i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, input_size, prefix, params)
        with self.name_scope():
            self.h2r_weight = self.params.get('h2r_weight', shape=(projection_size, hidden_size),
                                              init=h2r_weight_initializer, allow_deferred_init=True)

    def _state_widths(self):
        return [self._projection_size, self._hidden_size]

    def hybrid_forward(self, F, inputs, *states, i2h_weight, h2h_weight, h2r_weight, i2h_bias, h2h_bias):
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        h, c = _lstm_gates(F, i2h + h2h, states[1], self._step_name(F, 'hidden'))
        r = F.FullyConnected(h, h2r_weight, no_bias=True, num_hidden=self._projection_size,
                             **self._step_name(F, 'out'))
        return r, r, c

    def _repr_args(self):
        return super()._repr_args() + f' -> {self._projection_size}'


class VariationalDropoutCell(_SequenceStateCell):
    """Dropout on the base cell's step inputs, first state (h) and outputs with one mask per
    sequence, drawn at its first step and reused at every step (Gal and Ghahramani, 2016);
    `reset` (each unroll) draws new masks. Predict mode leaves values unchanged."""

    def __init__(self, base_cell, drop_inputs=0., drop_states=0., drop_outputs=0.):
        if isinstance(base_cell, BidirectionalCell):
            raise MXNetError('VariationalDropoutCell: a BidirectionalCell cannot be wrapped (it cannot be '
                             'stepped); wrap its two cells instead')
        for name, p in (('drop_inputs', drop_inputs), ('drop_states', drop_states), ('drop_outputs', drop_outputs)):
            if not 0 <= p < 1:
                raise MXNetError(f'VariationalDropoutCell: {name} must be in [0, 1), got {p}')
        super().__init__(base_cell)
        self._rates = {'inputs': drop_inputs, 'states': drop_states, 'outputs': drop_outputs}
        self._masks = {}

    def reset(self):
        super().reset()
        self._masks = {}

    def _drop(self, F, what, x):
        p = self._rates[what]
        if not p:
            return x
        mask = self._masks.get(what)
        if mask is None:
            mask = self._masks[what] = F.Dropout(F.ones_like(x), p=p, **_train(F))
        return x * mask

    def forward(self, inputs, *states):
        F = _F(inputs)
        states = list(states)
        if states:
            states[0] = self._drop(F, 'states', states[0])
        out, new = self.base_cell(self._drop(F, 'inputs', inputs), states)
        return (self._drop(F, 'outputs', out), *new)


def dynamic_unroll(cell, inputs, begin_state, drop_inputs=0, drop_outputs=0, layout='TNC', valid_length=None):
    """MXNet's contrib.rnn.rnn_cell.dynamic_unroll: `cell` over the whole time axis of `inputs`
    (the length is its shape's), dropout on the inputs and outputs with one mask shared by all
    steps, returning (merged outputs, states) as `unroll` with valid_length does. MXNet runs it as
    a `foreach` loop op; here the time loop is traced step by step like `unroll`'s."""
    F = _F(inputs)
    if F is not nd:
        raise MXNetError('dynamic_unroll: the length of a Symbol input is unknown here; use '
                         'cell.unroll(length, inputs, ...)')
    axis = layout.find('T')
    if inputs.ndim != 3 or axis < 0:
        raise MXNetError(f"dynamic_unroll: expects a 3-d input and layout 'TNC' or 'NTC', got shape "
                         f'{tuple(inputs.shape)} and layout {layout!r}')
    if drop_inputs:
        inputs = F.Dropout(inputs, p=drop_inputs, axes=(axis,), **_train(F))
    outputs, states = cell.unroll(inputs.shape[axis], inputs, list(begin_state), layout, merge_outputs=True,
                                  valid_length=valid_length)
    if drop_outputs:
        outputs = F.Dropout(outputs, p=drop_outputs, axes=(axis,), **_train(F))
    return outputs, states
