// Runs a shell command for the tests that drive a real process (a binary, git, the Python references)
// and returns its exit code and what it printed on stdout (add 2>&1 to the command for stderr too).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

namespace tl::test {

// {exit code, or -1 when the command could not start or was killed by a signal; stdout}.
inline std::pair<int, std::string> run_command(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  const int status = p ? pclose(p) : -1;
  return {status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace tl::test
