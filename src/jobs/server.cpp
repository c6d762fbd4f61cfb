// run_server: wiring of Registry + ArtifactStore + JobService + ApiServer, and signal handling. Signals
// are blocked in every thread and taken by one sigwait thread that stops the listener, so no handler
// runs in an arbitrary worker.
#include "jobs/server.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "jobs/http_api.h"
#include "jobs/job_service.h"
#include "registry/artifact_store.h"
#include "registry/registry.h"

namespace tl::jobs {

Status run_server(const ServerOptions& o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts, so all inherit it

  TL_ASSIGN_OR_RETURN(auto reg, registry::Registry::open(o.db_url));
  ServiceOptions so;
  so.data_dir = std::filesystem::absolute(o.data_dir).string();
  so.trainer_path = o.trainer_path;
  if (so.trainer_path.empty()) {
    std::error_code ec;
    so.trainer_path = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  }
  if (!o.devices_file.empty()) {
    TL_ASSIGN_OR_RETURN(so.pool, load_device_pool(o.devices_file));
  }
  // Measured throughput (`tuneloop calibrate`) overrides the built-in and devices-file figures.
  std::string calibration = o.calibration_file.empty() ? so.data_dir + "/calibration.yaml" : o.calibration_file;
  if (!o.calibration_file.empty() || std::filesystem::exists(calibration)) {
    TL_TRY(apply_calibration_file(calibration, &so.pool));
  }
  so.mlflow.url = o.mlflow_url;
  so.mlflow.experiment = o.mlflow_experiment;
  if (const char* token = std::getenv("MLFLOW_TRACKING_TOKEN")) so.mlflow.token = token;
  registry::ArtifactStore store(so.data_dir + "/artifacts");
  JobService service(*reg, store, so);
  TL_TRY(service.start());
  ApiOptions ao;
  ao.threads = o.threads;
  ao.max_upload_bytes = o.max_upload_mb << 20;
  ApiServer api(service, ao);
  TL_ASSIGN_OR_RETURN(int port, api.bind(o.host, o.port));

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    api.stop();
  });
  std::printf("tuneloop server listening on http://%s:%d (db %s, %zu devices, data %s%s%s)\n", o.host.c_str(), port,
              o.db_url.empty() ? "tuneloop.db" : o.db_url.c_str(), so.pool.devices.size(), so.data_dir.c_str(),
              o.mlflow_url.empty() ? "" : ", mlflow ", o.mlflow_url.c_str());
  std::fflush(stdout);
  Status st = api.serve();
  // The listener ended (signal or error): wake the waiter if it is still waiting, then shut down.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  service.stop();
  return st;
}

}  // namespace tl::jobs
