// Batch, layer and instance normalization, forward and backward.
//
// Notation (as kernels/cpu/norm.py): xhat = (x - mean) * invstd with the biased
// variance, invstd = 1 / sqrt(var + eps); statistics accumulate in double and
// are stored in the array's dtype. Backward per group of M normalized values:
//   dbeta = sum(dy), dgamma = sum(dy * xhat),
//   dx = gamma*invstd * (dy - dbeta/M - xhat*dgamma/M).
//
// Batch norm views x as (O, C, I) with C the channel axis. Each pass is two
// kernels: a per-channel reduction that also writes per-channel coefficients
// (in the array's dtype, rounded once as on the CPU), then one elementwise
// kernel over all of x, which is parallel and coalesced for any layout. The
// reductions come in two shapes:
// * *_planes (I > 1, NCHW): one block per channel, the block sweeping the
//   channel's O contiguous runs of I values;
// * *_cols (I == 1, (N, C)): 32 channels per block, one lane per channel, so
//   each warp reads 32 consecutive values of a row.
// Layer and instance norm normalize rows of an (R, K) array with one block
// per row; they differ only in how gamma/beta are indexed (per column k, or
// per row: gamma[r % C]).
#include "common.cuh"

// ------------------------------------------------------------ batch norm

// Forward outputs of channel c: the statistics and the coefficients of
// y = (x - mean) * a + b (a = gamma*invstd in double, rounded once).
__device__ __forceinline__ void store_forward(i64 c, i64 C, acc_t mu, acc_t inv, const T* gamma,
                                              const T* beta, T* mean, T* invstd, T* coef) {
    mean[c] = (T)mu;
    invstd[c] = (T)inv;
    coef[c] = (T)((acc_t)gamma[c] * inv);
    coef[C + c] = beta[c];
}

KERNEL_1024(bn_stats_planes)(const T* __restrict__ x, const T* __restrict__ gamma,
                        const T* __restrict__ beta, T* __restrict__ mean, T* __restrict__ invstd,
                        T* __restrict__ coef, i64 O, i64 C, i64 I, double eps) {
    __shared__ acc_t shm[32];
    const i64 M = O * I;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        acc_t s = 0;
        for (i64 p = threadIdx.x; p < M; p += blockDim.x) {
            i64 i;
            const i64 o = divmod(p, I, i);
            s += x[(o * C + c) * I + i];
        }
        const acc_t mu = block_sum(s, shm) / (acc_t)M;
        acc_t q = 0;  // second pass over the (cached) channel: no cancellation
        for (i64 p = threadIdx.x; p < M; p += blockDim.x) {
            i64 i;
            const i64 o = divmod(p, I, i);
            const acc_t d = (acc_t)x[(o * C + c) * I + i] - mu;
            q += d * d;
        }
        const acc_t var = block_sum(q, shm) / (acc_t)M;
        if (threadIdx.x == 0)
            store_forward(c, C, mu, 1.0 / sqrt(var + eps), gamma, beta, mean, invstd, coef);
    }
}

KERNEL(bn_stats_cols)(const T* __restrict__ x, const T* __restrict__ gamma,
                      const T* __restrict__ beta, T* __restrict__ mean, T* __restrict__ invstd,
                      T* __restrict__ coef, i64 N, i64 C, double eps) {
    __shared__ acc_t tile[32][32];
    const i64 lane = threadIdx.x & 31, row0 = threadIdx.x >> 5, rows = blockDim.x >> 5;
    for (i64 c0 = (i64)blockIdx.x * 32; c0 < C; c0 += (i64)gridDim.x * 32) {
        const i64 c = c0 + lane;
        const bool valid = c < C;
        acc_t s = 0;
        if (valid)
            for (i64 n = row0; n < N; n += rows) s += x[n * C + c];
        const acc_t mu = tile_column_sum(s, tile) / (acc_t)N;
        acc_t q = 0;
        if (valid)
            for (i64 n = row0; n < N; n += rows) {
                const acc_t d = (acc_t)x[n * C + c] - mu;
                q += d * d;
            }
        const acc_t var = tile_column_sum(q, tile) / (acc_t)N;
        if (valid && row0 == 0)
            store_forward(c, C, mu, 1.0 / sqrt(var + eps), gamma, beta, mean, invstd, coef);
    }
}

// y[o, c, i] = (x - mean[c]) * a[c] + b[c]  (center, training), or
// x * a[c] + b[c] (inference, mean unused). Elementwise over all of x.
KERNEL(channel_affine)(const T* __restrict__ x, const T* __restrict__ a, const T* __restrict__ b,
                       const T* __restrict__ mean, T* __restrict__ y, i64 O, i64 C, i64 I,
                       i64 center) {
    GRID_LOOP(e, O * C * I) {
        i64 i, c;
        divmod(divmod(e, I, i), C, c);
        const T v = center ? x[e] - mean[c] : x[e];
        y[e] = v * a[c] + b[c];
    }
}

