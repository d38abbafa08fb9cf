"""Load PyTorch (torchvision-named) weights into the model-zoo networks.

    net = vision.resnet18_v1()
    import_torch_state_dict(net, torch_model.state_dict())   # torch tensors or NumPy arrays

Supported: ResNet v1 with basic blocks (resnet18_v1, resnet34_v1 == torchvision resnet18/34),
VGG with or without BatchNorm (== torchvision vgg*/vgg*_bn) and AlexNet (== torchvision alexnet).
torchvision's VGG and AlexNet put an adaptive average pooling (to 7x7 / 6x6) before the classifier,
which is the identity at their reference 224x224 input; our Dense layers take the feature map as
it is, so the two agree on 224x224 inputs.

Not supported, because the architectures differ, not just the names: resnet50+_v1 (MXNet's
BottleneckV1 strides in the first 1x1 conv and has conv biases; torchvision strides in the 3x3),
MobileNetV2 (MXNet's first bottleneck has an extra 1x1 conv and its classifier has no bias).

Layouts match without transposes: conv weights are (out, in/groups, kh, kw) in both, Linear
(out, in) is Dense (units, in_units), and BatchNorm weight/bias/running_mean/running_var are
gamma/beta/running_mean/running_var (torch's eps 1e-5 is our BatchNorm default). Everything is
checked before anything is assigned: a missing or unexpected key or a shape mismatch raises
MXNetError and leaves the network untouched.
"""
from collections import OrderedDict

import numpy as np

from ...base import MXNetError, fmt_shape
from .. import nn
from .vision.alexnet import AlexNet
from .vision.mobilenet import MobileNet, MobileNetV2
from .vision.resnet import BasicBlockV1, ResNetV1
from .vision.vgg import VGG

__all__ = ['import_torch_state_dict', 'torch_parameter_map']

# bookkeeping entries of torch modules that hold no weights
_IGNORED_SUFFIXES = ('num_batches_tracked',)


def _to_numpy(key, value):
    if hasattr(value, 'detach'):                      # a torch.Tensor (torch is not imported here)
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    if value.dtype.kind not in 'fiu':
        raise MXNetError(f'import_torch_state_dict: entry {key} is not numeric (dtype {value.dtype})')
    return value


def _conv(m, key, layer):
    m[f'{key}.weight'] = layer.weight
    if layer.bias is not None:
        m[f'{key}.bias'] = layer.bias


def _bn(m, key, layer):
    m[f'{key}.weight'] = layer.gamma
    m[f'{key}.bias'] = layer.beta
    m[f'{key}.running_mean'] = layer.running_mean
    m[f'{key}.running_var'] = layer.running_var


_dense = _conv


def _resnet_v1_map(net):
    f = net.features
    if len(f) != 9 or not isinstance(f[0], nn.Conv2D) or not isinstance(f[3], nn.MaxPool2D):
        raise MXNetError('import_torch_state_dict: ResNetV1 with thumbnail=True has no torchvision '
                         'counterpart (torchvision always uses the 7x7 stem + max-pool)')
    m = OrderedDict()
    _conv(m, 'conv1', f[0])
    _bn(m, 'bn1', f[1])
    for i in range(4):
        stage = f[4 + i]
        for j in range(len(stage)):
            block = stage[j]
            if not isinstance(block, BasicBlockV1):
                raise MXNetError(
                    f'import_torch_state_dict: {type(block).__name__} is not torchvision-compatible: '
                    "MXNet's BottleneckV1 (resnet50_v1 and deeper) puts the stride on the first 1x1 "
                    "conv and gives the 1x1 convs biases, while torchvision's Bottleneck strides in "
                    'the 3x3 conv without biases; only resnet18_v1/resnet34_v1 (BasicBlockV1) convert')
            pre = f'layer{i + 1}.{j}.'
            _conv(m, pre + 'conv1', block.body[0])
            _bn(m, pre + 'bn1', block.body[1])
            _conv(m, pre + 'conv2', block.body[3])
            _bn(m, pre + 'bn2', block.body[4])
            if block.downsample is not None:
                _conv(m, pre + 'downsample.0', block.downsample[0])
                _bn(m, pre + 'downsample.1', block.downsample[1])
    _dense(m, 'fc', net.output)
    return m


