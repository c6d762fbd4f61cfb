// A control-plane server as a child process (tl_control_plane server …, the code of `tuneloop server`)
// for the tests that need a real process: kill -9 and restart, and the SDK end-to-end test. The
// listening port is read from the server's first stdout line; the destructor SIGKILLs a server that is
// still running, so a failing test never leaves one behind.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "run_command.h"
#include "test_util.h"

namespace tl::test {

class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      std::string bin = control_plane();
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    char line[512];
    // Bounded: the server prints its line within seconds or exits (EOF).
    if (out_ && fgets(line, sizeof line, out_)) {
      std::string l = line;
      size_t p = l.find("http://127.0.0.1:");
      if (p != std::string::npos) port_ = std::atoi(l.c_str() + p + 17);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_) fclose(out_);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Sends `sig` and reaps; returns the wait status.
  int signal_and_wait(int sig) {
    kill(pid_, sig);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  FILE* out_ = nullptr;
};

}  // namespace tl::test
