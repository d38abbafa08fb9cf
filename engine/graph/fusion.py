"""Elementwise fusion: a chain of elementwise ops on same-shape arrays becomes one generated
Numba kernel (one pass over memory instead of one per op, no temporaries).

Each elementwise op carries its scalar rule as an expression (engine/ops/expr.py); a fused group
is rendered as a loop over the flat arrays evaluating the rules in order.

Fusion builds a new graph: the graph it is given, and the nodes and values it shares with other
graphs (a training step's forward and backward graphs, the traced graph a user prints), are left
as they were."""
import hashlib
import importlib.util
import os
import sys
import threading

import numba
import numpy as np

from kernels import numba_cache
from kernels.cpu.parallel import LAUNCH_LOCK

from ..ops import expr as E
from ..ops.registry import Op
from .ir import Node, rebuilt

# Below this many elements a parallel loop costs more in thread wake-up (~100 us) than it saves.
PARALLEL_MIN_SIZE = 1 << 18


def cache_dir():
    """Where generated kernels (and Numba's compiled cache beside them) are kept."""
    return os.environ.get('ENGINE_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache', 'engine')


def _fusable(node):
    if node.op.template is None:
        return False
    shape = node.outputs[0].shape
    # float16 stays unfused: Numba has no float16 arithmetic and the CUDA renderer no half type
    return (len(node.outputs) == 1 and node.outputs[0].dtype.kind == 'f'
            and node.outputs[0].dtype != np.float16
            and all(v.shape == shape and v.dtype.kind in 'fiub' and v.dtype != np.float16
                    for v in node.inputs))


def find_groups(graph):
    """Greedy grouping in program order. A node joins (and merges) the groups of its inputs when
    no node outside them that runs before it reads a value of theirs (the fused kernel runs at
    the position of its last node). Single nodes are kept only where a kernel beats NumPy."""
    pos = {id(n): i for i, n in enumerate(graph.nodes)}
    group_of, groups = {}, []
    readers = graph.users()
    for node in graph.nodes:
        if not _fusable(node):
            continue
        shape = node.outputs[0].shape
        found = []
        for v in node.inputs:
            g = group_of.get(v.id)
            if g is not None and g['shape'] == shape and all(g is not f for f in found):
                found.append(g)
        merged = [n for g in found for n in g['nodes']]
        if found and _safe_to_extend(merged, node, pos, readers):
            target = found[0]
            for g in found[1:]:
                target['nodes'].extend(g['nodes'])
                g['nodes'] = []
                for n in target['nodes']:
                    group_of[n.outputs[0].id] = target
            target['nodes'].sort(key=lambda n: pos[id(n)])
            target['nodes'].append(node)
        else:
            target = {'nodes': [node], 'shape': shape}
            groups.append(target)
        group_of[node.outputs[0].id] = target
    return [g['nodes'] for g in groups if len(g['nodes']) > 1 or (g['nodes'] and _worth_alone(g['nodes'][0]))]


# A lone elementwise op gets its own kernel when it is big enough and its NumPy kernel takes more
# than one plain ufunc pass (a rule that calls a function or branches: selu, sigmoid, relu).
# Below this size, or for `x * c`, NumPy's single SIMD pass is as fast as a kernel call.
SINGLE_MIN_SIZE = 1 << 14


def _worth_alone(node):
    return int(np.prod(node.outputs[0].shape)) >= SINGLE_MIN_SIZE and E.branches_or_calls(node.op.template)


def _safe_to_extend(members_list, node, pos, readers):
    members = {id(n) for n in members_list}
    end = pos[id(node)]
    for n in members_list:
        for r in readers.get(n.outputs[0].id, []):
            if id(r) not in members and r is not node and pos[id(r)] < end:
                return False
    # every external input of `node` must not depend on the group (it is computed before node,
    # and if it read the group it was caught above)
    return True


