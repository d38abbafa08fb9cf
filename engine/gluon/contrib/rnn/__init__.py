"""`mx.gluon.contrib.rnn`: MXNet 1.x's contributed recurrent cells."""
from .rnn_cell import LSTMPCell, VariationalDropoutCell  # noqa: F401
