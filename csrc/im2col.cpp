// im2col / col2im and direct convolution kernels for NCHW tensors (float32
// and float64), OpenMP-parallel.
//
// Layout
//   x    : (N, C, H, W), C-contiguous
//   cols : (N, C*kh*kw, OH*OW), C-contiguous; row index = (c*kh + i)*kw + j
//          or, "merged", (C*kh*kw, N*OH*OW): the N per-sample matrices side by
//          side, so that one GEMM covers a whole batch. The layout is chosen by
//          the number of dimensions of the cols array (3 or 2).
//   OH = (H + 2*ph - dh*(kh-1) - 1) / sh + 1   (same for OW with w-parameters)
//
// im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, out) writes every element of out
// (padding positions become 0).
// col2im(cols, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, out) zero-fills out
// (N, C, H, W) itself and then adds every column entry back into the pixel it
// came from, so it is a pure function of cols (the adjoint of im2col).
//
// Both parallelize over the N*C image planes: a plane's rows of cols touch
// only that plane, so threads never write the same memory and need no atomics.
// Small problems run on one thread: waking a sleeping OpenMP thread costs
// tens of microseconds on small VMs, more than copying a few hundred KB.
//
// conv2d_direct / conv2d_direct_bwt: register-blocked direct convolution
// (forward and weight gradient), see the "direct convolution" section below.

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


