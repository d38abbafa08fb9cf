// Pooling kernels on (P, H, W) planes (P = N*C), forward and backward.
// Semantics follow kernels/cpu/pool.py exactly:
// * max: padding is -inf; idx is the int32 flat index (h*W + w) of the first
//   maximum in row-major window order; a NaN wins (the last NaN of the window);
//   an empty window (only when pad > kernel/2) gives -inf and idx -1.
// * avg divisor: count_include_pad -> the window clipped to the padded input,
//   else the number of real input elements in it; a window with divisor 0
//   outputs 0 and receives no gradient.
// * adaptive avg: window [floor(o*H/OH), ceil((o+1)*H/OH)).
#include "common.cuh"

KERNEL(max_pool_forward)(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ idx,
                         i64 P, i64 H, i64 W, i64 OH, i64 OW, i64 kh, i64 kw, i64 sh, i64 sw,
                         i64 ph, i64 pw, i64 want_index) {
    GRID_LOOP(e, P * OH * OW) {
        i64 ow, oh;
        const i64 p = divmod(divmod(e, OW, ow), OH, oh);
        const i64 hs = oh * sh - ph, ws = ow * sw - pw;
        const i64 h0 = imax(hs, 0), h1 = imin(hs + kh, H);
        const i64 w0 = imax(ws, 0), w1 = imin(ws + kw, W);
        const T* xp = x + p * H * W;
        T m = (T)neg_inf();
        i64 best = -1, nan_at = -1;
        if (h0 < h1 && w0 < w1) {
            m = xp[h0 * W + w0];
            best = h0 * W + w0;
            for (i64 h = h0; h < h1; ++h)
                for (i64 w = w0; w < w1; ++w) {
                    const T v = xp[h * W + w];
                    if (v > m) {  // strict: ties keep the first index
                        m = v;
                        best = h * W + w;
                    }
                    if (v != v) nan_at = h * W + w;
                }
            if (nan_at >= 0) {
                m = xp[nan_at];
                best = nan_at;
            }
        }
        y[e] = m;
        if (want_index) idx[e] = (int)best;
    }
}

// dx (zeroed by the caller) += dy at the argmax. A scatter with atomics: the
// backward does not get the pooling geometry, only the index, and overlapping
// windows (stride < kernel) may pick the same pixel.
KERNEL(max_pool_backward)(const T* __restrict__ dy, const int* __restrict__ idx,
                          T* __restrict__ dx, i64 P, i64 L, i64 HW) {
    GRID_LOOP(e, P * L) {
        const i64 i = idx[e];
        i64 l;
        const i64 p = divmod(e, L, l);
        if (i >= 0 && i < HW) atomicAdd(dx + p * HW + i, dy[e]);
    }
}

// Divisor of the window starting at (hs, ws) (may be negative: in the padding).
__device__ __forceinline__ i64 avg_divisor(i64 hs, i64 ws, i64 kh, i64 kw, i64 H, i64 W,
                                           i64 ph, i64 pw, i64 include_pad) {
    const i64 h1 = imin(hs + kh, H + ph), w1 = imin(ws + kw, W + pw);
    if (include_pad) return (h1 - hs) * (w1 - ws);
    return imax(imin(h1, H) - imax(hs, 0), 0) * imax(imin(w1, W) - imax(ws, 0), 0);
}

KERNEL(avg_pool_forward)(const T* __restrict__ x, T* __restrict__ y, i64 P, i64 H, i64 W,
                         i64 OH, i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw,
                         i64 include_pad) {
    GRID_LOOP(e, P * OH * OW) {
        i64 ow, oh;
        const i64 p = divmod(divmod(e, OW, ow), OH, oh);
        const i64 hs = oh * sh - ph, ws = ow * sw - pw;
        const i64 h1 = imin(hs + kh, H), w1 = imin(ws + kw, W);
        const T* xp = x + p * H * W;
        acc_t s = 0;
        for (i64 h = imax(hs, 0); h < h1; ++h)
            for (i64 w = imax(ws, 0); w < w1; ++w) s += xp[h * W + w];
        const i64 div = avg_divisor(hs, ws, kh, kw, H, W, ph, pw, include_pad);
        y[e] = div > 0 ? (T)(s / (acc_t)div) : T(0);
    }
}

