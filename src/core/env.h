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

}  // namespace tl
