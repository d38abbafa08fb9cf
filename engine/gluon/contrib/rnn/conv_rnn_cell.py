"""Convolutional recurrent cells (MXNet 1.x's gluon.contrib.rnn Conv{1,2,3}D{RNN,LSTM,GRU}Cell):
the i2h and h2h transforms are convolutions (stride 1) instead of dense layers, so the states
keep spatial dimensions (Shi et al., 2015, ConvLSTM). The h2h convolution is padded to keep the
state's size, which is why its kernel must be odd. Channel-first layouts only (the engine's
Convolution is NC...)."""
from numbers import Integral

from ...rnn.rnn_cell import RecurrentCell, _sym
from ....base import MXNetError


def _tuple(value, dims, what, cls):
    t = (value,) * dims if isinstance(value, Integral) else tuple(value)
    if len(t) != dims or not all(isinstance(v, Integral) and v >= 0 for v in t):
        raise MXNetError(f'{cls}: {what} must be an int or {dims} non-negative ints, got {value!r}')
    return tuple(int(v) for v in t)


class _ConvCell(RecurrentCell):
    """Shared set-up; subclasses set `_dims` (1, 2, 3) and `_gates`, and define `_step`."""
    _dims, _gates = 0, 1

    def __init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad=0, i2h_dilate=1,
                 h2h_dilate=1, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', conv_layout=None,
                 activation='tanh', prefix=None, params=None):
        super().__init__(prefix, params)
        name, n = type(self).__name__, self._dims
        channel_first = 'NC' + 'DHW'[3 - n:]
        if conv_layout not in (None, channel_first):
            raise MXNetError(f"{name}: conv_layout {conv_layout!r} is not supported (only {channel_first!r})")
        input_shape = tuple(input_shape)
        if len(input_shape) != n + 1:
            raise MXNetError(f'{name}: input_shape must be (channels, {n} spatial sizes) without the batch, '
                             f'got {input_shape}')
        self._input_shape, self._hidden_channels = input_shape, int(hidden_channels)
        self._i2h_kernel = _tuple(i2h_kernel, n, 'i2h_kernel', name)
        self._h2h_kernel = _tuple(h2h_kernel, n, 'h2h_kernel', name)
        if any(k % 2 == 0 for k in self._h2h_kernel):
            raise MXNetError(f'{name}: h2h_kernel must be odd (the state keeps its size), got {self._h2h_kernel}')
        self._i2h_pad = _tuple(i2h_pad, n, 'i2h_pad', name)
        self._i2h_dilate = _tuple(i2h_dilate, n, 'i2h_dilate', name)
        self._h2h_dilate = _tuple(h2h_dilate, n, 'h2h_dilate', name)
        self._h2h_pad = tuple(d * (k - 1) // 2 for d, k in zip(self._h2h_dilate, self._h2h_kernel))
        self._state_spatial = tuple(s + 2 * p - d * (k - 1) for s, p, d, k in zip(
            input_shape[1:], self._i2h_pad, self._i2h_dilate, self._i2h_kernel))
        if any(s < 1 for s in self._state_spatial):
            raise MXNetError(f'{name}: the i2h convolution leaves no output for input_shape {input_shape}')
        self._activation = activation
        gh = self._gates * self._hidden_channels
        with self.name_scope():
            mk = self.params.get
            self.i2h_weight = mk('i2h_weight', shape=(gh, input_shape[0]) + self._i2h_kernel,
                                 init=i2h_weight_initializer, allow_deferred_init=True)
            self.h2h_weight = mk('h2h_weight', shape=(gh, self._hidden_channels) + self._h2h_kernel,
                                 init=h2h_weight_initializer, allow_deferred_init=True)
            self.i2h_bias = mk('i2h_bias', shape=(gh,), init=i2h_bias_initializer, allow_deferred_init=True)
            self.h2h_bias = mk('h2h_bias', shape=(gh,), init=h2h_bias_initializer, allow_deferred_init=True)

    def _n_states(self):
        return 1

    def state_info(self, batch_size=0):
        shape = (batch_size, self._hidden_channels) + self._state_spatial
        return [{'shape': shape, '__layout__': 'NC' + 'DHW'[3 - self._dims:]}] * self._n_states()

    def infer_shape(self, inputs, *states):
        self.i2h_weight.shape = (self._gates * self._hidden_channels, inputs.shape[1]) + self._i2h_kernel

    def _check(self, x, states):
        name, want = type(self).__name__, self.state_info()[0]['shape'][1:]
        if x.ndim != self._dims + 2 or tuple(x.shape[2:]) != self._input_shape[1:]:
            raise MXNetError(f'{name}: a step input must be (batch, channels) + {self._input_shape[1:]}, '
                             f'got {tuple(x.shape)}')
        if len(states) != self._n_states() or any(tuple(s.shape[1:]) != want for s in states):
            raise MXNetError(f'{name}: expected {self._n_states()} state(s) of (batch,) + {want}, got '
                             f'{[tuple(s.shape) for s in states]}')

    def _act(self, F, x, **name):
        if isinstance(self._activation, str):
            return F.Activation(x, act_type=self._activation, **name)
        return self._activation(x)

    def hybrid_forward(self, F, inputs, *states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        if F is not _sym:
            self._check(inputs, states)
        gh = self._gates * self._hidden_channels
        i2h = F.Convolution(inputs, i2h_weight, i2h_bias, kernel=self._i2h_kernel, pad=self._i2h_pad,
                            dilate=self._i2h_dilate, num_filter=gh, **self._step_name(F, 'i2h'))
        h2h = F.Convolution(states[0], h2h_weight, h2h_bias, kernel=self._h2h_kernel, pad=self._h2h_pad,
                            dilate=self._h2h_dilate, num_filter=gh, **self._step_name(F, 'h2h'))
        return self._step(F, i2h, h2h, states)

    def _repr_args(self):
        return (f'{self._input_shape} -> {self._hidden_channels}, i2h_kernel={self._i2h_kernel}, '
                f'h2h_kernel={self._h2h_kernel}')


class _ConvRNN(_ConvCell):
    _alias = 'conv_rnn'

    def _step(self, F, i2h, h2h, states):
        out = self._act(F, i2h + h2h, **self._step_name(F, 'out'))
        return out, out


class _ConvLSTM(_ConvCell):
    """Gates i, f, g, o on the channel axis; states [h, c]."""
    _alias, _gates = 'conv_lstm', 4

    def _n_states(self):
        return 2

    def _step(self, F, i2h, h2h, states):
        i, f, g, o = list(F.split(i2h + h2h, num_outputs=4, axis=1))
        c = F.sigmoid(f) * states[1] + F.sigmoid(i) * self._act(F, g)
        h = F.elemwise_mul(F.sigmoid(o), self._act(F, c), **self._step_name(F, 'out'))
        return h, h, c


class _ConvGRU(_ConvCell):
    """Gates r, z, n; the reset gate multiplies the h2h convolution's candidate part."""
    _alias, _gates = 'conv_gru', 3

    def _step(self, F, i2h, h2h, states):
        xr, xz, xn = list(F.split(i2h, num_outputs=3, axis=1))
        hr, hz, hn = list(F.split(h2h, num_outputs=3, axis=1))
        r, z = F.sigmoid(xr + hr), F.sigmoid(xz + hz)
        n = self._act(F, xn + r * hn)
        out = F.elemwise_add((1 - z) * n, z * states[0], **self._step_name(F, 'out'))
        return out, out


def _cell_class(base, dims, kind):
    name = f'Conv{dims}D{kind}Cell'
    doc = (f'{name}(input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad=0, i2h_dilate=1, '
           f'h2h_dilate=1, ..., activation=\'tanh\'): a {kind} cell whose transforms are {dims}-d '
           f'convolutions; input_shape is (C, {", ".join("DHW"[3 - dims:])}) without the batch.')
    return type(name, (base,), {'_dims': dims, '__doc__': doc, '__module__': __name__})


Conv1DRNNCell, Conv2DRNNCell, Conv3DRNNCell = (_cell_class(_ConvRNN, d, 'RNN') for d in (1, 2, 3))
Conv1DLSTMCell, Conv2DLSTMCell, Conv3DLSTMCell = (_cell_class(_ConvLSTM, d, 'LSTM') for d in (1, 2, 3))
Conv1DGRUCell, Conv2DGRUCell, Conv3DGRUCell = (_cell_class(_ConvGRU, d, 'GRU') for d in (1, 2, 3))
