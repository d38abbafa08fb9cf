// Host emulation of the small CUDA subset the kernels in kernels/cuda/*.cu use,
// so that they can be compiled by g++ and run on a machine without a GPU
// (tests only; see _emulator.py). Every CUDA thread of a block is a real
// std::thread, so __syncthreads, shared memory and warp shuffles behave as on
// the device (threads really interleave); blocks run one after the other.
// A barrier that is not reached by every thread of its block or warp (a bug
// that hangs or corrupts a real GPU) aborts with a message after a timeout.
#pragma once

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace emu {

// Reusable barrier with a deadlock timeout.
class Barrier {
  public:
    explicit Barrier(unsigned n) : n_(n) {}
    void wait(const char* what) {
        std::unique_lock<std::mutex> lock(m_);
        const unsigned gen = gen_;
        if (++count_ == n_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
            return;
        }
        if (!cv_.wait_for(lock, std::chrono::seconds(20), [&] { return gen != gen_; })) {
            std::fprintf(stderr, "emulator: %s not reached by all threads (deadlock)\n", what);
            std::abort();
        }
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    unsigned n_, count_ = 0, gen_ = 0;
};

struct Warp {
    Barrier bar{32};
    alignas(8) unsigned char lanes[32][8];
};

struct Block {
    explicit Block(unsigned threads) : bar(threads) {
        for (unsigned w = 0; w < threads / 32; ++w) warps.emplace_back(new Warp);
    }
    Barrier bar;
    std::vector<std::unique_ptr<Warp>> warps;
};

inline thread_local dim3 thread_idx, block_idx;
inline dim3 block_dim, grid_dim;
inline Block* current = nullptr;
inline std::mutex atomic_mutex;

template <class F>
void launch(unsigned gx, unsigned gy, unsigned bx, F body) {
    if (bx == 0 || bx % 32 != 0 || bx > 1024) {
        std::fprintf(stderr, "emulator: block size %u is not a multiple of 32 in [32, 1024]\n", bx);
        std::abort();
    }
    grid_dim = dim3{gx, gy, 1};
    block_dim = dim3{bx, 1, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned b = 0; b < gx; ++b) {
            Block blk(bx);
            current = &blk;
            std::vector<std::thread> threads;
            threads.reserve(bx);
            for (unsigned t = 0; t < bx; ++t)
                threads.emplace_back([=] {
                    thread_idx = dim3{t, 0, 0};
                    block_idx = dim3{b, by, 0};
                    body();
                });
            for (auto& th : threads) th.join();
            current = nullptr;
        }
}

// Warp shuffle: publish, wait for the whole warp, read the partner, wait again
// (so nobody overwrites its slot before the others have read it).
template <class V>
V shuffle(V v, unsigned src_of(unsigned lane, unsigned arg), unsigned arg) {
    static_assert(sizeof(V) <= 8, "shuffle of a type wider than 8 bytes");
    const unsigned lane = thread_idx.x & 31;
    Warp& w = *current->warps[thread_idx.x >> 5];
    std::memcpy(w.lanes[lane], &v, sizeof(V));
    w.bar.wait("__shfl_*_sync");
    const unsigned src = src_of(lane, arg);
    V r = v;
    if (src < 32) std::memcpy(&r, w.lanes[src], sizeof(V));
    w.bar.wait("__shfl_*_sync");
    return r;
}

inline unsigned xor_lane(unsigned lane, unsigned mask) { return lane ^ mask; }
inline unsigned down_lane(unsigned lane, unsigned delta) { return lane + delta; }

}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
// Shared memory: one instance per kernel, shared by the threads of the block
// that is running (blocks run one at a time).
#define __shared__ static

inline void __syncthreads() { emu::current->bar.wait("__syncthreads"); }

template <class V>
V __shfl_xor_sync(unsigned, V v, int mask) {
    return emu::shuffle(v, emu::xor_lane, (unsigned)mask);
}

template <class V>
V __shfl_down_sync(unsigned, V v, int delta) {
    return emu::shuffle(v, emu::down_lane, (unsigned)delta);
}

template <class V>
V atomicAdd(V* p, V v) {
    std::lock_guard<std::mutex> lock(emu::atomic_mutex);
    const V old = *p;
    *p = old + v;
    return old;
}

inline double __longlong_as_double(long long bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

// exp/log/sqrt(double) and expf/logf/sqrtf(float) come from <cmath>, as the
// CUDA math library provides them on the device.
