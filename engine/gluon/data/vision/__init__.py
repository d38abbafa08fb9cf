"""Vision data: datasets read from local files and image transforms (MXNet's gluon.data.vision)."""
from . import transforms  # noqa: F401
from .datasets import MNIST, FashionMNIST, ImageFolderDataset, ImageRecordDataset  # noqa: F401
