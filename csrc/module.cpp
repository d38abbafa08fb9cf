// The C++ extension kernels.cpu._im2col (pybind11 + OpenMP), NCHW float32/float64:
//   im2col.cpp       im2col / col2im (the column matrix of the GEMM convolution)
//   direct_conv.cpp  register-blocked direct convolution, forward and weight gradient
//   winograd.cpp     Winograd F(4x4, 3x3) forward convolution
//   common.hpp       argument checks, vector types, instruction-set dispatch, the vk tile

#include "common.hpp"

PYBIND11_MODULE(_im2col, m) {
    m.doc() = "im2col / col2im, direct and Winograd convolution for NCHW float32/float64 "
              "arrays (OpenMP)";
    def_im2col(m);
#ifdef DCONV_AVAILABLE
    def_direct_conv(m);
    def_winograd(m);
    m.def("direct_isa", &dconv::best_isa,
          "Best instruction set of the direct kernels on this CPU (0 SSE2, 1 AVX2, 2 AVX-512).");
#endif
}
