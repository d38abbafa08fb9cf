"""Elementwise fusion on a GPU: the groups `fusion.find_groups` forms (device independent) are
rendered from the ops' scalar rules (engine/ops/expr.py) into one CUDA C kernel each, compiled by
CuPy (`cupy.RawKernel`, NVRTC, cached on disk by CuPy) on the first launch.

A rendered kernel is a grid-stride loop over the flat arrays: each thread loads element i of
every input, evaluates the group's expressions in order into typed temporaries and stores the
values that leave the group. Element i is read before element i is written by the same thread,
so an output may share its buffer with an input (the memory planner relies on this): pointers
are therefore not `__restrict__`.

`render_cuda` needs neither CuPy nor a GPU (tests compile its output with nvcc)."""
import hashlib

import numpy as np

from ..base import MXNetError, fmt_shape
from ..ops import expr as E
from .fusion import FusedOp
from .ir import Node

# numpy dtype -> C type of the loads, stores and temporaries. float16 has no C arithmetic type
# without cuda_fp16.h (not reliably on NVRTC's include path): groups touching it stay unfused.
C_TYPES = {
    np.dtype(np.float32): 'float', np.dtype(np.float64): 'double',
    np.dtype(np.int8): 'signed char', np.dtype(np.uint8): 'unsigned char',
    np.dtype(np.int32): 'int', np.dtype(np.int64): 'long long', np.dtype(np.bool_): 'bool',
}

BLOCK = 256            # threads per block
BLOCKS_PER_SM = 8      # enough resident blocks to hide memory latency; more only adds scheduling

def group_io(nodes, graph_outputs, readers):
    """(inputs, outputs) of a group: values it reads from outside, in first-use order, and values
    it defines that a graph output or a node outside the group reads."""
    inside = {n.outputs[0].id for n in nodes}
    members = {id(n) for n in nodes}
    ins, seen = [], set()
    for n in nodes:
        for v in n.inputs:
            if v.id not in inside and v.id not in seen:
                seen.add(v.id)
                ins.append(v)
    outs = [n.outputs[0] for n in nodes
            if n.outputs[0].id in graph_outputs
            or any(id(r) not in members for r in readers.get(n.outputs[0].id, []))]
    return ins, outs


def supported(nodes):
    """Whether every value of the group has a C type and every op a scalar rule."""
    values = [v for n in nodes for v in list(n.inputs) + list(n.outputs)]
    return all(v.dtype in C_TYPES for v in values) and all(n.op.template is not None for n in nodes)


def node_expression(node, local_names):
    """The node's rule in CUDA C, computed in the node's output type, over `local_names`.
    Operands of another dtype that convert exactly are converted to the output dtype first: that
    is NumPy's promotion (a binary op's output dtype is its inputs' result type), and mixed
    argument types would send fmaxf/powf/... to other overloads. Others (where's float64
    condition in a float32 where, cast's input) keep their type: converting them could change
    their value."""
    out = node.outputs[0].dtype
    ctype = C_TYPES[out]
    operands = [f'(({ctype}){name})' if v.dtype != out and np.can_cast(v.dtype, out, 'safe') else name
                for v, name in zip(node.inputs, local_names)]
    return E.cuda_source(node.op.template, operands, node.attrs, ctype)


def kernel_name(text):
    """A name unique to the kernel's parameters and body (kernels are cached by name)."""
    return 'fused_' + hashlib.sha1(text.encode()).hexdigest()[:16]


