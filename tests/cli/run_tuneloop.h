// Runs the built `tuneloop` binary for the CLI tests and returns its exit code and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace tl::cli_test {

struct Outcome {
  int code;
  std::string out;  // stdout and stderr together, or stdout alone
};

inline Outcome run_tuneloop(const std::string& args, bool stdout_only = false) {
  const std::string cmd = std::string(TL_BINARY_DIR) + "/tuneloop " + args + (stdout_only ? " 2>/dev/null" : " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (p && fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = p ? pclose(p) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace tl::cli_test