def render(nodes, graph_outputs, readers):
    """Source of one fused kernel. Returns (source, input values, output values)."""
    inside = {n.outputs[0].id for n in nodes}
    members = {id(n) for n in nodes}
    f32 = all(n.outputs[0].dtype == np.float32 for n in nodes)
    ins, names = [], {}
    for n in nodes:
        for v in n.inputs:
            if v.id not in inside and v.id not in names:
                names[v.id] = f'a{len(ins)}'
                ins.append(v)
    body, outs = [], []
    for k, n in enumerate(nodes):
        expr = E.numba_source(n.op.template, [names[v.id] for v in n.inputs], n.attrs, f32)
        t = f't{k}'
        body.append(f'{t} = {expr}')
        names[n.outputs[0].id] = t
        external = n.outputs[0].id in graph_outputs or any(
            id(r) not in members for r in readers.get(n.outputs[0].id, []))
        if external:
            outs.append(n.outputs[0])
    size = int(np.prod(nodes[0].outputs[0].shape))
    parallel = size >= PARALLEL_MIN_SIZE
    loads = [f'{names[v.id]} = x{i}[i]' for i, v in enumerate(ins)]
    stores = [f'y{j}[i] = {names[v.id]}' for j, v in enumerate(outs)]
    lines = loads + body + stores
    args = ', '.join([f'x{i}' for i in range(len(ins))] + [f'y{j}' for j in range(len(outs))])
    loop = 'prange' if parallel else 'range'
    src = (f'@njit(cache=True, parallel={parallel}, fastmath=FAST, error_model="numpy")\n'
           f'def kernel({args}):\n'
           f'    for i in {loop}(y0.shape[0]):\n' + ''.join(f'        {l}\n' for l in lines))
    return src, ins, outs


_HEADER = E.NUMBA_PRELUDE + 'from numba import njit, prange\nfrom kernels.cpu.vecmath import FAST\n\n\n'
_loaded = {}
_compile_lock = threading.Lock()


def compile_numba(src, arg_dtypes=None):
    """Write the kernel into the on-disk cache (named by the hash of its source) and import it,
    so Numba's own cache=True lets a new process reuse the machine code. With `arg_dtypes` (one
    per 1-D argument) it is compiled now, so a broken cache entry shows here, not in a call.

    The cache cannot poison the library: a file whose text is not the source its name hashes is
    rewritten before import (its code never runs); an entry that fails to load is deleted and
    regenerated once; an unwritable cache folder falls back to compiling in memory (one warning)."""
    text = _HEADER + src
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    fn = _loaded.get(digest)
    if fn is None:
        with _compile_lock:       # two threads compiling one graph write and import it once
            fn = _loaded.get(digest)
            if fn is None:
                fn = _loaded[digest] = _load(text, digest, arg_dtypes)
    return fn, digest


def _load(text, digest, arg_dtypes):
    folder = os.path.join(cache_dir(), 'fused')
    if not numba_cache.writable(folder):
        numba_cache.warn_once('fused', f'engine: cannot write generated kernels to {folder} (set '
                               'ENGINE_CACHE_DIR to a writable folder); compiling them in memory')
        return _in_memory(text, digest, arg_dtypes)
    path = os.path.join(folder, f'fused_{digest}.py')
    for attempt in range(2):
        try:
            return _import(text, digest, path, arg_dtypes)
        except Exception as e:   # a damaged file or Numba cache entry: drop it, write it again
            err = e
            _remove_entry(folder, digest)
    # raises if the generated code itself is wrong: then the cache was not to blame
    fn = _in_memory(text, digest, arg_dtypes)
    numba_cache.warn_once(path, f'engine: the cached kernel {path} does not load '
                           f'({type(err).__name__}: {err}); compiled it in memory')
    return fn


