"""Vision models with MXNet Gluon 1.x names: `get_model('resnet18_v1', classes=10)` or the
constructors (`resnet18_v1()`, `mobilenet1_0()`, ...).

Every model is a HybridBlock with `.features` (the trunk) and `.output` (the classifier head), so
fine-tuning replaces `.output`. Every constructor accepts `classes=`, `pretrained=False`,
`ctx=None` and `root='~/.mxnet/models'`; `pretrained=True` loads `<root>/<name>.params` (name as
in `get_model`, e.g. 'mobilenet1.0') and raises MXNetError naming that file when it is missing:
nothing is ever downloaded.

Layer shapes follow the published models at 224x224 (299x299 for inception_v3); SqueezeNet,
DenseNet and Inception end with global average pooling so they also run on other sizes.
"""
from ....base import MXNetError
from .alexnet import *  # noqa: F401,F403
from .densenet import *  # noqa: F401,F403
from .inception import *  # noqa: F401,F403
from .lenet import *  # noqa: F401,F403
from .mobilenet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .squeezenet import *  # noqa: F401,F403
from .unet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from ._common import HybridConcurrent  # noqa: F401

_models = {
    'resnet18_v1': resnet18_v1, 'resnet34_v1': resnet34_v1, 'resnet50_v1': resnet50_v1,  # noqa: F405
    'resnet101_v1': resnet101_v1, 'resnet152_v1': resnet152_v1,  # noqa: F405
    'resnet18_v2': resnet18_v2, 'resnet34_v2': resnet34_v2, 'resnet50_v2': resnet50_v2,  # noqa: F405
    'resnet101_v2': resnet101_v2, 'resnet152_v2': resnet152_v2,  # noqa: F405
    'vgg11': vgg11, 'vgg13': vgg13, 'vgg16': vgg16, 'vgg19': vgg19,  # noqa: F405
    'vgg11_bn': vgg11_bn, 'vgg13_bn': vgg13_bn, 'vgg16_bn': vgg16_bn, 'vgg19_bn': vgg19_bn,  # noqa: F405
    'alexnet': alexnet,  # noqa: F405
    'densenet121': densenet121, 'densenet161': densenet161,  # noqa: F405
    'densenet169': densenet169, 'densenet201': densenet201,  # noqa: F405
    'squeezenet1.0': squeezenet1_0, 'squeezenet1.1': squeezenet1_1,  # noqa: F405
    'inceptionv3': inception_v3,  # noqa: F405
    'mobilenet1.0': mobilenet1_0, 'mobilenet0.75': mobilenet0_75,  # noqa: F405
    'mobilenet0.5': mobilenet0_5, 'mobilenet0.25': mobilenet0_25,  # noqa: F405
    'mobilenetv2_1.0': mobilenet_v2_1_0, 'mobilenetv2_0.75': mobilenet_v2_0_75,  # noqa: F405
    'mobilenetv2_0.5': mobilenet_v2_0_5, 'mobilenetv2_0.25': mobilenet_v2_0_25,  # noqa: F405
    'lenet': lenet, 'mlp': mlp, 'unet': unet,  # noqa: F405
}

class UnknownModelError(MXNetError, ValueError):
    """get_model with a name that is not in the zoo (a ValueError too, as in MXNet)."""


# the constructors' own names work too: get_model('mobilenet_v2_1_0') == get_model('mobilenetv2_1.0')
_aliases = {fn.__name__: name for name, fn in _models.items() if fn.__name__ != name}


def get_model(name, **kwargs):
    """The model called `name` (see `model_names()`), built with `kwargs` (`classes=`,
    `pretrained=`, `ctx=`, `root=` and the model's own options)."""
    key = str(name).lower()
    key = _aliases.get(key, key)
    if key not in _models:
        raise UnknownModelError(f"model_zoo.vision.get_model: unknown model {name!r}. Available models: "
                         + ', '.join(sorted(_models)))
    return _models[key](**kwargs)


def model_names():
    """The names get_model accepts (without the constructor-name aliases)."""
    return sorted(_models)
