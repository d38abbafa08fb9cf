"""CPU kernels: NumPy/BLAS, Numba, and the C++ im2col extension (``_im2col``)."""
