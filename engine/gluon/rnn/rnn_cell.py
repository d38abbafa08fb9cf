"""Recurrent cells with MXNet 1.x's API: one time step per call, `unroll` over a sequence.

Cells are HybridBlocks composed from existing ops, so an unrolled cell inside a hybridized block
traces into the graph step by step (Python's time loop unrolls). Calling a cell is
`cell(x, states) -> (output, new_states)`; the states travel to `forward` as flat arguments and
come back flat (`forward(x, *states) -> (output, *states)`), so a cell can be hybridized alone.

Called on mx.sym Symbols (MXNet's symbolic unroll), the same code composes a Symbol: `_F(x)`
picks mx.sym or mx.nd, and the nodes are named as MXNet names them ('rnn_t0_out')."""
import functools
import inspect

from ... import autograd, nd
from ... import symbol as _sym
from ...base import MXNetError
from ..block import HybridBlock


def _F(x):
    """mx.sym when composing a Symbol, else mx.nd (eagerly or inside a traced graph)."""
    return _sym if isinstance(x, _sym.Symbol) else nd


def _name(F, name):
    # node names only exist in a composed Symbol (list_outputs shows them); nd ops take none
    return {'name': name} if F is _sym else {}


def _train(F):
    # a Symbol's Dropout follows the executor's is_train; arrays get the mode explicitly
    return {} if F is _sym else {'training': autograd.is_training()}


def _dtype(x):
    return 'float32' if isinstance(x, _sym.Symbol) else x.dtype


def _zeros_like_state(info, **kwargs):
    info = {k: v for k, v in info.items() if k != '__layout__'}
    info.update(kwargs)
    return info


class RecurrentCell(HybridBlock):
    """Base class of the cells. `_counter` numbers the steps since the last `reset` (MXNet's
    't0_', 't1_' node names). A subclass may define its step as MXNet's cells do,
    `hybrid_forward(F, inputs, states, **params)` / `forward(inputs, states)` returning
    (output, new_states) with the states as one list: it is adapted to the flat form."""

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix, params)
        self._counter = -1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, at in (('hybrid_forward', 3), ('forward', 2)):   # index of `states` after self(, F), inputs
            fn = cls.__dict__.get(name)
            if fn is not None and _takes_state_list(fn, at):
                setattr(cls, name, _flat_states(fn, with_F=name == 'hybrid_forward'))

    def _step_name(self, F, name):
        return _name(F, f't{self._counter}_{name}')

    def state_info(self, batch_size=0):
        raise NotImplementedError

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """Initial states, one array per entry of state_info(batch_size)."""
        return [func(**_zeros_like_state(info, **kwargs)) for info in self.state_info(batch_size)]

    def reset(self):
        self._counter = -1
        for cell in self._children.values():
            if isinstance(cell, RecurrentCell):
                cell.reset()

    def __call__(self, inputs, states):
        if not isinstance(states, (list, tuple)):
            states = [states]
        self._counter += 1
        out = super().__call__(inputs, *states)
        return out[0], list(out[1:])

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        """Run `length` steps. `inputs`: one (N, T, C) / (T, N, C) array per `layout`, or a list of
        (N, C) steps. With `valid_length` (N,), outputs past a sequence's length are zero and the
        states are those after its last valid step. Returns (outputs, states); outputs are a list
        of steps unless merged (merge_outputs=True, or None with valid_length)."""
        self.reset()
        steps, axis = _steps(type(self).__name__, length, inputs, layout)
        states = _default_states(self, steps[0]) if begin_state is None else _batch_of(begin_state, steps[0])
        outputs, history = [], []
        for x in steps:
            out, states = self(x, states)
            outputs.append(out)
            history.append(states)
        if valid_length is not None:
            states = [last_valid(list(h), valid_length) for h in zip(*history)]
            outputs = mask_steps(outputs, valid_length)
        return _merge(outputs, axis, merge_outputs, valid_length is not None), states


HybridRecurrentCell = RecurrentCell     # every cell here is a HybridBlock


def _takes_state_list(fn, at):
    params = list(inspect.signature(fn).parameters.values())
    return len(params) > at and params[at].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


