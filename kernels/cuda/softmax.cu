// Softmax, log-softmax and fused softmax-cross-entropy over any axis.
//
// An array is viewed as (O, K, I) with K the softmax axis (element (o, k, i)
// at (o*K + k)*I + i). Two kernel shapes, as on the CPU:
// * *_rows (I == 1, K large): one block per row; max and sum are block
//   reductions, so a 1000-class row is read by 256 threads in parallel.
// * *_cols (I > 1, or short rows): one thread per (o, i) sweeping K; for
//   I > 1 neighbouring threads read neighbouring i, so every load is coalesced.
//
// Numerics match kernels/cpu/softmax.py: shift by the row max (NaN
// propagates: a NaN logit makes its row NaN), exp in the array's precision,
// sums in double. log_softmax is (x - m) - log(s); the cross-entropy loss is
// (m - x[label]) + log(s) (sparse) or -sum(label * log_softmax(x)) (dense),
// and the forward also returns the probabilities for a one-pass backward.
#include "common.cuh"

// Row max m and sum of exp(x - m) over a row, computed by the whole block.
__device__ void row_stats(const T* xr, i64 K, acc_t* shm, T& m, acc_t& s) {
    acc_t mx = neg_inf();
    for (i64 k = threadIdx.x; k < K; k += blockDim.x) mx = nan_max(mx, (acc_t)xr[k]);
    m = (T)block_max(mx, shm);  // exact: every float32 is a double
    acc_t t = 0;
    for (i64 k = threadIdx.x; k < K; k += blockDim.x) t += ex(xr[k] - m);
    s = block_sum(t, shm);
}

// The same for column (o, i) of an (O, K, I) array, by one thread.
__device__ void col_stats(const T* xc, i64 K, i64 I, T& m, acc_t& s) {
    m = xc[0];
    for (i64 k = 1; k < K; ++k) m = nan_max(m, xc[k * I]);
    s = 0;
    for (i64 k = 0; k < K; ++k) s += ex(xc[k * I] - m);
}

KERNEL(softmax_rows)(const T* __restrict__ x, T* __restrict__ y, i64 R, i64 K, i64 log_mode) {
    __shared__ acc_t shm[32];
    for (i64 r = blockIdx.x; r < R; r += gridDim.x) {
        const T* xr = x + r * K;
        T* yr = y + r * K;
        T m;
        acc_t s;
        row_stats(xr, K, shm, m, s);
        const acc_t ls = lg(s), inv = 1.0 / s;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x)
            yr[k] = log_mode ? (T)((acc_t)(xr[k] - m) - ls) : (T)(ex(xr[k] - m) * inv);
    }
}

KERNEL(softmax_cols)(const T* __restrict__ x, T* __restrict__ y, i64 O, i64 K, i64 I,
                     i64 log_mode) {
    GRID_LOOP(e, O * I) {
        i64 i;
        const i64 o = divmod(e, I, i);
        const T* xc = x + o * K * I + i;
        T* yc = y + o * K * I + i;
        T m;
        acc_t s;
        col_stats(xc, K, I, m, s);
        const acc_t ls = lg(s), inv = 1.0 / s;
        for (i64 k = 0; k < K; ++k)
            yc[k * I] = log_mode ? (T)((acc_t)(xc[k * I] - m) - ls) : (T)(ex(xc[k * I] - m) * inv);
    }
}

// softmax:     dx = y * (dy - sum(dy * y))
// log_softmax: dx = dy - exp(y) * sum(dy)
__device__ __forceinline__ T softmax_grad(T g, T v, T s, i64 log_mode) {
    return log_mode ? g - ex(v) * s : v * (g - s);
}

KERNEL(softmax_backward_rows)(const T* __restrict__ dy, const T* __restrict__ y,
                              T* __restrict__ dx, i64 R, i64 K, i64 log_mode) {
    __shared__ acc_t shm[32];
    for (i64 r = blockIdx.x; r < R; r += gridDim.x) {
        const T *g = dy + r * K, *v = y + r * K;
        acc_t t = 0;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x)
            t += log_mode ? (acc_t)g[k] : (acc_t)g[k] * v[k];
        const T s = (T)block_sum(t, shm);
        for (i64 k = threadIdx.x; k < K; k += blockDim.x)
            dx[r * K + k] = softmax_grad(g[k], v[k], s, log_mode);
    }
}

KERNEL(softmax_backward_cols)(const T* __restrict__ dy, const T* __restrict__ y,
                              T* __restrict__ dx, i64 O, i64 K, i64 I, i64 log_mode) {
    GRID_LOOP(e, O * I) {
        i64 i;
        const i64 base = divmod(e, I, i) * K * I + i;
        acc_t t = 0;
        for (i64 k = 0; k < K; ++k) {
            const i64 q = base + k * I;
            t += log_mode ? (acc_t)dy[q] : (acc_t)dy[q] * y[q];
        }
        const T s = (T)t;
        for (i64 k = 0; k < K; ++k) {
            const i64 q = base + k * I;
            dx[q] = softmax_grad(dy[q], y[q], s, log_mode);
        }
    }
}

