"""MXNet's `mx.runtime`: which build features this engine has (`Features().is_enabled('CUDA')`)."""
import collections

from .base import MXNetError


class Feature(collections.namedtuple('Feature', ['name', 'enabled'])):
    def __repr__(self):
        return ('✔ ' if self.enabled else '✖ ') + self.name


def _detect():
    """Feature name -> enabled, with MXNet's names for the ones that mean something here."""
    from .context import num_gpus
    gpu = num_gpus() > 0
    return collections.OrderedDict([
        ('CUDA', gpu), ('CUDNN', False), ('NCCL', False), ('TENSORRT', False),
        ('CPU_SSE', True), ('CPU_AVX', 'avx2' in _cpu_flags()),   # the C++ kernels pick their
        #                                                               ISA at run time
        ('OPENMP', True), ('BLAS_OPEN', True), ('LAPACK', True), ('MKLDNN', False),
        ('OPENCV', False), ('DIST_KVSTORE', False), ('INT64_TENSOR_SIZE', True),
        ('SIGNAL_HANDLER', False), ('DEBUG', False),
    ])


def _cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return []


def feature_list():
    return [Feature(k, v) for k, v in _detect().items()]


class Features(collections.OrderedDict):
    """The features as an ordered dict name -> Feature."""

    def __init__(self):
        super().__init__((f.name, f) for f in feature_list())

    def __repr__(self):
        return str(list(self.values()))

    def is_enabled(self, feature_name):
        name = feature_name.upper()
        if name not in self:
            raise MXNetError(f"Feature '{feature_name}' is unknown; known features are: "
                             f"{list(self)}")
        return self[name].enabled
