"""Suite-wide setup, kept minimal: no test leaks autograd recording/training state into the next."""
import sys

import pytest


@pytest.fixture(autouse=True)
def _reset_autograd_state():
    yield
    ag = sys.modules.get('engine.autograd')   # only if the engine was imported (kernel tests do not)
    if ag is not None:
        ag.set_recording(False)
        ag.set_training(False)
