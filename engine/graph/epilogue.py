"""Epilogue fusion: an activation that directly follows a convolution runs inside the
convolution's kernel (applied to the GEMM output while it is still in cache), instead of as a
separate pass over memory."""
import copy

from .ir import rebuilt

# producer op -> activation ops its kernel can apply in its epilogue
_EPILOGUES = {'conv2d': {'relu': 'relu'}}


def fuse_epilogues(graph):
    """Rewrite conv2d(act=None) -> relu into conv2d(act='relu') when the pre-activation value is
    read by nothing else. Returns a new graph (ir.rebuilt): graphs share node objects."""
    readers = graph.users()
    outputs = {v.id for v in graph.outputs}
    producer = {o.id: n for n in graph.nodes for o in n.outputs}
    replace, drop = {}, set()
    for n in graph.nodes:
        acts = None
        src = producer.get(n.inputs[0].id) if n.inputs else None
        if src is not None and len(n.inputs) == 1:
            acts = _EPILOGUES.get(src.op.name)
        if not acts or n.op.name not in acts or src.attrs.get('act') is not None:
            continue
        v = n.inputs[0]
        if v.id in outputs or len(readers.get(v.id, [])) != 1 or id(src) in replace:
            continue
        fused = replace[id(src)] = copy.copy(src)
        fused.attrs, fused.outputs = dict(src.attrs, act=acts[n.op.name]), [n.outputs[0]]
        drop.add(id(n))
    return rebuilt(graph, [replace.get(id(n), n) for n in graph.nodes if id(n) not in drop])
