// Process-wide settings read from the environment.
#pragma once

namespace tl {

// Worker threads for compute: TUNELOOP_THREADS if set to a positive integer, else the number of
// online CPUs.
int configured_thread_count();

}  // namespace tl
