// harvest throughput: LOC/s for parse+graph (walk, read, redact, tree-sitter parse, link) and for the
// whole run (plus sqlite, gate, dedup, examples, writes) on a large real codebase — by default the
// Python standard library (/usr/lib/python3.11). The reference measured in the same run is a plain
// read of every file the walker accepted, so the ratio shows what parsing costs over raw I/O.
//
//   build-harvest/bench/harvest_bench [REPO] [--threads N]     (target: >= 50k LOC/s parse+graph, 2 cores)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/file.h"
#include "harvest/harvest.h"

int main(int argc, char** argv) {
  std::string repo = "/usr/lib/python3.11";
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else repo = a;
  }
  std::string out = (std::filesystem::temp_directory_path() / "harvest_bench_out").string();
  tl::harvest::HarvestOptions opt;
  opt.graph.threads = threads;

  // Reference: read every file of a supported language once (also warms the page cache).
  auto t0 = std::chrono::steady_clock::now();
  size_t bytes = 0, lines = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(
           repo, std::filesystem::directory_options::skip_permission_denied);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file() || tl::harvest::detect_language(it->path().string()) == tl::harvest::Language::kUnknown)
      continue;
    auto text = tl::read_file(it->path().string());
    if (!text.is_ok()) continue;
    bytes += text->size();
    for (char c : *text) lines += c == '\n';
  }
  double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto s = tl::harvest::harvest(repo, out, opt, nullptr);
  if (!s.is_ok()) {
    std::fprintf(stderr, "error: %s\n", s.status().message().c_str());
    return 1;
  }
  double pg_s = s->parse_graph_ms / 1000.0, total_s = s->total_ms / 1000.0;
  std::printf("repo: %s (threads=%d)\n", repo.c_str(), threads);
  std::printf("reference read: %zu bytes, %zu lines in %.2fs\n", bytes, lines, read_s);
  std::printf("parsed %lld code files, %lld LOC, %lld functions, %lld examples, %lld skipped files\n",
              static_cast<long long>(s->files_parsed), static_cast<long long>(s->loc),
              static_cast<long long>(s->functions), static_cast<long long>(s->examples),
              static_cast<long long>(s->files_skipped));
  std::printf("parse+graph: %.2fs = %.0f LOC/s   (%.1fx the plain read time)\n", pg_s,
              static_cast<double>(s->loc) / pg_s, pg_s / read_s);
  std::printf("whole run:   %.2fs = %.0f LOC/s\n", total_s, static_cast<double>(s->loc) / total_s);
  std::printf("report: %s/report.json\n", out.c_str());
  return 0;
}