// Inference coefficients: a = gamma / sqrt(running_var + eps),
// b = beta - running_mean * a, computed in double and rounded once.
KERNEL(bn_infer_coef)(const T* __restrict__ gamma, const T* __restrict__ beta,
                      const T* __restrict__ rmean, const T* __restrict__ rvar, T* __restrict__ a,
                      T* __restrict__ b, i64 C, double eps) {
    GRID_LOOP(c, C) {
        const acc_t ac = (acc_t)gamma[c] / sqrt((acc_t)rvar[c] + eps);
        a[c] = (T)ac;
        b[c] = (T)((acc_t)beta[c] - (acc_t)rmean[c] * ac);
    }
}

// running = momentum * running + (1 - momentum) * batch, with the biased batch
// variance recovered from invstd (MXNet's convention; see the CPU module).
KERNEL(bn_update_running)(T* __restrict__ rmean, T* __restrict__ rvar,
                          const T* __restrict__ mean, const T* __restrict__ invstd, i64 C,
                          double eps, double momentum) {
    GRID_LOOP(c, C) {
        const acc_t inv = invstd[c];
        const acc_t var = 1.0 / (inv * inv) - eps;
        rmean[c] = (T)(momentum * (acc_t)rmean[c] + (1.0 - momentum) * (acc_t)mean[c]);
        rvar[c] = (T)(momentum * (acc_t)rvar[c] + (1.0 - momentum) * var);
    }
}

// Backward coefficients of channel c from sg = sum(dy), sgx = sum(dy*(x - mean)):
// dx = k1*dy + k2*(x - mean) + k3.
__device__ __forceinline__ void store_backward(i64 c, i64 C, i64 M, acc_t sg, acc_t sgx,
                                               const T* gamma, const T* invstd, T* dgamma,
                                               T* dbeta, T* coef) {
    const acc_t inv = invstd[c];
    const acc_t k1 = (acc_t)gamma[c] * inv;
    dbeta[c] = (T)sg;
    dgamma[c] = (T)(sgx * inv);
    coef[c] = (T)k1;
    coef[C + c] = (T)(-k1 * inv * inv * sgx / (acc_t)M);
    coef[2 * C + c] = (T)(-k1 * sg / (acc_t)M);
}

KERNEL_1024(bn_backward_planes)(const T* __restrict__ dy, const T* __restrict__ x,
                           const T* __restrict__ gamma, const T* __restrict__ mean,
                           const T* __restrict__ invstd, T* __restrict__ dgamma,
                           T* __restrict__ dbeta, T* __restrict__ coef, i64 O, i64 C, i64 I) {
    __shared__ acc_t shm[32];
    const i64 M = O * I;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        const acc_t mu = mean[c];
        acc_t sg = 0, sgx = 0;
        for (i64 p = threadIdx.x; p < M; p += blockDim.x) {
            i64 i;
            const i64 q = (divmod(p, I, i) * C + c) * I + i;
            sg += dy[q];
            sgx += (acc_t)dy[q] * ((acc_t)x[q] - mu);
        }
        sg = block_sum(sg, shm);
        sgx = block_sum(sgx, shm);
        if (threadIdx.x == 0) store_backward(c, C, M, sg, sgx, gamma, invstd, dgamma, dbeta, coef);
    }
}

KERNEL(bn_backward_cols)(const T* __restrict__ dy, const T* __restrict__ x,
                         const T* __restrict__ gamma, const T* __restrict__ mean,
                         const T* __restrict__ invstd, T* __restrict__ dgamma,
                         T* __restrict__ dbeta, T* __restrict__ coef, i64 N, i64 C) {
    __shared__ acc_t tile[32][32];
    const i64 lane = threadIdx.x & 31, row0 = threadIdx.x >> 5, rows = blockDim.x >> 5;
    for (i64 c0 = (i64)blockIdx.x * 32; c0 < C; c0 += (i64)gridDim.x * 32) {
        const i64 c = c0 + lane;
        const bool valid = c < C;
        acc_t sg = 0, sgx = 0;
        if (valid) {
            const acc_t mu = mean[c];
            for (i64 n = row0; n < N; n += rows) {
                sg += dy[n * C + c];
                sgx += (acc_t)dy[n * C + c] * ((acc_t)x[n * C + c] - mu);
            }
        }
        sg = tile_column_sum(sg, tile);
        sgx = tile_column_sum(sgx, tile);
        if (valid && row0 == 0)
            store_backward(c, C, N, sg, sgx, gamma, invstd, dgamma, dbeta, coef);
    }
}

// dx = k1[c]*dy + k2[c]*(x - mean[c]) + k3[c], elementwise in the array's dtype.
KERNEL(bn_backward_apply)(const T* __restrict__ dy, const T* __restrict__ x,
                          const T* __restrict__ mean, const T* __restrict__ coef,
                          T* __restrict__ dx, i64 O, i64 C, i64 I) {
    GRID_LOOP(e, O * C * I) {
        i64 i, c;
        divmod(divmod(e, I, i), C, c);
        dx[e] = coef[c] * dy[e] + coef[C + c] * (x[e] - mean[c]) + coef[2 * C + c];
    }
}

// ------------------------------------------------------ layer / instance norm

