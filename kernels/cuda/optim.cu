// Fused optimizer updates: one elementwise pass per parameter and step,
// updating the weight and the optimizer state in place. Formulas, order of
// operations and clipping rules are those of kernels/cpu/optim.py (MXNet 1.x):
// * clip < 0 means no clipping; clipping keeps NaN as NaN;
// * all arithmetic is in double (the hyper-parameters arrive as double) and
//   each stored value is rounded once to the buffer's dtype;
// * this module is compiled with --fmad=false: without FMA contraction the
//   float64 results are bit-identical to the CPU kernels (which do not
//   contract either), so a model trains the same way on both devices.
// Every kernel sees flat buffers of n elements.
#include "common.cuh"

__device__ __forceinline__ double clip_to(double v, double bound) {
    if (bound >= 0.0) {
        if (v > bound) return bound;
        if (v < -bound) return -bound;
    }
    return v;
}

// The formulas of the optimizers that also have multi-tensor kernels, one element at a time
// (each kernel form below calls them).

// w = (1 - lr*wd)*w - lr*clip(rescale*g)  (decay after clipping)
__device__ __forceinline__ void sgd_at(T* w, const T* g, i64 i, double lr, double wd,
                                       double rescale, double clip) {
    const double gi = clip_to(rescale * (double)g[i], clip);
    w[i] = (T)((1.0 - lr * wd) * (double)w[i] - lr * gi);
}

// mom = momentum*mom - lr*wd*w - lr*clip(rescale*g); w += mom
__device__ __forceinline__ void sgd_mom_at(T* w, const T* g, T* mom, i64 i, double lr,
                                           double momentum, double wd, double rescale,
                                           double clip) {
    const double gi = clip_to(rescale * (double)g[i], clip);
    const double wi = w[i];
    const double m = momentum * (double)mom[i] - lr * wd * wi - lr * gi;
    mom[i] = (T)m;
    w[i] = (T)(wi + m);
}

// g' = clip(rescale*g) + wd*w; mom = momentum*mom - lr*g'; w += momentum*mom - lr*g' (MXNet's)
__device__ __forceinline__ void nag_mom_at(T* w, const T* g, T* mom, i64 i, double lr,
                                           double momentum, double wd, double rescale,
                                           double clip) {
    const double wi = w[i];
    const double gi = clip_to(rescale * (double)g[i], clip) + wd * wi;
    const double m = momentum * (double)mom[i] - lr * gi;
    mom[i] = (T)m;
    w[i] = (T)(wi + momentum * m - lr * gi);
}

// Adam, L2 decay folded into the gradient before clipping; lr already carries
// the bias correction (the caller folds it in).
__device__ __forceinline__ void adam_at(T* w, const T* g, T* mean, T* var, i64 i, double lr,
                                        double beta1, double beta2, double eps, double wd,
                                        double rescale, double clip) {
    const double wi = w[i];
    const double gi = clip_to(rescale * (double)g[i] + wd * wi, clip);
    const double m = beta1 * (double)mean[i] + (1.0 - beta1) * gi;
    const double v = beta2 * (double)var[i] + (1.0 - beta2) * gi * gi;
    mean[i] = (T)m;
    var[i] = (T)v;
    w[i] = (T)(wi - lr * m / (sqrt(v) + eps));
}

// AdamW: decoupled decay, w -= lr*(bias_corr*m/(sqrt(v) + eps) + wd*w).
__device__ __forceinline__ void adamw_at(T* w, const T* g, T* mean, T* var, i64 i, double lr,
                                         double beta1, double beta2, double eps, double wd,
                                         double rescale, double clip, double bias_corr) {
    const double gi = clip_to(rescale * (double)g[i], clip);
    const double m = beta1 * (double)mean[i] + (1.0 - beta1) * gi;
    const double v = beta2 * (double)var[i] + (1.0 - beta2) * gi * gi;
    mean[i] = (T)m;
    var[i] = (T)v;
    const double wi = w[i];
    w[i] = (T)(wi - lr * (bias_corr * m / (sqrt(v) + eps) + wd * wi));
}

KERNEL(sgd_update)(T* __restrict__ w, const T* __restrict__ g, i64 n, double lr, double wd,
                   double rescale, double clip) {
    GRID_LOOP(i, n) sgd_at(w, g, i, lr, wd, rescale, clip);
}

KERNEL(sgd_mom_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ mom, i64 n,
                       double lr, double momentum, double wd, double rescale, double clip) {
    GRID_LOOP(i, n) sgd_mom_at(w, g, mom, i, lr, momentum, wd, rescale, clip);
}

KERNEL(nag_mom_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ mom, i64 n,
                       double lr, double momentum, double wd, double rescale, double clip) {
    GRID_LOOP(i, n) nag_mom_at(w, g, mom, i, lr, momentum, wd, rescale, clip);
}

KERNEL(adam_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ mean,
                    T* __restrict__ var, i64 n, double lr, double beta1, double beta2,
                    double eps, double wd, double rescale, double clip) {
    GRID_LOOP(i, n) adam_at(w, g, mean, var, i, lr, beta1, beta2, eps, wd, rescale, clip);
}

KERNEL(adamw_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ mean,
                     T* __restrict__ var, i64 n, double lr, double beta1, double beta2,
                     double eps, double wd, double rescale, double clip, double bias_corr) {
    GRID_LOOP(i, n) adamw_at(w, g, mean, var, i, lr, beta1, beta2, eps, wd, rescale, clip, bias_corr);
}