// ===========================================================================
// Direct convolution
//
// The im2col + GEMM path copies every input value kh*kw times and, with few
// channels or small images, runs BLAS on awkward shapes (inner dimension
// C*kh*kw, outer dimension K = 32). These kernels read x directly and keep a
// tile of outputs in vector registers instead. Two register-blocking schemes:
//
//   "vk" (lanes = output channels): weights packed (G, nkb, R, KBW) with
//        R = Cg*kh*kw and KBW = KB*lanes channels per block (zero-padded). A
//        tile is B output pixels of one row x KBW channels; each step of the
//        R loop loads KB weight vectors and broadcasts B input values: B*KB
//        FMAs for KB+B loads (KB=2, B=14 with 32 vector registers). Any
//        stride, dilation, padding, groups. The tile is stored transposed
//        (pixel-major) into a small buffer and written out per channel.
//   "vw" (lanes = consecutive output pixels of a row, stride 1 along the
//        width): acc[KBk channels][BW vectors]; each step loads BW input
//        vectors and broadcasts KBk weights. Writes output rows directly, so
//        it wins when R is small (few input channels) and the vk tile's
//        transposing store would dominate.
//
// The weight gradient uses the same two layouts, with the accumulators
// holding (taps x channels) and the loop running over output pixels:
//   vk: dy is transposed per work item to pixel-major (pixels, channels);
//       channel blocks of up to 4 vectors (fewer input loads per FMA).
//   vw: dy rows are copied into a zero-padded buffer (whole vectors per row).
// Per-thread partial sums (static schedule: deterministic for a given thread
// count) are reduced at the end.
//
// conv2d_winograd43 (further below) is Winograd F(4x4, 3x3), fused per row of
// output tiles, with the vk tile doing its 36 channel products.
//
// Work items are (sample, block of output rows); each copies the input rows
// it needs into a zero-padded buffer (skipped when there is no padding), so
// the inner loops have no bounds checks. Kernel rows that fall entirely on
// padding rows are skipped (this matters for the backward-data pass, which
// runs as a "full" convolution with flipped weights).
//
// Vectors are GCC/Clang vector extensions; each kernel is compiled three times
// (AVX-512 with 32 registers, AVX2+FMA and baseline SSE2 with 16) via target
// attributes, picked at run time (or forced by the `isa` argument, for tests).
// Everything below the entry points is always_inline so that each copy is
// compiled for its own instruction set. Other compilers (MSVC) build the module
// without these functions; kernels/cpu/conv.py then uses its Numba loops.
// ===========================================================================
#if defined(__GNUC__)
#define DCONV_AVAILABLE 1
#if !defined(__clang__)
// Vector helpers return vectors by value; they are always inlined into code
// compiled for the matching ISA, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
namespace dconv {

using idx = std::int64_t;

#if defined(__GNUC__)
#define DC_INLINE inline __attribute__((always_inline))
#else
#define DC_INLINE inline
#endif

template <typename T, int VB>
struct VecT {
    typedef T type __attribute__((vector_size(VB)));
    static constexpr int L = VB / int(sizeof(T));
};

template <typename V, typename T>
DC_INLINE V loadu(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <typename V, typename T>
DC_INLINE void storeu(T* p, const V& v) {
    std::memcpy(p, &v, sizeof(V));
}

// ------------------------------------------------------------- geometry

struct Conv {
    idx N, C, H, W, K, G, Cg, Kg, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
};

// Zero-padded copy of input rows of sample n for output rows [oh0, oh1):
// buf[c][r][t], c in [0, C), r in [0, nr), t in [0, Wb), holding
// x[n, c, oh0*sh - ph + r, t - pw] (0 outside the image). Wb >= the padded
// width; columns past it are zero too.
template <typename T>
void fill_rows(const T* x, const Conv& g, idx n, idx oh0, idx nr, idx Wb, T* buf) {
    const idx ih0 = oh0 * g.sh - g.ph;
    for (idx c = 0; c < g.C; ++c) {
        const T* xp = x + (n * g.C + c) * g.H * g.W;
        T* bp = buf + c * nr * Wb;
        for (idx r = 0; r < nr; ++r) {
            T* row = bp + r * Wb;
            const idx ih = ih0 + r;
            if (ih < 0 || ih >= g.H) {
                std::fill(row, row + Wb, T(0));
                continue;
            }
            // columns t with 0 <= t - pw < W
            const idx lo = std::min(Wb, std::max<idx>(0, g.pw));
            const idx hi = std::max(lo, std::min(Wb, g.W + g.pw));
            std::fill(row, row + lo, T(0));
            const T* src = xp + ih * g.W + (lo - g.pw);
            std::memcpy(row + lo, src, sizeof(T) * (hi - lo));
            std::fill(row + hi, row + Wb, T(0));
        }
    }
}

// Kernel rows i in [ilo, ihi) of output row oh read input rows inside the
// image; the others read zero padding and are skipped.
inline void tap_rows(const Conv& g, idx oh, idx& ilo, idx& ihi) {
    const idx ih0 = oh * g.sh - g.ph;
    ilo = ih0 >= 0 ? 0 : std::min(g.kh, (-ih0 + g.dh - 1) / g.dh);
    ihi = g.H - ih0 <= 0 ? 0 : std::min(g.kh, (g.H - ih0 + g.dh - 1) / g.dh);
    if (ihi < ilo) ihi = ilo;
}

// ------------------------------------------------------------ vk forward

// One tile: B pixels (pixel b reads x at xb + b*sw) x KB vectors of channels.
// xb points at tap (c=0, i=0, j=0) of pixel 0; cs/rs are the buffer's plane
// and row strides. Result to tmp[b][KB*L].
template <typename T, int VB, int KB, int B, int S>
DC_INLINE void vk_tile(const T* xb, idx sw, idx cs, idx rs, idx dh, idx dw, idx Cg,
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
DC_INLINE void vk_tile_b(idx b, const T* xb, idx sw, idx cs, idx rs, idx dh, idx dw, idx Cg,
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

struct FwdArgs {
    Conv g;
    idx nkb, KB, KBW, R;   // packed weight geometry
    idx RB;                // output rows per work item
    bool relu, has_bias;
};

// Work item (n, row block): all groups and channel blocks of those rows.
template <typename T, int VB, int NREG>
DC_INLINE void vk_fwd_item_impl(const T* x, const T* wp, const T* bias, T* y,
                                const FwdArgs& a, idx item, T* buf, T* tmp) {
    const Conv& g = a.g;
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx n = item / nrb, oh0 = (item % nrb) * a.RB;
    const idx oh1 = std::min(g.OH, oh0 + a.RB);
    const idx nr = (oh1 - 1 - oh0) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const T* xs;
    idx cs, rs;
    const bool nopad = g.ph == 0 && g.pw == 0 && Wp <= g.W;
    if (nopad) {  // read x in place
        xs = x + n * g.C * g.H * g.W + oh0 * g.sh * g.W;
        cs = g.H * g.W;
        rs = g.W;
    } else {
        fill_rows(x, g, n, oh0, nr, Wp, buf);
        xs = buf;
        cs = nr * Wp;
        rs = Wp;
    }
    constexpr int L = VecT<T, VB>::L;
    const idx KB = a.KB;
    const idx KBW = KB * L;
    const int bmax = KB == 1 ? vk_bmax<NREG, 1>() : vk_bmax<NREG, 2>();
    // balanced tiles along the row
    const idx ntile = (g.OW + bmax - 1) / bmax;
    for (idx gi = 0; gi < g.G; ++gi) {
        for (idx kb = 0; kb < a.nkb; ++kb) {
            const T* wk = wp + (gi * a.nkb + kb) * a.R * KBW;
            const idx k0 = gi * g.Kg + kb * KBW;
            const idx kn = std::min(KBW, g.Kg - kb * KBW);
            for (idx oh = oh0; oh < oh1; ++oh) {
                const T* xrow = xs + gi * g.Cg * cs + (oh - oh0) * g.sh * rs;
                idx ilo, ihi;  // taps whose input row is inside the image
                tap_rows(g, oh, ilo, ihi);
                idx ow0 = 0;
                for (idx t = 0; t < ntile; ++t) {
                    const idx B = (g.OW - ow0) / (ntile - t);
                    const T* xt = xrow + ow0 * g.sw;
                    if (KB == 1) {
                        constexpr int BM = vk_bmax<NREG, 1>();
                        if (g.sw == 1) vk_tile_b<T, VB, 1, 1, BM>(B, xt, g.sw, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk, tmp);
                        else if (g.sw == 2) vk_tile_b<T, VB, 1, 2, BM>(B, xt, g.sw, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk, tmp);
                        else vk_tile_b<T, VB, 1, 0, BM>(B, xt, g.sw, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk, tmp);
                    } else {
                        constexpr int BM = vk_bmax<NREG, 2>();
                        if (g.sw == 1) vk_tile_b<T, VB, 2, 1, BM>(B, xt, g.sw, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk, tmp);
                        else if (g.sw == 2) vk_tile_b<T, VB, 2, 2, BM>(B, xt, g.sw, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk, tmp);
                        else vk_tile_b<T, VB, 2, 0, BM>(B, xt, g.sw, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk, tmp);
                    }
                    for (idx kk = 0; kk < kn; ++kk) {
                        const idx k = k0 + kk;
                        T* yr = y + ((n * g.K + k) * g.OH + oh) * g.OW + ow0;
                        const T bk = a.has_bias ? bias[k] : T(0);
                        const T* tp = tmp + kk;
                        if (a.relu) {
                            for (idx b = 0; b < B; ++b) {
                                const T v = tp[b * KBW] + bk;
                                yr[b] = v < T(0) ? T(0) : v;
                            }
                        } else {
                            for (idx b = 0; b < B; ++b) yr[b] = tp[b * KBW] + bk;
                        }
                    }
                    ow0 += B;
                }
            }
        }
    }
}

// ----------------------------------------------------------- vk backward-weight
// Partial dW for the output rows of one work item, accumulated into
// part[(g*R + r) * Kgp + k] (Kgp = nkb*KBW), r = (c*kh + i)*kw + j.

template <typename T, int VB, int KB, int TI, int TJ>
DC_INLINE void vk_bwt_tile(const T* xb, idx sh, idx sw, idx rs, idx dh, idx dw, idx nrows, idx OW,
                           const T* dyt, idx dstride, T* part, idx pstride, idx kw) {
    // xb: buffer at (c, row of tap i0 for output row 0, column of tap j0 for pixel 0)
    // dyt: dy^T rows (pixel-major, dstride elements per pixel), at this channel block
    // part: at row r0 = (c*kh + i0)*kw + j0; tap (ti, tj) is row r0 + ti*kw + tj
    typedef typename VecT<T, VB>::type V;
    constexpr int L = VecT<T, VB>::L;
    V acc[TI][TJ][KB];
    for (int a = 0; a < TI; ++a)
        for (int b = 0; b < TJ; ++b)
            for (int q = 0; q < KB; ++q) acc[a][b][q] = V{};
    for (idx r = 0; r < nrows; ++r) {
        const T* xr[TI];
        for (int a = 0; a < TI; ++a) xr[a] = xb + (r * sh + a * dh) * rs;
        const T* d = dyt + r * OW * dstride;
        for (idx ow = 0; ow < OW; ++ow) {
            V dv[KB];
            for (int q = 0; q < KB; ++q) dv[q] = loadu<V>(d + q * L);
            d += dstride;
            for (int a = 0; a < TI; ++a) {
                for (int b = 0; b < TJ; ++b) {
                    const T xv = xr[a][b * dw];
                    for (int q = 0; q < KB; ++q) acc[a][b][q] += xv * dv[q];
                }
                xr[a] += sw;
            }
        }
    }
    for (int a = 0; a < TI; ++a)
        for (int b = 0; b < TJ; ++b)
            for (int q = 0; q < KB; ++q) {
                T* p = part + (a * kw + b) * pstride + q * L;
                storeu(p, loadu<V>(p) + acc[a][b][q]);
            }
}

constexpr int kMaxTJ = 8;
constexpr int kMaxTI = 8;

template <int NREG, int KB>
constexpr int bwt_acc_max() { return NREG - KB - 2; }

template <typename T, int VB, int KB, int NREG, int TI, int TJ>
DC_INLINE void bwt_tile_tj(idx tj, const T* xb, idx sh, idx sw, idx rs, idx dh, idx dw, idx nrows,
                           idx OW, const T* dyt, idx dstride, T* part, idx pstride, idx kw) {
    if constexpr (TJ >= 1) {
        if constexpr (TI * TJ * KB <= bwt_acc_max<NREG, KB>()) {
            if (tj == TJ)
                return vk_bwt_tile<T, VB, KB, TI, TJ>(xb, sh, sw, rs, dh, dw, nrows, OW, dyt, dstride,
                                                      part, pstride, kw);
        }
        bwt_tile_tj<T, VB, KB, NREG, TI, TJ - 1>(tj, xb, sh, sw, rs, dh, dw, nrows, OW, dyt, dstride,
                                                part, pstride, kw);
    }
}

template <typename T, int VB, int KB, int NREG, int TI>
DC_INLINE void bwt_tile(idx ti, idx tj, const T* xb, idx sh, idx sw, idx rs, idx dh, idx dw,
                        idx nrows, idx OW, const T* dyt, idx dstride, T* part, idx pstride, idx kw) {
    if constexpr (TI >= 1) {
        if (ti == TI)
            return bwt_tile_tj<T, VB, KB, NREG, TI, kMaxTJ>(tj, xb, sh, sw, rs, dh, dw, nrows, OW, dyt,
                                                            dstride, part, pstride, kw);
        bwt_tile<T, VB, KB, NREG, TI - 1>(ti, tj, xb, sh, sw, rs, dh, dw, nrows, OW, dyt, dstride,
                                          part, pstride, kw);
    }
}

struct BwtArgs {
    Conv g;
    idx nkb, KB, KBW, R, RB;
};

template <typename T, int VB, int NREG>
DC_INLINE void vk_bwt_item_impl(const T* x, const T* dy, const BwtArgs& a, idx item, T* buf,
                                T* dyt, T* part) {
    const Conv& g = a.g;
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx n = item / nrb, oh0 = (item % nrb) * a.RB;
    const idx oh1 = std::min(g.OH, oh0 + a.RB);
    const idx nrows = oh1 - oh0;
    const idx nr = (nrows - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const T* xs;
    idx cs, rs;
    if (g.ph == 0 && g.pw == 0 && Wp <= g.W) {
        xs = x + n * g.C * g.H * g.W + oh0 * g.sh * g.W;
        cs = g.H * g.W;
        rs = g.W;
    } else {
        fill_rows(x, g, n, oh0, nr, Wp, buf);
        xs = buf;
        cs = nr * Wp;
        rs = Wp;
    }
    constexpr int L = VecT<T, VB>::L;
    const idx KB = a.KB, KBW = KB * L, Kgp = a.nkb * KBW;
    // dy^T for these rows, all groups: dyt[pixel][G*Kgp], zero-padded channels
    const idx npix = nrows * g.OW;
    const idx dstride = g.G * Kgp;
    for (idx gi = 0; gi < g.G; ++gi) {
        for (idx k = 0; k < Kgp; ++k) {
            T* col = dyt + gi * Kgp + k;
            if (k < g.Kg) {
                const T* src = dy + ((n * g.K + gi * g.Kg + k) * g.OH + oh0) * g.OW;
                for (idx p = 0; p < npix; ++p) col[p * dstride] = src[p];
            } else {
                for (idx p = 0; p < npix; ++p) col[p * dstride] = T(0);
            }
        }
    }
    const int accmax = KB == 1 ? bwt_acc_max<NREG, 1>()
                       : KB == 2 ? bwt_acc_max<NREG, 2>() : bwt_acc_max<NREG, 4>();
    const idx TJ = std::min<idx>(std::min<idx>(g.kw, kMaxTJ), accmax / KB);
    const idx TImax = std::max<idx>(1, std::min<idx>(kMaxTI, accmax / (TJ * KB)));
    for (idx gi = 0; gi < g.G; ++gi) {
        for (idx kb = 0; kb < a.nkb; ++kb) {
            const T* dk = dyt + gi * Kgp + kb * KBW;
            for (idx c = 0; c < g.Cg; ++c) {
                const T* xc = xs + (gi * g.Cg + c) * cs;
                for (idx i0 = 0; i0 < g.kh; i0 += TImax) {
                    const idx TI = std::min(TImax, g.kh - i0);
                    for (idx j0 = 0; j0 < g.kw; j0 += TJ) {
                        const idx tj = std::min(TJ, g.kw - j0);
                        T* p = part + (gi * a.R + (c * g.kh + i0) * g.kw + j0) * Kgp + kb * KBW;
                        const T* xt = xc + i0 * g.dh * rs + j0 * g.dw;
                        if (KB == 1)
                            bwt_tile<T, VB, 1, NREG, kMaxTI>(TI, tj, xt, g.sh, g.sw, rs, g.dh, g.dw, nrows,
                                                             g.OW, dk, dstride, p, Kgp, g.kw);
                        else if (KB == 2)
                            bwt_tile<T, VB, 2, NREG, kMaxTI>(TI, tj, xt, g.sh, g.sw, rs, g.dh, g.dw, nrows,
                                                             g.OW, dk, dstride, p, Kgp, g.kw);
                        else if constexpr (NREG == 32)
                            bwt_tile<T, VB, 4, NREG, kMaxTI>(TI, tj, xt, g.sh, g.sw, rs, g.dh, g.dw, nrows,
                                                             g.OW, dk, dstride, p, Kgp, g.kw);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------ vw kernels
// Lanes = consecutive output pixels of one row (stride 1 along the width).
// Used when there are few input channels (short R) so the vk tile's
// transposing store would dominate.

template <typename T, int VB, int KBk, int BW>
DC_INLINE void vw_fwd_tile(const T* xb, const idx* off, idx cs, idx rs, idx dh, idx dw, idx Cg,
                           idx kh, idx kw, idx ilo, idx ihi, const T* wp, const T* bias, bool relu,
                           T* y, idx ys, idx kn, idx nl) {
    typedef typename VecT<T, VB>::type V;
    constexpr int L = VecT<T, VB>::L;
    V acc[KBk][BW];
    for (int q = 0; q < KBk; ++q) {
        const T bq = (bias && q < kn) ? bias[q] : T(0);
        for (int v = 0; v < BW; ++v) acc[q][v] = V{} + bq;
    }
    for (idx c = 0; c < Cg; ++c) {
        for (idx i = ilo; i < ihi; ++i) {
            const T* xr = xb + c * cs + i * dh * rs;
            const T* wr = wp + (c * kh + i) * kw * KBk;
            for (idx j = 0; j < kw; ++j) {
                const T* xj = xr + j * dw;
                V xv[BW];
                for (int v = 0; v < BW; ++v) xv[v] = loadu<V>(xj + off[v]);
                for (int q = 0; q < KBk; ++q) {
                    const T wv = wr[q];
                    for (int v = 0; v < BW; ++v) acc[q][v] += wv * xv[v];
                }
                wr += KBk;
            }
        }
    }
    for (int q = 0; q < KBk; ++q) {
        if (q >= kn) break;
        T* yq = y + q * ys;
        for (int v = 0; v < BW; ++v) {
            V r = acc[q][v];
            if (relu) r = r < V{} ? V{} : r;
            if (nl == L) {
                storeu(yq + off[v], r);
            } else {
                for (idx l = 0; l < nl; ++l) yq[off[v] + l] = r[l];
            }
        }
    }
}

template <typename T, int VB, int KBk, int BW>
DC_INLINE void vw_fwd_tile_b(idx bw, const T* xb, const idx* off, idx cs, idx rs, idx dh, idx dw,
                             idx Cg, idx kh, idx kw, idx ilo, idx ihi, const T* wp, const T* bias,
                             bool relu, T* y, idx ys, idx kn, idx nl) {
    if constexpr (BW >= 1) {
        if (bw == BW)
            return vw_fwd_tile<T, VB, KBk, BW>(xb, off, cs, rs, dh, dw, Cg, kh, kw, ilo, ihi, wp, bias,
                                               relu, y, ys, kn, nl);
        vw_fwd_tile_b<T, VB, KBk, BW - 1>(bw, xb, off, cs, rs, dh, dw, Cg, kh, kw, ilo, ihi, wp, bias,
                                          relu, y, ys, kn, nl);
    }
}

// channel blocks and vectors per tile: KBk * BW accumulators
template <int NREG>
constexpr int vw_acc() { return NREG == 32 ? 24 : 12; }

inline void vw_fwd_blocking(int nreg, idx OW, idx L, idx Kg, idx& KBk, idx& BWm) {
    const idx A = nreg == 32 ? 24 : 12;
    const idx nvec = OW >= L ? (OW + L - 1) / L : 1;
    BWm = std::min<idx>(nvec, 4);
    // the instantiated channel-block sizes, smallest first
    const idx cand[6] = {A / 12, A / 6, A / 4, A / 3, A / 2, A};
    KBk = 0;
    for (idx c : cand)
        if (c * BWm <= A) {
            KBk = c;
            if (c >= Kg) break;
        }
}

struct VwArgs {
    Conv g;
    idx nkb, KBk, BWm, R, RB, Wb;
    bool relu, has_bias;
};

template <typename T, int VB, int NREG, int KBk>
DC_INLINE void vw_fwd_rows(const T* xs, idx cs, idx rs, const T* wp, const T* bias, T* y,
                           const VwArgs& a, idx n, idx oh0, idx oh1) {
    const Conv& g = a.g;
    constexpr int L = VecT<T, VB>::L;
    const idx nvec = g.OW >= L ? (g.OW + L - 1) / L : 1;
    const idx nl = g.OW >= L ? L : g.OW;
    idx off[64];
    for (idx v = 0; v < nvec; ++v) off[v] = g.OW >= L ? std::min<idx>(v * L, g.OW - L) : 0;
    const idx nch = (nvec + a.BWm - 1) / a.BWm;
    for (idx gi = 0; gi < g.G; ++gi) {
        for (idx kb = 0; kb < a.nkb; ++kb) {
            const T* wk = wp + (gi * a.nkb + kb) * a.R * KBk;
            const idx k0 = gi * g.Kg + kb * KBk;
            const idx kn = std::min<idx>(KBk, g.Kg - kb * KBk);
            for (idx oh = oh0; oh < oh1; ++oh) {
                const T* xrow = xs + gi * g.Cg * cs + (oh - oh0) * g.sh * rs;
                T* yrow = y + ((n * g.K + k0) * g.OH + oh) * g.OW;
                idx ilo, ihi;
                tap_rows(g, oh, ilo, ihi);
                idx v0 = 0;
                for (idx t = 0; t < nch; ++t) {
                    const idx bw = (nvec - v0) / (nch - t);
                    vw_fwd_tile_b<T, VB, KBk, vw_acc<NREG>() / KBk < 4 ? vw_acc<NREG>() / KBk : 4>(
                        bw, xrow, off + v0, cs, rs, g.dh, g.dw, g.Cg, g.kh, g.kw, ilo, ihi, wk,
                        a.has_bias ? bias + k0 : nullptr, a.relu, yrow, g.OH * g.OW, kn, nl);
                    v0 += bw;
                }
            }
        }
    }
}

template <typename T, int VB, int NREG>
DC_INLINE void vw_fwd_item_impl(const T* x, const T* wp, const T* bias, T* y, const VwArgs& a,
                                idx item, T* buf) {
    const Conv& g = a.g;
    constexpr int L = VecT<T, VB>::L;
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx n = item / nrb, oh0 = (item % nrb) * a.RB;
    const idx oh1 = std::min(g.OH, oh0 + a.RB);
    const idx nr = (oh1 - 1 - oh0) * g.sh + (g.kh - 1) * g.dh + 1;
    const T* xs;
    idx cs, rs;
    if (g.ph == 0 && g.pw == 0 && a.Wb <= g.W && g.OW >= L) {
        xs = x + n * g.C * g.H * g.W + oh0 * g.sh * g.W;
        cs = g.H * g.W;
        rs = g.W;
    } else {
        fill_rows(x, g, n, oh0, nr, a.Wb, buf);
        xs = buf;
        cs = nr * a.Wb;
        rs = a.Wb;
    }
    constexpr int A = vw_acc<NREG>();
    switch (a.KBk) {
        case A: vw_fwd_rows<T, VB, NREG, A>(xs, cs, rs, wp, bias, y, a, n, oh0, oh1); break;
        case A / 2: vw_fwd_rows<T, VB, NREG, A / 2>(xs, cs, rs, wp, bias, y, a, n, oh0, oh1); break;
        case A / 3: vw_fwd_rows<T, VB, NREG, A / 3>(xs, cs, rs, wp, bias, y, a, n, oh0, oh1); break;
        case A / 4: vw_fwd_rows<T, VB, NREG, A / 4>(xs, cs, rs, wp, bias, y, a, n, oh0, oh1); break;
        case A / 6: vw_fwd_rows<T, VB, NREG, A / 6>(xs, cs, rs, wp, bias, y, a, n, oh0, oh1); break;
        case A / 12: vw_fwd_rows<T, VB, NREG, A / 12>(xs, cs, rs, wp, bias, y, a, n, oh0, oh1); break;
        default: break;
    }
}

// Backward weight, lanes over output pixels: acc[q][ti][tj] += dy * x, reduced
// over pixels into part[((k*R) + r) * L + lane] (lanes summed at the end).
template <typename T, int VB, int KBk, int TI, int TJ>
DC_INLINE void vw_bwt_tile(const T* xb, idx sh, idx rs, idx dh, idx dw, idx nrows, idx nvec,
                           const T* dyb, idx dys, idx dyrs, T* part, idx pk, idx kw) {
    typedef typename VecT<T, VB>::type V;
    constexpr int L = VecT<T, VB>::L;
    V acc[KBk][TI][TJ];
    for (int q = 0; q < KBk; ++q)
        for (int a = 0; a < TI; ++a)
            for (int b = 0; b < TJ; ++b) acc[q][a][b] = V{};
    for (idx r = 0; r < nrows; ++r) {
        for (idx v = 0; v < nvec; ++v) {
            V d[KBk];
            for (int q = 0; q < KBk; ++q) d[q] = loadu<V>(dyb + q * dys + r * dyrs + v * L);
            for (int a = 0; a < TI; ++a) {
                const T* xr = xb + (r * sh + a * dh) * rs + v * L;
                for (int b = 0; b < TJ; ++b) {
                    const V xv = loadu<V>(xr + b * dw);
                    for (int q = 0; q < KBk; ++q) acc[q][a][b] += d[q] * xv;
                }
            }
        }
    }
    for (int q = 0; q < KBk; ++q)
        for (int a = 0; a < TI; ++a)
            for (int b = 0; b < TJ; ++b) {
                T* p = part + q * pk + (a * kw + b) * L;
                storeu(p, loadu<V>(p) + acc[q][a][b]);
            }
}

template <typename T, int VB, int KBk, int NREG, int TI, int TJ>
DC_INLINE void vw_bwt_tj(idx tj, const T* xb, idx sh, idx rs, idx dh, idx dw, idx nrows, idx nvec,
                         const T* dyb, idx dys, idx dyrs, T* part, idx pk, idx kw) {
    if constexpr (TJ >= 1) {
        if constexpr (TI * TJ * KBk <= vw_acc<NREG>()) {
            if (tj == TJ)
                return vw_bwt_tile<T, VB, KBk, TI, TJ>(xb, sh, rs, dh, dw, nrows, nvec, dyb, dys, dyrs,
                                                       part, pk, kw);
        }
        vw_bwt_tj<T, VB, KBk, NREG, TI, TJ - 1>(tj, xb, sh, rs, dh, dw, nrows, nvec, dyb, dys, dyrs,
                                                part, pk, kw);
    }
}

template <typename T, int VB, int KBk, int NREG, int TI>
DC_INLINE void vw_bwt_t(idx ti, idx tj, const T* xb, idx sh, idx rs, idx dh, idx dw, idx nrows,
                        idx nvec, const T* dyb, idx dys, idx dyrs, T* part, idx pk, idx kw) {
    if constexpr (TI >= 1) {
        if (ti == TI)
            return vw_bwt_tj<T, VB, KBk, NREG, TI, kMaxTJ>(tj, xb, sh, rs, dh, dw, nrows, nvec, dyb,
                                                           dys, dyrs, part, pk, kw);
        vw_bwt_t<T, VB, KBk, NREG, TI - 1>(ti, tj, xb, sh, rs, dh, dw, nrows, nvec, dyb, dys, dyrs,
                                           part, pk, kw);
    }
}

struct VwBwtArgs {
    Conv g;
    idx KBk, R, RB, Wb, nvec;
};

template <typename T, int VB, int NREG>
DC_INLINE void vw_bwt_item_impl(const T* x, const T* dy, const VwBwtArgs& a, idx item, T* buf,
                                T* dyb, T* part) {
    const Conv& g = a.g;
    constexpr int L = VecT<T, VB>::L;
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx n = item / nrb, oh0 = (item % nrb) * a.RB;
    const idx oh1 = std::min(g.OH, oh0 + a.RB);
    const idx nrows = oh1 - oh0;
    const idx nr = (nrows - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    fill_rows(x, g, n, oh0, nr, a.Wb, buf);
    const idx cs = nr * a.Wb, rs = a.Wb;
    // dy rows, zero-padded to nvec*L columns: dyb[k][r][t]
    const idx dyrs = a.nvec * L, dys = nrows * dyrs;
    for (idx k = 0; k < g.K; ++k)
        for (idx r = 0; r < nrows; ++r) {
            const T* src = dy + ((n * g.K + k) * g.OH + oh0 + r) * g.OW;
            T* dst = dyb + k * dys + r * dyrs;
            std::memcpy(dst, src, sizeof(T) * g.OW);
            std::fill(dst + g.OW, dst + dyrs, T(0));
        }
    const int accmax = vw_acc<NREG>();
    const idx KBk = a.KBk;
    const idx TJ = std::min<idx>(std::min<idx>(g.kw, kMaxTJ), accmax / KBk);
    const idx TImax = std::max<idx>(1, std::min<idx>(kMaxTI, accmax / (TJ * KBk)));
    const idx pk = a.R * L;
    for (idx gi = 0; gi < g.G; ++gi)
        for (idx k0 = 0; k0 < g.Kg; k0 += KBk) {
            const idx kq = std::min(KBk, g.Kg - k0);
            for (idx c = 0; c < g.Cg; ++c) {
                const T* xc = buf + (gi * g.Cg + c) * cs;
                for (idx i0 = 0; i0 < g.kh; i0 += TImax) {
                    const idx TI = std::min(TImax, g.kh - i0);
                    for (idx j0 = 0; j0 < g.kw; j0 += TJ) {
                        const idx tj = std::min(TJ, g.kw - j0);
                        const T* xt = xc + i0 * g.dh * rs + j0 * g.dw;
                        const T* dk = dyb + (gi * g.Kg + k0) * dys;
                        T* p = part + ((gi * g.Kg + k0) * a.R + (c * g.kh + i0) * g.kw + j0) * L;
                        if (kq == 2)
                            vw_bwt_t<T, VB, 2, NREG, kMaxTI>(TI, tj, xt, g.sh, rs, g.dh, g.dw, nrows,
                                                             a.nvec, dk, dys, dyrs, p, pk, g.kw);
                        else
                            for (idx q = 0; q < kq; ++q)
                                vw_bwt_t<T, VB, 1, NREG, kMaxTI>(TI, tj, xt, g.sh, rs, g.dh, g.dw,
                                                                 nrows, a.nvec, dk + q * dys, dys,
                                                                 dyrs, p + q * pk, pk, g.kw);
                    }
                }
            }
        }
}

// ----------------------------------------------------- ISA entry points

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

template <typename T>
DC_AVX512 void vk_fwd_item_avx512(const T* x, const T* wp, const T* b, T* y, const FwdArgs& a,
                                  idx item, T* buf, T* tmp) {
    vk_fwd_item_impl<T, 64, 32>(x, wp, b, y, a, item, buf, tmp);
}
template <typename T>
DC_AVX2 void vk_fwd_item_avx2(const T* x, const T* wp, const T* b, T* y, const FwdArgs& a,
                              idx item, T* buf, T* tmp) {
    vk_fwd_item_impl<T, 32, 16>(x, wp, b, y, a, item, buf, tmp);
}
template <typename T>
void vk_fwd_item_default(const T* x, const T* wp, const T* b, T* y, const FwdArgs& a, idx item,
                         T* buf, T* tmp) {
    vk_fwd_item_impl<T, 16, 16>(x, wp, b, y, a, item, buf, tmp);
}

template <typename T>
DC_AVX512 void vk_bwt_item_avx512(const T* x, const T* dy, const BwtArgs& a, idx item, T* buf,
                                  T* dyt, T* part) {
    vk_bwt_item_impl<T, 64, 32>(x, dy, a, item, buf, dyt, part);
}
template <typename T>
DC_AVX2 void vk_bwt_item_avx2(const T* x, const T* dy, const BwtArgs& a, idx item, T* buf,
                              T* dyt, T* part) {
    vk_bwt_item_impl<T, 32, 16>(x, dy, a, item, buf, dyt, part);
}
template <typename T>
void vk_bwt_item_default(const T* x, const T* dy, const BwtArgs& a, idx item, T* buf, T* dyt,
                         T* part) {
    vk_bwt_item_impl<T, 16, 16>(x, dy, a, item, buf, dyt, part);
}


template <typename T>
DC_AVX512 void vw_fwd_item_avx512(const T* x, const T* wp, const T* b, T* y, const VwArgs& a,
                                  idx item, T* buf) {
    vw_fwd_item_impl<T, 64, 32>(x, wp, b, y, a, item, buf);
}
template <typename T>
DC_AVX2 void vw_fwd_item_avx2(const T* x, const T* wp, const T* b, T* y, const VwArgs& a, idx item,
                              T* buf) {
    vw_fwd_item_impl<T, 32, 16>(x, wp, b, y, a, item, buf);
}
template <typename T>
void vw_fwd_item_default(const T* x, const T* wp, const T* b, T* y, const VwArgs& a, idx item,
                         T* buf) {
    vw_fwd_item_impl<T, 16, 16>(x, wp, b, y, a, item, buf);
}
template <typename T>
DC_AVX512 void vw_bwt_item_avx512(const T* x, const T* dy, const VwBwtArgs& a, idx item, T* buf,
                                  T* dyb, T* part) {
    vw_bwt_item_impl<T, 64, 32>(x, dy, a, item, buf, dyb, part);
}
template <typename T>
DC_AVX2 void vw_bwt_item_avx2(const T* x, const T* dy, const VwBwtArgs& a, idx item, T* buf,
                              T* dyb, T* part) {
    vw_bwt_item_impl<T, 32, 16>(x, dy, a, item, buf, dyb, part);
}
template <typename T>
void vw_bwt_item_default(const T* x, const T* dy, const VwBwtArgs& a, idx item, T* buf, T* dyb,
                         T* part) {
    vw_bwt_item_impl<T, 16, 16>(x, dy, a, item, buf, dyb, part);
}

inline int num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Rows per work item: enough items for every thread, few enough that each
// item's padded copy and dy transpose are amortized.
inline idx rows_per_item(const Conv& g, idx min_items) {
    idx rb = g.OH;
    while (rb > 1 && g.N * ((g.OH + rb - 1) / rb) < min_items) rb = (rb + 1) / 2;
    return std::max<idx>(1, rb);
}

// Pack w (K, Cg, kh, kw) into (G, nkb, R, KBW), zero-padded channels.
template <typename T>
std::vector<T> pack_weights(const T* w, const Conv& g, idx nkb, idx KBW, idx R) {
    std::vector<T> wp(static_cast<size_t>(g.G * nkb * R * KBW), T(0));
    for (idx gi = 0; gi < g.G; ++gi)
        for (idx k = 0; k < g.Kg; ++k) {
            const idx kb = k / KBW, kk = k % KBW;
            const T* src = w + (gi * g.Kg + k) * R;
            T* dst = wp.data() + ((gi * nkb + kb) * R) * KBW + kk;
            for (idx r = 0; r < R; ++r) dst[r * KBW] = src[r];
        }
    return wp;
}

template <typename T>
void conv_fwd_vk(const T* x, const T* w, const T* bias, T* y, const Conv& g, bool relu, int isa,
                 int nthreads) {
    const idx L = lanes_for(isa, sizeof(T));
    const idx KB = g.Kg <= L ? 1 : 2;
    const idx KBW = KB * L;
    const idx nkb = (g.Kg + KBW - 1) / KBW;
    const idx R = g.Cg * g.kh * g.kw;
    std::vector<T> wp = pack_weights(w, g, nkb, KBW, R);
    const int nt = std::max(1, nthreads);
    FwdArgs a{g, nkb, KB, KBW, R, rows_per_item(g, 4 * nt), relu, bias != nullptr};
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx items = g.N * nrb;
    const idx nr = (a.RB - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const idx buf_size = g.C * nr * Wp + 64;
    const idx tmp_size = 32 * KBW + 64;
    auto fn = isa == kAvx512 ? &vk_fwd_item_avx512<T> : isa == kAvx2 ? &vk_fwd_item_avx2<T>
                                                                     : &vk_fwd_item_default<T>;
    const T* wpp = wp.data();
#pragma omp parallel num_threads(nt) if (nt > 1 && items > 1)
    {
        std::vector<T> buf(buf_size), tmp(tmp_size);
#pragma omp for schedule(dynamic)
        for (idx it = 0; it < items; ++it) fn(x, wpp, bias, y, a, it, buf.data(), tmp.data());
    }
}

template <typename T>
void conv_bwt_vk(const T* dy, const T* x, T* dw, const Conv& g, int isa, int nthreads) {
    const idx L = lanes_for(isa, sizeof(T));
    // Channel blocks of 4 vectors (32 registers only) halve the input loads per
    // multiply-add when there are >= 4 vectors of channels.
    const idx KB = g.Kg <= L ? 1 : (g.Kg >= 4 * L && isa == kAvx512) ? 4 : 2;
    const idx KBW = KB * L;
    const idx nkb = (g.Kg + KBW - 1) / KBW;
    const idx Kgp = nkb * KBW;
    const idx R = g.Cg * g.kh * g.kw;
    const int nt = std::max(1, nthreads);
    BwtArgs a{g, nkb, KB, KBW, R, 1};
    // rows per item: the dy^T block up to ~256 KiB (fewer partial-sum flushes;
    // c64 8.8 ms vs 9.4 with 64 KiB), but enough items for every thread
    a.RB = std::max<idx>(1, std::min<idx>(rows_per_item(g, 4 * nt),
                                          (65536 / sizeof(T)) / std::max<idx>(1, g.OW * g.G * Kgp)));
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx items = g.N * nrb;
    const idx nr = (a.RB - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const idx buf_size = g.C * nr * Wp + 64;
    const idx dyt_size = a.RB * g.OW * g.G * Kgp + 64;
    const idx part_size = g.G * R * Kgp;
    const int nparts = items > 1 ? nt : 1;
    std::vector<T> parts(static_cast<size_t>(nparts * part_size), T(0));
    auto fn = isa == kAvx512 ? &vk_bwt_item_avx512<T> : isa == kAvx2 ? &vk_bwt_item_avx2<T>
                                                                     : &vk_bwt_item_default<T>;
#pragma omp parallel if (nparts > 1) num_threads(nparts)
    {
        std::vector<T> buf(buf_size), dyt(dyt_size);
        T* part = parts.data() + thread_id() * part_size;
        // static: each thread's partial sum covers the same items every call, so
        // the result is deterministic for a given thread count
#pragma omp for schedule(static)
        for (idx it = 0; it < items; ++it) fn(x, dy, a, it, buf.data(), dyt.data(), part);
    }
    // dw[g*Kg + k][r] = sum over parts of part[(g*R + r)*Kgp + k]
    for (idx gi = 0; gi < g.G; ++gi)
        for (idx k = 0; k < g.Kg; ++k)
            for (idx r = 0; r < R; ++r) {
                T s = 0;
                for (int p = 0; p < nparts; ++p) s += parts[p * part_size + (gi * R + r) * Kgp + k];
                dw[(gi * g.Kg + k) * R + r] = s;
            }
}


template <typename T>
void conv_fwd_vw(const T* x, const T* w, const T* bias, T* y, const Conv& g, bool relu, int isa,
                 int nthreads) {
    const idx L = lanes_for(isa, sizeof(T));
    const int nreg = isa == kAvx512 ? 32 : 16;
    idx KBk, BWm;
    vw_fwd_blocking(nreg, g.OW, L, g.Kg, KBk, BWm);
    const idx nkb = (g.Kg + KBk - 1) / KBk;
    const idx R = g.Cg * g.kh * g.kw;
    std::vector<T> wp = pack_weights(w, g, nkb, KBk, R);
    const int nt = std::max(1, nthreads);
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const idx Wb = std::max<idx>(Wp, L + (g.kw - 1) * g.dw);
    VwArgs a{g, nkb, KBk, BWm, R, rows_per_item(g, 4 * nt), Wb, relu, bias != nullptr};
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx items = g.N * nrb;
    const idx nr = (a.RB - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx buf_size = g.C * nr * Wb + 64;
    auto fn = isa == kAvx512 ? &vw_fwd_item_avx512<T> : isa == kAvx2 ? &vw_fwd_item_avx2<T>
                                                                     : &vw_fwd_item_default<T>;
    const T* wpp = wp.data();
#pragma omp parallel num_threads(nt) if (nt > 1 && items > 1)
    {
        std::vector<T> buf(buf_size);
#pragma omp for schedule(dynamic)
        for (idx it = 0; it < items; ++it) fn(x, wpp, bias, y, a, it, buf.data());
    }
}

template <typename T>
void conv_bwt_vw(const T* dy, const T* x, T* dw, const Conv& g, int isa, int nthreads) {
    const idx L = lanes_for(isa, sizeof(T));
    const idx R = g.Cg * g.kh * g.kw;
    const int nt = std::max(1, nthreads);
    const idx nvec = (g.OW + L - 1) / L;
    const int accmax = isa == kAvx512 ? 24 : 12;
    VwBwtArgs a{g, (g.Kg >= 2 && 2 * std::min<idx>(g.kw, kMaxTJ) <= accmax) ? 2 : 1, R, 1, 0, nvec};
    a.RB = rows_per_item(g, 4 * nt);
    a.Wb = nvec * L + (g.kw - 1) * g.dw;
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx items = g.N * nrb;
    const idx nr = (a.RB - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx buf_size = g.C * nr * a.Wb + 64;
    const idx dyb_size = g.K * a.RB * nvec * L + 64;
    const idx part_size = g.K * R * L;
    const int nparts = items > 1 ? nt : 1;
    std::vector<T> parts(static_cast<size_t>(nparts * part_size), T(0));
    auto fn = isa == kAvx512 ? &vw_bwt_item_avx512<T> : isa == kAvx2 ? &vw_bwt_item_avx2<T>
                                                                     : &vw_bwt_item_default<T>;
#pragma omp parallel if (nparts > 1) num_threads(nparts)
    {
        std::vector<T> buf(buf_size), dyb(dyb_size);
        T* part = parts.data() + thread_id() * part_size;
        // static: each thread's partial sum covers the same items every call, so
        // the result is deterministic for a given thread count
#pragma omp for schedule(static)
        for (idx it = 0; it < items; ++it) fn(x, dy, a, it, buf.data(), dyb.data(), part);
    }
    for (idx k = 0; k < g.K; ++k)
        for (idx r = 0; r < R; ++r) {
            T s = 0;
            for (int p = 0; p < nparts; ++p) {
                const T* q = parts.data() + p * part_size + (k * R + r) * L;
                for (idx l = 0; l < L; ++l) s += q[l];
            }
            dw[k * R + r] = s;
        }
}


// ------------------------------------------------------- Winograd F(4x4, 3x3)
// For 3x3 / stride 1 / dilation 1 / one group (kernels/cpu/winograd.py has the
// math and a NumPy reference). A 4x4 output tile needs a 6x6 input tile d;
// V = B^T d B, M[e] = sum_c U[e][k][c] V[e][c] for the 36 positions e, and the
// output tile is A^T M A: 36 multiply-adds per 16 outputs instead of 144.
//
// Everything is fused per work item (sample n, tile row th), so V and M stay in
// the L2 cache:
//   1. input transform of the TW tiles of the row for every channel into
//      vloc[e][c][t], vectorized over consecutive tiles. The 6 input rows are
//      first staged "phase-split" (stg[r][p][u] = x[row r][4u + p - pw], zero
//      outside x), so tap (r, b) of L consecutive tiles is one contiguous
//      vector stg[r][b % 4][t + b / 4].
//   2. the 36 products, each a "1x1 conv" over the tiles run by the vk tile
//      (lanes over output channels, weights U packed (36, nkb, C, KBW)); the
//      tile leaves M pixel-major, mloc[e][t][k], which is what step 3 wants.
//   3. output transform vectorized over output channels (+ bias, ReLU), written
//      through a small buffer into y's rows, clipped to the output size.
// The weight transform U = G g G^T is done here too (in double), per call.

template <typename T, typename V>
DC_INLINE void bt6(const V* d, int s, V* o, int so) {
    // o = B^T d along one axis (inputs d[0], d[s], ..., outputs o[0], o[so], ...)
    const V d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    o[0] = T(4) * d0 - T(5) * d2 + d4;
    o[so] = d3 + d4 - T(4) * (d1 + d2);
    o[2 * so] = d4 - d3 + T(4) * (d1 - d2);
    o[3 * so] = d4 - d2 + T(2) * (d3 - d1);
    o[4 * so] = d4 - d2 + T(2) * (d1 - d3);
    o[5 * so] = T(4) * d1 - T(5) * d3 + d5;
}

template <typename T, typename V>
DC_INLINE void at6(const V* m, int s, V* o, int so) {
    // o = A^T m along one axis (6 inputs, 4 outputs)
    const V m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
    const V p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
    o[0] = m0 + p12 + p34;
    o[so] = d12 + T(2) * d34;
    o[2 * so] = p12 + T(4) * p34;
    o[3 * so] = d12 + T(8) * d34 + m5;
}

struct WinoArgs {
    idx N, C, H, W, K, ph, pw, OH, OW, TH, TW, TWp, U, nkb, KB, KBW;
    bool relu, has_bias;
};

template <typename T, int VB, int NREG>
DC_INLINE void wino_item_impl(const T* x, const T* up, const T* bias, T* y, const WinoArgs& a,
                              idx item, T* stg, T* vloc, T* mloc, T* obuf) {
    typedef typename VecT<T, VB>::type V;
    constexpr int L = VecT<T, VB>::L;
    const idx n = item / a.TH, th = item % a.TH;
    const idx U = a.U, TW = a.TW, TWp = a.TWp, C = a.C;
    // 1. input transform -> vloc[e][c][t]
    for (idx c = 0; c < C; ++c) {
        const T* xp = x + (n * C + c) * a.H * a.W;
        for (idx r6 = 0; r6 < 6; ++r6) {
            const idx ih = 4 * th - a.ph + r6;
            T* sr = stg + r6 * 4 * U;
            if (ih < 0 || ih >= a.H) {
                std::fill(sr, sr + 4 * U, T(0));
                continue;
            }
            const T* xr = xp + ih * a.W;
            for (idx p4 = 0; p4 < 4; ++p4) {
                T* sp = sr + p4 * U;
                // u with 0 <= 4u + p4 - pw < W
                const idx off = p4 - a.pw;
                idx ulo = off >= 0 ? 0 : (-off + 3) / 4;
                idx uhi = a.W - off <= 0 ? 0 : (a.W - off + 3) / 4;
                ulo = std::min(ulo, U);
                uhi = std::max(ulo, std::min(uhi, U));
                for (idx u = 0; u < ulo; ++u) sp[u] = T(0);
                const T* src = xr + off;
                for (idx u = ulo; u < uhi; ++u) sp[u] = src[4 * u];
                for (idx u = uhi; u < U; ++u) sp[u] = T(0);
            }
        }
        for (idx t0 = 0; t0 < TW; t0 += L) {
            V t[36], o[36];
            for (int b = 0; b < 6; ++b) {
                V d[6];
                for (int r6 = 0; r6 < 6; ++r6)
                    d[r6] = loadu<V>(stg + (r6 * 4 + (b & 3)) * U + t0 + (b >> 2));
                bt6<T>(d, 1, t + b, 6);  // t[r*6 + b] = (B^T d)[r][b]
            }
            for (int r6 = 0; r6 < 6; ++r6) bt6<T>(t + r6 * 6, 1, o + r6 * 6, 1);
            T* dst = vloc + c * TWp + t0;
            for (int e = 0; e < 36; ++e) storeu(dst + e * C * TWp, o[e]);
        }
    }
    const idx KB = a.KB, KBW = a.KBW;
    const int bmax = KB == 1 ? vk_bmax<NREG, 1>() : vk_bmax<NREG, 2>();
    const idx ntile = (TW + bmax - 1) / bmax;
    const idx na = std::min<idx>(4, a.OH - 4 * th);
    for (idx kb = 0; kb < a.nkb; ++kb) {
        // 2. M[e] (tiles x KBW channels) for the 36 positions
        for (idx e = 0; e < 36; ++e) {
            const T* wk = up + ((e * a.nkb + kb) * C) * KBW;
            const T* ve = vloc + e * C * TWp;
            idx t0 = 0;
            for (idx tb = 0; tb < ntile; ++tb) {
                const idx B = (TW - t0) / (ntile - tb);
                T* mt = mloc + (e * TW + t0) * KBW;
                if (KB == 1)
                    vk_tile_b<T, VB, 1, 1, vk_bmax<NREG, 1>()>(B, ve + t0, 1, TWp, 0, 0, 0, C, 1, 1,
                                                               0, 1, wk, mt);
                else
                    vk_tile_b<T, VB, 2, 1, vk_bmax<NREG, 2>()>(B, ve + t0, 1, TWp, 0, 0, 0, C, 1, 1,
                                                               0, 1, wk, mt);
                t0 += B;
            }
        }
        // 3. output transform, vectorized over the channels of the block
        for (idx q = 0; q < KB; ++q) {
            const idx k0 = kb * KBW + q * L;
            if (k0 >= a.K) break;
            const idx kn = std::min<idx>(L, a.K - k0);
            V bv = V{};
            if (a.has_bias)
                for (idx l = 0; l < kn; ++l) bv[l] = bias[k0 + l];
            for (idx t = 0; t < TW; ++t) {
                V mv[36], tt[24], o[16];
                for (int e = 0; e < 36; ++e) mv[e] = loadu<V>(mloc + (e * TW + t) * KBW + q * L);
                for (int b = 0; b < 6; ++b) at6<T>(mv + b, 6, tt + b, 6);  // tt[r*6 + b], r < 4
                for (int r4 = 0; r4 < 4; ++r4) at6<T>(tt + r4 * 6, 1, o + r4 * 4, 1);
                for (int i = 0; i < 16; ++i) {
                    V v = o[i] + bv;
                    if (a.relu) v = v < V{} ? V{} : v;
                    storeu(obuf + i * L, v);
                }
                const idx nb4 = std::min<idx>(4, a.OW - 4 * t);
                for (idx l = 0; l < kn; ++l) {
                    T* yk = y + ((n * a.K + k0 + l) * a.OH + 4 * th) * a.OW + 4 * t;
                    for (idx r4 = 0; r4 < na; ++r4)
                        for (idx c4 = 0; c4 < nb4; ++c4) yk[r4 * a.OW + c4] = obuf[(r4 * 4 + c4) * L + l];
                }
            }
        }
    }
}

template <typename T>
DC_AVX512 void wino_item_avx512(const T* x, const T* up, const T* b, T* y, const WinoArgs& a,
                                idx item, T* stg, T* vloc, T* mloc, T* obuf) {
    wino_item_impl<T, 64, 32>(x, up, b, y, a, item, stg, vloc, mloc, obuf);
}
template <typename T>
DC_AVX2 void wino_item_avx2(const T* x, const T* up, const T* b, T* y, const WinoArgs& a, idx item,
                            T* stg, T* vloc, T* mloc, T* obuf) {
    wino_item_impl<T, 32, 16>(x, up, b, y, a, item, stg, vloc, mloc, obuf);
}
template <typename T>
void wino_item_default(const T* x, const T* up, const T* b, T* y, const WinoArgs& a, idx item,
                       T* stg, T* vloc, T* mloc, T* obuf) {
    wino_item_impl<T, 16, 16>(x, up, b, y, a, item, stg, vloc, mloc, obuf);
}

// U = G g G^T for every (k, c), packed (36, nkb, C, KBW) with zero-padded channels.
template <typename T>
void wino_weights(const T* w, idx K, idx C, idx nkb, idx KBW, T* up, int nthreads) {
    static const double G[6][3] = {{0.25, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                   {0, 0, 1}};
    const int nt = std::max(1, nthreads);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && K * C >= 4096)
    for (idx k = 0; k < K; ++k) {
        const idx kb = k / KBW, kk = k % KBW;
        for (idx c = 0; c < C; ++c) {
            const T* g = w + (k * C + c) * 9;
            double t[3][6];  // g G^T
            for (int i = 0; i < 3; ++i)
                for (int b = 0; b < 6; ++b)
                    t[i][b] = G[b][0] * g[i * 3] + G[b][1] * g[i * 3 + 1] + G[b][2] * g[i * 3 + 2];
            for (int r = 0; r < 6; ++r)
                for (int b = 0; b < 6; ++b) {
                    const double u = G[r][0] * t[0][b] + G[r][1] * t[1][b] + G[r][2] * t[2][b];
                    up[(((r * 6 + b) * nkb + kb) * C + c) * KBW + kk] = T(u);
                }
        }
    }
}

template <typename T>
void conv_winograd43(const T* x, const T* w, const T* bias, T* y, idx N, idx C, idx H, idx W,
                     idx K, idx ph, idx pw, bool relu, int isa, int nthreads) {
    const idx L = lanes_for(isa, sizeof(T));
    WinoArgs a;
    a.N = N; a.C = C; a.H = H; a.W = W; a.K = K; a.ph = ph; a.pw = pw;
    a.OH = H + 2 * ph - 2; a.OW = W + 2 * pw - 2;
    a.TH = (a.OH + 3) / 4; a.TW = (a.OW + 3) / 4;
    a.TWp = ((a.TW + L - 1) / L) * L;
    a.U = a.TWp + 2;
    a.KB = K <= L ? 1 : 2;
    a.KBW = a.KB * L;
    a.nkb = (K + a.KBW - 1) / a.KBW;
    a.relu = relu; a.has_bias = bias != nullptr;
    std::vector<T> up(static_cast<size_t>(36 * a.nkb * C * a.KBW), T(0));
    const int nt = std::max(1, nthreads);
    wino_weights(w, K, C, a.nkb, a.KBW, up.data(), nt);
    auto fn = isa == kAvx512 ? &wino_item_avx512<T> : isa == kAvx2 ? &wino_item_avx2<T>
                                                                   : &wino_item_default<T>;
    const idx items = N * a.TH;
    const T* upp = up.data();
#pragma omp parallel num_threads(nt) if (nt > 1 && items > 1)
    {
        std::vector<T> stg(static_cast<size_t>(24 * a.U + 64)), vloc(static_cast<size_t>(36 * C * a.TWp + 64)),
            mloc(static_cast<size_t>(36 * a.TW * a.KBW + 64)), obuf(static_cast<size_t>(16 * L + 64));
#pragma omp for schedule(dynamic)
        for (idx it = 0; it < items; ++it)
            fn(x, upp, bias, y, a, it, stg.data(), vloc.data(), mloc.data(), obuf.data());
    }
}

}  // namespace dconv
#endif  // __GNUC__

namespace {

struct Geometry {
    idx N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
};

// Output positions o in [lo, hi) read input index o*s - p + k*d inside [0, size).
// Computing this once per kernel offset lets the inner loops run without
// per-element bounds checks.
inline void valid_range(idx size, idx out_size, idx s, idx p, idx koff,
                        idx& lo, idx& hi) {
    idx first = p - koff;  // o*s >= first
    lo = first > 0 ? (first + s - 1) / s : 0;
    idx last = size - 1 + p - koff;  // o*s <= last
    hi = last < 0 ? 0 : std::min(out_size, last / s + 1);
    lo = std::min(lo, out_size);
    if (hi < lo) hi = lo;
}

// Row copies with the stride as a compile-time constant where it is common
// (1, 2), so the compiler vectorizes them. Rows are short (often 7..56
// values), so they are inlined loops rather than memcpy calls.
template <typename T>
FORCE_INLINE void gather_row(T* __restrict dst, const T* __restrict src, idx n, idx s) {
    if (s == 1) {
        for (idx t = 0; t < n; ++t) dst[t] = src[t];
    } else if (s == 2) {
        for (idx t = 0; t < n; ++t) dst[t] = src[2 * t];
    } else {
        for (idx t = 0; t < n; ++t) dst[t] = src[t * s];
    }
}

template <typename T>
FORCE_INLINE void scatter_add_row(T* __restrict dst, const T* __restrict src, idx n,
                                  idx s) {
    if (s == 1) {
        for (idx t = 0; t < n; ++t) dst[t] += src[t];
    } else if (s == 2) {
        for (idx t = 0; t < n; ++t) dst[2 * t] += src[t];
    } else {
        for (idx t = 0; t < n; ++t) dst[t * s] += src[t];
    }
}

// cp points at row 0 of this plane's block of kh*kw rows; rows are rs apart.
template <typename T>
FORCE_INLINE void im2col_plane_impl(const T* xp, T* cp, idx rs, const Geometry& g) {
    const idx L = g.OH * g.OW;
    for (idx i = 0; i < g.kh; ++i) {
        idx oh_lo, oh_hi;
        valid_range(g.H, g.OH, g.sh, g.ph, i * g.dh, oh_lo, oh_hi);
        for (idx j = 0; j < g.kw; ++j) {
            idx ow_lo, ow_hi;
            valid_range(g.W, g.OW, g.sw, g.pw, j * g.dw, ow_lo, ow_hi);
            T* row = cp + (i * g.kw + j) * rs;
            // Taps that touch padding: zero the whole row once (one memset),
            // then overwrite the valid part; cheaper than zeroing the short
            // left/right margins of every output row separately.
            if (oh_lo > 0 || oh_hi < g.OH || ow_lo > 0 || ow_hi < g.OW)
                std::fill(row, row + L, T(0));
            const idx iw0 = ow_lo * g.sw - g.pw + j * g.dw;
            const idx n = ow_hi - ow_lo;
            for (idx oh = oh_lo; oh < oh_hi; ++oh)
                gather_row(row + oh * g.OW + ow_lo,
                           xp + (oh * g.sh - g.ph + i * g.dh) * g.W + iw0, n, g.sw);
        }
    }
}

template <typename T>
FORCE_INLINE void col2im_plane_impl(const T* cp, idx rs, T* xp, const Geometry& g) {
    std::fill(xp, xp + g.H * g.W, T(0));
    for (idx i = 0; i < g.kh; ++i) {
        idx oh_lo, oh_hi;
        valid_range(g.H, g.OH, g.sh, g.ph, i * g.dh, oh_lo, oh_hi);
        for (idx j = 0; j < g.kw; ++j) {
            idx ow_lo, ow_hi;
            valid_range(g.W, g.OW, g.sw, g.pw, j * g.dw, ow_lo, ow_hi);
            const T* row = cp + (i * g.kw + j) * rs;
            const idx iw0 = ow_lo * g.sw - g.pw + j * g.dw;
            const idx n = ow_hi - ow_lo;
            for (idx oh = oh_lo; oh < oh_hi; ++oh)
                scatter_add_row(xp + (oh * g.sh - g.ph + i * g.dh) * g.W + iw0,
                                row + oh * g.OW + ow_lo, n, g.sw);
        }
    }
}

// The wheel must run on any x86-64, so there is no -march=native; instead the
// per-plane loops are compiled several times and the best version for the
// running CPU is picked at load time (GCC/Clang function multi-versioning).
// Strided (stride > 1) gathers and the col2im adds gain most from AVX2/AVX-512.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__APPLE__)
#define IM2COL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define IM2COL_CLONES
#endif

IM2COL_CLONES void im2col_plane(const float* xp, float* cp, idx rs, const Geometry& g) {
    im2col_plane_impl(xp, cp, rs, g);
}
IM2COL_CLONES void im2col_plane(const double* xp, double* cp, idx rs, const Geometry& g) {
    im2col_plane_impl(xp, cp, rs, g);
}
IM2COL_CLONES void col2im_plane(const float* cp, idx rs, float* xp, const Geometry& g) {
    col2im_plane_impl(cp, rs, xp, g);
}
IM2COL_CLONES void col2im_plane(const double* cp, idx rs, double* xp, const Geometry& g) {
    col2im_plane_impl(cp, rs, xp, g);
}

// Pointer to row 0 of plane (n, c)'s kh*kw rows, and the distance between rows.
struct ColsIndex {
    idx kk, L, N, C;
    bool merged;
    idx offset(idx n, idx c) const {
        return merged ? (c * kk * N + n) * L : (n * C + c) * kk * L;
    }
    idx row_stride() const { return merged ? N * L : L; }
};

constexpr idx kParallelMinElems = idx(1) << 18;  // 1 MiB of float32 columns

template <typename T>
void im2col_all(const T* x, T* cols, const Geometry& g, bool merged) {
    const ColsIndex ci{g.kh * g.kw, g.OH * g.OW, g.N, g.C, merged};
    const idx plane_in = g.H * g.W;
    const idx planes = g.N * g.C;
    const bool par = planes * ci.kk * ci.L >= kParallelMinElems;
#pragma omp parallel for schedule(static) if (par)
    for (idx p = 0; p < planes; ++p)
        im2col_plane(x + p * plane_in, cols + ci.offset(p / g.C, p % g.C),
                     ci.row_stride(), g);
}

template <typename T>
void col2im_all(const T* cols, T* x, const Geometry& g, bool merged) {
    const ColsIndex ci{g.kh * g.kw, g.OH * g.OW, g.N, g.C, merged};
    const idx plane_in = g.H * g.W;
    const idx planes = g.N * g.C;
    const bool par = planes * ci.kk * ci.L >= kParallelMinElems;
#pragma omp parallel for schedule(static) if (par)
    for (idx p = 0; p < planes; ++p)
        col2im_plane(cols + ci.offset(p / g.C, p % g.C), ci.row_stride(),
                     x + p * plane_in, g);
}

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
        if (d) s += ", ";
        s += std::to_string(a.shape(d));
    }
    return s + (a.ndim() == 1 ? ",)" : ")");
}

void require(bool ok, const std::string& msg) {
    if (!ok) throw py::value_error(msg);
}

void check_array(const py::array& a, const char* fn, const char* name,
                 py::ssize_t ndim) {
    require(a.ndim() == ndim, std::string(fn) + ": " + name + " must be " +
                                  std::to_string(ndim) + "-D, got shape " +
                                  shape_str(a));
    require(a.flags() & py::array::c_style,
            std::string(fn) + ": " + name + " must be C-contiguous");
}

bool is_f32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }
bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

void check_dtypes(const py::array& in, const py::array& out, const char* fn) {
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

Geometry make_geometry(idx N, idx C, idx H, idx W, idx kh, idx kw, idx sh,
                       idx sw, idx ph, idx pw, idx dh, idx dw, const char* fn) {
    require(kh > 0 && kw > 0 && sh > 0 && sw > 0 && dh > 0 && dw > 0,
            std::string(fn) + ": kernel, stride and dilate must be positive");
    require(ph >= 0 && pw >= 0, std::string(fn) + ": pad must be >= 0");
    Geometry g{N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, 0, 0};
    const idx eh = H + 2 * ph - dh * (kh - 1) - 1;
    const idx ew = W + 2 * pw - dw * (kw - 1) - 1;
    require(eh >= 0 && ew >= 0,
            std::string(fn) + ": dilated kernel larger than padded input");
    g.OH = eh / sh + 1;
    g.OW = ew / sw + 1;
    return g;
}

// Checks that cols (3-D per-sample or 2-D merged) matches the geometry;
// returns whether it is merged.
bool check_cols(const py::array& cols, const Geometry& g, const char* fn,
                const char* name) {
    const idx rows = g.C * g.kh * g.kw, L = g.OH * g.OW;
    require(cols.flags() & py::array::c_style,
            std::string(fn) + ": " + name + " must be C-contiguous");
    const bool merged = cols.ndim() == 2;
    const bool ok = merged ? (cols.shape(0) == rows && cols.shape(1) == g.N * L)
                           : (cols.ndim() == 3 && cols.shape(0) == g.N &&
                              cols.shape(1) == rows && cols.shape(2) == L);
    require(ok, std::string(fn) + ": " + name + " has shape " + shape_str(cols) +
                    ", expected (" + std::to_string(g.N) + ", " +
                    std::to_string(rows) + ", " + std::to_string(L) + ") or (" +
                    std::to_string(rows) + ", " + std::to_string(g.N * L) + ")");
    return merged;
}

void im2col(py::array x, idx kh, idx kw, idx sh, idx sw, idx ph, idx pw,
            idx dh, idx dw, py::array out) {
    check_array(x, "im2col", "x", 4);
    check_dtypes(x, out, "im2col");
    Geometry g = make_geometry(x.shape(0), x.shape(1), x.shape(2), x.shape(3),
                               kh, kw, sh, sw, ph, pw, dh, dw, "im2col");
    const bool merged = check_cols(out, g, "im2col", "out");
    const void* src = x.data();
    void* dst = out.mutable_data();
    const bool f32 = is_f32(x);
    py::gil_scoped_release nogil;
    if (f32)
        im2col_all(static_cast<const float*>(src), static_cast<float*>(dst), g, merged);
    else
        im2col_all(static_cast<const double*>(src), static_cast<double*>(dst), g, merged);
}

void col2im(py::array cols, idx C, idx H, idx W, idx kh, idx kw, idx sh,
            idx sw, idx ph, idx pw, idx dh, idx dw, py::array out) {
    check_array(out, "col2im", "out", 4);
    check_dtypes(cols, out, "col2im");
    require(out.shape(1) == C && out.shape(2) == H && out.shape(3) == W,
            "col2im: out has shape " + shape_str(out) + ", expected (N, " +
                std::to_string(C) + ", " + std::to_string(H) + ", " +
                std::to_string(W) + ")");
    Geometry g = make_geometry(out.shape(0), C, H, W, kh, kw, sh, sw, ph, pw,
                               dh, dw, "col2im");
    const bool merged = check_cols(cols, g, "col2im", "cols");
    const void* src = cols.data();
    void* dst = out.mutable_data();
    const bool f32 = is_f32(cols);
    py::gil_scoped_release nogil;
    if (f32)
        col2im_all(static_cast<const float*>(src), static_cast<float*>(dst), g, merged);
    else
        col2im_all(static_cast<const double*>(src), static_cast<double*>(dst), g, merged);
}


#ifdef DCONV_AVAILABLE
// Shared checks of the direct-convolution entry points; returns the geometry.
dconv::Conv direct_geometry(const py::array& x, const py::array& w_or_dw, idx sh, idx sw,
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

int check_isa(int isa, const char* fn) {
    const int best = dconv::best_isa();
    if (isa < 0) return best;
    require(isa <= best, std::string(fn) + ": isa " + std::to_string(isa) +
                             " is not supported by this CPU (best: " + std::to_string(best) + ")");
    return isa;
}

void check_variant(const std::string& variant, const dconv::Conv& g, const char* fn) {
    require(variant == "vk" || variant == "vw",
            std::string(fn) + ": variant must be 'vk' or 'vw', got '" + variant + "'");
    require(variant == "vk" || g.sw == 1,
            std::string(fn) + ": the 'vw' variant needs stride 1 along the width");
}

void conv2d_direct(py::array x, py::array w, py::object bias, idx sh, idx sw, idx ph, idx pw,
                   idx dh, idx dw, idx groups, bool relu, py::array out,
                   const std::string& variant, int isa, int nthreads) {
    const char* fn = "conv2d_direct";
    const dconv::Conv g = direct_geometry(x, w, sh, sw, ph, pw, dh, dw, groups, fn);
    check_variant(variant, g, fn);
    isa = check_isa(isa, fn);
    check_array(out, fn, "out", 4);
    check_dtypes(x, out, fn);
    require(out.shape(0) == g.N && out.shape(1) == g.K && out.shape(2) == g.OH &&
                out.shape(3) == g.OW,
            std::string(fn) + ": out has shape " + shape_str(out) + ", expected (" +
                std::to_string(g.N) + ", " + std::to_string(g.K) + ", " + std::to_string(g.OH) +
                ", " + std::to_string(g.OW) + ")");
    const void* bp = nullptr;
    py::array b;
    if (!bias.is_none()) {
        b = py::array::ensure(bias);
        require(b && b.ndim() == 1 && b.shape(0) == g.K && (b.flags() & py::array::c_style) &&
                    b.dtype().is(x.dtype()),
                std::string(fn) + ": bias must be a contiguous (K,) array of x's dtype");
        bp = b.data();
    }
    const void* xp = x.data();
    const void* wp = w.data();
    void* yp = out.mutable_data();
    const bool f32 = is_f32(x), vw = variant == "vw";
    py::gil_scoped_release nogil;
    if (f32) {
        auto f = vw ? &dconv::conv_fwd_vw<float> : &dconv::conv_fwd_vk<float>;
        f(static_cast<const float*>(xp), static_cast<const float*>(wp),
          static_cast<const float*>(bp), static_cast<float*>(yp), g, relu, isa, nthreads);
    } else {
        auto f = vw ? &dconv::conv_fwd_vw<double> : &dconv::conv_fwd_vk<double>;
        f(static_cast<const double*>(xp), static_cast<const double*>(wp),
          static_cast<const double*>(bp), static_cast<double*>(yp), g, relu, isa, nthreads);
    }
}

void conv2d_direct_bwt(py::array dy, py::array x, idx sh, idx sw, idx ph, idx pw, idx dh, idx dw,
                       idx groups, py::array out, const std::string& variant, int isa,
                       int nthreads) {
    const char* fn = "conv2d_direct_bwt";
    const dconv::Conv g = direct_geometry(x, out, sh, sw, ph, pw, dh, dw, groups, fn);
    check_variant(variant, g, fn);
    isa = check_isa(isa, fn);
    check_array(dy, fn, "dy", 4);
    check_dtypes(x, dy, fn);
    require(out.writeable(), std::string(fn) + ": out is read-only");
    require(dy.shape(0) == g.N && dy.shape(1) == g.K && dy.shape(2) == g.OH &&
                dy.shape(3) == g.OW,
            std::string(fn) + ": dy has shape " + shape_str(dy) + ", expected (" +
                std::to_string(g.N) + ", " + std::to_string(g.K) + ", " + std::to_string(g.OH) +
                ", " + std::to_string(g.OW) + ")");
    const void* xp = x.data();
    const void* dp = dy.data();
    void* op = out.mutable_data();
    const bool f32 = is_f32(x), vw = variant == "vw";
    py::gil_scoped_release nogil;
    if (f32) {
        auto f = vw ? &dconv::conv_bwt_vw<float> : &dconv::conv_bwt_vk<float>;
        f(static_cast<const float*>(dp), static_cast<const float*>(xp), static_cast<float*>(op), g,
          isa, nthreads);
    } else {
        auto f = vw ? &dconv::conv_bwt_vw<double> : &dconv::conv_bwt_vk<double>;
        f(static_cast<const double*>(dp), static_cast<const double*>(xp), static_cast<double*>(op),
          g, isa, nthreads);
    }
}

void conv2d_winograd43(py::array x, py::array w, py::object bias, idx ph, idx pw, bool relu,
                       py::array out, int isa, int nthreads) {
    const char* fn = "conv2d_winograd43";
    const dconv::Conv g = direct_geometry(x, w, 1, 1, ph, pw, 1, 1, 1, fn);
    require(g.kh == 3 && g.kw == 3, std::string(fn) + ": needs a 3x3 kernel");
    isa = check_isa(isa, fn);
    check_array(out, fn, "out", 4);
    check_dtypes(x, out, fn);
    require(out.shape(0) == g.N && out.shape(1) == g.K && out.shape(2) == g.OH &&
                out.shape(3) == g.OW,
            std::string(fn) + ": out has shape " + shape_str(out) + ", expected (" +
                std::to_string(g.N) + ", " + std::to_string(g.K) + ", " + std::to_string(g.OH) +
                ", " + std::to_string(g.OW) + ")");
    const void* bp = nullptr;
    py::array b;
    if (!bias.is_none()) {
        b = py::array::ensure(bias);
        require(b && b.ndim() == 1 && b.shape(0) == g.K && (b.flags() & py::array::c_style) &&
                    b.dtype().is(x.dtype()),
                std::string(fn) + ": bias must be a contiguous (K,) array of x's dtype");
        bp = b.data();
    }
    const void* xp = x.data();
    const void* wp = w.data();
    void* yp = out.mutable_data();
    const bool f32 = is_f32(x);
    py::gil_scoped_release nogil;
    if (f32)
        dconv::conv_winograd43(static_cast<const float*>(xp), static_cast<const float*>(wp),
                               static_cast<const float*>(bp), static_cast<float*>(yp), g.N, g.C,
                               g.H, g.W, g.K, ph, pw, relu, isa, nthreads);
    else
        dconv::conv_winograd43(static_cast<const double*>(xp), static_cast<const double*>(wp),
                               static_cast<const double*>(bp), static_cast<double*>(yp), g.N, g.C,
                               g.H, g.W, g.K, ph, pw, relu, isa, nthreads);
}
#endif  // DCONV_AVAILABLE

}  // namespace

PYBIND11_MODULE(_im2col, m) {
    m.doc() = "im2col / col2im for NCHW float32/float64 arrays (OpenMP)";
    m.def("im2col", &im2col, py::arg("x"), py::arg("kh"), py::arg("kw"),
          py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
          py::arg("dh"), py::arg("dw"), py::arg("out"),
          "Unfold x (N,C,H,W) into out: (N, C*kh*kw, OH*OW), or (C*kh*kw, "
          "N*OH*OW) when out is 2-D; row (c*kh+i)*kw+j.");
    m.def("col2im", &col2im, py::arg("cols"), py::arg("C"), py::arg("H"),
          py::arg("W"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
          py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"),
          py::arg("dw"), py::arg("out"),
          "Zero-fill out (N,C,H,W), then add cols ((N, C*kh*kw, OH*OW) or "
          "(C*kh*kw, N*OH*OW)) back into it (adjoint of im2col).");
#ifdef DCONV_AVAILABLE
    m.def("conv2d_direct", &conv2d_direct, py::arg("x"), py::arg("w"), py::arg("bias"),
          py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"),
          py::arg("dw"), py::arg("groups"), py::arg("relu"), py::arg("out"),
          py::arg("variant") = "vk", py::arg("isa") = -1, py::arg("nthreads") = 1,
          "Direct conv: out (N,K,OH,OW) = conv2d(x, w) (+ bias) (then ReLU if relu). "
          "variant 'vk' (lanes over output channels) or 'vw' (lanes over output "
          "pixels; stride 1 along the width). isa: -1 = best, 0 = SSE2, 1 = AVX2, "
          "2 = AVX-512.");
    m.def("conv2d_direct_bwt", &conv2d_direct_bwt, py::arg("dy"), py::arg("x"), py::arg("sh"),
          py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
          py::arg("groups"), py::arg("out"), py::arg("variant") = "vk", py::arg("isa") = -1,
          py::arg("nthreads") = 1,
          "Direct conv weight gradient: out (K, C/groups, kh, kw) from dy and x.");
    m.def("conv2d_winograd43", &conv2d_winograd43, py::arg("x"), py::arg("w"), py::arg("bias"),
          py::arg("ph"), py::arg("pw"), py::arg("relu"), py::arg("out"), py::arg("isa") = -1,
          py::arg("nthreads") = 1,
          "Winograd F(4x4,3x3) conv (stride 1, dilation 1, one group; pad may be "
          "negative): out = conv2d(x, w) (+ bias) (then ReLU if relu).");
    m.def("direct_isa", &dconv::best_isa,
          "Best instruction set of the direct kernels on this CPU (0 SSE2, 1 AVX2, 2 AVX-512).");
#endif
}
