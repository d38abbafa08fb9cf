"""Neural-network layers (`gluon.nn`)."""
from ..block import Block, HybridBlock  # noqa: F401
from ..symbol_block import SymbolBlock  # noqa: F401  (MXNet exposes it as gluon.nn.SymbolBlock too)
from .activations import ELU, GELU, SELU, Activation, LeakyReLU, PReLU, Swish  # noqa: F401
from .basic_layers import (BatchNorm, Dense, Dropout, Embedding, Flatten, HybridLambda,  # noqa: F401
                           HybridSequential, Identity, InstanceNorm, GroupNorm, Lambda, LayerNorm, Sequential)
from .conv_layers import (AvgPool1D, AvgPool2D, Conv1D, Conv2D, Conv2DTranspose,  # noqa: F401
                          GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                          MaxPool1D, MaxPool2D, ReflectionPad2D)
from .conv3d_layers import (AvgPool3D, Conv3D, Conv3DTranspose, GlobalAvgPool3D,  # noqa: F401
                            GlobalMaxPool3D, MaxPool3D)