// Multi-tensor forms: one launch updates every parameter of a step. table[k*cols + j] is the
// device address of buffer j (weight, grad, states) of parameter k and sizes[k] its length;
// lrs/wds (and AdamW's bias_corrs) are per parameter. blockIdx.y strides over the parameters,
// the x dimension over each one's elements.
#define PARAM_LOOP(k, n_params) for (i64 k = blockIdx.y; k < (n_params); k += gridDim.y)
#define BUF(k, j) ((T*)table[(k) * cols + (j)])

KERNEL(sgd_update_multi)(const i64* __restrict__ table, const i64* __restrict__ sizes,
                         i64 n_params, i64 cols, const acc_t* __restrict__ lrs,
                         const acc_t* __restrict__ wds, double rescale, double clip) {
    PARAM_LOOP(k, n_params) {
        GRID_LOOP(i, sizes[k]) sgd_at(BUF(k, 0), BUF(k, 1), i, lrs[k], wds[k], rescale, clip);
    }
}

KERNEL(sgd_mom_update_multi)(const i64* __restrict__ table, const i64* __restrict__ sizes,
                             i64 n_params, i64 cols, const acc_t* __restrict__ lrs,
                             const acc_t* __restrict__ wds, double momentum, double rescale,
                             double clip) {
    PARAM_LOOP(k, n_params) {
        GRID_LOOP(i, sizes[k])
            sgd_mom_at(BUF(k, 0), BUF(k, 1), BUF(k, 2), i, lrs[k], momentum, wds[k], rescale, clip);
    }
}

KERNEL(nag_mom_update_multi)(const i64* __restrict__ table, const i64* __restrict__ sizes,
                             i64 n_params, i64 cols, const acc_t* __restrict__ lrs,
                             const acc_t* __restrict__ wds, double momentum, double rescale,
                             double clip) {
    PARAM_LOOP(k, n_params) {
        GRID_LOOP(i, sizes[k])
            nag_mom_at(BUF(k, 0), BUF(k, 1), BUF(k, 2), i, lrs[k], momentum, wds[k], rescale, clip);
    }
}

KERNEL(adam_update_multi)(const i64* __restrict__ table, const i64* __restrict__ sizes,
                          i64 n_params, i64 cols, const acc_t* __restrict__ lrs,
                          const acc_t* __restrict__ wds, double beta1, double beta2, double eps,
                          double rescale, double clip) {
    PARAM_LOOP(k, n_params) {
        GRID_LOOP(i, sizes[k])
            adam_at(BUF(k, 0), BUF(k, 1), BUF(k, 2), BUF(k, 3), i, lrs[k], beta1, beta2, eps,
                    wds[k], rescale, clip);
    }
}

KERNEL(adamw_update_multi)(const i64* __restrict__ table, const i64* __restrict__ sizes,
                           i64 n_params, i64 cols, const acc_t* __restrict__ lrs,
                           const acc_t* __restrict__ wds, const acc_t* __restrict__ bias_corrs,
                           double beta1, double beta2, double eps, double rescale, double clip) {
    PARAM_LOOP(k, n_params) {
        GRID_LOOP(i, sizes[k])
            adamw_at(BUF(k, 0), BUF(k, 1), BUF(k, 2), BUF(k, 3), i, lrs[k], beta1, beta2, eps,
                     wds[k], rescale, clip, bias_corrs[k]);
    }
}

// RMSProp, eps inside the square root; the new weight is clipped to
// [-clip_weights, clip_weights] when clip_weights >= 0.
KERNEL(rmsprop_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ state_n,
                       i64 n, double lr, double gamma1, double eps, double wd, double rescale,
                       double clip, double clip_weights) {
    GRID_LOOP(i, n) {
        const double wi = w[i];
        const double gi = clip_to(rescale * (double)g[i] + wd * wi, clip);
        const double ni = (1.0 - gamma1) * gi * gi + gamma1 * (double)state_n[i];
        state_n[i] = (T)ni;
        w[i] = (T)clip_to(wi - lr * gi / sqrt(ni + eps), clip_weights);
    }
}

// Centered RMSProp (Graves 2013): n, gavg and the momentum delta.
KERNEL(rmspropalex_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ state_n,
                           T* __restrict__ gavg, T* __restrict__ delta, i64 n, double lr,
                           double gamma1, double gamma2, double eps, double wd, double rescale,
                           double clip, double clip_weights) {
    GRID_LOOP(i, n) {
        const double wi = w[i];
        const double gi = clip_to(rescale * (double)g[i] + wd * wi, clip);
        const double ni = (1.0 - gamma1) * gi * gi + gamma1 * (double)state_n[i];
        const double ga = (1.0 - gamma1) * gi + gamma1 * (double)gavg[i];
        const double di = gamma2 * (double)delta[i] - lr * gi / sqrt(ni - ga * ga + eps);
        state_n[i] = (T)ni;
        gavg[i] = (T)ga;
        delta[i] = (T)di;
        w[i] = (T)clip_to(wi + di, clip_weights);
    }
}

// AdaGrad (MXNet 1.x): the decay is not accumulated in the history.
KERNEL(adagrad_update)(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ hist, i64 n,
                       double lr, double eps, double wd, double rescale, double clip) {
    GRID_LOOP(i, n) {
        const double gi = clip_to(rescale * (double)g[i], clip);
        const double h = (double)hist[i] + gi * gi;
        hist[i] = (T)h;
        const double wi = w[i];
        w[i] = (T)(wi - lr * (gi / sqrt(h + eps) + wd * wi));
    }
}
