// Runs the built `tuneloop` binary for the CLI tests and returns its exit code and output.
#pragma once

#include <string>

#include "run_command.h"

namespace tl::cli_test {

struct Outcome {
  int code;
  std::string out;  // stdout and stderr together, or stdout alone
};

inline Outcome run_tuneloop(const std::string& args, bool stdout_only = false) {
  auto [code, out] = test::run_command(std::string(TL_BINARY_DIR) + "/tuneloop " + args +
                                       (stdout_only ? " 2>/dev/null" : " 2>&1"));
  return {code, out};
}

}  // namespace tl::cli_test