def render_cuda(nodes, graph_outputs, readers):
    """CUDA C source of one fused kernel. Returns (source, kernel name, input values, output
    values); the kernel's parameters are the inputs, then the outputs, then the element count."""
    ins, outs = group_io(nodes, graph_outputs, readers)
    names = {v.id: f'a{i}' for i, v in enumerate(ins)}
    body = []
    for k, n in enumerate(nodes):
        expr = node_expression(n, [names[v.id] for v in n.inputs])
        body.append(f'const {C_TYPES[n.outputs[0].dtype]} t{k} = {expr};')
        names[n.outputs[0].id] = f't{k}'
    # load only what some rule reads (full_like reads its input's shape, not its values)
    used = {n.inputs[i].id for n in nodes for i in E.reads(n.op.template)}
    lines = [f'const {C_TYPES[v.dtype]} a{i} = x{i}[i];' for i, v in enumerate(ins) if v.id in used]
    lines += body + [f'y{j}[i] = {names[v.id]};' for j, v in enumerate(outs)]
    params = ([f'const {C_TYPES[v.dtype]}* x{i}' for i, v in enumerate(ins)]
              + [f'{C_TYPES[v.dtype]}* y{j}' for j, v in enumerate(outs)] + ['const long long n'])
    text = ''.join(f'        {line}\n' for line in lines)
    name = kernel_name(', '.join(params) + text)
    src = (f'extern "C" __global__ void {name}({", ".join(params)})\n'
           '{\n'
           '    const long long stride = (long long)blockDim.x * gridDim.x;\n'
           '    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {\n'
           f'{text}'
           '    }\n'
           '}\n')
    return src, name, ins, outs


# ---- launching (needs CuPy and a GPU) ------------------------------------------------------

_compiled = {}     # kernel name -> cupy.RawKernel (NVRTC output is also cached on disk by CuPy)
_sm_counts = {}    # device id -> multiprocessor count


def _raw_kernel(source, name):
    k = _compiled.get(name)
    if k is None:
        import cupy
        k = _compiled[name] = cupy.RawKernel(source, name)
    return k


def _grid(cupy, size):
    dev = cupy.cuda.Device()
    sms = _sm_counts.get(dev.id)
    if sms is None:
        sms = _sm_counts[dev.id] = dev.attributes['MultiProcessorCount']
    return min(-(-size // BLOCK), sms * BLOCKS_PER_SM)


def make_cuda_kernel(source, name, label, in_dtypes, out_dtypes, shape):
    """The op kernel `kernel(*arrays, out=None)` launching the rendered source once over flat
    views of its arrays (all of `shape`; outputs fresh or the given contiguous buffers)."""
    size = int(np.prod(shape))

    def kernel(*arrays, out=None):
        import cupy
        for a, d in zip(arrays, in_dtypes):
            if a.dtype != d or a.shape != shape:
                raise MXNetError(f'{label}: compiled for inputs {d} {fmt_shape(shape)}, got '
                                 f'{a.dtype} {fmt_shape(a.shape)}')
        if out is None:
            outs = tuple(cupy.empty(shape, d) for d in out_dtypes)
        else:
            outs = out if isinstance(out, tuple) else (out,)
            if not all(o.flags.c_contiguous for o in outs):
                raise MXNetError(f'{label}: output buffers must be C-contiguous')
        if size:
            flat_in = [cupy.ascontiguousarray(a).reshape(-1) for a in arrays]
            flat_out = [o.reshape(-1) for o in outs]
            _launch(cupy, source, name, label, size, (*flat_in, *flat_out, np.int64(size)))
        return outs if len(outs) > 1 else outs[0]
    return kernel


def _launch(cupy, source, name, label, size, args):
    try:
        _raw_kernel(source, name)((_grid(cupy, size),), (BLOCK,), args)
    except cupy.cuda.compiler.CompileException as e:   # NVRTC rejected the generated source
        raise MXNetError(f'{label}: the generated CUDA kernel does not compile: {e}\n{source}') from None


def cuda_fused_node(nodes, out_ids, readers):
    """The node running `nodes` as one CUDA kernel, or None when the group cannot be rendered
    (then its nodes run one by one with their own GPU kernels)."""
    if not supported(nodes):
        return None
    src, name, ins, outs = render_cuda(nodes, out_ids, readers)
    label = 'fused[' + '+'.join(n.op.name for n in nodes) + ']'
    kernel = make_cuda_kernel(src, name, label, [v.dtype for v in ins], [v.dtype for v in outs],
                              outs[0].shape)
    op = FusedOp(label, None, {'gpu': kernel}, multi_output=len(outs) > 1)
    op.source = src
    return Node(op, ins, {}, outs)
