// Shared by the sources of the C++ extension kernels.cpu._im2col (one pybind11
// module, see module.cpp): the argument checks of the Python entry points, and
// for the direct and Winograd convolutions the vector types, the conv
// geometry, the run-time choice of instruction set and the "vk" register tile.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using idx = std::int64_t;

#if defined(__GNUC__)
#define FORCE_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FORCE_INLINE __forceinline
#else
#define FORCE_INLINE inline
#endif

// Each source registers its functions into the module (module.cpp).
void def_im2col(py::module_& m);
void def_direct_conv(py::module_& m);
void def_winograd(py::module_& m);

// ------------------------------------------------ argument checks (all sources)

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
        if (d) s += ", ";
        s += std::to_string(a.shape(d));
    }
    return s + (a.ndim() == 1 ? ",)" : ")");
}

inline void require(bool ok, const std::string& msg) {
    if (!ok) throw py::value_error(msg);
}

inline void check_array(const py::array& a, const char* fn, const char* name,
                 py::ssize_t ndim) {
    require(a.ndim() == ndim, std::string(fn) + ": " + name + " must be " +
                                  std::to_string(ndim) + "-D, got shape " +
                                  shape_str(a));
    require(a.flags() & py::array::c_style,
            std::string(fn) + ": " + name + " must be C-contiguous");
}

inline bool is_f32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }
inline bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

inline void check_dtypes(const py::array& in, const py::array& out, const char* fn) {
    if (!(is_f32(in) || is_f64(in)))
        throw py::type_error(std::string(fn) +
                             ": only float32 and float64 are supported, got " +
                             std::string(py::str(in.dtype())));
    if (!in.dtype().is(out.dtype()))
        throw py::type_error(std::string(fn) + ": out dtype " +
                             std::string(py::str(out.dtype())) +
                             " differs from input dtype " +
                             std::string(py::str(in.dtype())));
    require(out.writeable(), std::string(fn) + ": out is read-only");
}

