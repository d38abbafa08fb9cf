"""Kernels composed once from either device's primitives (kernels/cpu or kernels/cuda): output
sizes (shapes.py), the conv plan type (conv_plan.py), the im2col + GEMM and transposed
convolutions (conv_gemm.py). They work on NumPy and CuPy arrays alike."""
