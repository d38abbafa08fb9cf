"""The `mx.sym` function of every op in the table (optable.OPS), generated: each binds its
arguments to the engine function's signature, so inputs and attribute names are the same as
`mx.nd`'s, and creates the parameter variables an op needs but was not given ('fc1_weight')."""
import inspect

from ..base import MXNetError
from ..ndarray import NDArray
from .optable import OPS
from .symbol import Symbol, _prefix_stack, apply_op, auto_name, var

_cache = {}
# op-call keywords that are node attributes, not op parameters (MXNet's hidden keys): they become
# '__<key>__' attributes of the node and of the parameter variables it creates ('fc1_weight')
_HIDDEN = ('lr_mult', 'wd_mult', 'ctx_group', 'force_mirroring', 'mirror_stage', 'profiler_scope')


def _is_sym(v):
    return isinstance(v, Symbol)


def _split(spec, args, kwargs):
    """(bound arguments, attrs) for a call of the op's function."""
    try:
        bound = spec.signature.bind_partial(*args, **kwargs)
    except TypeError as e:
        raise MXNetError(f'mx.sym.{spec.name}: {e}') from None
    attrs = {}
    for pname, value in bound.arguments.items():
        p = spec.signature.parameters[pname]
        if p.kind is p.VAR_KEYWORD:
            attrs.update(value)
        elif p.kind is p.VAR_POSITIONAL or _is_sym(value):
            continue
        elif value is None and p.default is None:
            continue        # passing None is not passing it
        elif isinstance(value, NDArray):
            raise MXNetError(f"mx.sym.{spec.name}: '{pname}' is an NDArray; symbol functions take "
                             'Symbols (make it an mx.sym.var and bind the array to it)')
        else:
            attrs[pname] = value
    return bound.arguments, attrs


def compose(spec, args, kwargs, name=None, attr=None):
    arguments, attrs = _split(spec, args, kwargs)
    # as MXNet's NameManager: a given name is put under the current block prefix ('dense0_fwd')
    name = _prefix_stack()[-1] + name if name else auto_name(spec.name)
    auto = spec.present_params(attrs)
    hidden = {k: v for k, v in (attr or {}).items() if k[2:-2] in _HIDDEN and k.startswith('__')}
    # as MXNet: an op given no input at all gets a variable for its data input ('conv0_data')
    bare = (not spec.creates and not spec.varargs and bool(spec.positional)
            and not any(_is_sym(v) for v in arguments.values()))
    inputs = []
    for k, pname in enumerate(spec.positional):
        v = arguments.get(pname)
        if _is_sym(v):
            inputs.append(v)
        elif k == 0 and bare:
            inputs.append(var(f'{name}_{pname}'))
        elif pname in auto and k > 0:
            inputs.append(var(f'{name}_{pname}', init=spec.param_init.get(pname), attr=hidden))
        else:
            rest = [p for p in spec.positional[k + 1:] if _is_sym(arguments.get(p))]
            if rest:
                raise MXNetError(f"mx.sym.{spec.name} ('{name}'): input '{pname}' is missing but "
                                 f'{rest} are given')
            break
    if spec.varargs:
        pname = next(p.name for p in spec.signature.parameters.values() if p.kind is p.VAR_POSITIONAL)
        extra = list(arguments.get(pname, ()))
        if len(extra) == 1 and isinstance(extra[0], (list, tuple)):
            extra = list(extra[0])
        for v in extra:
            if not _is_sym(v):
                raise MXNetError(f'mx.sym.{spec.name}: inputs must be Symbols, got {type(v).__name__}')
        inputs += extra
        if 'num_args' in spec.signature.parameters:
            attrs['num_args'] = len(extra)
    if not inputs and not spec.creates:
        raise MXNetError(f'mx.sym.{spec.name}: needs at least one Symbol input')
    return apply_op(spec.name, inputs, attrs, name=name, meta=attr)


def make_function(op_name):
    fn = _cache.get(op_name)
    if fn is None:
        spec = OPS[op_name]

        def fn(*args, name=None, attr=None, **kwargs):
            hidden = {f'__{k}__': kwargs.pop(k) for k in _HIDDEN
                      if k in kwargs and k not in spec.signature.parameters}
            # MXNet takes any '__key__' keyword as a node attribute ('__layout__', ...)
            hidden.update({k: kwargs.pop(k) for k in list(kwargs)
                           if k.startswith('__') and k.endswith('__') and len(k) > 4})
            if hidden:
                attr = dict(attr or {}, **hidden)
            return compose(spec, args, kwargs, name, attr)
        fn.__name__ = op_name
        fn.__doc__ = f'mx.sym.{op_name}{spec.signature}: builds a node; see mx.nd.{op_name}.\n\n' + \
            (inspect.getdoc(spec.fn) or '')
        _cache[op_name] = fn
    return fn
