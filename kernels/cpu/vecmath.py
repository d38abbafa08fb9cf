"""Math helpers for Numba kernels that LLVM can vectorize.

Numba calls libm for ``np.exp``, one scalar call per element, which makes exp-heavy
kernels (softmax) several times slower than SIMD code. ``fexp`` is a branch-free
float32 exp that LLVM turns into AVX-512/AVX2 code inside a loop; for float64 it is
plain ``np.exp`` (full precision matters more there than speed).

Use from ``@njit`` code only, compiled with ``error_model="numpy"``: Numba's default
error model checks every float division for zero, and that branch stops vectorization
(``flog`` divides).

* ``fexp(x)``: float32: ``2**n * poly(r)`` with ``x = n*ln2 + r``, ``|r| <= ln2/2``,
  a degree-7 Taylor polynomial (truncation < 6e-9 relative, so the result is within
  ~2 ulp of the true value); exactly 0 below the float32 normal range (x < -87.33),
  +inf above 88.72, NaN in, NaN out.
* ``FAST``: fastmath flags for the kernels: ``nsz``, ``arcp``, ``contract`` (FMA). No
  ``nnan``/``ninf``, so NaN and inf keep their IEEE behaviour, and no ``reassoc``: Numba
  compiles every function a kernel calls with the kernel's flags, and reassociation
  turned ``(m - x) + log(s)`` into ``(m + log(s)) - x`` (a loss of 0.69 came out
  0.6934 next to logits of 1e4).
* ``radd(s, v)``: ``s + v`` that LLVM may reassociate, for the accumulator of a sum
  reduction: with it the loop vectorizes (8-16 lanes), without giving the rest of the
  kernel license to reorder arithmetic.
* ``flog(x)``: float32: ``e*ln2 + log(m)`` with ``x = 2**e * m``, ``m`` in [sqrt(1/2), sqrt(2)),
  ``log(m) = 2*atanh(z)``, ``z = (m-1)/(m+1)`` (odd series to z**9, error < 1e-9); exact
  IEEE special cases (0 -> -inf, negative -> NaN, inf -> inf, NaN -> NaN), subnormals
  rescaled first. float64: ``np.log``.
* ``fmax(a, b)``: IEEE-754-2019 ``maximum`` (``llvm.maximum``: NaN if either is NaN).
  LLVM vectorizes a reduction written with it; Numba's ``max(a, b)`` reduction stays
  scalar even under ``fastmath=True``, so ``max1d`` over a (256, 1000) float32 array
  takes 13 us instead of 112 us (1 thread).
* ``max1d(a)``: max of a non-empty 1-D float array, NaN if it holds a NaN.
* ``fexpm1(x)``: float32: a degree-7 Taylor polynomial for ``|x| < 0.35`` (where ``exp(x) - 1``
  would cancel; truncation < 2e-7 relative), ``fexp(x) - 1`` elsewhere; both are computed and one
  selected, so the loop stays branch-free. float64: ``np.expm1``.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

__all__ = ["fexp", "fexpm1", "flog", "fmax", "max1d", "radd", "FAST"]

FAST = {"contract", "nsz", "arcp"}

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)           # ln 2 split so n * _LN2_HI is exact in float32
_LN2_LO = _F(-2.1219444005469057e-4)
_LO = _F(-87.33654)                 # below: result would be subnormal; return 0
_HI = _F(88.72283)                  # above: overflow; return inf
_C = tuple(_F(1.0 / f) for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0))


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32 as float32 (a register move, no memory round trip)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


@intrinsic
def _f32_to_bits(typingctx, x):
    """Reinterpret a float32 as int32."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return sig, codegen


def _exp32(x):
    c7, c6, c5, c4, c3, c2, c1, c0 = _C
    xc = min(max(x, _LO), _HI)
    n = np.floor(xc * _LOG2E + _F(0.5))
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = ((((((c7 * r + c6) * r + c5) * r + c4) * r + c3) * r + c2) * r + c1) * r + c0
    # times 2**n by adding n to p's exponent bits: no intermediate overflow, and integer
    # adds cannot be reassociated by fastmath flags the caller may compile with
    y = _f32_from_bits(_f32_to_bits(p) + (np.int32(n) << np.int32(23)))
    y = _F(0.0) if x < _LO else y
    y = _F(np.inf) if x > _HI else y
    return x if x != x else y


