"""`mx.gluon.contrib`: MXNet's contributed Gluon layers (`contrib.nn`) and cells (`contrib.rnn`)."""
from . import nn, rnn  # noqa: F401