def _import(text, digest, path, arg_dtypes):
    if not os.path.exists(path) or _read(path) != text:
        tmp = f'{path}.{os.getpid()}.{threading.get_ident()}.tmp'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f'engine_fused_{digest}', path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # Numba's cache looks the module up by name when loading
    spec.loader.exec_module(mod)
    return _compiled(mod.kernel, arg_dtypes)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _remove_entry(folder, digest):
    names = [os.path.join(folder, f'fused_{digest}.py')]
    pycache = os.path.join(folder, '__pycache__')
    if os.path.isdir(pycache):
        names += [os.path.join(pycache, n) for n in os.listdir(pycache) if n.startswith(f'fused_{digest}.')]
    for name in names:
        try:
            os.remove(name)
        except OSError:
            pass


def _in_memory(text, digest, arg_dtypes):
    namespace = {}
    exec(compile(text.replace('@njit(cache=True,', '@njit(cache=False,'), f'<fused_{digest}>', 'exec'),
         namespace)
    return _compiled(namespace['kernel'], arg_dtypes)


def _compiled(kernel, arg_dtypes):
    if arg_dtypes is not None:
        kernel.compile(tuple(numba.from_dtype(np.dtype(d))[::1] for d in arg_dtypes))
    return kernel


def _make_kernel(numba_fn, out_dtypes, shape, parallel):
    def kernel(*arrays, out=None):
        if out is None:   # inputs have the output's shape (a program may run any batch size)
            outs = tuple(np.empty(arrays[0].shape if arrays else shape, d) for d in out_dtypes)
        else:
            outs = (out,) if isinstance(out, np.ndarray) else out
        flat = [a.reshape(-1) for a in arrays] + [o.reshape(-1) for o in outs]
        if parallel:
            with LAUNCH_LOCK:   # Numba's workqueue layer takes one parallel launch at a time
                numba_fn(*flat)
        else:
            numba_fn(*flat)
        return outs if len(outs) > 1 else outs[0]
    return kernel


class FusedOp(Op):
    """A generated kernel standing for a group of elementwise nodes (source kept for reading)."""
    __slots__ = ('source',)


def _numba_fused_node(nodes, out_ids, readers):
    """The node running `nodes` as one generated Numba kernel."""
    src, ins, outs = render(nodes, out_ids, readers)
    numba_fn, digest = compile_numba(src, [v.dtype for v in ins + outs])
    names = '+'.join(n.op.name for n in nodes)
    kernel = _make_kernel(numba_fn, [o.dtype for o in outs], outs[0].shape, 'parallel=True' in src)
    op = FusedOp(f'fused[{names}]', None, {'cpu': kernel},
                 multi_output=len(outs) > 1)
    op.source = src
    return Node(op, ins, {}, outs)


def _fused_node_maker(device_type):
    """Groups are device independent; only the rendered kernel differs (CUDA: fusion_cuda.py)."""
    if device_type == 'cpu':
        return _numba_fused_node
    from .fusion_cuda import cuda_fused_node
    return cuda_fused_node


def fuse_elementwise(graph, device_type='cpu'):
    """A new graph in which each fusable group is one node applying a generated kernel for
    `device_type` (a backend may leave a group unfused by returning None for it)."""
    readers = graph.users()
    out_ids = {v.id for v in graph.outputs}
    make_node = _fused_node_maker(device_type)
    replaced = {}
    for nodes in find_groups(graph):
        last = nodes[-1]
        if _unread(nodes, out_ids, readers):     # dead code (a graph not yet cleaned): no kernel
            fused = None
        else:
            fused = make_node(nodes, out_ids, readers)
            if fused is None:
                continue
            fused.scope, fused.path, fused.line = last.scope, last.path, last.line
        for n in nodes:
            replaced[id(n)] = fused if n is last else None
    kept = (replaced.get(id(n), n) for n in graph.nodes)
    return rebuilt(graph, [n for n in kept if n is not None])


def _unread(nodes, out_ids, readers):
    """Whether nothing outside the group reads any of its values."""
    members = {id(n) for n in nodes}
    return not any(o.id in out_ids or any(id(r) not in members for r in readers.get(o.id, ()))
                   for n in nodes for o in n.outputs)
