// TL_CHECK: assertions for programmer errors (broken invariants), active in every build type.
//
// A failed check prints file:line and the condition, then aborts. Use it only where a failure means a
// bug in tuneloop, never for bad user input (return a Status for that); say in a comment why the
// condition cannot be false.
#pragma once

#include <cstdio>
#include <cstdlib>

#define TL_CHECK(cond)                                                                  \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: internal error: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

#define TL_CHECK_MSG(cond, msg)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: internal error: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, msg); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
