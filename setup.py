"""Builds the one C++ extension, kernels.cpu._im2col; everything else is in pyproject.toml."""
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup


def _openmp_flags():
    # MSVC spells it differently; macOS clang needs libomp, which we do not assume.
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


_omp_compile, _omp_link = _openmp_flags()

ext_modules = [
    Pybind11Extension(
        "kernels.cpu._im2col",
        # one module from several sources; common.hpp is their shared header
        ["csrc/module.cpp", "csrc/im2col.cpp", "csrc/direct_conv.cpp", "csrc/winograd.cpp"],
        depends=["csrc/common.hpp"],
        cxx_std=17,
        # No -march=native: the wheel must run on any x86-64 machine.
        extra_compile_args=(["/O2"] if sys.platform == "win32" else ["-O3"]) + _omp_compile,
        extra_link_args=_omp_link,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