// The direct and Winograd kernels are written with GCC/Clang vector extensions;
// other compilers (MSVC) build the module without them and kernels/cpu/conv.py
// then uses its Numba loops.
#if defined(__GNUC__)
#define DCONV_AVAILABLE 1
#if !defined(__clang__)
// Vector helpers return vectors by value; they are always inlined into code
// compiled for the matching ISA, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
namespace dconv {

template <typename T, int VB>
struct VecT {
    typedef T type __attribute__((vector_size(VB)));
    static constexpr int L = VB / int(sizeof(T));
};

template <typename V, typename T>
FORCE_INLINE V loadu(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <typename V, typename T>
FORCE_INLINE void storeu(T* p, const V& v) {
    std::memcpy(p, &v, sizeof(V));
}

// ------------------------------------------------------------- geometry

struct Conv {
    idx N, C, H, W, K, G, Cg, Kg, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
};

// ------------------------------------------------------- instruction sets
// Each kernel is a class template K<T, VB, NREG> (vector bytes, vector
// registers) with a static, always-inlined run(); IsaCopies compiles it three
// times through target attributes (AVX-512 with 32 registers, AVX2+FMA and
// baseline SSE2 with 16) and for_isa picks the copy at run time (best_isa, or
// the `isa` argument, for tests). Everything run() calls must be always_inline
// too, so that each copy is compiled for its own instruction set.

#if defined(__GNUC__) && defined(__x86_64__)
#define DC_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define DC_AVX2 __attribute__((target("avx2,fma")))
#define DC_X86 1
#else
#define DC_AVX512
#define DC_AVX2
#define DC_X86 0
#endif

enum Isa { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

inline int best_isa() {
#if DC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
#endif
    return kDefault;
}

inline int lanes_for(int isa, int itemsize) {
    const int vb = isa == kAvx512 ? 64 : isa == kAvx2 ? 32 : 16;
    return vb / itemsize;
}

template <template <typename, int, int> class K, typename T, typename Fn>
struct IsaCopies;
template <template <typename, int, int> class K, typename T, typename... A>
struct IsaCopies<K, T, void (*)(A...)> {
    static DC_AVX512 void avx512(A... a) { K<T, 64, 32>::run(a...); }
    static DC_AVX2 void avx2(A... a) { K<T, 32, 16>::run(a...); }
    static void sse2(A... a) { K<T, 16, 16>::run(a...); }
};

// The copy of kernel K for instruction set `isa`, as a function pointer.
template <template <typename, int, int> class K, typename T>
auto for_isa(int isa) {
    using Copies = IsaCopies<K, T, decltype(&K<T, 16, 16>::run)>;
    return isa == kAvx512 ? &Copies::avx512 : isa == kAvx2 ? &Copies::avx2 : &Copies::sse2;
}

// ------------------------------------------------------------- "vk" tile
// The register tile of the direct conv's "vk" layout (lanes = output
// channels), which the Winograd kernel also runs for its 36 channel products.

// One tile: B pixels (pixel b reads x at xb + b*sw) x KB vectors of channels.
// xb points at tap (c=0, i=0, j=0) of pixel 0; cs/rs are the buffer's plane
// and row strides. Result to tmp[b][KB*L].
template <typename T, int VB, int KB, int B, int S>
FORCE_INLINE void vk_tile(const T* xb, idx sw, idx cs, idx rs, idx dh, idx dw, idx Cg,
                          idx kh, idx kw, idx ilo, idx ihi, const T* wp, T* tmp) {
    typedef typename VecT<T, VB>::type V;
    constexpr int L = VecT<T, VB>::L;
    V acc[B][KB];
    for (int b = 0; b < B; ++b)
        for (int q = 0; q < KB; ++q) acc[b][q] = V{};
    const idx st = S ? S : sw;
    for (idx c = 0; c < Cg; ++c) {
        for (idx i = ilo; i < ihi; ++i) {
            const T* xr = xb + c * cs + i * dh * rs;
            const T* wr = wp + (c * kh + i) * kw * KB * L;
            for (idx j = 0; j < kw; ++j) {
                const T* xj = xr + j * dw;
                V wv[KB];
                for (int q = 0; q < KB; ++q) wv[q] = loadu<V>(wr + q * L);
                wr += KB * L;
                for (int b = 0; b < B; ++b) {
                    const T xv = xj[b * st];
                    for (int q = 0; q < KB; ++q) acc[b][q] += xv * wv[q];
                }
            }
        }
    }
    for (int b = 0; b < B; ++b)
        for (int q = 0; q < KB; ++q) storeu(tmp + b * KB * L + q * L, acc[b][q]);
}

// Runtime B -> compile-time tile (everything inlines into the ISA entry point,
// so each ISA's copy is compiled with its own instruction set).
template <typename T, int VB, int KB, int S, int B>
FORCE_INLINE void vk_tile_b(idx b, const T* xb, idx sw, idx cs, idx rs, idx dh, idx dw, idx Cg,
                            idx kh, idx kw, idx ilo, idx ihi, const T* wp, T* tmp) {
    if constexpr (B >= 1) {
        if (b == B)
            return vk_tile<T, VB, KB, B, S>(xb, sw, cs, rs, dh, dw, Cg, kh, kw, ilo, ihi, wp, tmp);
        vk_tile_b<T, VB, KB, S, B - 1>(b, xb, sw, cs, rs, dh, dw, Cg, kh, kw, ilo, ihi, wp, tmp);
    }
}

template <int NREG, int KB>
constexpr int vk_bmax() {
    // accumulators + weight vectors + one broadcast register
    return (NREG - KB - 1) / KB > 24 ? 24 : (NREG - KB - 1) / KB;
}

}  // namespace dconv

// ------------------------------ argument checks of the direct and Winograd convs

// Shared checks of the direct-convolution entry points; returns the geometry.
inline dconv::Conv direct_geometry(const py::array& x, const py::array& w_or_dw, idx sh, idx sw,
                            idx ph, idx pw, idx dh, idx dw, idx groups, const char* fn) {
    check_array(x, fn, "x", 4);
    check_array(w_or_dw, fn, "weight", 4);
    if (!(is_f32(x) || is_f64(x)))
        throw py::type_error(std::string(fn) + ": only float32 and float64 are supported, got " +
                             std::string(py::str(x.dtype())));
    if (!x.dtype().is(w_or_dw.dtype()))
        throw py::type_error(std::string(fn) + ": weight dtype differs from x dtype");
    require(groups > 0 && x.shape(1) % groups == 0 && w_or_dw.shape(0) % groups == 0 &&
                w_or_dw.shape(1) * groups == x.shape(1),
            std::string(fn) + ": weight " + shape_str(w_or_dw) + " does not fit x " +
                shape_str(x) + " with groups=" + std::to_string(groups));
    const idx kh = w_or_dw.shape(2), kw = w_or_dw.shape(3);
    require(kh > 0 && kw > 0 && sh > 0 && sw > 0 && dh > 0 && dw > 0,
            std::string(fn) + ": kernel, stride and dilate must be positive");
    // Negative padding (cropping) is allowed here: the backward-data pass runs
    // as a convolution with padding dilate*(kernel-1) - pad, which is negative
    // when pad exceeds the dilated kernel. Reads outside x are zeros.
    const idx H = x.shape(2), W = x.shape(3);
    const idx eh = H + 2 * ph - dh * (kh - 1) - 1, ew = W + 2 * pw - dw * (kw - 1) - 1;
    require(eh >= 0 && ew >= 0, std::string(fn) + ": dilated kernel larger than padded input");
    dconv::Conv c{x.shape(0), x.shape(1), H, W, w_or_dw.shape(0), groups, x.shape(1) / groups,
                  w_or_dw.shape(0) / groups, kh, kw, sh, sw, ph, pw, dh, dw, eh / sh + 1,
                  ew / sw + 1};
    return c;
}

inline int check_isa(int isa, const char* fn) {
    const int best = dconv::best_isa();
    if (isa < 0) return best;
    require(isa <= best, std::string(fn) + ": isa " + std::to_string(isa) +
                             " is not supported by this CPU (best: " + std::to_string(best) + ")");
    return isa;
}


// a (N, K, OH, OW) array of the conv's output shape (y, or dy)
inline void check_nkhw(const py::array& a, const dconv::Conv& g, const char* fn, const char* name) {
    require(a.shape(0) == g.N && a.shape(1) == g.K && a.shape(2) == g.OH && a.shape(3) == g.OW,
            std::string(fn) + ": " + name + " has shape " + shape_str(a) + ", expected (" +
                std::to_string(g.N) + ", " + std::to_string(g.K) + ", " + std::to_string(g.OH) +
                ", " + std::to_string(g.OW) + ")");
}

// The data of an optional (K,) bias (nullptr for None); `keep` holds the array
// while the GIL is released.
inline const void* bias_data(const py::object& bias, const py::array& x, const dconv::Conv& g,
                             const char* fn, py::array& keep) {
    if (bias.is_none()) return nullptr;
    keep = py::array::ensure(bias);
    require(keep && keep.ndim() == 1 && keep.shape(0) == g.K &&
                (keep.flags() & py::array::c_style) && keep.dtype().is(x.dtype()),
            std::string(fn) + ": bias must be a contiguous (K,) array of x's dtype");
    return keep.data();
}
#endif  // __GNUC__