// Row r of (R, K): statistics over the row, then the affine map with
// gamma/beta per column (layer norm) or per row, index r % C (instance norm).
KERNEL(rows_norm_forward)(const T* __restrict__ x, const T* __restrict__ gamma,
                          const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ mean,
                          T* __restrict__ invstd, i64 R, i64 K, i64 C, i64 per_row, double eps) {
    __shared__ acc_t shm[32];
    for (i64 r = blockIdx.x; r < R; r += gridDim.x) {
        const T* xr = x + r * K;
        T* yr = y + r * K;
        acc_t s = 0;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x) s += xr[k];
        const acc_t mu = block_sum(s, shm) / (acc_t)K;
        acc_t q = 0;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x) {
            const acc_t d = (acc_t)xr[k] - mu;
            q += d * d;
        }
        const acc_t inv = 1.0 / sqrt(block_sum(q, shm) / (acc_t)K + eps);
        if (threadIdx.x == 0) {
            mean[r] = (T)mu;
            invstd[r] = (T)inv;
        }
        const T m = (T)mu, si = (T)inv;
        if (per_row) {
            const T a = gamma[r % C] * si, b = beta[r % C];
            for (i64 k = threadIdx.x; k < K; k += blockDim.x) yr[k] = (xr[k] - m) * a + b;
        } else {
            for (i64 k = threadIdx.x; k < K; k += blockDim.x)
                yr[k] = (xr[k] - m) * si * gamma[k] + beta[k];
        }
    }
}

// dx of row r: inv * (g*gamma_k - sg/K - xhat*sgx/K) with sg = sum(g*gamma_k)
// and sgx = sum(g*gamma_k*xhat). For per-row gamma (instance norm) gamma_k is
// one number, so the sums are taken without it and also stored as the row's
// dbeta/dgamma partials (row_sg, row_sgx), which the caller sums per channel.
KERNEL(rows_norm_backward)(const T* __restrict__ dy, const T* __restrict__ x,
                           const T* __restrict__ gamma, const T* __restrict__ mean,
                           const T* __restrict__ invstd, T* __restrict__ dx,
                           acc_t* __restrict__ row_sg, acc_t* __restrict__ row_sgx, i64 R, i64 K,
                           i64 C, i64 per_row) {
    __shared__ acc_t shm[32];
    for (i64 r = blockIdx.x; r < R; r += gridDim.x) {
        const T *g = dy + r * K, *xr = x + r * K;
        const acc_t mu = mean[r], inv = invstd[r];
        const acc_t gr = per_row ? (acc_t)gamma[r % C] : 1.0;
        acc_t sg = 0, sgx = 0;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x) {
            const acc_t gk = per_row ? (acc_t)g[k] : (acc_t)g[k] * gamma[k];
            sg += gk;
            sgx += gk * (((acc_t)xr[k] - mu) * inv);
        }
        sg = block_sum(sg, shm);
        sgx = block_sum(sgx, shm);
        if (per_row && threadIdx.x == 0) {
            row_sg[r] = sg;
            row_sgx[r] = sgx;
        }
        sg = sg * gr / (acc_t)K;
        sgx = sgx * gr / (acc_t)K;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x) {
            const acc_t gk = (acc_t)g[k] * (per_row ? gr : (acc_t)gamma[k]);
            const acc_t xh = ((acc_t)xr[k] - mu) * inv;
            dx[r * K + k] = (T)(inv * (gk - sg - xh * sgx));
        }
    }
}

// Layer-norm parameter gradients: partial column sums over a slice of rows,
// pg[part, k] = sum(dy * xhat), pb[part, k] = sum(dy). Blocks: x over tiles of
// 32 columns, y over row slices, so that short-and-wide (R, K) still fills the
// GPU; the caller adds the `parts` partials.
KERNEL(ln_param_grad)(const T* __restrict__ dy, const T* __restrict__ x,
                      const T* __restrict__ mean, const T* __restrict__ invstd,
                      acc_t* __restrict__ pg, acc_t* __restrict__ pb, i64 R, i64 K, i64 parts) {
    __shared__ acc_t tile[32][32];
    const i64 lane = threadIdx.x & 31, row0 = threadIdx.x >> 5, rows = blockDim.x >> 5;
    for (i64 part = blockIdx.y; part < parts; part += gridDim.y) {
        const i64 r0 = part * R / parts, r1 = (part + 1) * R / parts;
        for (i64 c0 = (i64)blockIdx.x * 32; c0 < K; c0 += (i64)gridDim.x * 32) {
            const i64 k = c0 + lane;
            acc_t sgx = 0, sg = 0;
            if (k < K)
                for (i64 r = r0 + row0; r < r1; r += rows) {
                    const acc_t g = dy[r * K + k];
                    sg += g;
                    sgx += g * (((acc_t)x[r * K + k] - (acc_t)mean[r]) * (acc_t)invstd[r]);
                }
            sg = tile_column_sum(sg, tile);
            sgx = tile_column_sum(sgx, tile);
            if (k < K && row0 == 0) {
                pg[part * K + k] = sgx;
                pb[part * K + k] = sg;
            }
        }
    }
}
