"""The engine's older own graph format (`format: engine-graph`): a traced, shape-specialized IR
graph as JSON plus its parameters and constants. `HybridBlock.export` now writes MXNet's format
(engine/symbol/); this module keeps such older files importable (`SymbolBlock.imports` sees the
format key) and `CachedOp.export` still writes it. Loading validates the file and never
unpickles."""
import json

import numpy as np

from .. import autograd
from ..base import MXNetError
from ..ndarray import NDArray, zeros
from ..ops.registry import REGISTRY
from .ir import Graph

FORMAT, VERSION = 'engine-graph', 1


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(i) for i in v]
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


def _tuples(v):
    return tuple(_tuples(i) for i in v) if isinstance(v, list) else v


def graph_to_dict(graph, param_names):
    """param_names: graph input value id -> parameter name (the other inputs are data)."""
    inputs = [{'id': v.id, 'name': v.name, 'shape': list(v.shape), 'dtype': v.dtype.name,
               'kind': 'param' if v.id in param_names else 'data'} for v in graph.inputs]
    consts = [{'id': v.id, 'shape': list(v.shape), 'dtype': v.dtype.name} for v in graph.constants]
    nodes = [{'op': n.op.name, 'inputs': [v.id for v in n.inputs],
              'attrs': {k: _jsonable(a) for k, a in n.attrs.items()},
              'outputs': [{'id': o.id, 'shape': list(o.shape), 'dtype': o.dtype.name} for o in n.outputs]}
             for n in graph.nodes]
    return {'format': FORMAT, 'version': VERSION, 'inputs': inputs, 'constants': consts,
            'nodes': nodes, 'outputs': [v.id for v in graph.outputs]}


def graph_from_dict(d, where):
    """Rebuild a Graph, checking every reference; raises MXNetError naming what is wrong."""
    def bad(msg):
        raise MXNetError(f'{where}: malformed graph file: {msg}')
    if not isinstance(d, dict) or d.get('format') != FORMAT:
        bad(f"not an exported engine graph (expected format '{FORMAT}')")
    if d.get('version') != VERSION:
        bad(f"unsupported version {d.get('version')!r}")
    g, values = Graph(), {}
    try:
        for i in d['inputs']:
            values[i['id']] = g.add_input(tuple(i['shape']), i['dtype'], i['name'])
        for c in d['constants']:
            v = g.new_value(tuple(c['shape']), c['dtype'], name='const')
            values[c['id']] = v
            g.constants[v] = None     # filled from the parameter file
        for k, n in enumerate(d['nodes']):
            op = REGISTRY.get(n['op'])
            if op is None:
                bad(f"node {k}: unknown op {n['op']!r}")
            missing = [i for i in n['inputs'] if i not in values]
            if missing:
                bad(f"node {k} ({n['op']}): undefined input values {missing}")
            attrs = {key: _tuples(a) for key, a in n['attrs'].items()}
            ins = [values[i] for i in n['inputs']]
            shapes, dtypes = op.infer([v.shape for v in ins], [v.dtype for v in ins], **attrs)
            node = g.add_node(op, ins, attrs, shapes, dtypes)
            if len(node.outputs) != len(n['outputs']):
                bad(f"node {k} ({n['op']}): {len(n['outputs'])} outputs listed, the op has {len(node.outputs)}")
            for v, o in zip(node.outputs, n['outputs']):
                if tuple(o['shape']) != v.shape:
                    bad(f"node {k} ({n['op']}): output shape {o['shape']} disagrees with the shape rule {v.shape}")
                values[o['id']] = v
        g.outputs = [values[i] for i in d['outputs']]
    except MXNetError as e:
        if 'malformed' in str(e):
            raise
        bad(str(e))
    except (KeyError, TypeError, ValueError) as e:
        bad(f'{type(e).__name__}: {e}')
    return g, d


def export_graph(compiled, block, path, epoch):
    """Write path-symbol.json and path-%04d.params for the block's predict-mode graph."""
    from ..serialization import atomic_write, save_arrays
    if compiled is None:
        raise MXNetError('export: run the hybridized block once first')
    shapes = [(v.shape, v.dtype) for v in compiled.graph.inputs[:len(compiled.graph.inputs) - len(compiled.params)]]
    with autograd.predict_mode():
        c = block._cached_op._trace([zeros(s, dtype=d) for s, d in shapes])
    names = {c.tracer.params[p]._value.id: p.name for p in c.params}
    d = graph_to_dict(c.graph, names)
    arrays = {f'arg:{p.name}': p.data() for p in c.params}
    for v, a in c.graph.constants.items():
        arrays[f'const:{v.id}'] = NDArray(np.asarray(a))
    sym_file, param_file = f'{path}-symbol.json', f'{path}-{epoch:04d}.params'
    text = json.dumps(d, indent=1)
    atomic_write(sym_file, lambda f: f.write(text.encode()))
    save_arrays(param_file, arrays)
    return sym_file, param_file
