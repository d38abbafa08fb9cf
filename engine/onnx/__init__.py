"""`mx.onnx`: export a model to ONNX from the engine's graph IR, and import ONNX models back as
blocks. Needs the `onnx` package (`pip install engine[onnx]`)."""
from .export import export_model  # noqa: F401
from .importer import get_model_metadata, import_model  # noqa: F401

