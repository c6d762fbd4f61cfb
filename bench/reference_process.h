// A reference process driven line by line over pipes, so a benchmark can interleave its runs with ours:
// on a shared, noisy machine, runs measured minutes apart compare the machine's moods, not the code.
//
//   RefProcess ref("env ... /usr/bin/python3 bench/reference/engine_reference.py ... --serve");
//   std::string hello = ref.read_line();      // the reference prints one line once it is ready
//   double tps;  ref.ask_number("prefill", &tps);
//   std::string last = ref.finish();           // closes its input; whatever it prints at the end
#pragma once

#include <signal.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tensor/blas.h"

// "OPENBLAS_CORETYPE=X " for a reference's command line: the kernel family ours runs on this CPU
// (SKYLAKEX with AVX-512, HASWELL with AVX2), so the reference gets its fast kernels and never one
// this CPU cannot execute.
inline std::string reference_coretype_env() {
  const char* core = tl::openblas_coretype_for_cpu();
  return core ? std::string("OPENBLAS_CORETYPE=") + core + " " : std::string();
}

// A benchmark runs our side on the same fastest family too, whatever the shell exports (one machine here
// exported OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU: half the sgemm rate). Call before the first GEMM:
// our OpenBLAS is loaded then, and child processes inherit the setting.
inline void use_fastest_openblas_family() {
  const char* best = tl::openblas_coretype_for_cpu();
  if (!best) return;
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  if (user && *user && strcasecmp(user, best) != 0)
    std::fprintf(stderr, "note: the environment's OPENBLAS_CORETYPE=%s is replaced by %s for this benchmark\n",
                 user, best);
  setenv("OPENBLAS_CORETYPE", best, 1);
}

class RefProcess {
 public:
  explicit RefProcess(const std::string& cmd) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      close(to_child[1]);
      close(from_child[0]);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    in_ = fdopen(to_child[1], "w");
    out_ = fdopen(from_child[0], "r");
  }
  RefProcess(const RefProcess&) = delete;
  RefProcess& operator=(const RefProcess&) = delete;
  ~RefProcess() {
    if (in_) {
      std::fputs("quit\n", in_);
      std::fclose(in_);
    }
    if (out_) std::fclose(out_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }

  bool ok() const { return pid_ > 0 && in_ && out_; }
  // Closes the reference's input (its end-of-requests) and returns the last line it prints.
  std::string finish() {
    if (in_) std::fclose(in_);
    in_ = nullptr;
    return read_line();
  }
  void send(const std::string& line) {
    std::fputs((line + "\n").c_str(), in_);
    std::fflush(in_);
  }
  // Sends a request and reads the number it answers with; false when the answer (kept in *answer when
  // given) is not one.
  bool ask_number(const std::string& request, double* out, std::string* answer = nullptr) {
    send(request);
    const std::string line = read_line();
    if (answer) *answer = line;
    char* end = nullptr;
    *out = std::strtod(line.c_str(), &end);
    return end != line.c_str();
  }
  // The next line (without its newline); empty when the process has gone.
  std::string read_line() {
    std::string s;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, out_)) {
      s += buf;
      if (!s.empty() && s.back() == '\n') {
        s.pop_back();
        return s;
      }
    }
    return s;
  }

 private:
  pid_t pid_ = -1;
  FILE* in_ = nullptr;
  FILE* out_ = nullptr;
};
