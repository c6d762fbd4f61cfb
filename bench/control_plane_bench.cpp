// Control-plane benchmark: (1) scheduling decisions per second with 10,000 queued jobs over a device
// pool, in steady state (every placed job is released and a new one enqueued); (2) API latency p50/p99
// for job creation and for job listing under 50 concurrent keep-alive clients on loopback, against a
// SQLite registry in a temp dir. Bounded: fixed request counts, and each phase stops after 30 s.
// The reference printed alongside is the same scheduler with a 100-job queue, so the ratio shows what
// queue depth costs.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/file.h"
#include "jobs/http_api.h"
#include "jobs/job_service.h"
#include "jobs/scheduler.h"
#include "registry/hashing.h"

using namespace tl;
using Clock = std::chrono::steady_clock;

namespace {

double scheduling_decisions_per_second(size_t queue_depth) {
  std::vector<jobs::Device> devices;
  for (int i = 0; i < 8; ++i) devices.push_back({"gpu" + std::to_string(i), "h100", i < 4 ? 24'000 : 80'000, 2.0});
  jobs::Scheduler s(devices, 3600);
  std::mt19937_64 rng(42);
  int64_t seq = 0, now = 1'700'000'000;
  auto make = [&] {
    ++seq;
    return jobs::QueuedJob{"job" + std::to_string(seq), static_cast<registry::Tier>(rng() % 3), now + seq / 10, seq,
                           static_cast<int64_t>(2'000 + rng() % 70'000)};
  };
  for (size_t i = 0; i < queue_depth; ++i) (void)s.enqueue(make());
  int64_t decisions = 0;
  auto start = Clock::now();
  while (decisions < 2'000'000 && Clock::now() - start < std::chrono::seconds(2)) {
    for (const auto& a : s.schedule()) {
      ++decisions;
      s.release(a.device_id);
      (void)s.enqueue(make());  // keep the queue at depth
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(decisions) / secs;
}

struct Latencies {
  std::vector<double> ms;
  int errors = 0;
  double wall_s = 0;
};

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

Latencies hammer(int port, const std::string& key, int clients, int per_client,
                 const std::function<httplib::Result(httplib::Client&)>& request) {
  Latencies out;
  std::mutex mu;
  std::vector<std::thread> threads;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client cl("127.0.0.1", port);
      cl.set_bearer_token_auth(key.c_str());
      cl.set_keep_alive(true);
      std::vector<double> mine;
      int errs = 0;
      for (int i = 0; i < per_client && Clock::now() < deadline; ++i) {
        auto a = Clock::now();
        auto r = request(cl);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
        if (!r || r->status != 200) ++errs;
      }
      std::lock_guard<std::mutex> l(mu);
      out.ms.insert(out.ms.end(), mine.begin(), mine.end());
      out.errors += errs;
    });
  }
  for (auto& t : threads) t.join();
  out.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

void report(const char* what, const Latencies& l) {
  std::printf("  %-22s %6zu requests  %5.0f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d\n", what, l.ms.size(),
              static_cast<double>(l.ms.size()) / l.wall_s, pct(l.ms, 0.5), pct(l.ms, 0.99), l.errors);
}

}  // namespace

int main() {
  std::printf("control plane benchmark\n");
  double deep = scheduling_decisions_per_second(10'000);
  double shallow = scheduling_decisions_per_second(100);
  std::printf("  scheduling decisions/s  %.0f with 10,000 queued jobs, 8 devices (reference: %.0f with 100 queued; ratio %.2f)\n",
              deep, shallow, deep / shallow);

  const std::string root = (std::filesystem::temp_directory_path() / ("tl_cp_bench_" + registry::random_token("", 4))).string();
  std::filesystem::create_directories(root + "/model");
  (void)write_file_atomic(root + "/model/config.json",
                          R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "vocab_size": 1000})");
  auto reg = std::move(registry::Registry::open(root + "/tuneloop.db")).value();
  registry::ArtifactStore store(root + "/artifacts");
  (void)reg->add_model({"tiny", root + "/model", 200000, "", 0});
  auto tenant = std::move(reg->create_tenant("bench", registry::Tier::kEnterprise, -1)).value();
  jobs::ServiceOptions so;
  so.data_dir = root + "/data";
  so.pool.devices = {{"cpu0", "cpu", 1 << 20, 0}};
  jobs::JobService svc(*reg, store, so);  // dispatcher not started: jobs stay validating_files, the API is what we time
  jobs::ErrorDetail d;
  std::string lines;
  for (int i = 0; i < 20; ++i)
    lines += R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})" "\n";
  auto file = svc.upload_file(tenant.tenant, "train.jsonl", "fine-tune", lines, &d);
  jobs::ApiOptions ao;
  ao.threads = 64;
  jobs::ApiServer api(svc, ao);
  int port = *api.bind("127.0.0.1", 0);
  std::thread server([&] { (void)api.serve(); });
  while (!api.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const std::string body = nlohmann::json{{"model", "tiny"}, {"training_file", file->id}}.dump();
  std::printf("  API, 50 concurrent keep-alive clients on loopback, SQLite registry (server: 64 worker threads)\n");
  Latencies create = hammer(port, tenant.api_key, 50, 40, [&](httplib::Client& c) {
    return c.Post("/v1/fine_tuning/jobs", body, "application/json");
  });
  report("POST fine_tuning/jobs", create);
  Latencies list = hammer(port, tenant.api_key, 50, 100, [&](httplib::Client& c) { return c.Get("/v1/fine_tuning/jobs?limit=20"); });
  report("GET fine_tuning/jobs", list);
  api.stop();
  server.join();
  reg.reset();
  std::filesystem::remove_all(root);
  return 0;
}
