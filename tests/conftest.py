"""Suite-wide setup, kept minimal: no test leaks autograd recording/training state into the next,
and tests marked `gpu` skip on machines without a CUDA device."""
import sys

import pytest


@pytest.fixture(autouse=True)
def _reset_autograd_state():
    yield
    ag = sys.modules.get('engine.autograd')   # only if the engine was imported (kernel tests do not)
    if ag is not None:
        ag.set_recording(False)
        ag.set_training(False)


def _why_no_gpu():
    """None when a CUDA device is usable through CuPy, else the reason GPU tests are skipped."""
    try:
        import engine
    except Exception as e:   # the CPU tests will report this; GPU tests just skip
        return f'engine does not import: {e}'
    if engine.num_gpus() == 0:
        return 'needs a CUDA GPU and CuPy (engine.num_gpus() == 0 here)'
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip cleanly (one reason, no import errors) on machines without a GPU.
    The probe runs only when such tests were collected."""
    gpu_items = [item for item in items if item.get_closest_marker('gpu') is not None]
    if not gpu_items:
        return
    why = _why_no_gpu()
    if why is not None:
        skip = pytest.mark.skip(reason=why)
        for item in gpu_items:
            item.add_marker(skip)
