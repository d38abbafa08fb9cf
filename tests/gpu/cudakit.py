"""Helpers for the tests of the generated CUDA kernels that need no GPU: tracing the zoo models'
graphs on the CPU, rendering their fused groups, compiling with nvcc, and compiling the same
sources for the host (g++ with a small shim) to run them on NumPy arrays."""
import ctypes
import os
import shutil
import subprocess

import numpy as np

from engine import autograd, nd
from engine.gluon.model_zoo import vision
from engine.graph import cached_op, fusion, fusion_cuda
from engine.graph.epilogue import fuse_epilogues

NVCC = shutil.which('nvcc') or ('/usr/local/bin/nvcc' if os.path.exists('/usr/local/bin/nvcc') else None)
CXX = shutil.which('g++')

# (name, input shape, constructor options): the zoo models named in issue 7, at small inputs
MODELS = [
    ('lenet', (2, 1, 28, 28), {}),
    ('resnet18_v1', (2, 3, 32, 32), {}),
    ('mobilenetv2_0.25', (2, 3, 32, 32), {}),
    ('unet', (1, 3, 16, 16), {'depth': 3, 'base_filters': 4, 'classes': 2}),
]


def model_graphs(name, shape, opts):
    """The inference graph and the training forward and backward graphs of a zoo model, traced
    on the CPU (the IR does not depend on the device). compile_program is intercepted while they
    are built: nothing is compiled or run."""
    graphs = []
    real = cached_op.compile_program
    cached_op.compile_program = lambda graph, label, *args, **kwargs: graphs.append(graph)
    try:
        net = vision.get_model(name, **opts)
        net.initialize()
        x = nd.zeros(shape)
        op = net._cached_op_for([x])
        with autograd.train_mode():
            c = op._get([x])
            need = (False,) + tuple(p.grad_req != 'null' for p in c.params)   # as CachedOp asks
            cached_op._build_training(c, need, pool=None)
        with autograd.predict_mode():
            op._inference_program(op._get([x]))
    finally:
        cached_op.compile_program = real
    return graphs


def fused_groups(graph):
    """(nodes, graph output ids, readers) of every group the lowering would fuse in `graph`."""
    g = fuse_epilogues(graph)
    readers, outs = g.users(), {v.id for v in g.outputs}
    return [(nodes, outs, readers) for nodes in fusion.find_groups(g)]


def nvcc_compile(sources, directory, name):
    """Compile {kernel name: source} as one translation unit for sm_90 with every warning an
    error. Returns (ok, diagnostics)."""
    path = os.path.join(directory, f'{name}.cu')
    with open(path, 'w') as f:
        f.write('\n'.join(sources.values()))
    res = subprocess.run([NVCC, '-arch=sm_90', '-c', '-Werror', 'all-warnings', path,
                          '-o', os.path.join(directory, f'{name}.o')],
                         capture_output=True, text=True, timeout=600)
    diagnostics = (res.stdout + res.stderr).strip()
    return res.returncode == 0 and 'warning' not in diagnostics.lower(), diagnostics


# One "thread" walks the whole grid-stride loop; CUDA's device math overloads are the C++ ones.
HOST_SHIM = r'''
#include <cmath>
#include <cstring>
using namespace std;
#define __global__
struct HostDim { unsigned x; };
static const HostDim blockIdx = {0}, threadIdx = {0}, blockDim = {1}, gridDim = {1};
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, sizeof d); return d; }
'''


def host_library(sources, directory, name):
    """The kernels compiled for the host with HOST_SHIM (IEEE arithmetic: no fast-math, no
    contraction of a*b+c into an FMA, like NumPy); a ctypes library."""
    path = os.path.join(directory, f'{name}.cpp')
    with open(path, 'w') as f:
        f.write(HOST_SHIM + '\n'.join(sources.values()))
    lib = os.path.join(directory, f'{name}.so')
    res = subprocess.run([CXX, '-O1', '-ffp-contract=off', '-shared', '-fPIC', path, '-o', lib],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f'g++ failed on the host build of {path}:\n{res.stderr[:4000]}'
    return ctypes.CDLL(lib)


def run_host(lib, kernel_name, inputs, outputs):
    """Launch a rendered kernel compiled by host_library on contiguous NumPy arrays."""
    fn = getattr(lib, kernel_name)
    arrays = [np.ascontiguousarray(a) for a in inputs] + list(outputs)
    fn.argtypes = [ctypes.c_void_p] * len(arrays) + [ctypes.c_longlong]
    fn.restype = None
    fn(*[a.ctypes.data for a in arrays], ctypes.c_longlong(int(outputs[0].size)))
    return outputs


def render(nodes, outs, readers):
    return fusion_cuda.render_cuda(nodes, outs, readers)


def load_op_cases():
    """tests/ops/test_gradients.py as a module: its CASES and _kernel_calls() (every kernel call
    the gradient cases and _FORWARD_ONLY make), reused so that an op gaining a CPU case is
    checked on the GPU side too."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ops',
                        'test_gradients.py')
    spec = importlib.util.spec_from_file_location('reused_op_gradient_cases', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
