// Per-step gate kernels of the fused recurrent layers (semantics of kernels/cpu/rnn.py).
// One thread per (sample, hidden unit); gate blocks of a row are [g0 | g1 | ...], each hh wide,
// in MXNet's order (LSTM i, f, g, o; GRU r, z, n).
#include "common.cuh"

__device__ __forceinline__ float th(float x) { return tanhf(x); }
__device__ __forceinline__ double th(double x) { return tanh(x); }
__device__ __forceinline__ T sigm(T x) { return T(1) / (T(1) + ex(-x)); }

// gates = activations of xg + hg; c = f * c_prev + i * g; h = o * tanh(c)
KERNEL(lstm_step)(const T* __restrict__ xg, const T* __restrict__ hg, const T* __restrict__ c_prev,
                  T* __restrict__ gates, T* __restrict__ c, T* __restrict__ h, i64 n, i64 hh) {
    GRID_LOOP(e, n * hh) {
        i64 j;
        const i64 b = divmod(e, hh, j), r = b * 4 * hh + j;
        const T i = sigm(xg[r] + hg[r]), f = sigm(xg[r + hh] + hg[r + hh]);
        const T g = th(xg[r + 2 * hh] + hg[r + 2 * hh]), o = sigm(xg[r + 3 * hh] + hg[r + 3 * hh]);
        const T cc = f * c_prev[e] + i * g;
        gates[r] = i; gates[r + hh] = f; gates[r + 2 * hh] = g; gates[r + 3 * hh] = o;
        c[e] = cc;
        h[e] = o * th(cc);
    }
}

// dpre: the gate pre-activation gradients; dc is overwritten with the gradient for c_prev.
KERNEL(lstm_step_back)(const T* __restrict__ dy, const T* __restrict__ dh, T* __restrict__ dc,
                       const T* __restrict__ gates, const T* __restrict__ c, const T* __restrict__ c_prev,
                       T* __restrict__ dpre, i64 n, i64 hh) {
    GRID_LOOP(e, n * hh) {
        i64 j;
        const i64 b = divmod(e, hh, j), r = b * 4 * hh + j;
        const T i = gates[r], f = gates[r + hh], g = gates[r + 2 * hh], o = gates[r + 3 * hh];
        const T tc = th(c[e]), dht = dy[e] + dh[e];
        const T dct = dc[e] + dht * o * (T(1) - tc * tc);
        dpre[r] = dct * g * i * (T(1) - i);
        dpre[r + hh] = dct * c_prev[e] * f * (T(1) - f);
        dpre[r + 2 * hh] = dct * i * (T(1) - g * g);
        dpre[r + 3 * hh] = dht * tc * o * (T(1) - o);
        dc[e] = dct * f;
    }
}

// hg already holds wh h + bh; n = tanh(xn + r * hg_n), h = (1 - z) n + z h_prev
KERNEL(gru_step)(const T* __restrict__ xg, const T* __restrict__ hg, const T* __restrict__ h_prev,
                 T* __restrict__ gates, T* __restrict__ hn, T* __restrict__ h, i64 n, i64 hh) {
    GRID_LOOP(e, n * hh) {
        i64 j;
        const i64 b = divmod(e, hh, j), r = b * 3 * hh + j;
        const T rg = sigm(xg[r] + hg[r]), z = sigm(xg[r + hh] + hg[r + hh]);
        const T cand = th(xg[r + 2 * hh] + rg * hg[r + 2 * hh]);
        gates[r] = rg; gates[r + hh] = z; gates[r + 2 * hh] = cand;
        hn[e] = hg[r + 2 * hh];
        h[e] = (T(1) - z) * cand + z * h_prev[e];
    }
}

// dh is overwritten with its direct part for h_prev (dh * z); dhg wh adds the rest.
KERNEL(gru_step_back)(const T* __restrict__ dy, T* __restrict__ dh, const T* __restrict__ gates,
                      const T* __restrict__ hn, const T* __restrict__ h_prev, T* __restrict__ dxg,
                      T* __restrict__ dhg, i64 n, i64 hh) {
    GRID_LOOP(e, n * hh) {
        i64 j;
        const i64 b = divmod(e, hh, j), r = b * 3 * hh + j;
        const T rg = gates[r], z = gates[r + hh], cand = gates[r + 2 * hh];
        const T dht = dy[e] + dh[e];
        const T dan = dht * (T(1) - z) * (T(1) - cand * cand);
        const T dar = dan * hn[e] * rg * (T(1) - rg);
        const T daz = dht * (h_prev[e] - cand) * z * (T(1) - z);
        dxg[r] = dar; dxg[r + hh] = daz; dxg[r + 2 * hh] = dan;
        dhg[r] = dar; dhg[r + hh] = daz; dhg[r + 2 * hh] = dan * rg;
        dh[e] = dht * z;
    }
}

// h = relu or tanh of xg + hg (relu != 0 picks relu)
KERNEL(simple_step)(const T* __restrict__ xg, const T* __restrict__ hg, T* __restrict__ h, i64 total,
                    i64 relu) {
    GRID_LOOP(e, total) {
        const T a = xg[e] + hg[e];
        h[e] = relu ? (a > T(0) ? a : T(0)) : th(a);
    }
}

KERNEL(simple_step_back)(const T* __restrict__ dy, const T* __restrict__ dh, const T* __restrict__ h,
                         T* __restrict__ da, i64 total, i64 relu) {
    GRID_LOOP(e, total) {
        const T d = dy[e] + dh[e], y = h[e];
        da[e] = relu ? (y > T(0) ? d : T(0)) : d * (T(1) - y * y);
    }
}
