// Process-wide settings read from the environment.

#pragma once

namespace tl {

// Worker threads for compute: TUNELOOP_THREADS if set to a positive integer, else the number of
// online CPUs.
int configured_thread_count();

// Keeps freed memory in the process heap instead of returning it to the kernel. A training step or a
// prefill allocates and frees the same large activation buffers over and over; by default glibc maps
// each one fresh and unmaps it on free, so every step paid page faults and kernel page zeroing (5-14%
// of a LoRA step). Peak RSS is unchanged: what is kept is what the previous step already used.
// Call once the model is loaded (the trainer and the benchmarks do): loading frees large per-layer
// buffers that should go back to the kernel.
void keep_freed_memory();

// libgomp (the team ThreadPool and OpenBLAS share) spins about 300,000 times after every parallel
// region before it sleeps. On a 2-core machine that waiter eats the core another process needs: two
// trainers (or two tests under ctest -j2) slowed each other by an order of magnitude. 10,000 spins keep
// back-to-back kernels and decode as fast as the default (measured) and let an idle team sleep.
// libgomp reads its environment before main (and setenv from .preinit_array is lost: glibc resets
// environ after it), so unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, this sets
// GOMP_SPINCOUNT=10000 and re-executes the program once (/proc/self/exe, same argv). Call it first
// thing in main; it returns when nothing needed doing or the exec failed.
void ensure_openmp_defaults(char** argv);

}  // namespace tl
