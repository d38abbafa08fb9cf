// Register-blocked direct convolution, forward and weight gradient (NCHW,
// float32/float64, OpenMP): kernels.cpu._im2col.conv2d_direct / conv2d_direct_bwt.
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
// Work items are (sample, block of output rows); each copies the input rows
// it needs into a zero-padded buffer (skipped when there is no padding), so
// the inner loops have no bounds checks. Kernel rows that fall entirely on
// padding rows are skipped (this matters for the backward-data pass, which
// runs as a "full" convolution with flipped weights).

#include <memory>

#include "common.hpp"

#ifdef DCONV_AVAILABLE
namespace dconv {

// ------------------------------------------------------------- geometry

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

struct FwdArgs {
    Conv g;
    idx nkb, KB, KBW, R;   // packed weight geometry
    idx RB;                // output rows per work item
    bool relu, has_bias;
};

// Work item (n, row block): all groups and channel blocks of those rows.
template <typename T, int VB, int NREG>
struct VkForwardItem {
    static FORCE_INLINE void run(const T* x, const T* wp, const T* bias, T* y,
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
};

// ----------------------------------------------------------- vk backward-weight
// Partial dW for the output rows of one work item, accumulated into
// part[(g*R + r) * Kgp + k] (Kgp = nkb*KBW), r = (c*kh + i)*kw + j.

template <typename T, int VB, int KB, int TI, int TJ>
FORCE_INLINE void vk_bwt_tile(const T* xb, idx sh, idx sw, idx rs, idx dh, idx dw, idx nrows, idx OW,
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
FORCE_INLINE void bwt_tile_tj(idx tj, const T* xb, idx sh, idx sw, idx rs, idx dh, idx dw, idx nrows,
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
FORCE_INLINE void bwt_tile(idx ti, idx tj, const T* xb, idx sh, idx sw, idx rs, idx dh, idx dw,
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
struct VkWeightGradItem {
    static FORCE_INLINE void run(const T* x, const T* dy, const BwtArgs& a, idx item, T* buf,
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
};

// ------------------------------------------------------------ vw kernels
// Lanes = consecutive output pixels of one row (stride 1 along the width).
// Used when there are few input channels (short R) so the vk tile's
// transposing store would dominate.

template <typename T, int VB, int KBk, int BW>
FORCE_INLINE void vw_fwd_tile(const T* xb, const idx* off, idx cs, idx rs, idx dh, idx dw, idx Cg,
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
FORCE_INLINE void vw_fwd_tile_b(idx bw, const T* xb, const idx* off, idx cs, idx rs, idx dh, idx dw,
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
FORCE_INLINE void vw_fwd_rows(const T* xs, idx cs, idx rs, const T* wp, const T* bias, T* y,
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
struct VwForwardItem {
    static FORCE_INLINE void run(const T* x, const T* wp, const T* bias, T* y, const VwArgs& a,
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
};

// Backward weight, lanes over output pixels: acc[q][ti][tj] += dy * x, reduced
// over pixels into part[((k*R) + r) * L + lane] (lanes summed at the end).
template <typename T, int VB, int KBk, int TI, int TJ>
FORCE_INLINE void vw_bwt_tile(const T* xb, idx sh, idx rs, idx dh, idx dw, idx nrows, idx nvec,
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
FORCE_INLINE void vw_bwt_tj(idx tj, const T* xb, idx sh, idx rs, idx dh, idx dw, idx nrows, idx nvec,
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
FORCE_INLINE void vw_bwt_t(idx ti, idx tj, const T* xb, idx sh, idx rs, idx dh, idx dw, idx nrows,
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
struct VwWeightGradItem {
    static FORCE_INLINE void run(const T* x, const T* dy, const VwBwtArgs& a, idx item, T* buf,
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
};

// ------------------------------------------------------------ drivers

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

// Pack w (K, Cg, kh, kw) into wp (G, nkb, R, KBW), zero-padded channels. Called inside the
// kernel's parallel region, the threads split the channel blocks: on deep layers with small maps
// (ResNet's 256-512 channels on 4x4..2x2) each weight is used only ~64-256 times, so a serial
// pack would be a large part of the pass.
template <typename T>
void pack_weights(const T* w, const Conv& g, idx nkb, idx KBW, idx R, T* wp) {
#pragma omp for schedule(static)
    for (idx blk = 0; blk < g.G * nkb; ++blk) {
        const idx gi = blk / nkb, k0 = (blk % nkb) * KBW;
        const idx kn = std::min(KBW, g.Kg - k0);
        T* dst = wp + blk * R * KBW;
        for (idx kk = 0; kk < kn; ++kk) {
            const T* src = w + (gi * g.Kg + k0 + kk) * R;
            for (idx r = 0; r < R; ++r) dst[r * KBW + kk] = src[r];
        }
        if (kn < KBW)
            for (idx r = 0; r < R; ++r) std::fill(dst + r * KBW + kn, dst + (r + 1) * KBW, T(0));
    }
}

template <typename T>
void conv_fwd_vk(const T* x, const T* w, const T* bias, T* y, const Conv& g, bool relu, int isa,
                 int nthreads) {
    const idx L = lanes_for(isa, sizeof(T));
    const idx KB = g.Kg <= L ? 1 : 2;
    const idx KBW = KB * L;
    const idx nkb = (g.Kg + KBW - 1) / KBW;
    const idx R = g.Cg * g.kh * g.kw;
    std::unique_ptr<T[]> wp(new T[static_cast<size_t>(g.G * nkb * R * KBW)]);
    const int nt = std::max(1, nthreads);
    FwdArgs a{g, nkb, KB, KBW, R, rows_per_item(g, 4 * nt), relu, bias != nullptr};
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx items = g.N * nrb;
    const idx nr = (a.RB - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const idx buf_size = g.C * nr * Wp + 64;
    const idx tmp_size = 32 * KBW + 64;
    auto fn = for_isa<VkForwardItem, T>(isa);
    const T* wpp = wp.get();
#pragma omp parallel num_threads(nt) if (nt > 1 && items > 1)
    {
        pack_weights(w, g, nkb, KBW, R, wp.get());  // ends with a barrier
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
    auto fn = for_isa<VkWeightGradItem, T>(isa);
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
    std::unique_ptr<T[]> wp(new T[static_cast<size_t>(g.G * nkb * R * KBk)]);
    const int nt = std::max(1, nthreads);
    const idx Wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const idx Wb = std::max<idx>(Wp, L + (g.kw - 1) * g.dw);
    VwArgs a{g, nkb, KBk, BWm, R, rows_per_item(g, 4 * nt), Wb, relu, bias != nullptr};
    const idx nrb = (g.OH + a.RB - 1) / a.RB;
    const idx items = g.N * nrb;
    const idx nr = (a.RB - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const idx buf_size = g.C * nr * Wb + 64;
    auto fn = for_isa<VwForwardItem, T>(isa);
    const T* wpp = wp.get();
#pragma omp parallel num_threads(nt) if (nt > 1 && items > 1)
    {
        pack_weights(w, g, nkb, KBk, R, wp.get());  // ends with a barrier
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
    auto fn = for_isa<VwWeightGradItem, T>(isa);
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


}  // namespace dconv

namespace {

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
    check_nkhw(out, g, fn, "out");
    py::array b;
    const void* bp = bias_data(bias, x, g, fn, b);
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
    check_nkhw(dy, g, fn, "dy");
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

}  // namespace

void def_direct_conv(py::module_& m) {
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
}
#endif  // DCONV_AVAILABLE
