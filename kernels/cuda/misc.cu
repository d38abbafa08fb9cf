// Dropout masks and embedding lookup (semantics of kernels/cpu/misc.py).
#include "common.cuh"

// Inverted-dropout mask from a counter-based draw, bit-identical to the CPU
// kernel (kernels/cpu/misc.py): element i keeps its unit (value `scale`) when
// the top 24 bits of splitmix64(seed + (i+1)*golden) are >= threshold
// (= ceil(p * 2^24)), else 0. The draw depends only on (seed, i), so any grid
// gives the same mask, and no random state lives on the device. The seed
// arrives as a non-negative i64 (it is drawn in [0, 2^63)); the arithmetic is
// unsigned 64-bit, wrapping as NumPy's uint64 does.
KERNEL(dropout_mask)(T* __restrict__ mask, i64 n, i64 seed, i64 threshold, double scale) {
    typedef unsigned long long u64;
    const T keep = (T)scale;
    const u64 s = (u64)seed, thr = (u64)threshold;
    GRID_LOOP(i, n) {
        u64 z = s + (u64)(i + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z = z ^ (z >> 31);
        mask[i] = (z >> 40) >= thr ? keep : T(0);
    }
}

// Row of weight (rows, dim) picked by idx, NumPy style: a negative index
// counts from the end. The op layer checks the range first; an index outside
// [-rows, rows) still never reads out of bounds: its output row is NaN.
__device__ __forceinline__ i64 wrap_row(i64 r, i64 rows) { return r < 0 ? r + rows : r; }

KERNEL(embedding_forward)(const i64* __restrict__ idx, const T* __restrict__ weight,
                          T* __restrict__ y, i64 n, i64 rows, i64 dim) {
    GRID_LOOP(e, n * dim) {
        i64 k;
        const i64 r = wrap_row(idx[divmod(e, dim, k)], rows);
        y[e] = (r >= 0 && r < rows) ? weight[r * dim + k] : (T)quiet_nan();
    }
}

// dw (zeroed by the caller) += dy[i] at row idx[i]. Repeated indices add into
// the same row from different threads, hence atomicAdd (native for float and
// double on sm_60+); the summation order, and so the last bits, may vary.
KERNEL(embedding_backward)(const T* __restrict__ dy, const i64* __restrict__ idx,
                           T* __restrict__ dw, i64 n, i64 rows, i64 dim) {
    GRID_LOOP(e, n * dim) {
        i64 k;
        const i64 r = wrap_row(idx[divmod(e, dim, k)], rows);
        if (r >= 0 && r < rows) atomicAdd(dw + r * dim + k, dy[e]);
    }
}
