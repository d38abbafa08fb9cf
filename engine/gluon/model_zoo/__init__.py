"""Model zoo: ready-made networks (`gluon.model_zoo.vision`) with MXNet Gluon 1.x names.

Pretrained weights are never downloaded: `pretrained=True` loads `<root>/<name>.params` (a file
written by `save_parameters`, or converted from PyTorch with `torch_import`) when it is there.
"""
from . import model_store, vision  # noqa: F401
from .torch_import import import_torch_state_dict  # noqa: F401
