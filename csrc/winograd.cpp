// Winograd F(4x4, 3x3) convolution (NCHW, float32/float64, OpenMP):
// kernels.cpu._im2col.conv2d_winograd43.
//
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

#include "common.hpp"

#ifdef DCONV_AVAILABLE
namespace dconv {

template <typename T, typename V>
FORCE_INLINE void bt6(const V* d, int s, V* o, int so) {
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
FORCE_INLINE void at6(const V* m, int s, V* o, int so) {
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
struct WinogradItem {
    static FORCE_INLINE void run(const T* x, const T* up, const T* bias, T* y, const WinoArgs& a,
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
};

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
    auto fn = for_isa<WinogradItem, T>(isa);
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

namespace {

void conv2d_winograd43(py::array x, py::array w, py::object bias, idx ph, idx pw, bool relu,
                       py::array out, int isa, int nthreads) {
    const char* fn = "conv2d_winograd43";
    const dconv::Conv g = direct_geometry(x, w, 1, 1, ph, pw, 1, 1, 1, fn);
    require(g.kh == 3 && g.kw == 3, std::string(fn) + ": needs a 3x3 kernel");
    isa = check_isa(isa, fn);
    check_array(out, fn, "out", 4);
    check_dtypes(x, out, fn);
    check_nkhw(out, g, fn, "out");
    py::array b;
    const void* bp = bias_data(bias, x, g, fn, b);
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

}  // namespace

void def_winograd(py::module_& m) {
    m.def("conv2d_winograd43", &conv2d_winograd43, py::arg("x"), py::arg("w"), py::arg("bias"),
          py::arg("ph"), py::arg("pw"), py::arg("relu"), py::arg("out"), py::arg("isa") = -1,
          py::arg("nthreads") = 1,
          "Winograd F(4x4,3x3) conv (stride 1, dilation 1, one group; pad may be "
          "negative): out = conv2d(x, w) (+ bias) (then ReLU if relu).");
}
#endif  // DCONV_AVAILABLE