// Loss of a sparse label: (m - x[label]) + log(s). The op layer validates the
// labels first (check_labels); an out-of-range label still must not read out
// of bounds, so it yields NaN.
__device__ __forceinline__ T sparse_loss(const T* xc, i64 stride, i64 K, i64 label, T m, acc_t ls) {
    if (label < 0 || label >= K) return (T)quiet_nan();
    return (T)(((acc_t)m - (acc_t)xc[label * stride]) + ls);
}

// Forward of the fused loss over rows (I == 1). sparse: label[r] is a class
// index (int64); else dense_label (R, K) holds distributions.
KERNEL(ce_forward_rows)(const T* __restrict__ x, const i64* __restrict__ label,
                        const T* __restrict__ dense_label, T* __restrict__ loss,
                        T* __restrict__ prob, i64 R, i64 K, i64 sparse) {
    __shared__ acc_t shm[32];
    for (i64 r = blockIdx.x; r < R; r += gridDim.x) {
        const T* xr = x + r * K;
        T* pr = prob + r * K;
        T m;
        acc_t s;
        row_stats(xr, K, shm, m, s);
        const acc_t ls = lg(s), inv = 1.0 / s;
        if (sparse) {
            for (i64 k = threadIdx.x; k < K; k += blockDim.x) pr[k] = (T)(ex(xr[k] - m) * inv);
            if (threadIdx.x == 0) loss[r] = sparse_loss(xr, 1, K, label[r], m, ls);
        } else {
            // prob = exp(log_softmax), as the CPU computes it
            const T* lr = dense_label + r * K;
            acc_t t = 0;
            for (i64 k = threadIdx.x; k < K; k += blockDim.x) {
                const T lp = (T)((acc_t)(xr[k] - m) - ls);
                t += (acc_t)lr[k] * lp;
                pr[k] = ex(lp);
            }
            t = block_sum(t, shm);
            if (threadIdx.x == 0) loss[r] = (T)(-t);
        }
    }
}

// The same for (O, K, I) with one thread per (o, i); label is (O, I) (sparse)
// or (O, K, I) (dense).
KERNEL(ce_forward_cols)(const T* __restrict__ x, const i64* __restrict__ label,
                        const T* __restrict__ dense_label, T* __restrict__ loss,
                        T* __restrict__ prob, i64 O, i64 K, i64 I, i64 sparse) {
    GRID_LOOP(e, O * I) {
        i64 i;
        const i64 base = divmod(e, I, i) * K * I + i;
        const T* xc = x + base;
        T m;
        acc_t s;
        col_stats(xc, K, I, m, s);
        const acc_t ls = lg(s), inv = 1.0 / s;
        if (sparse) {
            for (i64 k = 0; k < K; ++k) prob[base + k * I] = (T)(ex(xc[k * I] - m) * inv);
            loss[e] = sparse_loss(xc, I, K, label[e], m, ls);
        } else {
            acc_t t = 0;
            for (i64 k = 0; k < K; ++k) {
                const T lp = (T)((acc_t)(xc[k * I] - m) - ls);
                t += (acc_t)dense_label[base + k * I] * lp;
                prob[base + k * I] = ex(lp);
            }
            loss[e] = (T)(-t);
        }
    }
}

// dx = (prob - onehot(label)) * dloss, computed as prob*d, then minus d at the
// label (the CPU's order of operations). Elementwise over (O, K, I).
KERNEL(ce_sparse_backward)(const T* __restrict__ dloss, const T* __restrict__ prob,
                           const i64* __restrict__ label, T* __restrict__ dx, i64 O, i64 K,
                           i64 I) {
    GRID_LOOP(e, O * K * I) {
        i64 i, k;
        const i64 o = divmod(divmod(e, I, i), K, k);
        const i64 j = o * I + i;
        const T d = dloss[j];
        T v = prob[e] * d;
        if (label[j] == k) v -= d;
        dx[e] = v;
    }
}

// Dense labels: dx = (prob * sum(label) - label) * dloss (equal to
// prob - label when the label rows sum to one).
KERNEL(ce_dense_backward_rows)(const T* __restrict__ dloss, const T* __restrict__ prob,
                               const T* __restrict__ label, T* __restrict__ dx, i64 R,
                               i64 K) {
    __shared__ acc_t shm[32];
    for (i64 r = blockIdx.x; r < R; r += gridDim.x) {
        const T* lr = label + r * K;
        acc_t t = 0;
        for (i64 k = threadIdx.x; k < K; k += blockDim.x) t += lr[k];
        const T lsum = (T)block_sum(t, shm), d = dloss[r];
        for (i64 k = threadIdx.x; k < K; k += blockDim.x)
            dx[r * K + k] = (prob[r * K + k] * lsum - lr[k]) * d;
    }
}

KERNEL(ce_dense_backward_cols)(const T* __restrict__ dloss, const T* __restrict__ prob,
                               const T* __restrict__ label, T* __restrict__ dx, i64 O, i64 K,
                               i64 I) {
    GRID_LOOP(e, O * I) {
        i64 i;
        const i64 base = divmod(e, I, i) * K * I + i;
        acc_t t = 0;
        for (i64 k = 0; k < K; ++k) t += label[base + k * I];
        const T lsum = (T)t, d = dloss[e];
        for (i64 k = 0; k < K; ++k) {
            const i64 q = base + k * I;
            dx[q] = (prob[q] * lsum - label[q]) * d;
        }
    }
}
