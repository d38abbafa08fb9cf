"""ONNX export: trace the model into the engine's graph IR (predict mode, optimized), then write
each IR node as ONNX nodes through the one table in `to_onnx.py`."""
import os

import numpy as np

from .. import autograd
from ..base import MXNetError
from ..graph import passes

DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MXNetError('mx.onnx needs the onnx package: pip install onnx') from None
    return onnx


class Builder:
    """Collects ONNX nodes and initializers while the IR nodes are translated."""

    def __init__(self, onnx, opset, batch_values):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes, self.initializers, self.names = [], [], {}
        self.batch_values = batch_values   # value ids whose axis 0 is the (dynamic) batch
        self._count = 0

    def name(self, value):
        return self.names.setdefault(value.id, f'v{value.id}')

    def fresh(self, hint='t'):
        self._count += 1
        return f'{hint}_{self._count}'

    def const(self, array, hint='c'):
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, value, dtype):
        return self.const(np.asarray(value, dtype=dtype), 'scalar')

    def ints(self, values):
        return self.const(np.asarray(values, dtype=np.int64), 'ints')

    def add(self, op_type, inputs, outputs=None, **attrs):
        outputs = outputs or [self.fresh(op_type.lower())]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(outputs),
                                                name=self.fresh(op_type), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def _trace_block(block, in_shapes, in_types):
    from ..graph.cached_op import CachedOp
    from ..ndarray import zeros
    args = [zeros(tuple(s), dtype=t) for s, t in zip(in_shapes, in_types)]
    with autograd.predict_mode():
        block(*args)                        # deferred parameter shapes, as a user's first call
        c = CachedOp(block)._trace(args)
    n_data = len(args)
    data = c.graph.inputs[:n_data]
    params = {v.id: (p.name, p.data().asnumpy()) for v, p in zip(c.graph.inputs[n_data:], c.params)}
    return c.graph, data, params


def _trace_symbol(sym, params, in_shapes, in_types):
    from ..symbol import executor
    params = {k.split(':', 1)[-1]: (v.asnumpy() if hasattr(v, 'asnumpy') else np.asarray(v))
              for k, v in (params or {}).items()}
    data_names = [n for n in sym.list_inputs() if n not in params]
    if len(data_names) != len(in_shapes):
        raise MXNetError(f'export_model: the symbol has data inputs {data_names}, but '
                         f'{len(in_shapes)} input shapes were given')
    shapes = {n: tuple(s) for n, s in zip(data_names, in_shapes)}
    shapes.update({k: v.shape for k, v in params.items()})
    dtypes = {n: np.dtype(t) for n, t in zip(data_names, in_types)}
    dtypes.update({k: v.dtype for k, v in params.items()})
    tracer, defined, outs = executor.trace(sym, shapes, dtypes)     # (traces in predict mode)
    if any(o is None for o in outs):
        raise MXNetError(f'export_model: the shapes of the symbol\'s outputs could not be inferred '
                         f'from in_shapes={in_shapes} and the parameters')
    graph = tracer.graph
    graph.outputs = [o._value for o in outs]
    graph = passes.optimize(graph)
    by_name = {v.name: v for v in graph.inputs}
    data = [by_name[n] for n in data_names]
    weights = {by_name[n].id: (n, params[n]) for n in params if n in by_name}
    return graph, data, weights


def _load_model_files(sym, params):
    """MXNet's export_model also takes the file names of an exported model."""
    from ..symbol import load as load_symbol
    from ..serialization import load_arrays
    if isinstance(sym, (str, os.PathLike)):
        sym = load_symbol(os.fspath(sym))
    if isinstance(params, (str, os.PathLike)):
        params = load_arrays(os.fspath(params))
    return sym, params


def export_model(sym, params=None, in_shapes=None, in_types=np.float32, onnx_file_path='model.onnx',
                 verbose=False, dynamic=False, dynamic_input_shapes=None, run_shape_inference=False,
                 input_type=None, input_shape=None, opset_version=None):
    """Write `sym` (a HybridBlock, an `mx.sym` Symbol or a symbol file) as an ONNX model.
    params: the Symbol's arg/aux arrays (dict or .params file); a block brings its own.
    dynamic=True makes axis 0 of every input and output a free batch dimension. Returns the path."""
    onnx = _onnx()
    from ..gluon.block import HybridBlock
    in_shapes = in_shapes if in_shapes is not None else input_shape
    in_types = input_type if input_type is not None else in_types
    if in_shapes is None:
        raise MXNetError('export_model: give in_shapes, e.g. [(1, 3, 224, 224)]')
    in_shapes = [in_shapes] if in_shapes and isinstance(in_shapes[0], int) else list(in_shapes)
    in_types = list(in_types) if isinstance(in_types, (list, tuple)) else [in_types] * len(in_shapes)
    in_types = [np.dtype(t) for t in in_types]
    sym, params = _load_model_files(sym, params)
    if isinstance(sym, HybridBlock):
        graph, data, weights = _trace_block(sym, in_shapes, in_types)
    elif getattr(sym, '_is_mx_symbol', False):
        graph, data, weights = _trace_symbol(sym, params, in_shapes, in_types)
    else:
        raise MXNetError(f'export_model: expected a HybridBlock, an mx.sym Symbol or a symbol file, '
                         f'got {type(sym).__name__}')
    model = _to_model(onnx, graph, data, weights, dynamic, opset_version or DEFAULT_OPSET)
    onnx.checker.check_model(model)
    if run_shape_inference:
        model = onnx.shape_inference.infer_shapes(model)
    from ..serialization import atomic_write
    atomic_write(onnx_file_path, lambda f: f.write(model.SerializeToString()))
    if verbose:
        print(onnx.helper.printable_graph(model.graph))
    return onnx_file_path


def _to_model(onnx, graph, data, weights, dynamic, opset):
    from .to_onnx import translate
    dep = passes.depends_on(graph, data)      # the values that carry the batch axis
    b = Builder(onnx, opset, dep if dynamic else set())
    helper = onnx.helper

    def info(name, v, batch_free):
        shape = list(v.shape)
        if batch_free and shape:
            shape[0] = 'batch'
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), shape)

    data_names = ['data'] if len(data) == 1 else [f'data{i}' for i in range(len(data))]
    for v, name in zip(data, data_names):
        b.names[v.id] = name
    for vid, (name, arr) in weights.items():
        b.names[vid] = name
        b.initializers.append(onnx.numpy_helper.from_array(arr, name))
    for v, arr in graph.constants.items():
        b.names[v.id] = b.const(np.asarray(arr), 'const')
    for node in graph.nodes:
        translate(b, node)
    outputs = []
    for k, v in enumerate(graph.outputs):
        name = 'output' if len(graph.outputs) == 1 else f'output{k}'
        b.add('Identity', [b.name(v)], [name])
        outputs.append(info(name, v, dynamic and v.id in dep))
    g = helper.make_graph(b.nodes, 'engine', [info(n, v, dynamic) for v, n in zip(data, data_names)],
                          outputs, b.initializers)
    return helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)],
                             producer_name='engine')