def _flat_states(fn, with_F):
    """fn(self, [F,] inputs, states_list, **params) -> (out, states_list), as (out, *states) of
    flat states (the form the engine's calls, hybridized graphs and Symbols pass)."""
    @functools.wraps(fn)
    def step(self, *args, **params):
        head, states = (args[:2], args[2:]) if with_F else (args[:1], args[1:])
        out, new = fn(self, *head, list(states), **params)
        return (out, *(new if isinstance(new, (list, tuple)) else [new]))
    return step


def _batch_of(states, x):
    """States made by begin_state(func=mx.sym.zeros) with batch_size 0 (MXNet's 'unknown'), given
    x's batch: the engine's shape inference does not fill 0 dimensions, so they are rebuilt as
    zeros broadcast along x's batch axis."""
    out = []
    for s in states:
        node = s._outputs[0][0] if isinstance(s, _sym.Symbol) and len(s._outputs) == 1 else None
        shape = tuple(node.attrs.get('shape', ())) if node is not None and node.op == '_zeros' else ()
        if shape and shape[0] == 0 and all(shape[1:]):
            s = _sym.broadcast_like(_sym.zeros(shape=(1,) + shape[1:]), x, lhs_axes=(0,), rhs_axes=(0,))
        out.append(s)
    return out


def _default_states(cell, x):
    """Zero begin states for the step input x. A Symbol's batch size is unknown until it is bound,
    so there zeros of (1, width) are broadcast along x's batch axis."""
    if not isinstance(x, _sym.Symbol):
        return cell.begin_state(x.shape[0], ctx=x.context, dtype=x.dtype)
    return [_sym.broadcast_like(_sym.zeros(shape=(1,) + tuple(info['shape'][1:])), x, lhs_axes=(0,), rhs_axes=(0,))
            for info in cell.state_info()]


def _steps(name, length, inputs, layout):
    if layout not in ('NTC', 'TNC'):
        raise MXNetError(f"{name}.unroll: layout must be 'NTC' or 'TNC', got {layout!r}")
    axis = layout.find('T')
    if isinstance(inputs, _sym.Symbol) and len(inputs.list_outputs()) > 1:
        inputs = list(inputs)
    if isinstance(inputs, (list, tuple)):
        steps = list(inputs)
    elif isinstance(inputs, _sym.Symbol):     # its shape is unknown: split blindly, as MXNet
        steps = list(_sym.split(inputs, num_outputs=length, axis=axis, squeeze_axis=True))
    else:
        if inputs.ndim < 2 or inputs.shape[axis] != length:
            raise MXNetError(f'{name}.unroll: inputs of shape {tuple(inputs.shape)} do not have length={length} '
                             f'on the time axis of layout {layout}')
        steps = [nd.reshape(nd.slice_axis(inputs, axis=axis, begin=t, end=t + 1),
                            inputs.shape[:axis] + inputs.shape[axis + 1:]) for t in range(length)]
    if len(steps) != length or length < 1:
        raise MXNetError(f'{name}.unroll: expected {length} (>= 1) steps, got {len(steps)}')
    return steps, axis


def _merge(outputs, axis, merge, default):
    return _F(outputs[0]).stack(*outputs, axis=axis) if (default if merge is None else merge) else outputs


def _lengths(valid_length, like):
    F = _F(like)
    return F, F.reshape(F.cast(valid_length, dtype=_dtype(like)), shape=(-1, 1))


def _step_masks(length, valid_length, like):
    """For each step t, a (N, 1) array: 1 where t < valid_length, else 0."""
    F, vl = _lengths(valid_length, like)
    return [F.cast(vl > t, dtype=_dtype(like)) for t in range(length)]


def mask_steps(outputs, valid_length):
    """Zero the steps of each sequence at and past its valid length."""
    masks = _step_masks(len(outputs), valid_length, outputs[0])
    return [_F(o).broadcast_mul(o, m) for o, m in zip(outputs, masks)]


def last_valid(states, valid_length):
    """The state after step valid_length - 1 of each sequence, from the list of per-step states."""
    F, vl = _lengths(valid_length, states[0])
    out = None
    for t, s in enumerate(states):
        pick = F.broadcast_mul(s, F.cast(vl == t + 1, dtype=_dtype(s)))
        out = pick if out is None else out + pick
    return out


