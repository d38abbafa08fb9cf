"""CUDA kernels: the GPU twins of ``kernels/cpu`` (same module names, functions, signatures
and return conventions, on CuPy arrays). See README.md in this directory.

Importing this package imports nothing else: CPU-only machines import it (the op registry
refers to ``kernels.cuda.<module>``), and CuPy is imported only when a kernel first runs.
"""
