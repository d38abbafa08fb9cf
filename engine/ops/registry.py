"""The op contract: every primitive op is one `Op` in REGISTRY.

An op declares, in one place:
  * `infer(shapes, dtypes, **attrs) -> (out_shapes, out_dtypes)`: the shape/dtype rule; it raises
    MXNetError naming the op, the shapes and the attribute at fault;
  * `kernels`: backend name ('cpu', 'gpu') -> `kernel(*arrays, out=None, **attrs)`; a kernel
    registered as 'any' is array-module generic (NumPy and CuPy alike);
  * `grad(g, out, *inputs, **attrs)`: the gradient rule written with other ops, so the eager tape
    and graph-level autodiff share it (g/out are single arrays for single-output ops, tuples else);
  * `template`: for elementwise ops, scalar expressions per backend ({'numba': ..., 'cuda': ...})
    over the names x0, x1, ... from which the fuser generates one kernel for a chain.
"""
from ..base import MXNetError, fmt_shape

REGISTRY = {}


class Op:
    __slots__ = ('name', 'infer', 'kernels', 'grad', 'multi_output', 'template', 'differentiable',
                 'stateful')

    def __init__(self, name, infer, kernels, grad=None, multi_output=False, template=None,
                 differentiable=True, stateful=False):
        self.name = name
        self.infer = infer
        self.kernels = kernels
        self.grad = grad
        # multi-output ops return (and get gradients as) tuples, whatever their length
        self.multi_output = multi_output
        self.template = template
        # ops without a gradient (comparisons, argmax, ...) pass no gradient to their inputs
        self.differentiable = differentiable and grad is not None
        # stateful ops (random draws) must not be merged by CSE or folded as constants
        self.stateful = stateful

    def kernel(self, device_type):
        k = self.kernels.get(device_type) or self.kernels.get('any')
        if k is None:
            raise MXNetError(f"{self.name}: no kernel for device type '{device_type}'")
        return k

    def __repr__(self):
        return f'Op({self.name})'


def register(name, infer, kernel=None, grad=None, kernels=None, **kw):
    """Declare an op. `kernel` is the array-module generic kernel; `kernels` per-backend ones."""
    if name in REGISTRY:
        raise RuntimeError(f'op {name} registered twice')
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
