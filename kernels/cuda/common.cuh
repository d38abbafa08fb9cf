// Shared definitions for every kernel family in kernels/cuda/*.cu.
//
// One source, two scalar types. Each .cu file is compiled once per dtype with
//   -DENGINE_SCALAR=float  -DENGINE_SUFFIX=f32   or
//   -DENGINE_SCALAR=double -DENGINE_SUFFIX=f64
// and every kernel is declared with KERNEL(name), which makes it an unmangled
// `extern "C"` entry point `name_f32` / `name_f64`. Plain C names (rather than
// template instantiations) are the same in the PTX, in RawModule.get_function
// and in the host emulator, so nothing has to know C++ name mangling.
//
// Kernel parameters come in exactly three kinds: pointers, `i64` and `double`.
// The Python launcher (kernels/cuda/_runtime.py) parses the KERNEL signatures
// and converts/checks every argument against them before a launch: a wrong
// count, dtype or a non-contiguous array is a Python error, not a silently
// misread argument buffer.
//
// The loader inlines this file in place of `#include "common.cuh"` (NVRTC has
// no file system view, and CuPy's compile cache keys on the source text).

#ifndef ENGINE_SCALAR
#error "compile with -DENGINE_SCALAR=float|double -DENGINE_SUFFIX=f32|f64"
#endif

typedef ENGINE_SCALAR T;  // the array dtype of this build
typedef long long i64;
// Reductions (statistics, bias and weight gradients, sums over windows)
// accumulate in double: float32 sums over 1e5+ terms otherwise lose digits,
// and the CPU kernels accumulate these in float64 too.
typedef double acc_t;

#define ENGINE_CAT_(a, b) a##_##b
#define ENGINE_CAT(a, b) ENGINE_CAT_(a, b)
#define KERNEL(name) extern "C" __global__ void ENGINE_CAT(name, ENGINE_SUFFIX)
// A kernel the launcher may run with 1024-thread blocks (long reductions, where
// one block per output must pull a lot of data): the bound makes the compiler
// keep it within 64 registers per thread, so such a launch never fails for
// lack of registers.
#define KERNEL_1024(name) \
    extern "C" __global__ void __launch_bounds__(1024) ENGINE_CAT(name, ENGINE_SUFFIX)

// ----------------------------------------------------------------- indexing

__device__ __forceinline__ i64 global_thread() {
    return (i64)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ i64 global_stride() { return (i64)blockDim.x * gridDim.x; }

// Grid-stride loop over [0, n): any grid size is correct, so the launcher can
// cap the grid and every kernel still covers arrays with more than 2^31 items.
#define GRID_LOOP(i, n) for (i64 i = global_thread(); i < (n); i += global_stride())

// q = a / b and r = a % b for a >= 0, b > 0. 64-bit division is a long
// software sequence on GPUs; most indices fit 31 bits, where the hardware
// 32-bit path is several times cheaper.
__device__ __forceinline__ i64 divmod(i64 a, i64 b, i64& r) {
    if (((a | b) >> 31) == 0) {
        const unsigned ua = (unsigned)a, ub = (unsigned)b;
        const unsigned q = ua / ub;
        r = (i64)(ua - q * ub);
        return (i64)q;
    }
    const i64 q = a / b;
    r = a - q * b;
    return q;
}

// floor(a / b) for b > 0 and any sign of a (C division truncates toward 0).
__device__ __forceinline__ i64 floor_div(i64 a, i64 b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

__device__ __forceinline__ i64 imax(i64 a, i64 b) { return a > b ? a : b; }
__device__ __forceinline__ i64 imin(i64 a, i64 b) { return a < b ? a : b; }

// ---------------------------------------------------------------- math

// Overloads pick the float or double libdevice function explicitly, so a
// float32 build never silently computes exp/log in double (or vice versa).
__device__ __forceinline__ float ex(float x) { return expf(x); }
__device__ __forceinline__ double ex(double x) { return exp(x); }
__device__ __forceinline__ float lg(float x) { return logf(x); }
__device__ __forceinline__ double lg(double x) { return log(x); }
__device__ __forceinline__ float sq(float x) { return sqrtf(x); }
__device__ __forceinline__ double sq(double x) { return sqrt(x); }

// max that propagates NaN (fmax returns the non-NaN operand): a NaN logit
// must make its softmax row NaN, as on the CPU.
template <typename V>
__device__ __forceinline__ V nan_max(V a, V b) {
    return (a != a || a > b) ? a : b;
}

// Special values built from bit patterns: no math headers (NVRTC has none)
// and no constant division by zero (a compiler warning, and -Werror).
__device__ __forceinline__ double neg_inf() {
    return __longlong_as_double((long long)0xfff0000000000000ULL);
}
__device__ __forceinline__ double quiet_nan() {
    return __longlong_as_double((long long)0x7ff8000000000000ULL);
}

// ----------------------------------------------------------- reductions
// Block-level helpers need blockDim.x to be a multiple of 32 (at most 1024)
// and must be reached by every thread of the block (they synchronize).

template <typename V>
__device__ __forceinline__ V warp_sum(V v) {
    // butterfly: every lane ends with the total
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename V>
__device__ __forceinline__ V warp_max(V v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum of v over the block, returned to every thread. shm: 32 entries.
template <typename V>
__device__ V block_sum(V v, V* shm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // the previous call's readers are done with shm
    if (lane == 0) shm[warp] = v;
    __syncthreads();
    return warp_sum(lane < nwarps ? shm[lane] : V(0));
}

// NaN-propagating max of v over the block, returned to every thread.
template <typename V>
__device__ V block_max(V v, V* shm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shm[warp] = v;
    __syncthreads();
    return warp_max(lane < nwarps ? shm[lane] : shm[0]);
}

// Column tiles: the block is a (blockDim.x / 32) x 32 grid of threads, lane =
// column, warp = row group. Each thread has a partial sum of its column; the
// column totals are returned to every thread of the column. Used where the
// reduced axis is the slow one (channel-last batch norm, layer-norm parameter
// gradients), so that each warp still reads 32 consecutive values.
__device__ __forceinline__ acc_t tile_column_sum(acc_t v, acc_t (*tile)[32]) {
    const int lane = threadIdx.x & 31, row = threadIdx.x >> 5;
    const int rows = blockDim.x >> 5;
    __syncthreads();
    tile[row][lane] = v;
    __syncthreads();
    acc_t s = 0;
    for (int r = 0; r < rows; ++r) s += tile[r][lane];
    return s;
}
