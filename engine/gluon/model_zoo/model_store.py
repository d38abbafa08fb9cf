"""Where pretrained parameters live: `<root>/<name>.params`, local files only.

MXNet's model store downloaded files from a server; this engine never downloads anything, so
`get_model_file` only finds a file that the user put there (for example one written by
`net.save_parameters(...)` after converting PyTorch weights with `import_torch_state_dict`)."""
import os

from ...base import MXNetError

DEFAULT_ROOT = os.path.join('~', '.mxnet', 'models')


def get_model_file(name, root=DEFAULT_ROOT):
    """The path of the pretrained parameters of model `name`: `<root>/<name>.params`.

    Raises MXNetError naming the expected file when it does not exist."""
    folder = os.path.expanduser(os.fspath(root))
    path = os.path.join(folder, f'{name}.params')
    if os.path.isfile(path):
        return path
    raise MXNetError(
        f"pretrained weights for model '{name}' not found: expected the file {path}. This engine "
        'never downloads weights; put the parameters there (a file written by '
        f"net.save_parameters('{path}'), e.g. after converting PyTorch weights with "
        'gluon.model_zoo.import_torch_state_dict), or pass root= to point at the folder holding '
        f"'{name}.params'.")


def load_pretrained(net, name, ctx=None, root=DEFAULT_ROOT):
    """Load `<root>/<name>.params` into `net` (see get_model_file); returns `net`."""
    net.load_parameters(get_model_file(name, root), ctx=ctx)
    return net


def purge(root=DEFAULT_ROOT):
    """Delete every `.params` file in `root` (MXNet's model_store.purge)."""
    folder = os.path.expanduser(os.fspath(root))
    if not os.path.isdir(folder):
        return
    for f in os.listdir(folder):
        if f.endswith('.params'):
            os.remove(os.path.join(folder, f))
