/* MKL, linked into torch's libtorch_cpu.so, takes a generic code path unless it sees an Intel CPU.
 * On AMD CPUs with AVX-512 its Intel path is correct and much faster for repeval's probe stacks
 * (docs/benchmarks.md, session 11: batched products 71 -> 98 GFLOP/s, the Jukemir grid 3.5x -> 4.5x
 * the plain loop). `python -m repeval.cpu build` compiles it into <environment>/lib (scripts/setup.sh
 * runs it when gcc exists, `make mkl-shim` rebuilds it, the cluster configs' setup commands run it on
 * every node). The `repeval` command re-executes itself with it preloaded on AMD CPUs (repeval/cpu.py),
 * so the driver and every embedded Ray worker take the same path; on a cluster the nodes' `ray start`
 * preloads it (`python -m repeval.cpu preload`). Results then equal an Intel machine's; without it they
 * differ in rounding. REPEVAL_MKL_SHIM=0 turns it off. Shipped in the wheel as package data. */
int mkl_serv_intel_cpu_true(void) { return 1; }
