// The control plane's HTTP API, shaped like OpenAI's Files and Fine-tuning APIs so the official SDKs
// drive it unmodified, plus tuneloop's registry endpoints.
//
//   POST /v1/files                              multipart: file, purpose=fine-tune (JSONL checked per line)
//   GET  /v1/files, GET /v1/files/{id}
//   POST /v1/fine_tuning/jobs                   model, training_file, validation_file, suffix, seed,
//                                               method {type, supervised|dpo: {hyperparameters}},
//                                               hyperparameters (legacy), tuneloop_spec (YAML string)
//   GET  /v1/fine_tuning/jobs?after=&limit=     newest first
//   GET  /v1/fine_tuning/jobs/{id}
//   POST /v1/fine_tuning/jobs/{id}/cancel
//   GET  /v1/fine_tuning/jobs/{id}/events?after=&limit=
//   GET  /v1/fine_tuning/jobs/{id}/checkpoints
//   GET  /v1/fine_tuning/jobs/{id}/metrics[?key=loss]      run params + metric history
//   GET  /v1/fine_tuning/jobs/{id}/export?format=axolotl|unsloth
//   GET  /v1/adapters, GET /v1/adapters/{id}
//   POST /v1/adapters/{id}/approve | /deprecate | /activate
//   GET  /v1/models                              registered base models
//   GET  /healthz                                no auth
//
// Every request but /healthz needs `Authorization: Bearer <key>` (tuneloop tenant add); a tenant sees
// only its own files, jobs and adapters — another tenant's id is a 404, exactly like a missing one.
// Errors are OpenAI error objects {"error": {"message", "type", "param", "code"}} with the HTTP status
// of the Status code (core/status.h): 400 bad input, 401 bad key, 404 unknown id or model, 409 illegal
// state change, 413 body too large, 429 quota exceeded.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "jobs/job_service.h"

namespace tl::jobs {

struct ApiOptions {
  size_t max_upload_bytes = 256u << 20;  // POST /v1/files
  size_t max_json_bytes = 1u << 20;      // every JSON body
  int threads = 64;                      // worker threads: one per concurrent connection (keep-alive)
};

class ApiServer {
 public:
  ApiServer(JobService& service, ApiOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds host:port (port 0 = any free port); returns the bound port.
  Result<int> bind(const std::string& host, int port);
  // Serves until stop(); returns when the listener has closed.
  Status serve();
  void stop();
  bool is_running() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tl::jobs