// Gather form of the average-pool backward: pixel h lies in the windows of
// output rows oh with oh*sh - ph <= h < oh*sh - ph + kh, i.e.
// floor((h + ph - kh) / sh) < oh <= floor((h + ph) / sh); same for columns.
KERNEL(avg_pool_backward)(const T* __restrict__ dy, T* __restrict__ dx, i64 P, i64 H, i64 W,
                          i64 OH, i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw,
                          i64 include_pad) {
    GRID_LOOP(e, P * H * W) {
        i64 w, h;
        const i64 p = divmod(divmod(e, W, w), H, h);
        const i64 oh0 = imax(floor_div(h + ph - kh, sh) + 1, 0);
        const i64 oh1 = imin(floor_div(h + ph, sh), OH - 1);
        const i64 ow0 = imax(floor_div(w + pw - kw, sw) + 1, 0);
        const i64 ow1 = imin(floor_div(w + pw, sw), OW - 1);
        const T* dyp = dy + p * OH * OW;
        acc_t s = 0;
        for (i64 oh = oh0; oh <= oh1; ++oh)
            for (i64 ow = ow0; ow <= ow1; ++ow) {
                const i64 div =
                    avg_divisor(oh * sh - ph, ow * sw - pw, kh, kw, H, W, ph, pw, include_pad);
                if (div > 0) s += (acc_t)dyp[oh * OW + ow] / (acc_t)div;
            }
        dx[e] = (T)s;
    }
}

KERNEL(adaptive_avg_forward)(const T* __restrict__ x, T* __restrict__ y, i64 P, i64 H, i64 W,
                             i64 OH, i64 OW) {
    GRID_LOOP(e, P * OH * OW) {
        i64 ow, oh;
        const i64 p = divmod(divmod(e, OW, ow), OH, oh);
        const i64 h0 = (oh * H) / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        const i64 w0 = (ow * W) / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
        const T* xp = x + p * H * W;
        acc_t s = 0;
        for (i64 h = h0; h < h1; ++h)
            for (i64 w = w0; w < w1; ++w) s += xp[h * W + w];
        y[e] = (T)(s / (acc_t)((h1 - h0) * (w1 - w0)));
    }
}

// Pixel h is in the adaptive windows of rows oh in
// [floor(h*OH/H), ceil((h+1)*OH/H) - 1] (windows overlap when H % OH != 0);
// the bounds are re-checked against each window to be safe at the edges.
KERNEL(adaptive_avg_backward)(const T* __restrict__ dy, T* __restrict__ dx, i64 P, i64 H,
                              i64 W, i64 OH, i64 OW) {
    GRID_LOOP(e, P * H * W) {
        i64 w, h;
        const i64 p = divmod(divmod(e, W, w), H, h);
        const i64 oh0 = (h * OH) / H, oh1 = imin(((h + 1) * OH + H - 1) / H, OH);
        const i64 ow0 = (w * OW) / W, ow1 = imin(((w + 1) * OW + W - 1) / W, OW);
        const T* dyp = dy + p * OH * OW;
        acc_t s = 0;
        for (i64 oh = oh0; oh < oh1; ++oh) {
            const i64 h0 = (oh * H) / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
            if (h < h0 || h >= h1) continue;
            for (i64 ow = ow0; ow < ow1; ++ow) {
                const i64 w0 = (ow * W) / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
                if (w < w0 || w >= w1) continue;
                s += (acc_t)dyp[oh * OW + ow] / (acc_t)((h1 - h0) * (w1 - w0));
            }
        }
        dx[e] = (T)s;
    }
}
