"""THE op library. Every primitive op is registered once (see registry.py); this package also
holds the public functions that apply them, shared by `engine.nd` and NDArray methods."""
from . import elemwise, index, linalg, nn, reduce, shape  # noqa: F401  (registers the ops)
from . import rnn  # noqa: F401  (the fused recurrent layer op)
from .ctc import CTCLoss, ctc_loss  # noqa: F401
from .compat import *  # noqa: F401,F403  (moveaxis, crop, choose_element_0index, onehot_encode)
from .elemwise import *  # noqa: F401,F403
from .index import getitem, one_hot, pick, slice, slice_axis, take  # noqa: F401
from .linalg import FullyConnected, batch_dot, dot  # noqa: F401
from .optim_updates import *  # noqa: F401,F403  (nd.sgd_update, nd.adam_update, ...)
from .nn import (Activation, BatchNorm, BlockGrad, Convolution, Deconvolution, Dropout,  # noqa: F401
                 Embedding, InstanceNorm, LayerNorm, LeakyReLU, MakeLoss, Pooling, SoftmaxOutput, elu,
                 full_like, gelu, leaky_relu, log_softmax, make_loss, random_normal_like, selu, softmax,
                 softmax_cross_entropy,
                 softmax_cross_entropy_loss, softsign, stop_gradient)
from .reduce import argmax, argmin, max, mean, min, nansum, norm, prod, sum  # noqa: F401
from .sorting import argsort, sort, take_along_axis, topk  # noqa: F401
from .registry import REGISTRY, Op, get_op, register  # noqa: F401
from .shape import (Concat, Flatten, Pad, SliceChannel, SwapAxis, broadcast_like,  # noqa: F401
                    broadcast_to, concat, expand_dims, flatten, flip, pad, repeat, reshape,
                    reshape_like, reverse, split, split_at, squeeze, stack, sum_to, swapaxes, tile,
                    transpose)

# functions also available as NDArray methods (x.sum(axis=1), x.exp(), ...)
METHODS = (
    'sum', 'mean', 'max', 'min', 'prod', 'argmax', 'argmin', 'norm', 'nansum',
    'exp', 'log', 'log1p', 'expm1', 'sqrt', 'rsqrt', 'square', 'reciprocal', 'abs', 'sign',
    'sin', 'cos', 'tan', 'tanh', 'sigmoid', 'relu', 'softplus', 'erf', 'floor', 'ceil', 'round',
    'trunc', 'clip', 'flatten', 'expand_dims', 'squeeze', 'broadcast_to', 'broadcast_like',
    'reshape_like', 'tile', 'repeat', 'flip', 'swapaxes', 'pad', 'split', 'take', 'pick',
    'one_hot', 'slice_axis', 'slice', 'dot', 'maximum', 'minimum', 'softmax', 'log_softmax',
    'topk', 'sort', 'argsort',
)