def fexp(x):
    """exp(x); vectorizable float32 version inside Numba code (see module doc)."""
    return np.exp(x)


@overload(fexp)
def _fexp_overload(x):
    if x == types.float32:
        return _exp32
    return lambda x: np.exp(x)


_E = tuple(_F(1.0 / f) for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0))


def _expm1_32(x):
    e7, e6, e5, e4, e3, e2 = _E
    small = x * (_F(1.0) + x * (e2 + x * (e3 + x * (e4 + x * (e5 + x * (e6 + x * e7))))))
    big = fexp(x) - _F(1.0)
    return small if abs(x) < _F(0.35) else big


def fexpm1(x):
    """exp(x) - 1; vectorizable float32 version inside Numba code (see module doc)."""
    return np.expm1(x)


@overload(fexpm1)
def _fexpm1_overload(x):
    if x == types.float32:
        return _expm1_32
    return lambda x: np.expm1(x)


_LN2 = _F(0.6931471805599453)
_SQRT2 = _F(1.4142135623730951)
_FLT_MIN = _F(1.1754943508222875e-38)
_L = tuple(_F(2.0 / k) for k in (9.0, 7.0, 5.0, 3.0, 1.0))


def _log32(x):
    c9, c7, c5, c3, c1 = _L
    tiny = x < _FLT_MIN  # subnormal (or <= 0): scale by 2**23 so the exponent bits work
    xs = x * _F(8388608.0) if tiny else x
    bits = _f32_to_bits(xs)
    e = ((bits >> np.int32(23)) & np.int32(255)) - np.int32(127) - (np.int32(23) if tiny else np.int32(0))
    m = _f32_from_bits((bits & np.int32(0x7FFFFF)) | np.int32(0x3F800000))  # [1, 2)
    big = m > _SQRT2
    m = m * _F(0.5) if big else m
    ef = _F(e + (np.int32(1) if big else np.int32(0)))
    z = (m - _F(1.0)) / (m + _F(1.0))
    z2 = z * z
    y = ef * _LN2 + z * ((((c9 * z2 + c7) * z2 + c5) * z2 + c3) * z2 + c1)
    y = -_F(np.inf) if x == _F(0.0) else y
    y = _F(np.nan) if x < _F(0.0) else y
    y = x if x == _F(np.inf) else y
    return x if x != x else y


def flog(x):
    """log(x); vectorizable float32 version inside Numba code (see module doc)."""
    return np.log(x)


@overload(flog)
def _flog_overload(x):
    if x == types.float32:
        return _log32
    return lambda x: np.log(x)


@intrinsic
def fmax(typingctx, a, b):
    """max(a, b) for two floats of one type; NaN wins (llvm.maximum)."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        lty = args[0].type
        bits = 32 if lty == ir.FloatType() else 64
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(lty, [lty, lty]), f"llvm.maximum.f{bits}")
        # reassoc + nsz on the call let the loop vectorizer turn a reduction into SIMD
        return builder.call(fn, args, fastmath=("reassoc", "nsz"))
    return a(a, b), codegen


@intrinsic
def radd(typingctx, a, b):
    """a + b for floats (the result has the wider type), marked reassociable (module doc)."""
    if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
        return None
    res = a if a.bitwidth >= b.bitwidth else b

    def codegen(context, builder, signature, args):
        x, y = (context.cast(builder, v, t, res) for v, t in zip(args, signature.args))
        instr = builder.fadd(x, y)
        instr.flags.extend(("reassoc", "nsz"))
        return instr
    return res(a, b), codegen


@njit(cache=True, fastmath=FAST, error_model="numpy")
def max1d(a):
    """Max of a non-empty 1-D float array (NaN if any element is NaN)."""
    m = a[0]
    for k in range(1, a.shape[0]):
        m = fmax(m, a[k])
    return m
