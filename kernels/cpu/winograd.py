"""Winograd F(4x4, 3x3) convolution for 3x3 / stride 1 / dilation 1 / groups 1.

A 4x4 block of outputs of one channel needs a 6x6 block ``d`` of inputs; with the
transforms below (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015, interpolation points 0, +-1, +-2, +-1/2)

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 6x6)

so the 144 multiply-adds per output tile and channel pair become 36, which are 36
independent products over the channels: M[e] = U[e] @ V[e] with U[e] = (G g G^T)[e]
(K x C) and V[e] = (B^T d B)[e] (C x tiles). The price is the transforms and a
rounding error a few times that of the direct sum (measured ~1e-5 of the output
scale in float32, ~1e-15 in float64).

The kernel is C++ (``kernels.cpu._im2col.conv2d_winograd43``, see csrc/winograd.cpp):
per (sample, row of tiles) it transforms the input, runs the 36 products with the
register-blocked "vk" tile of the direct kernels and transforms the result, all in
the L2 cache. A first version that did the transforms in Numba / C++ and the 36
GEMMs with BLAS (np.matmul on (36, K, C) @ (36, C, tiles)) lost to the direct kernel
on every shape tried: for 64 -> 64 channels on 16x56x56 the GEMMs alone took
2.9-3.2 ms (290-320 GFLOP/s), the scalar Numba transforms 22 ms, the vectorized
C++ transforms ~4 ms more, and V and M (36 values per tile and channel) made 2x
the traffic of x and y; handing the cores back and forth between OpenBLAS and
OpenMP threads cost another ~30%. Total 7.5-9.4 ms vs 8.3 ms direct.

Used by :mod:`kernels.cpu.conv` (algorithm ``"winograd"``) for the forward pass
and, with flipped weights, the backward-data pass of stride-1 3x3 convs.
"""
import numpy as np

# Transform matrices (float64; see module docstring).
BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float64)


def applicable(w_shape, stride, dilate, groups):
    """Whether F(4x4, 3x3) applies: 3x3 kernel, stride 1, dilation 1, one group."""
    return (tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilate) == (1, 1) and groups == 1)


def reference_forward(x, w, b, pad):
    """Plain NumPy F(4x4, 3x3) (float64): the same algorithm, slowly, for tests."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    K = w.shape[0]
    OH, OW = H + 2 * pad[0] - 2, W + 2 * pad[1] - 2
    TH, TW = -(-OH // 4), -(-OW // 4)
    xp = np.zeros((N, C, 4 * TH + 2, 4 * TW + 2))
    # rows/cols of x that land in the (over-sized) padded frame
    h1, w1 = min(H, 4 * TH + 2 - pad[0]), min(W, 4 * TW + 2 - pad[1])
    h0, w0 = max(0, -pad[0]), max(0, -pad[1])
    xp[:, :, h0 + pad[0]:h1 + pad[0], w0 + pad[1]:w1 + pad[1]] = x[:, :, h0:h1, w0:w1]
    u = np.einsum('ai,kcij,bj->abkc', G, w, G)
    y = np.zeros((N, K, 4 * TH, 4 * TW))
    for th in range(TH):
        for tw in range(TW):
            d = xp[:, :, 4 * th:4 * th + 6, 4 * tw:4 * tw + 6]
            v = np.einsum('ai,ncij,bj->abnc', BT, d, BT)
            m = np.einsum('abkc,abnc->abnk', u, v)
            y[:, :, 4 * th:4 * th + 4, 4 * tw:4 * tw + 4] = np.einsum('ia,abnk,jb->nkij', AT, m, AT)
    y = y[:, :, :OH, :OW]
    return y + b.reshape(1, -1, 1, 1) if b is not None else y


def conv2d_winograd(ext, x, w, b, pad, relu, y, isa=-1, nthreads=1):
    """y = conv2d(x, w, pad) (+ b, then ReLU if ``relu``) for an applicable conv.

    ``ext`` is the C++ extension module; x, w, y (and b) are C-contiguous arrays of
    one dtype (float32/64); ``pad`` may be negative (the backward-data pass crops)."""
    ext.conv2d_winograd43(x, w, b, pad[0], pad[1], relu, y, isa, nthreads)
    return y
