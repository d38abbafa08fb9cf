// Convolution kernels that are not GEMMs (NCHW).
//
// * permute_bias_act: the epilogue of the im2col + cuBLAS path (bias, ReLU,
//   and the (K, nb, L) <-> (nb, K, L) layout changes around merged GEMMs).
// * direct_*: grouped convolution computed straight from x / dy, used for
//   depthwise convolutions, where a GEMM's inner dimension would be only kh*kw.
// * bias_grad: db[k] = sum of dy over everything but the channel axis.
//
// Weights: w is (K, Cg, kh, kw) with Cg = C / groups input channels per group
// and Kg = K / groups output channels per group; output channel k belongs to
// group k / Kg, which reads input channels [g*Cg, (g+1)*Cg).
#include "common.cuh"

// dst[n, k, l] = act(src[n, k, l] + bias[k]) where element (n, k, l) lives at
// n*sn + k*sk + l in each array (l is contiguous in both). With src == dst
// and equal strides it works in place (each thread reads, then writes, its own
// element), which is why the pointers are not __restrict__.
KERNEL(permute_bias_act)(const T* src, T* dst, const T* bias, i64 N, i64 K, i64 L,
                         i64 src_sn, i64 src_sk, i64 dst_sn, i64 dst_sk, i64 has_bias,
                         i64 relu) {
    GRID_LOOP(e, N * K * L) {
        i64 l, k;
        const i64 n = divmod(divmod(e, L, l), K, k);
        T v = src[n * src_sn + k * src_sk + l];
        if (has_bias) v += bias[k];
        if (relu && v < T(0)) v = T(0);  // NaN is not < 0: it stays NaN, as on the CPU
        dst[n * dst_sn + k * dst_sk + l] = v;
    }
}

// y[n, k, oh, ow] = act(bias[k] + sum_{c, i, j} w[k, c, i, j] * x[n, g*Cg + c, ih, iw]),
// one thread per output element; padding taps are skipped.
KERNEL(direct_forward)(const T* __restrict__ x, const T* __restrict__ w,
                       const T* __restrict__ bias, T* __restrict__ y, i64 N, i64 C, i64 H,
                       i64 W, i64 K, i64 Cg, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw,
                       i64 dh, i64 dw, i64 OH, i64 OW, i64 has_bias, i64 relu) {
    const i64 Kg = K / (C / Cg);
    GRID_LOOP(e, N * K * OH * OW) {
        i64 ow, oh, k;
        const i64 n = divmod(divmod(divmod(e, OW, ow), OH, oh), K, k);
        const i64 c0 = (k / Kg) * Cg;
        const i64 h0 = oh * sh - ph, w0 = ow * sw - pw;
        T acc = T(0);
        for (i64 c = 0; c < Cg; ++c) {
            const T* xp = x + (n * C + c0 + c) * H * W;
            const T* wp = w + (k * Cg + c) * kh * kw;
            for (i64 i = 0; i < kh; ++i) {
                const i64 ih = h0 + i * dh;
                if (ih < 0 || ih >= H) continue;
                for (i64 j = 0; j < kw; ++j) {
                    const i64 iw = w0 + j * dw;
                    if (iw >= 0 && iw < W) acc += wp[i * kw + j] * xp[ih * W + iw];
                }
            }
        }
        if (has_bias) acc += bias[k];
        if (relu && acc < T(0)) acc = T(0);
        y[e] = acc;
    }
}

// dx[n, c, h, w] = sum over the Kg output channels k of c's group and the taps
// (i, j) that read (h, w) of w[k, c - g*Cg, i, j] * dy[n, k, oh, ow].
// A gather (one thread per input pixel), so no atomics are needed.
KERNEL(direct_backward_data)(const T* __restrict__ dy, const T* __restrict__ w,
                             T* __restrict__ dx, i64 N, i64 C, i64 H, i64 W, i64 K, i64 Cg,
                             i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw,
                             i64 OH, i64 OW) {
    const i64 Kg = K / (C / Cg);
    const int ish = (int)sh, isw = (int)sw;
    GRID_LOOP(e, N * C * H * W) {
        i64 x_w, h, c;
        const i64 n = divmod(divmod(divmod(e, W, x_w), H, h), C, c);
        const i64 g = c / Cg, cl = c - g * Cg;
        T s = T(0);
        for (i64 kk = 0; kk < Kg; ++kk) {
            const i64 k = g * Kg + kk;
            const T* dyk = dy + (n * K + k) * OH * OW;
            const T* wk = w + (k * Cg + cl) * kh * kw;
            for (int i = 0; i < (int)kh; ++i) {
                const int hq = (int)(h + ph - i * dh);  // = oh*sh if tap i of row oh reads h
                if (hq < 0) break;                      // only decreases with i
                if (hq % ish != 0 || hq / ish >= OH) continue;
                const i64 oh = hq / ish;
                for (int j = 0; j < (int)kw; ++j) {
                    const int wq = (int)(x_w + pw - j * dw);
                    if (wq < 0) break;
                    if (wq % isw != 0 || wq / isw >= OW) continue;
                    s += wk[i * kw + j] * dyk[oh * OW + wq / isw];
                }
            }
        }
        dx[e] = s;
    }
}

// gw[k, c, i, j] = sum over n, oh, ow of dy[n, k, oh, ow] * x[n, g*Cg + c, ih, iw].
// One block per weight element (grid-stride over them); the block's threads
// split the N*OH*OW products and meet in a block reduction.
KERNEL_1024(direct_backward_weight)(const T* __restrict__ dy, const T* __restrict__ x,
                               T* __restrict__ gw, i64 N, i64 C, i64 H, i64 W, i64 K, i64 Cg,
                               i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw,
                               i64 OH, i64 OW) {
    __shared__ acc_t shm[32];
    const i64 Kg = K / (C / Cg), L = OH * OW;
    const i64 count = K * Cg * kh * kw;
    for (i64 q = blockIdx.x; q < count; q += gridDim.x) {
        i64 j, i, c;
        const i64 k = divmod(divmod(divmod(q, kw, j), kh, i), Cg, c);
        const i64 ci = (k / Kg) * Cg + c;
        acc_t s = 0;
        for (i64 p = threadIdx.x; p < N * L; p += blockDim.x) {
            i64 l, ow;
            const i64 n = divmod(p, L, l);
            const i64 oh = divmod(l, OW, ow);
            const i64 ih = oh * sh - ph + i * dh, iw = ow * sw - pw + j * dw;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                s += (acc_t)dy[(n * K + k) * L + l] * (acc_t)x[((n * C + ci) * H + ih) * W + iw];
        }
        s = block_sum(s, shm);
        if (threadIdx.x == 0) gw[q] = (T)s;
    }
}

// db[k] = sum over n and l of dy[n, k, l]; one block per channel.
KERNEL_1024(bias_grad)(const T* __restrict__ dy, T* __restrict__ db, i64 N, i64 K, i64 L) {
    __shared__ acc_t shm[32];
    for (i64 k = blockIdx.x; k < K; k += gridDim.x) {
        acc_t s = 0;
        for (i64 p = threadIdx.x; p < N * L; p += blockDim.x) {
            i64 l;
            const i64 n = divmod(p, L, l);
            s += dy[(n * K + k) * L + l];
        }
        s = block_sum(s, shm);
        if (threadIdx.x == 0) db[k] = (T)s;
    }
}
