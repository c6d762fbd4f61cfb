// `tuneloop server` as a function: opens the registry, recovers jobs, serves the API until SIGINT or
// SIGTERM, then stops the dispatcher. The CLI command (src/cli/server.cpp) and the tests that start a
// real server process call this same function.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace tl::jobs {

struct ServerOptions {
  std::string db_url;  // "" = ./tuneloop.db
  std::string host = "127.0.0.1";
  int port = 8600;  // 0 = any free port (printed on stdout)
  std::string devices_file;
  std::string data_dir = "tuneloop-data";
  std::string trainer_path;  // default: this executable
  int threads = 64;
  size_t max_upload_mb = 256;
  std::string mlflow_url;                   // "" = no MLflow mirroring (jobs/mlflow.h)
  std::string mlflow_experiment = "tuneloop";
  std::string calibration_file;             // "" = DATA_DIR/calibration.yaml when present (devices.h)
};

// Prints "tuneloop server listening on http://HOST:PORT" (one line, flushed) once accepting.
Status run_server(const ServerOptions& options);

}  // namespace tl::jobs
