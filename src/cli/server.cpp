// `tuneloop server [--db URL] [--port N] [--host H] [--devices FILE] [--data-dir DIR] [--trainer PATH]
// [--threads N] [--max-upload-mb N] [--mlflow URL] [--mlflow-experiment NAME] [--calibration FILE]`: the
// control plane (jobs/server.h). Loopback by default; the trainer defaults to this binary (`tuneloop
// train`). MLflow mirroring: --mlflow, else MLFLOW_TRACKING_URI when it is an http(s) URL; the
// experiment: --mlflow-experiment, else MLFLOW_EXPERIMENT_NAME, else "tuneloop".
#include <cstdio>
#include <cstdlib>

#include "cli/args.h"
#include "cli/commands.h"
#include "jobs/server.h"

namespace tl::cli {

Status cmd_server(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--db", "--port", "--host", "--devices", "--data-dir", "--trainer", "--threads",
                                                    "--max-upload-mb", "--mlflow", "--mlflow-experiment", "--calibration"},
                                             {}));
  if (!args.positionals().empty()) return invalid_argument("server: unexpected argument '{}'", args.positionals()[0]);
  jobs::ServerOptions o;
  o.db_url = args.get("--db").value_or("");
  o.host = args.get("--host").value_or("127.0.0.1");
  TL_ASSIGN_OR_RETURN(long long port, args.get_int("--port", 8600, 0, 65535));
  o.port = static_cast<int>(port);
  o.devices_file = args.get("--devices").value_or("");
  o.data_dir = args.get("--data-dir").value_or("tuneloop-data");
  o.trainer_path = args.get("--trainer").value_or("");
  TL_ASSIGN_OR_RETURN(long long threads, args.get_int("--threads", 64, 1, 1024));
  o.threads = static_cast<int>(threads);
  TL_ASSIGN_OR_RETURN(long long mb, args.get_int("--max-upload-mb", 256, 1, 1 << 20));
  o.max_upload_mb = static_cast<size_t>(mb);
  const char* env_uri = std::getenv("MLFLOW_TRACKING_URI");
  const char* env_exp = std::getenv("MLFLOW_EXPERIMENT_NAME");
  o.mlflow_url = args.get("--mlflow").value_or("");
  if (o.mlflow_url.empty() && env_uri) {
    std::string uri = env_uri;
    if (uri.rfind("http://", 0) == 0 || uri.rfind("https://", 0) == 0) o.mlflow_url = uri;
    else if (!uri.empty()) std::fprintf(stderr, "tuneloop server: MLFLOW_TRACKING_URI '%s' is not http(s); not mirroring\n", env_uri);
  }
  if (!o.mlflow_url.empty() && o.mlflow_url.rfind("http://", 0) != 0 && o.mlflow_url.rfind("https://", 0) != 0)
    return invalid_argument("--mlflow: expected an http:// or https:// tracking server URL, got '{}'", o.mlflow_url);
  o.mlflow_experiment = args.get("--mlflow-experiment").value_or(env_exp && *env_exp ? env_exp : "tuneloop");
  o.calibration_file = args.get("--calibration").value_or("");
  return jobs::run_server(o);
}

}  // namespace tl::cli
