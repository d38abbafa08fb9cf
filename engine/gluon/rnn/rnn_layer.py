"""Fused recurrent layers with MXNet 1.x's API and parameter names: RNN, LSTM, GRU.

Parameters are `{l|r}{layer}_{i2h|h2h}_{weight|bias}` ('r' for the reverse direction), gates in
MXNet's order (LSTM i, f, g, o; GRU r, z, n), so MXNet's `.params` load as they are. Each layer
and direction is one `rnn_layer` op (the whole time loop), so a hybridized layer is a handful of
graph nodes whatever the sequence length."""
from collections import OrderedDict
from numbers import Integral

from ... import nd
from ...base import MXNetError
from ...ops.rnn import GATES, rnn_layer
from ..block import HybridBlock
from ..nn.basic_layers import _mode_attrs


class _RNNLayer(HybridBlock):
    def __init__(self, hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                 i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                 h2h_bias_initializer, mode, projection_size=None, h2r_weight_initializer=None,
                 dtype='float32', prefix=None, params=None, use_sequence_length=False):
        super().__init__(prefix, params)
        name = type(self).__name__
        if layout not in ('TNC', 'NTC'):
            raise MXNetError(f"{name}: invalid layout {layout!r}; expected 'TNC' or 'NTC'")
        if projection_size and not (mode == 'lstm' and isinstance(projection_size, Integral) and projection_size >= 1):
            raise MXNetError(f'{name}: projection_size must be a positive int (LSTM only), got {projection_size!r}')
        if not 0 <= dropout < 1:
            raise MXNetError(f'{name}: dropout must be in [0, 1), got {dropout}')
        if num_layers < 1 or hidden_size < 1:
            raise MXNetError(f'{name}: hidden_size and num_layers must be positive, got {hidden_size}, {num_layers}')
        self._hidden_size, self._num_layers, self._layout = hidden_size, num_layers, layout
        self._dropout, self._dir, self._mode, self._dtype = dropout, 2 if bidirectional else 1, mode, dtype
        self._gates = GATES[mode]
        self._use_sequence_length = bool(use_sequence_length)
        # the h state's and each direction's output width: P with a projection (LSTMP), else H
        self._projection_size = int(projection_size) if projection_size else None
        self._out_size = self._projection_size or hidden_size
        self._input_size = input_size
        self._initializers = (i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                              h2h_bias_initializer, h2r_weight_initializer)
        gh, ni = self._gates * hidden_size, input_size
        with self.name_scope():      # MXNet's registration order (h2r_weight last, if any)
            for i in range(num_layers):
                for d in 'lr'[:self._dir]:
                    self._register(f'{d}{i}_i2h_weight', (gh, ni), i2h_weight_initializer)
                    self._register(f'{d}{i}_h2h_weight', (gh, self._out_size), h2h_weight_initializer)
                    self._register(f'{d}{i}_i2h_bias', (gh,), i2h_bias_initializer)
                    self._register(f'{d}{i}_h2h_bias', (gh,), h2h_bias_initializer)
                    if self._projection_size:
                        self._register(f'{d}{i}_h2r_weight', (self._out_size, hidden_size),
                                       h2r_weight_initializer)
                ni = self._out_size * self._dir

    def _register(self, name, shape, init):
        setattr(self, name, self.params.get(name, shape=shape, init=init, dtype=self._dtype,
                                            allow_deferred_init=True))

    def _structural_params(self, prefix=''):
        """save_parameters names as MXNet 1.x writes them for a fused layer (the names of the
        equivalent stack of cells): '_unfused.<layer>.<l|r>_cell.<i2h|h2h>_<weight|bias>', or
        '_unfused.<layer>.<i2h|h2h>_<weight|bias>' when unidirectional."""
        out = OrderedDict()
        for name, p in self._reg_params.items():
            d, rest = name[0], name[1:]
            layer, kind = rest.split('_', 1)
            cell = f'{d}_cell.' if self._dir == 2 else ''
            out[f'{prefix}_unfused.{layer}.{cell}{kind}'] = p
        return out

    def _nstates(self):
        return 2 if self._mode == 'lstm' else 1

    def _unfuse(self):
        """The same network as a HybridSequentialRNNCell of cells that share this layer's
        parameters ('l0_' / 'r0_' cells, BidirectionalCells when bidirectional, DropoutCells
        between layers), as MXNet's _unfuse."""
        from . import rnn_cell
        stack = rnn_cell.HybridSequentialRNNCell(prefix=self.prefix, params=self.params)
        inits = self._initializers
        with stack.name_scope():
            ni = self._input_size
            for i in range(self._num_layers):
                cells = [self._cell(f'{d}{i}_', ni, inits) for d in 'lr'[:self._dir]]
                stack.add(cells[0] if self._dir == 1 else rnn_cell.BidirectionalCell(*cells))
                if self._dropout and i < self._num_layers - 1:
                    stack.add(rnn_cell.DropoutCell(self._dropout))
                ni = self._out_size * self._dir
        return stack

    def _cell(self, prefix, input_size, inits):
        from . import rnn_cell
        kw = dict(zip(('i2h_weight_initializer', 'h2h_weight_initializer', 'i2h_bias_initializer',
                       'h2h_bias_initializer'), inits[:4]), input_size=input_size, prefix=prefix)
        if self._projection_size:
            from ..contrib.rnn import LSTMPCell
            return LSTMPCell(self._hidden_size, self._projection_size, h2r_weight_initializer=inits[4], **kw)
        if self._mode.startswith('rnn_'):
            return rnn_cell.RNNCell(self._hidden_size, activation=self._mode[4:], **kw)
        return {'lstm': rnn_cell.LSTMCell, 'gru': rnn_cell.GRUCell}[self._mode](self._hidden_size, **kw)

    def state_info(self, batch_size=0):
        """h is (layers * directions, N, P) with a projection, c is always (.., N, H)."""
        widths = (self._out_size, self._hidden_size)[:self._nstates()]
        return [{'shape': (self._num_layers * self._dir, batch_size, w), '__layout__': 'LNC', 'dtype': self._dtype}
                for w in widths]

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """Initial states: a list of (num_layers * directions, batch_size, hidden_size) arrays
        (h is projection_size wide with a projection)."""
        out = []
        for info in self.state_info(batch_size):
            info = {k: v for k, v in info.items() if k != '__layout__'}
            info.update(kwargs)
            out.append(func(**info))
        return out

    def cast(self, dtype):
        super().cast(dtype)
        self._dtype = dtype

    def __call__(self, inputs, states=None, sequence_length=None):
        """Returns the output, or (output, new states) when states are given, as MXNet does.
        With use_sequence_length=True, `sequence_length` (N,) gives each sample's valid steps:
        outputs past it are zero, the states are those after its last valid step, and the
        reverse direction starts at that step (cuDNN's and PyTorch's packed-sequence semantics)."""
        name = type(self).__name__
        if (sequence_length is None) == self._use_sequence_length:
            raise MXNetError(f'{name}: sequence_length must be given exactly when the layer was made with '
                             f'use_sequence_length=True (it was made with {self._use_sequence_length})')
        if states is None:
            states = []
        elif not isinstance(states, (list, tuple)):
            states = [states]
        if len(states) not in (0, self._nstates()):
            raise MXNetError(f'{type(self).__name__}: expected {self._nstates()} state arrays, got {len(states)}')
        # states (and the lengths) travel as flat arguments so a hybridized layer takes plain arrays
        extra = [] if sequence_length is None else [sequence_length]
        out = super().__call__(inputs, *states, *extra)
        return out[0] if not states else (out[0], list(out[1:]))

    def infer_shape(self, inputs, *states):
        ni = inputs.shape[2]
        for d in 'lr'[:self._dir]:
            getattr(self, f'{d}0_i2h_weight').shape = (self._gates * self._hidden_size, ni)

    def hybrid_forward(self, F, inputs, *args, **params):
        name = type(self).__name__
        states, lengths = (args[:-1], args[-1]) if self._use_sequence_length else (args, None)
        if inputs.ndim != 3:
            raise MXNetError(f'{name}: expects a 3-d input in layout {self._layout}, got shape {inputs.shape}')
        x = inputs if self._layout == 'TNC' else F.swapaxes(inputs, 0, 1)
        n = x.shape[1]
        wants = [info['shape'] for info in self.state_info(n)]
        if not states:
            states = [F.zeros(want, ctx=inputs.context, dtype=x.dtype) for want in wants]
        for s, want in zip(states, wants):
            if tuple(s.shape) != want:
                raise MXNetError(f'{name}: invalid recurrent state shape {tuple(s.shape)}; expected {want} '
                                 '(num_layers * directions, batch, hidden_size'
                                 f'{" or projection_size for h" if self._projection_size else ""})')
        new = [[] for _ in states]
        for i in range(self._num_layers):
            outs = []
            for j, d in enumerate('lr'[:self._dir]):
                k = i * self._dir + j
                h0, c0 = ([F.reshape(F.slice_axis(s, axis=0, begin=k, end=k + 1), want[1:])
                           for s, want in zip(states, wants)] + [None])[:2]
                w = [params[f'{d}{i}_{g}'] for g in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')]
                res = rnn_layer(x, h0, c0, *w, mode=self._mode, reverse=d == 'r', lengths=lengths,
                                h2r_weight=params.get(f'{d}{i}_h2r_weight'))
                outs.append(res[0])
                for lst, s in zip(new, res[1:]):
                    lst.append(s)
            x = outs[0] if len(outs) == 1 else F.concat(*outs, dim=2)
            if lengths is not None:     # padded steps hold the state inside the op; outputs are 0
                x = x * _step_mask(F, lengths, x.shape[0], x.dtype)
            if self._dropout and i < self._num_layers - 1:
                x = F.Dropout(x, p=self._dropout, **_mode_attrs(F))
        out = x if self._layout == 'TNC' else F.swapaxes(x, 0, 1)
        return (out, *(F.stack(*lst, axis=0) for lst in new))

    def _repr_args(self):
        shape = getattr(self, 'l0_i2h_weight').shape
        s = f'{shape[1] if shape[1] else None} -> {self._hidden_size}, {self._layout}'
        if self._num_layers != 1:
            s += f', num_layers={self._num_layers}'
        if self._dropout:
            s += f', dropout={self._dropout}'
        if self._projection_size:
            s += f', projection_size={self._projection_size}'
        return s + (', bidirectional' if self._dir == 2 else '')


def _step_mask(F, lengths, t, dtype):
    """(T, N, 1): 1 at the valid steps of each sample, 0 at its padding."""
    steps = F.reshape(F.arange(t, dtype=dtype, ctx=lengths.context), (t, 1))
    return F.reshape(F.cast(F.broadcast_lesser(steps, F.reshape(F.cast(lengths, dtype), (1, -1))), dtype),
                     (t, -1, 1))


class RNN(_RNNLayer):
    """Elman RNN, h' = activation(W_i x + b_i + W_h h + b_h), activation 'relu' or 'tanh'."""

    def __init__(self, hidden_size, num_layers=1, activation='relu', layout='TNC', dropout=0,
                 bidirectional=False, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0,
                 dtype='float32', **kwargs):
        if activation not in ('relu', 'tanh'):
            raise MXNetError(f"RNN: activation must be 'relu' or 'tanh', got {activation!r}")
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, 'rnn_' + activation, dtype=dtype, **kwargs)


class LSTM(_RNNLayer):
    """Long short-term memory; states [h, c]. With `projection_size` P (LSTMP, PyTorch's
    proj_size) each step's output o * tanh(c) is projected by `h2r_weight` (P, H): the output
    and h have P features, c keeps H."""

    def __init__(self, hidden_size, num_layers=1, layout='TNC', dropout=0, bidirectional=False,
                 input_size=0, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', projection_size=None,
                 h2r_weight_initializer=None, dtype='float32', **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, 'lstm', projection_size, h2r_weight_initializer,
                         dtype=dtype, **kwargs)


class GRU(_RNNLayer):
    """Gated recurrent unit (reset gate applied after the recurrent matmul, as cuDNN does)."""

    def __init__(self, hidden_size, num_layers=1, layout='TNC', dropout=0, bidirectional=False,
                 input_size=0, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', dtype='float32', **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, 'gru', dtype=dtype, **kwargs)