def _features_then_classifier(net, linear_indices):
    """VGG / AlexNet: walk our `features`, keeping torchvision's index in its `features`
    Sequential (where ReLU is a module of its own), then map the Dense layers to the
    `classifier.<i>` Linear layers at `linear_indices` (the last one is our `output`)."""
    m, t = OrderedDict(), 0
    dense = []
    for k in range(len(net.features)):
        layer = net.features[k]
        if isinstance(layer, nn.Conv2D):
            _conv(m, f'features.{t}', layer)
            t += 2 if layer._activation is not None else 1     # a fused ReLU is its own module there
        elif isinstance(layer, nn.BatchNorm):
            _bn(m, f'features.{t}', layer)
            t += 1
        elif isinstance(layer, (nn.Activation, nn.MaxPool2D)):
            t += 1
        elif isinstance(layer, nn.Dense):
            dense.append(layer)
    dense.append(net.output)
    if len(dense) != len(linear_indices):
        raise MXNetError(f'import_torch_state_dict: expected {len(linear_indices)} Dense layers in '
                         f'{type(net).__name__}, found {len(dense)}')
    for idx, layer in zip(linear_indices, dense):
        _dense(m, f'classifier.{idx}', layer)
    return m


def torch_parameter_map(net):
    """OrderedDict torchvision state_dict key -> our Parameter for a supported network."""
    if isinstance(net, ResNetV1):
        return _resnet_v1_map(net)
    if isinstance(net, VGG):
        return _features_then_classifier(net, (0, 3, 6))
    if isinstance(net, AlexNet):
        return _features_then_classifier(net, (1, 4, 6))
    if isinstance(net, (MobileNet, MobileNetV2)):
        raise MXNetError(f'import_torch_state_dict: {type(net).__name__} has no torchvision-compatible '
                         "layout (torchvision has no MobileNet v1; MXNet's MobileNetV2 has an extra "
                         '1x1 conv in its first bottleneck and a bias-free 1x1-conv classifier)')
    raise MXNetError(f'import_torch_state_dict: no torchvision mapping for {type(net).__name__}; '
                     'supported: ResNetV1 with BasicBlockV1 (resnet18_v1, resnet34_v1), VGG '
                     '(vgg11..vgg19, *_bn) and AlexNet')


def _shape_fits(declared, shape):
    """A deferred shape has zeros where the size is not known yet."""
    return (declared is None or (len(declared) == len(shape)
                                 and all(d in (0, s) for d, s in zip(declared, shape))))


def import_torch_state_dict(net, state_dict, ctx=None):
    """Copy a torchvision-style state_dict (torch tensors or NumPy arrays) into `net`.

    Uninitialized (or deferred) parameters are initialized with the loaded values on `ctx`.
    Raises MXNetError, assigning nothing, for missing or unexpected keys and shape mismatches.
    Returns `net`."""
    mapping = torch_parameter_map(net)
    keys = [k for k in state_dict if not k.endswith(_IGNORED_SUFFIXES)]
    if keys and all(k.startswith('module.') for k in keys):   # saved from nn.DataParallel
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
        keys = [k[len('module.'):] for k in keys]
    missing = [k for k in mapping if k not in state_dict]
    extra = [k for k in keys if k not in mapping]
    problems = []
    if missing:
        problems.append(f'{len(missing)} key(s) missing from the state_dict: {missing[:8]}'
                        + (' ...' if len(missing) > 8 else ''))
    if extra:
        problems.append(f'{len(extra)} unexpected key(s) in the state_dict: {extra[:8]}'
                        + (' ...' if len(extra) > 8 else ''))
    arrays = {}
    for key, param in mapping.items():
        if key not in state_dict:
            continue
        value = _to_numpy(key, state_dict[key])
        if not _shape_fits(param.shape, value.shape):
            problems.append(f'{key} has shape {fmt_shape(value.shape)} but {param.name} expects '
                            f'{fmt_shape(param.shape)}')
        arrays[key] = value
    if problems:
        raise MXNetError(f'import_torch_state_dict into {type(net).__name__}: ' + '; '.join(problems))
    for key, param in mapping.items():
        value = arrays[key]
        if param._data is None:
            param.shape = value.shape
            if param._deferred is None:
                param.initialize(ctx=ctx)
            param._finish_deferred_init()
        param.set_data(value.astype(param.dtype, copy=False))
    return net
