/* MKL, linked into torch's libtorch_cpu.so, takes a generic code path unless it sees an Intel CPU.
 * On AMD CPUs with AVX-512 its Intel path is correct and much faster for repeval's probe stacks
 * (docs/benchmarks.md, session 11: batched products 71 -> 98 GFLOP/s, the Jukemir grid 3.5x -> 4.5x
 * the plain loop). Build with `make mkl-shim`, then start repeval (the driver, and so every
 * embedded Ray worker) with LD_PRELOAD pointing at the library. Results then equal an Intel
 * machine's; without it they differ in rounding. */
int mkl_serv_intel_cpu_true(void) { return 1; }
