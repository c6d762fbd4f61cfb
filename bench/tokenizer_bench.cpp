// tokenizer_bench: single-threaded encode throughput (MB/s of input UTF-8) of tl::Tokenizer on English
// prose and on source code, for a byte-level BPE vocabulary (GPT-2) and a SentencePiece-style one
// (Llama-2, "llama-spm"), against the 10 MB/s target of issue 3.
//
// There is no HF `tokenizers` package on Debian 12, so no reference runs in the same process; the
// numbers are absolute and compared with the target only. Text comes from files on the machine:
// prose = /usr/share/common-licenses/* then /usr/share/doc/*/copyright, code = /usr/lib/python3*/*.py,
// each capped at --mb megabytes (default 4). Every file is encoded as one document, as a training data
// pipeline would. The first run starts with an empty word cache ("cold"); the median is over --runs
// runs (default 5) with whatever the cache holds by then, as in a long-running process.
//
// Usage: tokenizer_bench [--mb N] [--runs N] [--testdata DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Regular files from `paths` (sorted), read until `cap` bytes in total.
std::vector<std::string> read_corpus(std::vector<fs::path> paths, size_t cap) {
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> docs;
  size_t total = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec) || total >= cap) continue;
    std::string text = slurp(p);
    if (text.empty()) continue;
    if (total + text.size() > cap) text.resize(cap - total);
    total += text.size();
    docs.push_back(std::move(text));
  }
  return docs;
}

std::vector<fs::path> prose_files() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/share/common-licenses", ec)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  std::vector<fs::path> copyrights;
  for (const auto& e : fs::directory_iterator("/usr/share/doc", ec)) copyrights.push_back(e.path() / "copyright");
  std::sort(copyrights.begin(), copyrights.end());
  out.insert(out.end(), copyrights.begin(), copyrights.end());
  return out;
}

std::vector<fs::path> code_files() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator("/usr/lib", ec)) {
    const std::string name = dir.path().filename().string();
    if (name.rfind("python3.", 0) != 0) continue;
    for (const auto& e : fs::directory_iterator(dir.path(), ec)) {
      if (e.path().extension() == ".py") out.push_back(e.path());
    }
  }
  return out;
}

struct Result {
  double cold_mbps = 0, median_mbps = 0;
  size_t tokens = 0;
};

Result run(const tl::Tokenizer& tok, const std::vector<std::string>& docs, int runs) {
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  std::vector<double> mbps;
  Result r;
  for (int i = 0; i < runs; ++i) {
    size_t tokens = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& d : docs) {
      auto ids = tok.encode(d, false);
      if (!ids.is_ok()) {
        std::fprintf(stderr, "error: encode failed: %s\n", ids.status().message().c_str());
        std::exit(1);
      }
      tokens += ids->size();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    mbps.push_back(static_cast<double>(bytes) / 1e6 / s);
    r.tokens = tokens;
  }
  r.cold_mbps = mbps.front();
  std::sort(mbps.begin(), mbps.end());
  r.median_mbps = mbps[mbps.size() / 2];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double mb = 4;
  int runs = 5;
  std::string testdata = TL_SHARED_TESTDATA;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mb") == 0) mb = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--testdata") == 0) testdata = argv[i + 1];
  }
  const auto cap = static_cast<size_t>(mb * 1e6);
  const std::vector<std::pair<const char*, std::vector<std::string>>> corpora = {
      {"prose", read_corpus(prose_files(), cap)}, {"code", read_corpus(code_files(), cap)}};

  std::printf("tokenizer encode throughput, 1 thread, target >= 10 MB/s (no HF reference on this machine)\n");
  std::printf("%-10s %-6s %8s %6s %10s %12s %12s %8s\n", "tokenizer", "corpus", "MB", "docs", "tokens",
              "cold MB/s", "median MB/s", "target");
  for (const char* name : {"gpt-2", "llama-spm"}) {
    auto tok = tl::Tokenizer::load(testdata + "/tokenizers/" + name);
    if (!tok.is_ok()) {
      std::fprintf(stderr, "error: %s\n", tok.status().message().c_str());
      return 1;
    }
    for (const auto& [corpus, docs] : corpora) {
      size_t bytes = 0;
      for (const auto& d : docs) bytes += d.size();
      Result r = run(*tok, docs, runs);
      std::printf("%-10s %-6s %8.2f %6zu %10zu %12.1f %12.1f %8s\n", name, corpus, static_cast<double>(bytes) / 1e6,
                  docs.size(), r.tokens, r.cold_mbps, r.median_mbps, r.median_mbps >= 10 ? "met" : "MISSED");
    }
  }
  return 0;
}