def reverse_steps(steps, valid_length):
    """Reverse each sequence within its valid length (padding stays in place)."""
    if valid_length is None:
        return list(reversed(steps))
    length = len(steps)
    F, vl = _lengths(valid_length, steps[0])
    dtype = _dtype(steps[0])
    out = []
    for t in range(length):
        acc = None
        for s in range(length):
            # step s lands on t for sequences with vl - 1 - t == s (inside), or s == t (padding)
            sel = F.cast(vl == t + s + 1, dtype=dtype)
            if s == t:
                sel = sel + F.cast(vl <= t, dtype=dtype)
            term = F.broadcast_mul(steps[s], sel)
            acc = term if acc is None else acc + term
        out.append(acc)
    return out


class _GatedCell(RecurrentCell):
    """Shared parameter set-up: i2h/h2h weights and biases for `gates` gates."""
    _gates = 1

    def _state_widths(self):
        """The width of each state (h first); h2h_weight reads the first."""
        return [self._hidden_size]

    def __init__(self, hidden_size, i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                 h2h_bias_initializer, input_size, prefix, params):
        super().__init__(prefix, params)
        self._hidden_size, self._input_size = hidden_size, input_size
        gh = self._gates * hidden_size
        with self.name_scope():
            mk = self.params.get
            self.i2h_weight = mk('i2h_weight', shape=(gh, input_size), init=i2h_weight_initializer,
                                 allow_deferred_init=True)
            self.h2h_weight = mk('h2h_weight', shape=(gh, self._state_widths()[0]), init=h2h_weight_initializer,
                                 allow_deferred_init=True)
            self.i2h_bias = mk('i2h_bias', shape=(gh,), init=i2h_bias_initializer, allow_deferred_init=True)
            self.h2h_bias = mk('h2h_bias', shape=(gh,), init=h2h_bias_initializer, allow_deferred_init=True)

    def infer_shape(self, inputs, *states):
        self.i2h_weight.shape = (self._gates * self._hidden_size, inputs.shape[-1])

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size, w), '__layout__': 'NC'} for w in self._state_widths()]

    def _projections(self, F, x, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        """Checks the step's input and states (when their shapes are known), then i2h(x), h2h(h)."""
        if F is not _sym:
            _check_step(self, x, states)
        gh = self._gates * self._hidden_size
        return (F.FullyConnected(x, i2h_weight, i2h_bias, num_hidden=gh, **self._step_name(F, 'i2h')),
                F.FullyConnected(states[0], h2h_weight, h2h_bias, num_hidden=gh, **self._step_name(F, 'h2h')))

    def _repr_args(self):
        shape = self.i2h_weight.shape
        return f'{shape[1] if shape[1] else None} -> {shape[0]}'


class RNNCell(_GatedCell):
    """Elman cell: h' = activation(W_i x + b_i + W_h h + b_h)."""
    _alias = 'rnn'

    def __init__(self, hidden_size, activation='tanh', i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0, prefix=None, params=None):
        super().__init__(hidden_size, i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, input_size, prefix, params)
        self._activation = activation

    def hybrid_forward(self, F, inputs, *states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        a = i2h + h2h
        out = F.Activation(a, act_type=self._activation, **self._step_name(F, 'out')) \
            if isinstance(self._activation, str) else self._activation(a)
        return out, out


class LSTMCell(_GatedCell):
    """LSTM cell, gates i, f, g, o; states [h, c]."""
    _alias, _gates = 'lstm', 4

    def __init__(self, hidden_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0, prefix=None, params=None):
        super().__init__(hidden_size, i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, input_size, prefix, params)

    def _state_widths(self):
        return [self._hidden_size] * 2

    def hybrid_forward(self, F, inputs, *states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        h, c = _lstm_gates(F, i2h + h2h, states[1], self._step_name(F, 'out'))
        return h, h, c


def _lstm_gates(F, gates, c_prev, out_name):
    """(o * tanh(c), c) with c = f * c_prev + i * g, from the gates' pre-activations (i, f, g, o)."""
    i, f, g, o = list(F.split(gates, num_outputs=4, axis=1))
    c = F.sigmoid(f) * c_prev + F.sigmoid(i) * F.tanh(g)
    return F.elemwise_mul(F.sigmoid(o), F.tanh(c), **out_name), c


class GRUCell(_GatedCell):
    """GRU cell, gates r, z, n; the reset gate multiplies the recurrent part after its matmul."""
    _alias, _gates = 'gru', 3

    def __init__(self, hidden_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0, prefix=None, params=None):
        super().__init__(hidden_size, i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, input_size, prefix, params)

    def hybrid_forward(self, F, inputs, *states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        h = states[0]
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        xr, xz, xn = list(F.split(i2h, num_outputs=3, axis=1))
        hr, hz, hn = list(F.split(h2h, num_outputs=3, axis=1))
        r, z = F.sigmoid(xr + hr), F.sigmoid(xz + hz)
        n = F.tanh(xn + r * hn)
        out = F.elemwise_add((1 - z) * n, z * h, **self._step_name(F, 'out'))
        return out, out


def _check_step(cell, x, states):
    name, widths = type(cell).__name__, cell._state_widths()
    if x.ndim != 2:
        raise MXNetError(f'{name}: a step input must be (batch, features), got {tuple(x.shape)}')
    if len(states) != len(widths):
        raise MXNetError(f'{name}: expected {len(widths)} state array(s), got {len(states)}')
    for s, w in zip(states, widths):
        if s.ndim != 2 or s.shape[1] != w:
            raise MXNetError(f'{name}: a state must be (batch, {w}), got {tuple(s.shape)} (widths {widths})')


class SequentialRNNCell(RecurrentCell):
    """Cells stacked on each other; the states are the cells' states concatenated."""

    def add(self, cell):
        self.register_child(cell)
        return self

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def __len__(self):
        return len(self._children)

    def state_info(self, batch_size=0):
        return [info for c in self._children.values() for info in c.state_info(batch_size)]

    def begin_state(self, batch_size=0, **kwargs):
        return [s for c in self._children.values() for s in c.begin_state(batch_size, **kwargs)]

    def forward(self, inputs, *states):
        new, k = [], 0
        for cell in self._children.values():
            n = len(cell.state_info())
            inputs, st = cell(inputs, list(states[k:k + n]))
            new += st
            k += n
        if k != len(states):
            raise MXNetError(f'SequentialRNNCell: expected {k} state arrays, got {len(states)}')
        return (inputs, *new)

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        """Unrolls each cell over the whole sequence in turn (as MXNet), so a stack may hold
        BidirectionalCells, which cannot be stepped."""
        self.reset()
        steps, _ = _steps('SequentialRNNCell', length, inputs, layout)
        if begin_state is None:
            begin_state = [s for c in self._children.values() for s in _default_states(c, steps[0])]
        cells, states, k = list(self._children.values()), [], 0
        x = inputs
        for i, cell in enumerate(cells):
            n = len(cell.state_info())
            last = i == len(cells) - 1
            x, st = cell.unroll(length, x, begin_state[k:k + n], layout,
                                merge_outputs=merge_outputs if last else None, valid_length=valid_length)
            states += st
            k += n
        if k != len(begin_state):
            raise MXNetError(f'SequentialRNNCell.unroll: expected {k} begin states, got {len(begin_state)}')
        return x, states


HybridSequentialRNNCell = SequentialRNNCell


class DropoutCell(RecurrentCell):
    """Dropout on the step input (while training); no states."""

    def __init__(self, rate, axes=(), prefix=None, params=None):
        super().__init__(prefix, params)
        if not 0 <= rate < 1:
            raise MXNetError(f'DropoutCell: rate must be in [0, 1), got {rate}')
        self._rate, self._axes = rate, tuple(axes)

    def state_info(self, batch_size=0):
        return []

    def forward(self, inputs, *states):
        if not self._rate:
            return (inputs, *states)
        F = _F(inputs)
        return (F.Dropout(inputs, p=self._rate, axes=self._axes, **_train(F), **self._step_name(F, 'fwd')), *states)


class ModifierCell(RecurrentCell):
    """A cell wrapping `base_cell` (its parameters and states)."""

    def __init__(self, base_cell):
        super().__init__(prefix=base_cell.prefix + type(self).__name__.lower() + '_')
        self.base_cell = base_cell

    def state_info(self, batch_size=0):
        return self.base_cell.state_info(batch_size)

    def begin_state(self, batch_size=0, **kwargs):
        return self.base_cell.begin_state(batch_size, **kwargs)


class _SequenceStateCell(ModifierCell):
    """A modifier that keeps values from step to step in Python attributes (the previous output,
    masks), which a cached one-step graph would freeze at its first trace: it stays eager (a
    hybridized parent still traces its whole unroll) and hybridize caches only the base cell."""

    def hybridize(self, active=True, **kwargs):
        self.base_cell.hybridize(active, **kwargs)


class ResidualCell(ModifierCell):
    """output = base_cell(x) + x."""

    def forward(self, inputs, *states):
        out, st = self.base_cell(inputs, list(states))
        F = _F(out)
        return (F.elemwise_add(out, inputs, **self._step_name(F, 'fwd')), *st)

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        """The base cell's unroll plus the inputs (masked past valid_length), so the base may be
        a BidirectionalCell."""
        self.reset()
        steps, axis = _steps('ResidualCell', length, inputs, layout)
        outs, states = self.base_cell.unroll(length, steps, begin_state, layout, merge_outputs=False,
                                             valid_length=valid_length)
        if valid_length is not None:
            steps = mask_steps(steps, valid_length)
        outs = [_F(o).elemwise_add(o, x) for o, x in zip(outs, steps)]
        return _merge(outs, axis, merge_outputs, valid_length is not None), states


class ZoneoutCell(_SequenceStateCell):
    """While training, each output/state unit keeps its previous value with probability
    zoneout_outputs / zoneout_states (Krueger et al., 2016); predict mode uses the new values."""

    def __init__(self, base_cell, zoneout_outputs=0., zoneout_states=0.):
        if isinstance(base_cell, BidirectionalCell):
            raise MXNetError('ZoneoutCell: a BidirectionalCell cannot be wrapped (it cannot be stepped)')
        super().__init__(base_cell)
        self._p_out, self._p_state = zoneout_outputs, zoneout_states
        self._prev_output = None

    def reset(self):
        super().reset()
        self._prev_output = None

    def forward(self, inputs, *states):
        out, st = self.base_cell(inputs, list(states))
        F = _F(out)
        prev = self._prev_output if self._prev_output is not None else F.zeros_like(out)
        if self._p_out:
            out = _zoneout(F, out, prev, self._p_out)
        if self._p_state:
            st = [_zoneout(F, s, old, self._p_state) for s, old in zip(st, states)]
        self._prev_output = out
        return (out, *st)


def _zoneout(F, new, old, p):
    # a dropout mask of ones is 0 (keep the old value) or 1/(1-p) (take the new); identity when predicting
    keep_new = F.Dropout(F.ones_like(new), p=p, **_train(F))
    return F.where(keep_new, new, old)


class BidirectionalCell(RecurrentCell):
    """Runs l_cell forwards and r_cell backwards over the sequence; outputs concatenated on the
    feature axis, states [l_cell's..., r_cell's...]. Only `unroll` is defined."""

    def __init__(self, l_cell, r_cell, output_prefix='bi_'):
        super().__init__(prefix='')
        self.l_cell, self.r_cell = l_cell, r_cell
        self._output_prefix = output_prefix

    def __call__(self, inputs, states):
        raise MXNetError('BidirectionalCell cannot be stepped; use unroll')

    def state_info(self, batch_size=0):
        return self.l_cell.state_info(batch_size) + self.r_cell.state_info(batch_size)

    def begin_state(self, batch_size=0, **kwargs):
        return self.l_cell.begin_state(batch_size, **kwargs) + self.r_cell.begin_state(batch_size, **kwargs)

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        self.reset()
        steps, axis = _steps('BidirectionalCell', length, inputs, layout)
        if begin_state is None:
            begin_state = _default_states(self, steps[0])
        nl = len(self.l_cell.state_info())
        l_out, l_st = self.l_cell.unroll(length, steps, begin_state[:nl], merge_outputs=False,
                                         valid_length=valid_length)
        r_out, r_st = self.r_cell.unroll(length, reverse_steps(steps, valid_length), begin_state[nl:],
                                         merge_outputs=False, valid_length=valid_length)
        r_out = reverse_steps(r_out, valid_length)
        F = _F(steps[0])
        outputs = [F.concat(a, b, dim=1, **_name(F, f'{self._output_prefix}t{t}'))
                   for t, (a, b) in enumerate(zip(l_out, r_out))]
        return _merge(outputs, axis, merge_outputs, valid_length is not None), l_st + r_st
