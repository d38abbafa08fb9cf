"""ONNX import: each ONNX node becomes `mx.sym` calls (the table in `from_onnx.py`), initializers
become parameters, and the result is a SymbolBlock that runs eagerly or hybridized."""
import os

import numpy as np

from ..base import MXNetError


def _load(path):
    from .export import _onnx
    onnx = _onnx()
    if not os.path.isfile(path):
        raise MXNetError(f'import_model: no such file {path!r}')
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as e:      # onnx raises DecodeError, ValidationError, ...: name what failed
        raise MXNetError(f'import_model: {path} is not a valid ONNX model: {type(e).__name__}: {e}') from None
    return onnx, model


def import_to_symbol(path):
    """(outputs Symbol, data input names, {parameter name: NumPy array}) of an ONNX file."""
    from .. import symbol as sym
    from .from_onnx import Static, convert
    onnx, model = _load(path)
    g = model.graph
    shapes = _value_shapes(onnx, model)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    env, params = {}, {}
    for name, arr in inits.items():
        # parameters are what ops read as tensors; shapes, axes, pads stay Python values
        env[name] = Static(arr, name)
    data_names = [i.name for i in g.input if i.name not in inits]
    for name in data_names:
        env[name] = sym.var(name)
    for node in g.node:
        ins = [env[i] if i else None for i in node.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        outs = convert(node.op_type, ins, attrs, node, params, shapes)
        for name, value in zip(node.output, outs if isinstance(outs, (list, tuple)) else [outs]):
            env[name] = value
    heads = [env[o.name] for o in g.output]
    if any(isinstance(h, Static) for h in heads):
        raise MXNetError(f'import_model: an output of {path} is a constant')
    return (heads[0] if len(heads) == 1 else sym.Group(heads)), data_names, params


def _value_shapes(onnx, model):
    """name -> static shape of every tensor ONNX's shape inference can size (weights computed
    in the graph, e.g. a reshaped convolution kernel, need theirs)."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    out = {}
    for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
        dims = v.type.tensor_type.shape.dim
        out[v.name] = tuple(d.dim_value if d.HasField('dim_value') else None for d in dims)
    for t in model.graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


def import_model(model_file, ctx=None):
    """A SymbolBlock running the ONNX model in `model_file` (the ops `export_model` writes)."""
    from .. import symbol as sym
    from ..gluon.symbol_block import SymbolBlock
    from ..ndarray import array
    outputs, data_names, params = import_to_symbol(model_file)
    block = SymbolBlock(outputs, [sym.var(n) for n in data_names])
    block.set_parameters({k: array(v, dtype=v.dtype) for k, v in params.items()}, ctx,
                         where=str(model_file))
    return block


def get_model_metadata(model_file):
    """Input and output names with their shapes and dtypes, as MXNet's function of that name."""
    onnx, model = _load(model_file)
    inits = {t.name for t in model.graph.initializer}

    def desc(v):
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField('dim_value') else d.dim_param for d in t.shape.dim)
        return v.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
    return {'input_tensor_data': [desc(v) for v in model.graph.input if v.name not in inits],
            'output_tensor_data': [desc(v) for v in model.graph.output]}
