"""The compiler: trace blocks into a static IR, optimize it, lower it to compiled kernels."""
