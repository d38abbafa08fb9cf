"""Kernels composed once from either device's primitives (kernels/cpu or kernels/cuda): output
sizes, the im2col + GEMM and transposed convolutions. They work on NumPy and CuPy arrays alike."""
