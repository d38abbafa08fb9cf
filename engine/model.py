"""`mx.model`: MXNet's checkpoint files, `prefix-symbol.json` + `prefix-%04d.params` with the
parameters named `arg:<name>` and `aux:<name>` (what `mx.mod.Module.save_checkpoint` writes)."""
from collections import namedtuple

from .base import MXNetError

# what Module.fit passes to batch_end_callback (MXNet's mx.model.BatchEndParam)
BatchEndParam = namedtuple('BatchEndParam', ['epoch', 'nbatch', 'eval_metric', 'locals'])


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True):
    """Write `prefix-symbol.json` and `prefix-%04d.params` (each atomically)."""
    from .serialization import save_arrays
    if symbol is not None:
        symbol.save(f'{prefix}-symbol.json')
    arrays = {f'arg:{k}': v for k, v in arg_params.items()}
    arrays.update({f'aux:{k}': v for k, v in (aux_params or {}).items()})
    save_arrays(f'{prefix}-{int(epoch):04d}.params', arrays)


def load_params(prefix, epoch):
    """(arg_params, aux_params) from `prefix-%04d.params`."""
    from .serialization import load_arrays
    fname = f'{prefix}-{int(epoch):04d}.params'
    loaded = load_arrays(fname)
    if not isinstance(loaded, dict):
        raise MXNetError(f'{fname}: expected named arrays (arg:/aux:), found an unnamed list')
    arg, aux = {}, {}
    for k, v in loaded.items():
        kind, sep, name = k.partition(':')
        if not sep or kind not in ('arg', 'aux'):
            raise MXNetError(f"{fname}: entry {k!r} is not named 'arg:<name>' or 'aux:<name>'; this is "
                             'not a checkpoint (a Gluon save_parameters file?)')
        (arg if kind == 'arg' else aux)[name] = v
    return arg, aux


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) of a checkpoint written by MXNet or save_checkpoint."""
    from . import symbol
    sym = symbol.load(f'{prefix}-symbol.json')
    arg, aux = load_params(prefix, epoch)
    return sym, arg, aux
