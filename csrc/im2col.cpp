// im2col / col2im for NCHW tensors (float32 and float64), OpenMP-parallel:
// kernels.cpu._im2col.im2col / col2im.
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

#include "common.hpp"

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

// Small output maps (ResNet's deep stages: 7x7 down to 2x2): a row of a plane's columns is only
// L = OH*OW values, so the per-output-row loops above run 2..7 elements each and their setup
// dominates. There each tap's row is one loop over a table of source offsets (-1 = padding),
// computed once per call for all planes: taps[(i*kw + j)*L + o].
constexpr idx kTableMaxL = 64;

std::vector<idx> tap_table(const Geometry& g) {
    const idx L = g.OH * g.OW;
    std::vector<idx> t(static_cast<size_t>(g.kh * g.kw * L));
    for (idx i = 0; i < g.kh; ++i)
        for (idx j = 0; j < g.kw; ++j)
            for (idx oh = 0; oh < g.OH; ++oh)
                for (idx ow = 0; ow < g.OW; ++ow) {
                    const idx h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
                    const bool in = h >= 0 && h < g.H && w >= 0 && w < g.W;
                    t[(i * g.kw + j) * L + oh * g.OW + ow] = in ? h * g.W + w : -1;
                }
    return t;
}

template <typename T>
FORCE_INLINE void im2col_plane_table(const T* xp, T* cp, idx rs, idx kk, idx L, const idx* taps) {
    for (idx r = 0; r < kk; ++r) {
        const idx* t = taps + r * L;
        T* row = cp + r * rs;
        for (idx o = 0; o < L; ++o) row[o] = t[o] >= 0 ? xp[t[o]] : T(0);
    }
}

template <typename T>
FORCE_INLINE void col2im_plane_table(const T* cp, idx rs, T* xp, idx plane, idx kk, idx L,
                                     const idx* taps) {
    std::fill(xp, xp + plane, T(0));
    for (idx r = 0; r < kk; ++r) {
        const idx* t = taps + r * L;
        const T* row = cp + r * rs;
        for (idx o = 0; o < L; ++o)
            if (t[o] >= 0) xp[t[o]] += row[o];
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
    const bool table = ci.L <= kTableMaxL;
    const std::vector<idx> taps = table ? tap_table(g) : std::vector<idx>();
    const idx* tp = taps.data();
#pragma omp parallel for schedule(static) if (par)
    for (idx p = 0; p < planes; ++p) {
        T* cp = cols + ci.offset(p / g.C, p % g.C);
        if (table)
            im2col_plane_table(x + p * plane_in, cp, ci.row_stride(), ci.kk, ci.L, tp);
        else
            im2col_plane(x + p * plane_in, cp, ci.row_stride(), g);
    }
}

template <typename T>
void col2im_all(const T* cols, T* x, const Geometry& g, bool merged) {
    const ColsIndex ci{g.kh * g.kw, g.OH * g.OW, g.N, g.C, merged};
    const idx plane_in = g.H * g.W;
    const idx planes = g.N * g.C;
    const bool par = planes * ci.kk * ci.L >= kParallelMinElems;
    const bool table = ci.L <= kTableMaxL;
    const std::vector<idx> taps = table ? tap_table(g) : std::vector<idx>();
    const idx* tp = taps.data();
#pragma omp parallel for schedule(static) if (par)
    for (idx p = 0; p < planes; ++p) {
        const T* cp = cols + ci.offset(p / g.C, p % g.C);
        if (table)
            col2im_plane_table(cp, ci.row_stride(), x + p * plane_in, plane_in, ci.kk, ci.L, tp);
        else
            col2im_plane(cp, ci.row_stride(), x + p * plane_in, g);
    }
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

}  // namespace

void def_im2col(py::module_& m) {
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
}
