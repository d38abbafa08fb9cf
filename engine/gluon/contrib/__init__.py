"""`mx.gluon.contrib`: MXNet's contributed Gluon layers (`contrib.nn`)."""
from . import nn  # noqa: F401
