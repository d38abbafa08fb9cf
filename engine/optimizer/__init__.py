"""`mx.optimizer`: optimizers with MXNet 1.x names and update rules, each step one fused kernel."""
from .optimizer import (  # noqa: F401
    NAG, SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp, Updater, create, get_updater, read_states,
    register,
)
from .more import FTML, LAMB, LARS, SGLD, AdaDelta, Adamax, DCASGD, Ftrl, Nadam, Signum, ccSGD  # noqa: F401
