// im2col / col2im for NCHW arrays: the GPU twin of csrc/im2col.cpp.
//
// Layout (identical to the CPU kernels):
//   x    : (N, C, H, W)
//   cols : (N, R, L), or "merged" (R, N, L) = the 2-D (R, N*L) matrix whose
//          column blocks are the samples, so one GEMM covers a chunk of samples.
//   R = C*kh*kw, row r = (c*kh + i)*kw + j;  L = OH*OW.
// A row of cols in memory order is row = n*R + r (per sample) or r*N + n
// (merged); within a row, position l = oh*OW + ow reads
//   x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   (0 outside the image).
#include "common.cuh"

// Memory-order row index -> (sample n, column-matrix row r).
__device__ __forceinline__ void split_row(i64 row, i64 N, i64 R, i64 merged, i64& n, i64& r) {
    if (merged)
        r = divmod(row, N, n);
    else
        n = divmod(row, R, r);
}

// One thread per element of cols, in memory order: the writes (the larger
// side, kh*kw times the input) are fully coalesced; reads hit x with stride sw
// and are mostly served from L1/L2, since neighbouring taps read the same pixels.
KERNEL(im2col)(const T* __restrict__ x, T* __restrict__ cols, i64 N, i64 C, i64 H, i64 W,
               i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw, i64 OH,
               i64 OW, i64 merged) {
    const i64 L = OH * OW, R = C * kh * kw;
    const i64 total = N * R * L;
    GRID_LOOP(e, total) {
        i64 l, n, r, j, i, ow;
        const i64 row = divmod(e, L, l);
        split_row(row, N, R, merged, n, r);
        const i64 c = divmod(divmod(r, kw, j), kh, i);
        const i64 oh = divmod(l, OW, ow);
        const i64 ih = oh * sh - ph + i * dh, iw = ow * sw - pw + j * dw;
        const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
        cols[e] = inside ? x[((n * C + c) * H + ih) * W + iw] : T(0);
    }
}

// The adjoint: x[n, c, h, w] = sum of every column entry that im2col copied
// from (h, w). Written as a gather (one thread per pixel, looping over the
// kh*kw taps that can reach it) instead of a scatter, so it needs no atomics,
// is deterministic, and sums in the same tap order as the CPU kernel.
// It overwrites x completely (no need to zero it first).
KERNEL(col2im)(const T* __restrict__ cols, T* __restrict__ x, i64 N, i64 C, i64 H, i64 W,
               i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw, i64 OH,
               i64 OW, i64 merged) {
    const i64 L = OH * OW, R = C * kh * kw;
    const i64 total = N * C * H * W;
    // Spatial arithmetic in int: every spatial size is far below 2^31, and the
    // modulo below runs kh*kw times per pixel.
    const int iOH = (int)OH, iOW = (int)OW, ish = (int)sh, isw = (int)sw;
    GRID_LOOP(e, total) {
        i64 w, h, c;
        const i64 n = divmod(divmod(divmod(e, W, w), H, h), C, c);
        T s = T(0);
        for (int i = 0; i < (int)kh; ++i) {
            const int hp = (int)(h + ph - i * dh);  // = oh*sh if tap i of row oh reads h
            if (hp < 0) break;                      // hp only decreases with i
            if (hp % ish != 0) continue;
            const int oh = hp / ish;
            if (oh >= iOH) continue;
            for (int j = 0; j < (int)kw; ++j) {
                const int wp = (int)(w + pw - j * dw);
                if (wp < 0) break;
                if (wp % isw != 0) continue;
                const int ow = wp / isw;
                if (ow >= iOW) continue;
                const i64 r = (c * kh + i) * kw + j;
                const i64 row = merged ? r * N + n : n * R + r;
                s += cols[row * L + (i64)oh * iOW + ow];
            }
        }
        x[e] = s;
    }
}
