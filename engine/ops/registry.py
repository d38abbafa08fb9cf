"""The op contract: every primitive op is one `Op` in REGISTRY.

An op declares, in one place:
  * `infer(shapes, dtypes, **attrs) -> (out_shapes, out_dtypes)`: the shape/dtype rule; it raises
    MXNetError naming the op, the shapes and the attribute at fault;
  * `kernels`: backend name ('cpu', 'gpu') -> `kernel(*arrays, out=None, **attrs)`; a kernel
    registered as 'any' is array-module generic (NumPy and CuPy alike);
  * `grad(g, out, *inputs, **attrs)`: the gradient rule written with other ops, so the eager tape
    and graph-level autodiff share it (g/out are single arrays for single-output ops, tuples else;
    in a tuple, an output that received no gradient has None); it returns one gradient or None
    per input, a gradient may have a shape that broadcasts to its input's (the drivers sum it
    down, `autograd.fit_gradient`);
  * or `no_grad='<why>'` instead of a rule: the op passes no gradient to its inputs (integer or
    piecewise-constant outputs, random draws, stop_gradient). An op with neither is refused at
    registration, so no op is silently treated as a constant by higher-order gradients;
  * `template`: for elementwise ops, the scalar rule as one expression (engine/ops/expr.py) over
    the inputs x0, x1, ... and the attributes; the fusers render it to Numba and CUDA C and
    generate one kernel for a chain. None for every other op.
"""
from ..base import MXNetError, fmt_shape

REGISTRY = {}


class Op:
    __slots__ = ('name', 'infer', 'kernels', 'grad', 'multi_output', 'template', 'no_grad', 'stateful')

    def __init__(self, name, infer, kernels, grad=None, multi_output=False, template=None,
                 no_grad=None, stateful=False):
        self.name = name
        self.infer = infer
        self.kernels = kernels
        self.grad = grad
        # multi-output ops return (and get gradients as) tuples, whatever their length
        self.multi_output = multi_output
        self.template = template
        # why the op passes no gradient to its inputs (None: it has a rule)
        self.no_grad = no_grad
        # stateful ops (random draws) must not be merged by CSE or folded as constants
        self.stateful = stateful

    @property
    def differentiable(self):
        """Whether a gradient flows through the op (so the tape records it); one that declares no
        rule and no no_grad reason is refused when a gradient reaches it (autograd.apply_rule)."""
        return self.no_grad is None

    def kernel(self, device_type):
        k = self.kernels.get(device_type) or self.kernels.get('any')
        if k is None:
            raise MXNetError(f"{self.name}: no kernel for device type '{device_type}'")
        return k

    def __repr__(self):
        return f'Op({self.name})'


def register(name, infer, kernel=None, grad=None, kernels=None, **kw):
    """Declare an op. `kernel` is the array-module generic kernel; `kernels` per-backend ones.
    Exactly one of `grad` and `no_grad` (see the module docstring). Ops built after autodiff
    (fused kernels, compiled programs) are `Op`s made directly, never registered."""
    if name in REGISTRY:
        raise RuntimeError(f'op {name} registered twice')
    if (grad is None) == (kw.get('no_grad') is None):
        raise MXNetError(
            f"op '{name}': " + ('declares both a gradient rule and no_grad' if grad is not None else
                                'has no gradient rule. Pass grad=rule(g, out, *inputs, **attrs) returning '
                                'one gradient (or None) per input, written with ops so that it is itself '
                                "differentiable; or, if no gradient flows through it, declare no_grad='<why>' "
                                "(e.g. 'integer output', 'piecewise constant', 'random draw')"))
    ks = dict(kernels or {})
    if kernel is not None:
        ks['any'] = kernel
    op = Op(name, infer, ks, grad, **kw)
    REGISTRY[name] = op
    return op


def get_op(name):
    try:
        return REGISTRY[name]
    except KeyError:
        raise MXNetError(f"unknown op '{name}'") from None


def shape_error(op, msg, *shapes):
    """A consistent message: '<op>: <what is wrong> (shapes (2, 3) and (4,))'."""
    if shapes:
        msg += ' (shapes ' + ' and '.join(fmt_shape(s) for s in shapes) + ')'
    return MXNetError(f'{op}: {msg}')
