"""The CUDA kernels compile cleanly, and the wrappers only ask for kernels that exist.

No GPU needed (only nvcc; the tests skip without it). Each kernels/cuda/*.cu is compiled for
both dtypes from exactly the source and options cupy.RawModule gets at run time
(``_runtime.module_source`` / ``compile_options``): ``nvcc --ptx`` with every front-end
warning an error, then ``nvcc -cubin`` of that PTX with every ptxas warning an error. The PTX entry points
are then checked against the kernel names each wrapper module launches.
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kernels.cuda import _runtime as rt

ARCH = "sm_90"  # H100; the kernels use nothing newer than sm_60 (double atomicAdd)
_CUDA_DIR = os.path.dirname(rt.__file__)


def _find_nvcc():
    for cand in (shutil.which("nvcc"),
                 os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


NVCC = _find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (PATH or $CUDA_HOME/bin)")
CASES = [(f, dt) for f in rt.families() for dt in ("float32", "float64")]


def _run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = (res.stdout + res.stderr).strip()
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{out}"
    assert "warning" not in out.lower(), f"{' '.join(cmd)} warned:\n{out}"
    return out


@pytest.fixture(scope="module")
def ptx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cuda_ptx")


def _compile(family, dtype, tmp):
    """PTX text of one family/dtype, compiled as RawModule would get it; also assembled."""
    stem = os.path.join(tmp, f"{family}_{dtype}")
    with open(stem + ".cu", "w") as f:
        f.write(rt.module_source(family))
    _run([NVCC, f"-arch={ARCH}", "--ptx", "-Werror", "all-warnings",
          *rt.compile_options(family, dtype), stem + ".cu", "-o", stem + ".ptx"])
    # assemble the PTX (ptxas through nvcc): register spills to the stack or other
    # back-end warnings fail too
    _run([NVCC, f"-arch={ARCH}", "-cubin", "-Werror", "all-warnings", "-Xptxas",
          "--warning-as-error", stem + ".ptx", "-o", stem + ".cubin"])
    with open(stem + ".ptx") as f:
        return f.read()


def _ptx_entries(ptx):
    return set(re.findall(r"\.entry\s+(\w+)\s*\(", ptx))


def _launched_kernels(family):
    """Kernel names the wrapper module <family>.py launches (string literals; a launch
    with a computed name would escape this check, so it is an error here)."""
    with open(os.path.join(_CUDA_DIR, family + ".py")) as f:
        src = f.read()
    calls = re.findall(r"_k\.launch\w*\(\s*([^,]*),", src)
    names = [re.fullmatch(r'"(\w+)"', c.strip()) for c in calls]
    assert all(names), f"{family}.py launches a kernel by a computed name: {calls}"
    assert f'Family("{family}")' in src, f"{family}.py does not load kernels/cuda/{family}.cu"
    return {m.group(1) for m in names}


@needs_nvcc
@pytest.mark.parametrize("family,dtype", CASES)
def test_compiles_without_warnings(family, dtype, ptx_dir):
    ptx = _compile(family, dtype, str(ptx_dir))
    entries = _ptx_entries(ptx)
    declared = {rt.symbol(n, dtype) for n in rt.signatures(family)}
    assert declared <= entries, f"declared kernels missing from the PTX: {declared - entries}"
    wanted = {rt.symbol(n, dtype) for n in _launched_kernels(family)}
    assert wanted <= entries, f"{family}.py launches kernels not in the PTX: {wanted - entries}"
    for name in rt.big_block_kernels(family):  # __launch_bounds__(1024) reached the PTX
        assert re.search(rf"\.entry\s+{rt.symbol(name, dtype)}\s*\([^)]*\)\s*\.maxntid\s+1024\b",
                         ptx), f"{name}: no .maxntid 1024 in the PTX"


@pytest.mark.parametrize("family", rt.families())
def test_every_family_has_a_wrapper_using_its_kernels(family):
    launched = _launched_kernels(family)
    declared = set(rt.signatures(family))
    assert launched <= declared, f"{family}.py launches undeclared kernels: {launched - declared}"
    assert declared <= launched, f"kernels in {family}.cu no wrapper uses: {declared - launched}"


@pytest.mark.parametrize("family", rt.families())
def test_signatures_follow_the_parameter_rules(family):
    """Scalars are i64 or double, pointers are to T/i64/int/acc_t (signatures() raises
    otherwise), and each source has exactly one common.cuh include (inlined)."""
    sigs = rt.signatures(family)
    assert sigs, f"no KERNEL(...) declarations found in {family}.cu"
    assert not re.search(r'^\s*#\s*include\s+"common.cuh"', rt.module_source(family), re.M)
    for name, params in sigs.items():
        assert params, f"{family}.{name} has no parameters"


def test_parse_param():
    assert rt.parse_param("const T* __restrict__ x") == ("ptr", "T", "x")
    assert rt.parse_param("int *idx") == ("ptr", "int", "idx")
    assert rt.parse_param("i64 n") == ("i64", None, "n")
    assert rt.parse_param("double eps") == ("double", None, "eps")


class _RecordingBackend:
    """Backend stand-in: NumPy arrays, records launches instead of running them."""
    name = "recording"
    block_cap = 1024
    grid_cap = rt.MAX_GRID
    xp = np

    def __init__(self):
        self.calls = []

    def is_array(self, a):
        return isinstance(a, np.ndarray)

    def function(self, family, name, dtype):
        return (family, name, np.dtype(dtype))

    def run(self, fn, grid, block, args):
        self.calls.append((fn, grid, block, args))


@pytest.fixture
def recording():
    be = _RecordingBackend()
    rt.set_backend(be)
    yield be
    rt.set_backend(None)


def test_launch_converts_and_checks_arguments(recording):
    k = rt.Family("misc")
    mask = np.empty(10, np.float32)
    k.launch_1d("dropout_mask", np.float32, 10, mask, 10, 123, 456, 2)
    (fn, grid, block, args), = recording.calls
    assert fn == ("misc", "dropout_mask", np.dtype(np.float32)) and grid == (1, 1, 1)
    assert [type(a) for a in args[1:]] == [np.int64, np.int64, np.int64, np.float64]
    with pytest.raises(ValueError, match=r"misc\.dropout_mask: argument mask has dtype float64"):
        k.launch_1d("dropout_mask", np.float32, 10, np.empty(10), 10, 1, 1, 2.0)
    with pytest.raises(ValueError, match="not C-contiguous"):
        k.launch_1d("dropout_mask", np.float32, 10, np.empty(20, np.float32)[::2], 10, 1, 1, 2.0)
    with pytest.raises(TypeError, match="4 arguments for 5 parameters"):
        k.launch_1d("dropout_mask", np.float32, 10, mask, 10, 1, 1)
    with pytest.raises(TypeError):  # a float where the kernel reads an i64
        k.launch_1d("dropout_mask", np.float32, 10, mask, 10.0, 1, 1, 2.0)
    k.launch_1d("dropout_mask", np.float32, 0, mask, 0, 1, 1, 2.0)  # empty grid: skipped
    assert len(recording.calls) == 1
    with pytest.raises(RuntimeError, match="needs KERNEL_1024"):  # 64 registers not promised
        k.launch("dropout_mask", np.float32, 1, 1024, mask, 10, 1, 1, 2.0)
    db = np.empty(3, np.float32)
    rt.Family("conv").launch("bias_grad", np.float32, 3, 1024, np.empty(6, np.float32), db,
                             2, 3, 1)
    assert recording.calls[-1][2] == 1024


def test_wrappers_raise_clear_errors(recording):
    from kernels.cuda import conv, softmax
    with pytest.raises(ValueError, match=r"conv2d_forward: x has dtype int32 \(shape \(1, 2, 3, 3"):
        conv.conv2d_forward(np.zeros((1, 2, 3, 3), np.int32), np.zeros((1, 2, 1, 1)), None,
                            (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"softmax: out \(shape \(2, 3\)\) must be C-contiguous"):
        softmax.softmax(np.zeros((2, 3)), out=np.zeros((3, 2)).T)


def test_package_import_does_not_import_cupy():
    code = ("import sys, kernels.cuda, kernels.cuda.conv, kernels.cuda.pool, kernels.cuda.norm, "
            "kernels.cuda.softmax, kernels.cuda.misc, kernels.cuda.optim, kernels.cuda.im2col; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    root = os.path.dirname(os.path.dirname(_CUDA_DIR))
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
